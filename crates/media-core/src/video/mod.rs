//! The video domain's rules.
//!
//! | module | owns |
//! |---|---|
//! | [`access`] | a video's playback options: signed URLs, AES-128 encryption, the MP4 download |
//! | [`chunks`] | split-and-stitch: chunk boundaries on segment ends, a chunk task's spec and report |
//! | [`bandwidth`] | a rendition's measured peak and average bitrate (HLS `BANDWIDTH`), from its segments |
//! | [`job`] | the job model and its state machine (lease, heartbeat, retry, expiry) |
//! | [`extras`] | outputs besides the ladder asked at notify: the cover and the animated preview, their bounds and what was made |
//! | [`download`] | MP4 downloads: which rung is remuxed, the transcoder's report, the state `/job-status` shows, the file name |
//! | [`dispatch`] | which queue shard and size class a job waits in, and which class is served next |
//! | [`ladder`] | planning the ABR ladder from a probed source |
//! | [`codecs`] | the codec whitelist: which video and audio codecs (and libav decoders) the transcoder opens |
//! | [`timeline`] | the bounds of a source's timeline: duration, timestamp jumps, audio offset, job time |
//! | [`playlist`] | HLS playlists, WebVTT thumbnails, codec strings, sprite layout |
//! | [`encryption`] | encrypted HLS (AES-128): the IV of a segment, the `#EXT-X-KEY` tag and its place, the key's URI |
//! | [`events`] | job lifecycle events for Server-Sent Events: which change means which event, payloads, frames |
//! | [`webhook`] | Standard Webhooks: event bodies and ids, `whsec_` secrets, `webhook-signature` signing and checking, per-app destinations |
//! | [`delivery`] | webhook delivery: retry backoff, what counts as delivered, a job's delivery state |
//! | [`endpoint`] | webhook endpoints by API: event filters, secret rotation, 410 disabling, the delivery log's bound |
//! | [`callback`] | callback URL safety: https only, no private, loopback or numeric-trick hosts |
//! | [`upload`] | direct uploads as objects: upload ids, states (waiting, asset_created, errored, cancelled, timed_out), timeouts |
//! | [`playback_token`] | signed playback: the JWT's form, claims and time rules, key ids, what its refusals answer |
//! | [`redact`] | what a logged or reported URL shows: never a stream or upload token |
//! | [`upload_session`] | resumable (multipart) uploads: signed upload tokens, R2's part rules, S3's multipart XML |

pub mod access;
pub mod bandwidth;
pub mod callback;
pub mod captions;
pub mod chunks;
pub mod codec_strings;
pub mod codecs;
pub mod delivery;
pub mod dispatch;
pub mod download;
pub mod encryption;
pub mod endpoint;
pub mod events;
pub mod extras;
pub mod isobmff;
pub mod job;
pub mod ladder;
pub mod playback_token;
pub mod playlist;
pub mod redact;
pub mod stream_token;
pub mod timeline;
pub mod upload;
pub mod upload_session;
pub mod video_codec;
pub mod webhook;
