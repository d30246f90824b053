//! `ImageObject`: one Durable Object per image (`IMAGE_OBJECTS`, named
//! `{app_id}/{image_id}`), for the two things that must happen once per
//! image whatever the number of Worker isolates:
//!
//! - **Variants are made once.** A variant not yet stored is made here:
//!   concurrent first requests for it, from any isolate, meet in this one
//!   object and wait on one creation ([`Shared`]), so one original is read
//!   and one billed Images call is made. Creations of different variants
//!   of the image take turns, so one original (up to 20 MB) is in memory at
//!   a time, not one per variant asked for at once. The object is asked
//!   only on a storage miss (edge hits and stored variants never reach it),
//!   and keeps nothing in storage for it: the creations in flight are in
//!   memory.
//! - **Presigned uploads are checked when they land.** A presign tells the
//!   object when its URL stops being usable ([`ImageCommand::CheckUploadAt`]);
//!   the object's alarm then checks what landed, as a first read would
//!   ([`records::vet`]): the record is kept, or the object is removed. So an
//!   upload nobody reads is checked all the same. Afterwards the object
//!   deletes the pending check.
//! - **Whether the image requires signed URLs**, kept here (strongly
//!   consistent) as well as in the image's KV record: a presign with
//!   `require_signed_urls` has no record yet, and a check that finds no
//!   record (a KV miss while a new record propagates) must not make a
//!   public record of a private image. So [`records::vet`] takes the flag
//!   from here ([`ImageCommand::Access`]); `/upload` and the access route
//!   set it ([`ImageCommand::SetAccess`]). Only `true` is stored.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use futures_util::lock::Mutex;
use media_core::ids::{AppId, ImageId};
use media_core::image::variant::{OutputFormat, VariantOptions};
use media_core::keys::ObjectKey;
use media_core::time::Timestamp;
use media_core::wire::api::ImageRecord;
use media_core::ApiError;
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, js_sys, DurableObject, Env, Method, Request, RequestInit, Response, ScheduledTime, State,
};
use worker_kit::clock::now;
use worker_kit::config::{ConfigError, Vars};
use worker_kit::reply::error_response;
use worker_kit::settings::StorageSettings;
use worker_kit::store::{AnyStore, ObjectStore};
use worker_kit::Failure;

use crate::settings::ImageSettings;
use crate::{images_binding, records, ImageContext};

/// The binding's name in the wrangler files.
pub const IMAGE_OBJECTS_BINDING: &str = "IMAGE_OBJECTS";
/// Where the object keeps the upload it is to check.
const UPLOAD_KEY: &str = "upload";
/// Where the object keeps `true` while the image requires signed URLs.
const ACCESS_KEY: &str = "require_signed_urls";

/// A command to one image's object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ImageCommand {
    /// Make the variant unless it is stored; answers [`VariantMade`].
    Variant(VariantJob),
    /// A presigned `PUT` for the image was handed out: check what landed at
    /// `check_at` (its URL's expiry and the grace for a slow upload).
    /// With `require_signed_urls`, the image is private from the start.
    CheckUploadAt {
        app: AppId,
        image: ImageId,
        check_at: Timestamp,
        #[serde(default)]
        require_signed_urls: bool,
    },
    /// Whether the image requires signed URLs; answers `bool`.
    Access,
    /// Sets it; answers `true`.
    SetAccess { require_signed_urls: bool },
}

/// One variant to make: from the original (only the version its record
/// checked), to `key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantJob {
    pub app: AppId,
    pub image: ImageId,
    /// The original's bare entity tag, from its record.
    pub original_etag: Option<String>,
    /// The variant's object key.
    pub key: String,
    pub options: VariantOptions,
    pub format: OutputFormat,
}

/// How a variant came to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantMade {
    /// This request made it: the one Images call.
    Created,
    /// It was there already, or another request's creation made it.
    Stored,
}

/// An upload to check ([`ImageCommand::CheckUploadAt`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingUpload {
    app: AppId,
    image: ImageId,
    check_at: Timestamp,
}

/// A creation in flight, which later requests for the same variant await.
type Creation = Shared<LocalBoxFuture<'static, Result<VariantMade, Failure>>>;

#[durable_object]
pub struct ImageObject {
    state: State,
    env: Env,
    /// Variant key → its creation in flight.
    making: RefCell<HashMap<String, Creation>>,
    /// Held by the creation that runs: one original in memory at a time.
    turn: Rc<Mutex<()>>,
}

/// The store the object works on (its own settings: it has no request context).
fn store_of(env: &Env) -> Result<AnyStore, ConfigError> {
    AnyStore::open(env, &StorageSettings::load(&Vars(env)))
}

fn settings_of(env: &Env) -> Result<ImageSettings, ConfigError> {
    ImageSettings::load(&Vars(env))
}

/// Makes the variant of `job` unless it is stored: reads the original, one
/// Images call, stores the result.
async fn make_variant(env: Env, job: VariantJob) -> Result<VariantMade, Failure> {
    let store = store_of(&env)?;
    if store.head(&job.key).await?.is_some() {
        return Ok(VariantMade::Stored);
    }
    let started = worker::Date::now().as_millis();
    let original_key = ObjectKey::Image { app: job.app.clone(), image: job.image.clone() }.to_string();
    let original = records::read_original(&store, &original_key, job.original_etag.as_deref()).await?;
    let input_bytes = original.len();
    let made = images_binding::transform(&env, original, &job.options, job.format).await?;
    let output_bytes = made.bytes.len();
    store.put(&job.key, made.bytes, job.format.content_type()).await?;
    tracing::info!(
        app_id = %job.app,
        image_id = %job.image,
        variant = %job.key,
        input_bytes,
        output_bytes,
        ms = worker::Date::now().as_millis().saturating_sub(started),
        "image variant created"
    );
    Ok(VariantMade::Created)
}

/// The object's answer for `result`: the JSON of a success, or the error
/// as a Worker answers it (our faults' details logged here, not sent).
fn answer<T: Serialize>(result: Result<T, Failure>) -> worker::Result<Response> {
    match result {
        Ok(v) => Response::from_json(&v),
        Err(f) => {
            if let Some(detail) = f.report_detail() {
                tracing::error!(detail, "image object command failed");
            }
            Ok(error_response(&f.to_api_error()))
        }
    }
}

impl ImageObject {
    /// [`make_variant`], shared with every request for the same variant
    /// that arrives while it runs. Only the request that started it answers
    /// `Created`.
    async fn variant(&self, job: VariantJob) -> Result<VariantMade, Failure> {
        let key = job.key.clone();
        let running = self.making.borrow().get(&key).cloned();
        if let Some(creation) = running {
            let made = creation.clone().await;
            self.forget(&key, &creation);
            return made.map(|_| VariantMade::Stored);
        }
        let (env, turn) = (self.env.clone(), Rc::clone(&self.turn));
        let creation = async move {
            let _turn = turn.lock().await;
            make_variant(env, job).await
        }
        .boxed_local()
        .shared();
        self.making.borrow_mut().insert(key.clone(), creation.clone());
        let made = creation.clone().await;
        self.forget(&key, &creation);
        made
    }

    /// Drops a finished creation (whichever of its requests ends first:
    /// the one that started it may have been cancelled), so that a later
    /// miss (after a delete) or a retry after a failure starts afresh.
    fn forget(&self, key: &str, creation: &Creation) {
        let mut making = self.making.borrow_mut();
        if making.get(key).is_some_and(|c| c.ptr_eq(creation)) {
            making.remove(key);
        }
    }

    /// Keeps the upload to check and sets the alarm for it (a later check
    /// time wins: a second presign of the same id lives longer).
    async fn check_upload_at(&self, pending: PendingUpload) -> worker::Result<()> {
        let storage = self.state.storage();
        let at = match storage.get::<PendingUpload>(UPLOAD_KEY).await? {
            Some(earlier) if earlier.check_at > pending.check_at => earlier.check_at,
            _ => pending.check_at,
        };
        storage.put(UPLOAD_KEY, PendingUpload { check_at: at, ..pending }).await?;
        let when = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at.millis() as f64));
        storage.set_alarm(ScheduledTime::new(when)).await
    }

    /// The alarm: checks the upload (the record kept, or the object
    /// removed; nothing there is fine), then forgets everything. A storage
    /// fault fails the alarm, which the runtime retries.
    async fn check_landed(&self) -> worker::Result<()> {
        let storage = self.state.storage();
        if let Some(p) = storage.get::<PendingUpload>(UPLOAD_KEY).await? {
            if p.check_at > now() {
                // Rescheduled meanwhile (a later presign): not yet.
                let when = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(p.check_at.millis() as f64));
                return storage.set_alarm(ScheduledTime::new(when)).await;
            }
            match self.check(&p.app, &p.image).await {
                Ok(()) => tracing::info!(app_id = %p.app, image_id = %p.image, "landed upload checked"),
                Err(Failure::Client(e)) => {
                    tracing::info!(app_id = %p.app, image_id = %p.image, outcome = %e.message, "landed upload not kept");
                }
                Err(f) => {
                    let detail = f.report_detail().unwrap_or_default().to_owned();
                    tracing::error!(app_id = %p.app, image_id = %p.image, detail, "checking a landed upload failed; the alarm retries");
                    return Err(worker::Error::RustError(detail));
                }
            }
        }
        // The access flag stays: it outlives the check.
        storage.delete(UPLOAD_KEY).await.map(drop)
    }

    /// Whether the image requires signed URLs.
    async fn access(&self) -> worker::Result<bool> {
        Ok(self.state.storage().get::<bool>(ACCESS_KEY).await?.unwrap_or(false))
    }

    async fn set_access(&self, require_signed_urls: bool) -> worker::Result<()> {
        let storage = self.state.storage();
        if require_signed_urls {
            storage.put(ACCESS_KEY, true).await
        } else {
            storage.delete(ACCESS_KEY).await.map(drop)
        }
    }

    /// One landed upload: an image with a record was checked already;
    /// anything else is checked now ([`records::vet`]: kept with its record,
    /// or removed; a 404 when nothing landed, or what did was removed).
    async fn check(&self, app: &AppId, image: &ImageId) -> Result<(), Failure> {
        if records::read(&self.env, app, image).await.is_some() {
            tracing::info!(app_id = %app, image_id = %image, "landed upload already checked");
            return Ok(());
        }
        let settings = settings_of(&self.env)?;
        let store = store_of(&self.env)?;
        let key = ObjectKey::Image { app: app.clone(), image: image.clone() }.to_string();
        let private = self.access().await?;
        records::vet(&store, &self.env, &settings, &key, app, image, async || Ok(private)).await.map(drop)
    }
}

impl DurableObject for ImageObject {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, making: RefCell::default(), turn: Rc::default() }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let text = req.text().await?;
        let cmd: ImageCommand = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => return answer::<()>(Err(Failure::internal(format!("image object command: {e}")))),
        };
        match cmd {
            ImageCommand::Variant(job) => answer(self.variant(job).await),
            ImageCommand::CheckUploadAt { app, image, check_at, require_signed_urls } => {
                if require_signed_urls {
                    self.set_access(true).await?;
                }
                self.check_upload_at(PendingUpload { app, image, check_at }).await?;
                Response::from_json(&true)
            }
            ImageCommand::Access => Response::from_json(&self.access().await?),
            ImageCommand::SetAccess { require_signed_urls } => {
                self.set_access(require_signed_urls).await?;
                Response::from_json(&true)
            }
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.check_landed().await?;
        Response::ok("")
    }
}

/// The image's record: the one kept, or one made now by [`records::vet`],
/// which asks the image's object whether it requires signed URLs.
pub async fn record_or_vet(
    cx: &ImageContext<'_>,
    key: &str,
    app: &AppId,
    image: &ImageId,
) -> Result<ImageRecord, Failure> {
    match records::read(cx.env, app, image).await {
        Some(rec) => Ok(rec),
        None => {
            let private = async || ask(cx.env, app, image, &ImageCommand::Access).await;
            records::vet(cx.store()?, cx.env, &cx.settings, key, app, image, private).await
        }
    }
}

/// Sends `cmd` to the object of `app`'s `image` and reads its answer: a
/// 200 as `T`, a client error relayed as it is, 503 as storage's, anything
/// else ours.
pub async fn ask<T: for<'de> Deserialize<'de>>(
    env: &Env,
    app: &AppId,
    image: &ImageId,
    cmd: &ImageCommand,
) -> Result<T, Failure> {
    let unavailable =
        |e: worker::Error| Failure::Unavailable { detail: format!("{IMAGE_OBJECTS_BINDING} {app}/{image}: {e}") };
    let stub = env.durable_object(IMAGE_OBJECTS_BINDING)?.id_from_name(&format!("{app}/{image}"))?.get_stub()?;
    let body = serde_json::to_string(cmd).map_err(|e| Failure::internal(format!("image object command: {e}")))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let mut resp = stub
        .fetch_with_request(Request::new_with_init("https://image-object.internal/", &init)?)
        .await
        .map_err(unavailable)?;
    let status = resp.status_code();
    let text = resp.text().await.map_err(unavailable)?;
    if status == 200 {
        return serde_json::from_str(&text)
            .map_err(|e| Failure::internal(format!("{IMAGE_OBJECTS_BINDING} answer: {e}")));
    }
    match ApiError::from_json(&text) {
        Some(e) if status < 500 => Err(Failure::Client(e)),
        _ if status == 503 => {
            Err(Failure::Unavailable { detail: format!("{IMAGE_OBJECTS_BINDING} answered 503: {text}") })
        }
        _ => Err(Failure::internal(format!("{IMAGE_OBJECTS_BINDING} answered {status}: {text}"))),
    }
}
