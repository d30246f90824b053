//! What crosses the wire: both services' routes, their request and response
//! types, and the OpenAPI documents generated from them.
//!
//! | module | owns |
//! |---|---|
//! | [`api`] | request/response types and JSON field reading |
//! | [`endpoints`] | the webhook endpoint routes' requests and answers |
//! | [`playback`] | signed playback: signing keys, minted tokens, a video's access flag |
//! | [`private_images`] | the image access route and the URL-signing secret routes |
//! | [`routes`] | one route table per service: paths, methods, who may call them (key, CORS), handler ids |
//! | [`worker_events`] | catalogue events the image Worker hands to the video Worker's app hubs (`POST /internal/events`) |
//! | `openapi` | (feature `openapi`) the services' OpenAPI documents, generated from the API types |

pub mod api;
pub mod endpoints;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod playback;
pub mod private_images;
pub mod routes;
pub mod worker_events;
