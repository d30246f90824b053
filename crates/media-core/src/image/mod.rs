//! The image domain's rules.
//!
//! | module | owns |
//! |---|---|
//! | [`transform`] | the `transform_url` defaults, and the older Cloudflare `/cdn-cgi/image/` form |
//! | [`variant`] | the service's own image transforms: options, the allowed set, canonical names, `f=auto`, the transformer's limits |
//! | [`url_signing`] | private images: the signed URL's canonical string, `exp`/`sig` checks, an app's URL-signing secrets and their rotation |

pub mod transform;
pub mod url_signing;
pub mod variant;
