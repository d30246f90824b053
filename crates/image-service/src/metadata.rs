//! `GET /images?app_id=&image_id=`: an image's metadata record and URLs,
//! for the app's backend (an API key that may act for `app_id`, 403
//! otherwise, counted against its rate limit). The answer has the fields of
//! `/upload`'s. For a presigned upload nobody has fetched yet, this is
//! where its record is made ([`crate::records::vet`]): a backend calls it
//! once the browser's `PUT` is done, and learns the image's type, size,
//! width and height, or that it was refused (404, and the object removed).

use media_core::keys::ObjectKey;
use media_core::wire::api::{ImageLocation, ImageUploadResponse};
use worker::Request;
use worker_kit::reply::json;
use worker_kit::Handled;

use crate::{image_object, keyed_image, ImageContext};

/// `GET /images`: 200 with the image's URLs and metadata.
pub async fn image_metadata(req: Request, cx: &ImageContext<'_>, base: &str) -> Handled {
    let (app, image) = keyed_image(&req, cx, "image-metadata").await?;
    let key = ObjectKey::Image { app: app.clone(), image: image.clone() }.to_string();
    let record = image_object::record_or_vet(cx, &key, &app, &image).await?;
    let location = ImageLocation::of(base, &app, &image, &cx.settings.transform);
    json(200, &ImageUploadResponse { location, meta: record.meta })
}
