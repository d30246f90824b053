//! The messages between this Worker and its Durable Objects, in one place:
//! every object's calls and replies, its binding name and how it is named.
//! Handlers and objects import from here; no object imports another's module.
//!
//! | module | object |
//! |---|---|
//! | [`video_job`] | `VideoJob`: one per video |
//! | [`dispatch`] | `DispatchShard`: the job queue, `QUEUE_SHARDS` of them |
//! | [`app_hub`] | `AppHub`: one per app, the app's event stream |

pub mod app_hub;
pub mod dispatch;
pub mod video_job;
