//! Reading a request's query string: decoded pairs, in order. (What each
//! route makes of them, e.g. `media_core::wire::api::query_id`, is the route's.)

use worker::Request;

use crate::failure::Failure;

/// The decoded query parameters of a request.
pub fn query(req: &Request) -> Result<Vec<(String, String)>, Failure> {
    Ok(req.url()?.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}
