//! The XML of the two S3 calls that speak it, as pure functions (tested
//! natively): the answer to `ListObjectsV2`, and the request and answer of
//! `DeleteObjects`. Parsed with `quick-xml`'s pull reader (no serde layer,
//! which would cost more wasm than these three documents are worth).

use std::borrow::Cow;

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::Reader;

/// One page of a `ListObjectsV2` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<String>,
    /// `IsTruncated`: more keys follow, from `next_token`.
    pub truncated: bool,
    pub next_token: Option<String>,
}

/// A key `DeleteObjects` did not delete, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteError {
    pub key: String,
    pub code: String,
    pub message: String,
}

/// Every element that holds text, as (parent, name, text), in document
/// order, with entities resolved; and the root element's name.
fn decode(c: Result<Cow<'_, str>, quick_xml::encoding::EncodingError>) -> Result<Cow<'_, str>, String> {
    c.map_err(|e| e.to_string())
}

/// An element holding text: (parent, name, text).
type Leaf = (String, String, String);

fn leaves(xml: &str) -> Result<(String, Vec<Leaf>), String> {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut root = String::new();
    let mut text = String::new();
    let mut out = Vec::new();
    loop {
        match reader.read_event().map_err(|e| format!("at byte {}: {e}", reader.buffer_position()))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    root.clone_from(&name);
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match path.last() {
                    Some(parent) => out.push((parent.clone(), name, String::new())),
                    None => root = name,
                }
            }
            Event::Text(t) => text.push_str(&decode(t.decode())?),
            Event::CData(t) => text.push_str(&decode(t.decode())?),
            Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|e| e.to_string())? {
                Some(c) => text.push(c),
                None => {
                    let name = decode(r.decode())?;
                    let resolved =
                        resolve_predefined_entity(&name).ok_or_else(|| format!("unknown entity &{name};"))?;
                    text.push_str(resolved);
                }
            },
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                if let Some(parent) = path.last() {
                    out.push((parent.clone(), name, std::mem::take(&mut text)));
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if root.is_empty() {
        return Err("no XML document".into());
    }
    Ok((root, out))
}

/// Reads a `ListObjectsV2` answer (`<ListBucketResult>`).
pub fn parse_list_page(xml: &str) -> Result<ListPage, String> {
    let (root, leaves) = leaves(xml)?;
    if root != "ListBucketResult" {
        return Err(format!("expected ListBucketResult, got {root}"));
    }
    let mut page = ListPage::default();
    for (parent, name, text) in leaves {
        match (parent.as_str(), name.as_str()) {
            ("Contents", "Key") => page.keys.push(text),
            ("ListBucketResult", "IsTruncated") => page.truncated = text.trim() == "true",
            ("ListBucketResult", "NextContinuationToken") if !text.is_empty() => page.next_token = Some(text),
            _ => {}
        }
    }
    Ok(page)
}

/// The body of a quiet `DeleteObjects` of `keys` (only failures are answered).
pub fn delete_request(keys: &[String]) -> String {
    let mut xml = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>"#);
    for key in keys {
        xml.push_str("<Object><Key>");
        xml.push_str(&escape(key.as_str()));
        xml.push_str("</Key></Object>");
    }
    xml.push_str("</Delete>");
    xml
}

/// The keys a `DeleteObjects` answer (`<DeleteResult>`) says it could not delete.
pub fn parse_delete_errors(xml: &str) -> Result<Vec<DeleteError>, String> {
    let (root, leaves) = leaves(xml)?;
    if root != "DeleteResult" {
        return Err(format!("expected DeleteResult, got {root}"));
    }
    let mut errors: Vec<DeleteError> = Vec::new();
    let mut current: Option<DeleteError> = None;
    for (parent, name, text) in leaves {
        match (parent.as_str(), name.as_str()) {
            ("Error", field) => {
                let e = current.get_or_insert_with(|| DeleteError {
                    key: String::new(),
                    code: String::new(),
                    message: String::new(),
                });
                match field {
                    "Key" => e.key = text,
                    "Code" => e.code = text,
                    "Message" => e.message = text,
                    _ => {}
                }
            }
            // The `<Error>` element itself ends: its fields are all in.
            ("DeleteResult", "Error") => errors.extend(current.take()),
            _ => {}
        }
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_page_gives_its_keys_in_order_and_whether_more_follow() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>media</Name><Prefix>hls/app/v1/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>hls/app/v1/o1/720p/00000.m4s</Key><LastModified>2026-11-30T06:00:00.000Z</LastModified>
    <ETag>&quot;abc&quot;</ETag><Size>10</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>hls/app/v1/o1/a&amp;b&#39;&#x41;.m3u8</Key><Size>3</Size></Contents>
  <NextContinuationToken>token/with+chars=</NextContinuationToken>
</ListBucketResult>"#;
        let page = parse_list_page(xml).unwrap();
        assert_eq!(page.keys, vec!["hls/app/v1/o1/720p/00000.m4s", "hls/app/v1/o1/a&b'A.m3u8"]);
        assert!(page.truncated);
        assert_eq!(page.next_token.as_deref(), Some("token/with+chars="));
    }

    #[test]
    fn an_empty_or_last_page() {
        let xml = "<ListBucketResult><Name>media</Name><Prefix>raw/x/</Prefix><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>";
        assert_eq!(parse_list_page(xml).unwrap(), ListPage::default());
        // A self-closing token is no token.
        let xml = "<ListBucketResult><IsTruncated>false</IsTruncated><NextContinuationToken></NextContinuationToken></ListBucketResult>";
        assert_eq!(parse_list_page(xml).unwrap().next_token, None);
    }

    #[test]
    fn an_error_document_or_garbage_is_refused() {
        let err = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
        assert!(parse_list_page(err).unwrap_err().contains("ListBucketResult"));
        assert!(parse_list_page("").is_err());
        assert!(parse_list_page("<ListBucketResult><Key>&bogus;</Key></ListBucketResult>").is_err());
        assert!(parse_list_page("<ListBucketResult><a></b></ListBucketResult>").is_err());
    }

    #[test]
    fn a_delete_request_escapes_keys_and_its_answer_lists_failures() {
        let keys = vec!["raw/a/v/source.mp4".to_owned(), "hls/a/v/o/<&>.m4s".to_owned()];
        let body = delete_request(&keys);
        assert!(body.contains("<Quiet>true</Quiet>"));
        assert!(body.contains("<Object><Key>raw/a/v/source.mp4</Key></Object>"));
        assert!(body.contains("<Key>hls/a/v/o/&lt;&amp;&gt;.m4s</Key>"), "{body}");

        let answer = r#"<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted><Key>raw/a/v/source.mp4</Key></Deleted>
  <Error><Key>hls/a/v/o/x.m4s</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
</DeleteResult>"#;
        assert_eq!(
            parse_delete_errors(answer).unwrap(),
            vec![DeleteError {
                key: "hls/a/v/o/x.m4s".into(),
                code: "AccessDenied".into(),
                message: "Access Denied".into()
            }]
        );
        assert_eq!(parse_delete_errors("<DeleteResult/>").unwrap(), vec![]);
        assert!(parse_delete_errors("<Error><Code>MalformedXML</Code></Error>").is_err());
    }
}
