//! Transformed images: `GET`/`HEAD /images/{app_id}/{image_id}/{options}`,
//! and the older `/cdn-cgi/image/{options}/assets/images/{app_id}/{image_id}`
//! that earlier `transform_url`s used, answered the same way. Public.
//!
//! A request is answered from the first place that has it:
//! 1. the edge cache (Cache API), keyed by the canonical options and, for
//!    `f=auto`, the client's kind of `Accept`: no record, no storage;
//! 2. the stored variant in R2 (`images/{app}/{image}/{variant}`), which
//!    then goes into the edge cache, tagged with the image's cache tag so
//!    the image's delete purges every variant at every location;
//! 3. the Images binding, called once: the image's Durable Object
//!    ([`crate::image_object`]) transforms the original (only the version
//!    its record checked) and stores the result, which is served as in 2.
//!    Concurrent first requests wait there for that one creation.
//!
//! `x-image-variant` says which (`edge`, `stored`, `created`): the count
//! of `created` answers is the count of billed transformations (requests
//! that waited for another's creation answer `stored`). The
//! options' rules (allowed set, `f=auto`, limits) are
//! `media_core::image::variant`'s.

use media_core::http::purge::image_tag;
use media_core::ids::{AppId, ImageId};
use media_core::image::transform::{decode_options, split_transform_path};
use media_core::image::variant::{
    cache_path, check_source, negotiate, split_variant_path, variant_key, AcceptClass, FormatChoice, VariantOptions,
};
use media_core::keys::{CachePolicy, ObjectKey};
use media_core::media::{Dimensions, ImageType};
use media_core::{ApiError, ErrorCode};
use worker::{Request, Response};
use worker_kit::ratelimit::enforce_public;
use worker_kit::serve::{edge_hit, serve_object, EdgeCache, ServeSpec};
use worker_kit::store::ObjectInfo;
use worker_kit::{Failure, Handled};

use crate::image_object::{self, ImageCommand, VariantJob, VariantMade};
use crate::records::no_such_image;
use crate::signed::{self, Signed};
use crate::ImageContext;

/// `GET`/`HEAD /images/{app_id}/{image_id}/{options}`.
pub async fn serve_variant(req: Request, cx: &ImageContext<'_>) -> Handled {
    let path = req.path();
    let (app, image, options) = split_variant_path(&path).ok_or_else(|| {
        Failure::from(ApiError::not_found(
            "no such image variant; the path is /images/{app_id}/{image_id}/{options}, e.g. /images/app/img/w=640,f=auto",
        ))
    })?;
    let opts = cx.settings.variants.parse(&decode_options(options)?)?;
    answer(&req, cx, &app, &image, &opts).await
}

/// `GET`/`HEAD /cdn-cgi/image/{options}/assets/images/{app_id}/{image_id}`:
/// the `transform_url` of earlier answers. Where Cloudflare's zone-level
/// transformations are on, the zone answers this before the Worker runs.
pub async fn serve_cdn_cgi(req: Request, cx: &ImageContext<'_>) -> Handled {
    let path = req.path();
    let (options, source) = split_transform_path(&path).ok_or_else(no_such_image)?;
    let opts = cx.settings.variants.parse(&decode_options(options)?)?;
    let key = source.strip_prefix("assets/").unwrap_or("");
    let Some(ObjectKey::Image { app, image }) = ObjectKey::parse(key) else {
        return Err(ApiError::not_found(
            "the image to transform must be one of this service's images: /cdn-cgi/image/{options}/assets/images/{app_id}/{image_id}",
        )
        .into());
    };
    answer(&req, cx, &app, &image, &opts).await
}

/// Where the answer came from, in `x-image-variant`.
#[derive(Clone, Copy)]
enum Source {
    Edge,
    Stored,
    Created,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Edge => "edge",
            Source::Stored => "stored",
            Source::Created => "created",
        }
    }
}

fn finish(mut resp: Response, opts: &VariantOptions, source: Source, signed: Option<Signed>) -> Handled {
    signed::for_client(&mut resp, signed)?;
    let headers = resp.headers_mut();
    if opts.format == FormatChoice::Auto {
        headers.set("vary", "Accept")?;
    }
    headers.set("x-image-variant", source.as_str())?;
    headers.set("cross-origin-resource-policy", "cross-origin")?;
    Ok(resp)
}

async fn answer(req: &Request, cx: &ImageContext<'_>, app: &AppId, image: &ImageId, opts: &VariantOptions) -> Handled {
    let accept = AcceptClass::of(req.headers().get("accept")?.as_deref());
    let origin = req.url()?.origin().ascii_serialization();
    // A signed request is verified first, and looks only among signed copies.
    let signed = signed::check(req, cx, app).await?;
    let cache_key = signed::cache_key(&origin, &cache_path(app, image, opts, accept), signed);
    if let Some(hit) = edge_hit(&cache_key, req).await? {
        return finish(hit, opts, Source::Edge, signed);
    }
    // Past the edge, a request costs a record read, storage and maybe a
    // billed transformation: counted per client address.
    enforce_public(cx.env, req, "image-variant").await?;

    let original_key = ObjectKey::Image { app: app.clone(), image: image.clone() }.to_string();
    let record = image_object::record_or_vet(cx, &original_key, app, image).await?;
    signed::require(record.meta.require_signed_urls, signed)?;
    let original_type = ImageType::from_content_type(&record.meta.content_type).ok_or_else(|| {
        Failure::internal(format!("the record of {original_key} has type {:?}", record.meta.content_type))
    })?;
    let dims = record.meta.width.zip(record.meta.height).map(|(width, height)| Dimensions { width, height });
    let source = check_source(record.meta.size, dims)?;
    let format = negotiate(opts.format, accept, original_type, opts.output_size(source))?;
    let key = variant_key(app, image, opts, format);
    let store = cx.store()?;
    let host = req.url()?.host_str().unwrap_or_default().to_owned();
    let cache_control = cx.common.purge.edge_cache_control(CachePolicy::Immutable.header_value(), &host);
    let spec = || ServeSpec {
        key: &key,
        what: "this variant",
        cache_control: &cache_control,
        pinned_etag: None,
        known_size: None,
        edge_cache: Some(EdgeCache { key: cache_key.clone(), ctx: cx.execution, tags: vec![image_tag(app, image)] }),
    };
    let stored_type = |info: &ObjectInfo| info.content_type.clone().unwrap_or_else(|| format.content_type().to_owned());
    match serve_object(store, req, spec(), stored_type).await {
        Ok(resp) => return finish(resp, opts, Source::Stored, signed),
        Err(Failure::Client(e)) if e.code == ErrorCode::NotFound => {}
        Err(other) => return Err(other),
    }

    // Made by the image's object, where concurrent first requests meet and
    // share one creation (one original read, one billed call).
    let job = VariantJob {
        app: app.clone(),
        image: image.clone(),
        original_etag: record.etag.clone(),
        key: key.clone(),
        options: *opts,
        format,
    };
    let made: VariantMade = image_object::ask(cx.env, app, image, &ImageCommand::Variant(job)).await?;
    let resp = serve_object(store, req, spec(), stored_type).await?;
    let source = match made {
        VariantMade::Created => Source::Created,
        VariantMade::Stored => Source::Stored,
    };
    finish(resp, opts, source, signed)
}
