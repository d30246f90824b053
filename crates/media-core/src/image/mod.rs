//! The image domain's rules.
//!
//! | module | owns |
//! |---|---|
//! | [`transform`] | the `transform_url` defaults, and the older Cloudflare `/cdn-cgi/image/` form |
//! | [`variant`] | the service's own image transforms: options, the allowed set, canonical names, `f=auto`, the transformer's limits |

pub mod transform;
pub mod variant;
