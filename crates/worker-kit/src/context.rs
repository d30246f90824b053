//! The per-request context: everything a route needs besides its request,
//! read and built once in [`crate::entry::handle`] and passed to every
//! handler — the runtime's `Env` and `Context`, the service's own settings,
//! the [`CommonSettings`], the object store, the presigner and the Sentry
//! reporter. Nothing below reads a var again.

use std::cell::Cell;

use crate::sentry::Fault;
use media_core::http::sigv4::S3Bucket;
use worker::{Context, Env, Request};

use crate::config::{ConfigError, Vars};
use crate::failure::Failure;
use crate::sentry::Reporter;
use crate::settings::CommonSettings;
use crate::store::AnyStore;

/// What a request of service settings `S` runs with.
pub struct RequestContext<'a, S> {
    /// The Worker's bindings (KV, Durable Objects, rate limiters).
    pub env: &'a Env,
    /// The runtime's context, whose `wait_until` runs work after the answer.
    pub execution: &'a Context,
    /// The service's name, as reported to Sentry.
    pub service: &'static str,
    /// The service's own settings.
    pub settings: S,
    /// What both services read.
    pub common: CommonSettings,
    /// The adapter `STORAGE_BACKEND` picks, or why there is none.
    store: Result<AnyStore, ConfigError>,
    sentry: Reporter,
    /// Whether the route ran the API-key guard (`crate::entry::guard`).
    key_checked: Cell<bool>,
}

impl<'a, S> RequestContext<'a, S> {
    /// Reads the common and the service's settings (`load_service`) and
    /// opens the store. A settings error is the request's answer; storage
    /// errors wait for a route that uses storage.
    pub fn load(
        service: &'static str,
        env: &'a Env,
        execution: &'a Context,
        sentry: Reporter,
        load_service: impl FnOnce(&Vars<'_>) -> Result<S, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let vars = Vars(env);
        let common = CommonSettings::load(&vars)?;
        let settings = load_service(&vars)?;
        let store = AnyStore::open(env, &common.storage);
        Ok(RequestContext { env, execution, service, settings, common, store, sentry, key_checked: Cell::new(false) })
    }

    /// The object store, or the configuration error that leaves none.
    pub fn store(&self) -> Result<&AnyStore, Failure> {
        self.store.as_ref().map_err(|e| e.clone().into())
    }

    /// What upload URLs are presigned with (the `S3_*` settings), whichever
    /// backend serves reads.
    pub fn presigner(&self) -> Result<&S3Bucket, Failure> {
        self.common.storage.s3.as_ref().map_err(|e| e.clone().into())
    }

    /// The origin used in the URLs a service hands out: `PUBLIC_BASE_URL`,
    /// or the origin the request came to.
    pub fn public_base(&self, req: &Request) -> String {
        self.common
            .public_base
            .clone()
            .unwrap_or_else(|| req.url().map(|u| u.origin().ascii_serialization()).unwrap_or_default())
    }

    /// Records that the request's API key was checked (by the guard).
    pub(crate) fn mark_key_checked(&self) {
        self.key_checked.set(true);
    }

    /// Whether the request's API key was checked: an API-key row of the
    /// route table whose handler did not is our fault (`crate::entry::handle`).
    pub(crate) fn key_checked(&self) -> bool {
        self.key_checked.get()
    }

    /// Drops every response tagged with one of `tags` at every location
    /// after the answer ([`crate::purge::PurgeSettings::purge_tags`]); a
    /// purge that still fails goes to Sentry as well as the log.
    pub fn purge_tags(&self, host: &str, tags: Vec<String>) {
        let sentry = crate::sentry::OwnedReporter {
            reporter: self.sentry.clone(),
            service: self.service.to_owned(),
            environment: self.common.environment.clone(),
        };
        self.common.purge.purge_tags(self.execution, host, tags, Some(sentry));
    }

    /// Sends one of our faults to Sentry (after the answer), with the
    /// service and environment of this request.
    pub fn report(&self, method: &str, url: &str, detail: &str) {
        let fault =
            Fault { service: self.service, environment: &self.common.environment, message: detail, method, url };
        self.sentry.report(self.execution, fault);
    }
}
