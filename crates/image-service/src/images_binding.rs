//! The Cloudflare Images binding (`IMAGES`: `input → transform → output`),
//! reached through our own `wasm_bindgen` declarations: the `worker` crate
//! has no wrapper for it. In production it is Cloudflare Images; in
//! `wrangler dev` and Miniflare it runs offline on `sharp`, which honours
//! width, height, fit and format (not quality: see docs/image-api.md#image-transforms-what-to-enable-on-cloudflare).
//!
//! One call is one billed transformation, so [`transform`] is called only
//! by the image's Durable Object ([`crate::image_object`]), once per variant.

use media_core::image::variant::{OutputFormat, VariantOptions};
use media_core::{ApiError, ErrorCode};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::js_sys::{self, Object, Reflect, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{web_sys, Env};
use worker_kit::Failure;

/// The binding's name in the wrangler files.
pub const IMAGES_BINDING: &str = "IMAGES";

#[wasm_bindgen]
extern "C" {
    /// `env.IMAGES`.
    type ImagesBinding;
    #[wasm_bindgen(method, catch)]
    fn input(this: &ImagesBinding, stream: &web_sys::ReadableStream) -> Result<ImageTransformer, JsValue>;

    type ImageTransformer;
    #[wasm_bindgen(method, catch)]
    fn transform(this: &ImageTransformer, transform: &Object) -> Result<ImageTransformer, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn output(this: &ImageTransformer, options: &Object) -> Result<js_sys::Promise, JsValue>;

    type ImageTransformationResult;
    #[wasm_bindgen(method, catch)]
    fn response(this: &ImageTransformationResult) -> Result<web_sys::Response, JsValue>;
}

/// What the binding made, in the format asked for.
pub struct Transformed {
    pub bytes: Vec<u8>,
}

fn set(obj: &Object, name: &str, value: JsValue) -> Result<(), Failure> {
    Reflect::set(obj, &name.into(), &value)
        .map(drop)
        .map_err(|e| Failure::internal(format!("building the transform: {e:?}")))
}

/// The binding's error as text (`ImagesError`: `code` and `message`), and its code.
fn describe(e: &JsValue) -> (Option<f64>, String) {
    let code = Reflect::get(e, &"code".into()).ok().and_then(|c| c.as_f64());
    let message = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    (code, message)
}

/// A failure of the binding as the client sees it: 422, with a fixed
/// message and the binding's code. Its own message goes to the logs only
/// (locally it carries sharp's stack and file paths). The binding does not
/// tell a corrupt image from its own fault apart reliably (locally both are
/// 9523), so both are 422; a client may retry, and nothing is stored.
fn failure(e: &JsValue, during: &str) -> Failure {
    let (code, message) = describe(e);
    tracing::warn!(code, message, during, "the Images binding refused a transform");
    let code = code.map_or_else(|| "no code".to_owned(), |c| format!("Images error {c}"));
    ApiError::new(
        ErrorCode::ImageUnprocessable,
        format!(
            "this image could not be decoded or transformed ({code}); the original is served as it is at its asset_url"
        ),
    )
    .into()
}

/// Transforms `original` into one variant: resized as `opts` says, written
/// as `format` at `opts.quality`, first frame only (`anim: false`: an animated GIF of thousands
/// of frames costs one frame).
pub async fn transform(
    env: &Env,
    original: Vec<u8>,
    opts: &VariantOptions,
    format: OutputFormat,
) -> Result<Transformed, Failure> {
    let binding = Reflect::get(env.as_ref(), &IMAGES_BINDING.into())
        .ok()
        .filter(|b| !b.is_undefined() && !b.is_null())
        .ok_or_else(|| Failure::Unavailable {
            detail: format!(
                "the {IMAGES_BINDING} binding is missing: add [images] binding = \"{IMAGES_BINDING}\" to the wrangler file (docs/image-api.md: Image transforms)"
            ),
        })?
        .unchecked_into::<ImagesBinding>();
    let bytes = Uint8Array::from(original.as_slice());
    drop(original);
    let body = web_sys::Response::new_with_opt_buffer_source(Some(&bytes))
        .map_err(|e| Failure::internal(format!("wrapping the original: {e:?}")))?
        .body()
        .ok_or_else(|| Failure::internal("the original has no body stream"))?;

    let resize = Object::new();
    if let Some(w) = opts.width {
        set(&resize, "width", w.into())?;
    }
    if let Some(h) = opts.height {
        set(&resize, "height", h.into())?;
    }
    set(&resize, "fit", opts.fit.as_str().into())?;
    let output = Object::new();
    set(&output, "format", format.content_type().into())?;
    set(&output, "quality", opts.quality.into())?;
    set(&output, "anim", false.into())?;

    // One line per billed transformation.
    tracing::info!(format = format.as_str(), width = opts.width, height = opts.height, "Images binding called");
    let transformer = binding.input(&body).map_err(|e| failure(&e, "input"))?;
    let transformer = transformer.transform(&resize).map_err(|e| failure(&e, "transform"))?;
    let promise = transformer.output(&output).map_err(|e| failure(&e, "output"))?;
    let result: ImageTransformationResult =
        JsFuture::from(promise).await.map_err(|e| failure(&e, "output"))?.unchecked_into();
    let resp = result.response().map_err(|e| failure(&e, "response"))?;
    let content_type = resp.headers().get("content-type").ok().flatten().unwrap_or_default();
    if !format.is_content_type(&content_type) {
        // Never stored: a variant's URL promises its format for a year.
        tracing::error!(asked = format.content_type(), made = %content_type, "the Images binding made another format");
        return Err(Failure::internal(format!(
            "the Images binding answered {content_type:?} for {}",
            format.content_type()
        )));
    }
    let buffer = resp.array_buffer().map_err(|e| failure(&e, "reading the result"))?;
    let buffer = JsFuture::from(buffer).await.map_err(|e| failure(&e, "reading the result"))?;
    let bytes = Uint8Array::new(&buffer).to_vec();
    if bytes.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ImageUnprocessable,
            "the transform made an empty image; the original is served at its asset_url",
        )
        .into());
    }
    Ok(Transformed { bytes })
}
