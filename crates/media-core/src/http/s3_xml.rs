//! S3's multipart XML, with quick-xml: the answers of `CreateMultipartUpload`,
//! `ListParts` and `ListMultipartUploads` read ([`parse_upload_id`],
//! [`parse_parts`], [`parse_uploads`]), and the `CompleteMultipartUpload` body
//! written ([`complete_body`]). The storage adapter and the resumable upload
//! routes share them.

use serde::{Deserialize, Serialize};

/// One part as storage lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredPart {
    pub part_number: u64,
    pub size: u64,
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// One part as a client names it at completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompletedPart {
    pub part_number: u64,
    #[serde(rename = "ETag")]
    pub etag: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateResult {
    upload_id: String,
}

/// The `UploadId` of a `CreateMultipartUpload` answer.
pub fn parse_upload_id(xml: &str) -> Result<String, String> {
    let r: InitiateResult = quick_xml::de::from_str(xml).map_err(|e| format!("CreateMultipartUpload answer: {e}"))?;
    Ok(r.upload_id)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPartsResult {
    #[serde(default)]
    part: Vec<StoredPart>,
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_part_number_marker: Option<u64>,
}

/// The parts of a `ListParts` answer, and the marker of the next page.
pub fn parse_parts(xml: &str) -> Result<(Vec<StoredPart>, Option<u64>), String> {
    let r: ListPartsResult = quick_xml::de::from_str(xml).map_err(|e| format!("ListParts answer: {e}"))?;
    let next = if r.is_truncated { r.next_part_number_marker } else { None };
    Ok((r.part, next))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListUploadsResult {
    #[serde(default)]
    upload: Vec<InProgress>,
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
}

/// Where the next page of `ListMultipartUploads` starts (`key-marker`,
/// `upload-id-marker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadsMarker {
    pub key: String,
    pub upload_id: String,
}

/// A multipart upload in progress, as `ListMultipartUploads` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InProgress {
    pub key: String,
    pub upload_id: String,
}

/// The uploads of one `ListMultipartUploads` page, and where the next page
/// starts when this one is truncated (the `Next...Marker`s, or the page's
/// last upload where a store leaves them out).
pub fn parse_uploads(xml: &str) -> Result<(Vec<InProgress>, Option<UploadsMarker>), String> {
    let r: ListUploadsResult = quick_xml::de::from_str(xml).map_err(|e| format!("ListMultipartUploads answer: {e}"))?;
    if !r.is_truncated {
        return Ok((r.upload, None));
    }
    let next = match (r.next_key_marker.filter(|k| !k.is_empty()), r.next_upload_id_marker) {
        (Some(key), upload_id) => UploadsMarker { key, upload_id: upload_id.unwrap_or_default() },
        (None, _) => {
            let last =
                r.upload.last().ok_or("ListMultipartUploads answer: truncated, yet empty and without markers")?;
            UploadsMarker { key: last.key.clone(), upload_id: last.upload_id.clone() }
        }
    };
    Ok((r.upload, Some(next)))
}

/// The body of `CompleteMultipartUpload` for `parts`.
pub fn complete_body(parts: &[CompletedPart]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for p in parts {
        let etag = p.etag.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        xml.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>", p.part_number));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: u64) -> CompletedPart {
        CompletedPart { part_number: n, etag: format!("\"e{n}\"") }
    }

    #[test]
    fn s3s_multipart_answers_are_read() {
        let init = r#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>media</Bucket><Key>raw/a/v/source.mp4</Key><UploadId>7f3a9c</UploadId></InitiateMultipartUploadResult>"#;
        assert_eq!(parse_upload_id(init).unwrap(), "7f3a9c");
        assert!(parse_upload_id("<Error><Code>NoSuchBucket</Code></Error>").is_err());
        let list = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>media</Bucket><Key>k</Key><UploadId>u</UploadId>
<PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>
<Part><PartNumber>1</PartNumber><LastModified>2026-11-30T00:00:00.000Z</LastModified><ETag>"a1"</ETag><Size>16777216</Size></Part>
<Part><PartNumber>2</PartNumber><LastModified>2026-11-30T00:00:00.000Z</LastModified><ETag>&quot;b2&quot;</ETag><Size>5</Size></Part>
</ListPartsResult>"#;
        let (parts, next) = parse_parts(list).unwrap();
        assert_eq!(
            parts,
            vec![
                StoredPart { part_number: 1, size: 16_777_216, etag: "\"a1\"".into() },
                StoredPart { part_number: 2, size: 5, etag: "\"b2\"".into() },
            ]
        );
        assert_eq!(next, Some(2));
        let uploads = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>media</Bucket><Prefix>raw/a/v/</Prefix>
<Upload><Key>raw/a/v/source.mp4</Key><UploadId>u1</UploadId><Initiated>2026-11-30T00:00:00.000Z</Initiated></Upload>
<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>"#;
        assert_eq!(
            parse_uploads(uploads).unwrap(),
            (vec![InProgress { key: "raw/a/v/source.mp4".into(), upload_id: "u1".into() }], None)
        );
        assert_eq!(parse_uploads("<ListMultipartUploadsResult></ListMultipartUploadsResult>").unwrap(), (vec![], None));
        // A truncated page says where the next starts; without markers, after its last upload.
        let truncated = r#"<ListMultipartUploadsResult><Upload><Key>k1</Key><UploadId>u1</UploadId></Upload>
<Upload><Key>k2</Key><UploadId>u2</UploadId></Upload><IsTruncated>true</IsTruncated>
<NextKeyMarker>k2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker></ListMultipartUploadsResult>"#;
        let (page, next) = parse_uploads(truncated).unwrap();
        assert_eq!((page.len(), next), (2, Some(UploadsMarker { key: "k2".into(), upload_id: "u2".into() })));
        let bare =
            truncated.replace("<NextKeyMarker>k2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>", "");
        assert_eq!(parse_uploads(&bare).unwrap().1, Some(UploadsMarker { key: "k2".into(), upload_id: "u2".into() }));
        assert!(parse_uploads(
            "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated></ListMultipartUploadsResult>"
        )
        .is_err());
        let empty = r#"<ListPartsResult><IsTruncated>false</IsTruncated></ListPartsResult>"#;
        assert_eq!(parse_parts(empty).unwrap(), (vec![], None));
        assert_eq!(
            complete_body(&[named(1), CompletedPart { part_number: 2, etag: "\"<x>\"".into() }]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>\"&lt;x&gt;\"</ETag></Part></CompleteMultipartUpload>"
        );
    }
}
