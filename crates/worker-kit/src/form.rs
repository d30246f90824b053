//! Reading a `multipart/form-data` request body (RFC 7578) with the runtime's
//! own parser, workerd's `Request.formData()`. This module only does what
//! that parser does not: it reads the body under a size cap first (streamed,
//! so an oversized upload is refused before it is buffered), and it says what
//! is wrong with a body the parser refuses (no boundary, a body cut short)
//! instead of passing on a bare `TypeError`. What it returns, [`Form`], is
//! plain data, so the handlers' form rules are tested natively.

use media_core::http::media_type;
use media_core::{ApiError, ErrorCode};
use wasm_bindgen::{JsCast, JsValue};
use worker::{Headers, Method, Request, RequestInit};

use crate::body::read_body;
use crate::failure::Failure;

/// One entry of a form: a plain field, or a file part with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormValue {
    Field(String),
    /// `content_type` is the part's own type; `None` when it has none.
    File {
        content_type: Option<String>,
        bytes: Vec<u8>,
    },
}

/// The entries of a form, in the order the client sent them.
#[derive(Debug, Default)]
pub struct Form {
    entries: Vec<(String, FormValue)>,
}

impl Form {
    pub fn new(entries: Vec<(String, FormValue)>) -> Self {
        Form { entries }
    }

    /// Every entry named `name`, fields and files.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a FormValue> + 'a {
        self.entries.iter().filter(move |(n, _)| n == name).map(|(_, e)| e)
    }

    /// The plain (non-file) fields named `name`.
    pub fn fields<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.all(name).filter_map(|e| match e {
            FormValue::Field(v) => Some(v.as_str()),
            FormValue::File { .. } => None,
        })
    }

    /// Takes the first entry named `name` out of the form (its bytes are not copied).
    pub fn take(&mut self, name: &str) -> Option<FormValue> {
        let at = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(at).1)
    }

    /// The names of all entries, in order (a name sent twice appears twice).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
}

/// Is this `Content-Type` a form upload?
pub fn is_form_data(content_type: &str) -> bool {
    media_type(content_type).eq_ignore_ascii_case("multipart/form-data")
}

/// The `boundary` parameter of a `multipart/form-data` content type (415
/// without one, or with one RFC 2046 does not allow).
pub fn boundary(content_type: &str) -> Result<String, ApiError> {
    let missing = || {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the Content-Type multipart/form-data has no boundary parameter; let your HTTP client set the header for a form body",
        )
    };
    let (_, params) = content_type.split_once(';').ok_or_else(missing)?;
    let lower = params.to_ascii_lowercase();
    let at = lower
        .match_indices("boundary")
        .map(|(i, _)| i)
        .find(|&i| {
            let before = lower[..i].trim_end();
            (before.is_empty() || before.ends_with(';')) && lower[i + "boundary".len()..].trim_start().starts_with('=')
        })
        .ok_or_else(missing)?;
    let value = params[at + "boundary".len()..].trim_start()[1..].trim_start();
    let value = match value.strip_prefix('"') {
        // A quoted-string: up to the closing quote, backslash escapes undone.
        Some(quoted) => {
            let (mut out, mut escaped) = (String::new(), false);
            for c in quoted.chars() {
                match c {
                    _ if escaped => {
                        out.push(c);
                        escaped = false
                    }
                    '\\' => escaped = true,
                    '"' => break,
                    _ => out.push(c),
                }
            }
            out
        }
        None => value.split(';').next().unwrap_or_default().trim().to_owned(),
    };
    // RFC 2046: 1-70 characters, not ending in a space.
    if value.is_empty() {
        return Err(missing());
    }
    if value.len() > 70 || value.ends_with(' ') || value.bytes().any(|b| b.is_ascii_control() || !b.is_ascii()) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("the multipart boundary {value:?} is not valid (1-70 plain characters)"),
        ));
    }
    Ok(value)
}

fn malformed(why: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_field(format!("the multipart/form-data body is malformed: {why}"))
}

/// Is `needle` in `hay`? The opening delimiter is searched for from the
/// start and the closing one from the end, where each is, so a well-formed
/// body of any size costs two short scans.
fn contains(hay: &[u8], needle: &[u8], from_end: bool) -> bool {
    let mut windows = hay.windows(needle.len());
    if from_end {
        windows.rev().any(|w| w == needle)
    } else {
        windows.any(|w| w == needle)
    }
}

/// Reads the form body of `req` (at most `max` bytes, refused with 413 past
/// that) and parses it with the runtime's parser.
pub async fn read_form(req: &mut Request, content_type: &str, max: u64) -> Result<Form, Failure> {
    let boundary = boundary(content_type)?;
    let body = read_body(req, max).await?;
    // What the parser's refusals do not say, checked on the bytes themselves.
    let delimiter = format!("--{boundary}");
    if !contains(&body, delimiter.as_bytes(), false) {
        return Err(malformed("the boundary from the Content-Type header never appears in the body").into());
    }
    if !contains(&body, format!("{delimiter}--").as_bytes(), true) {
        return Err(malformed("it ends before its closing boundary (was the upload cut short?)").into());
    }
    // Hand the bytes to the parser as the body of a request of their own.
    let headers = Headers::new();
    headers.set("content-type", content_type)?;
    let bytes = js_sys::Uint8Array::from(body.as_slice());
    drop(body);
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(bytes.into()));
    let parsed = Request::new_with_init("https://form.invalid/", &init)?.form_data().await.map_err(malformed)?;
    let js = JsValue::from(parsed);
    let iter = js_sys::try_iter(&js)
        .map_err(|e| Failure::internal(format!("FormData is not iterable: {e:?}")))?
        .ok_or_else(|| Failure::internal("FormData is not iterable"))?;
    let mut entries = Vec::new();
    for pair in iter {
        let pair: js_sys::Array =
            pair.map_err(|e| Failure::internal(format!("reading a FormData entry: {e:?}")))?.unchecked_into();
        let name = pair.get(0).as_string().unwrap_or_default();
        let value = pair.get(1);
        let entry = match value.dyn_into::<worker::web_sys::File>() {
            Ok(file) => {
                let file = worker::File::from(file);
                let content_type = Some(file.type_()).filter(|t| !t.is_empty());
                FormValue::File { content_type, bytes: file.bytes().await? }
            }
            Err(value) => FormValue::Field(value.as_string().unwrap_or_default()),
        };
        entries.push((name, entry));
    }
    Ok(Form { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_from_content_types() {
        let b = "----formdata-undici-0123";
        assert_eq!(boundary(&format!("multipart/form-data; boundary={b}")).unwrap(), b);
        assert_eq!(boundary("multipart/form-data; charset=utf-8; BOUNDARY=\"a b;c\"").unwrap(), "a b;c");
        assert_eq!(boundary("multipart/form-data; x-boundary=1; boundary = z").unwrap(), "z");
        assert_eq!(boundary("multipart/form-data").unwrap_err().status(), 415);
        assert_eq!(boundary("multipart/form-data; boundary=").unwrap_err().status(), 415);
        assert_eq!(boundary("multipart/form-data; x-boundary=1").unwrap_err().status(), 415);
        assert!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
        assert!(is_form_data("Multipart/Form-Data; boundary=x"));
        assert!(!is_form_data("image/png"));
    }

    #[test]
    fn finds_delimiters_from_either_end() {
        for from_end in [false, true] {
            assert!(contains(b"--b\r\nx\r\n--b--", b"--b--", from_end));
            assert!(contains(b"--b\r\nx", b"--b", from_end));
            assert!(!contains(b"--b\r\nx\r\n--b-", b"--b--", from_end));
            assert!(!contains(b"", b"--b", from_end));
        }
    }
}
