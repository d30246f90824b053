//! What crosses the wire: the request and response types of both services'
//! routes, and the OpenAPI documents generated from them.
//!
//! | module | owns |
//! |---|---|
//! | [`api`] | request/response types and JSON field reading |
//! | `openapi` | (feature `openapi`) the services' OpenAPI documents, generated from the API types |

pub mod api;
#[cfg(feature = "openapi")]
pub mod openapi;
