//! Identifiers: the caller-chosen `app_id`, `image_id` and `video_id`, and the
//! ids the platform mints (images without a caller id, jobs, leases). One
//! rule for every id: 1-64 of `A-Z a-z 0-9 - _`. Minted ids come from
//! random bytes the caller supplies (the core has no entropy source).
//!
//! [`JobId`] and [`LeaseId`] are minted (`job_…`, `lease_…`) but come back
//! from transcoders in paths and bodies, so they are parsed by the same rule:
//! an id that could never have been minted is refused at the edge (400)
//! rather than looked up. The rule does not insist on the prefix, so that a
//! made-up id of the right shape is simply unknown (404) or not the lease
//! holder (409).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ApiError;

/// The longest caller-chosen id.
pub const MAX_ID_LEN: usize = 64;

/// Why a caller id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error("{field} is required")]
    Empty { field: &'static str },
    #[error("{field} is {len} characters long; the limit is {MAX_ID_LEN}")]
    TooLong { field: &'static str, len: usize },
    #[error("{field} contains {found:?}; use only letters, digits, '-' and '_'")]
    BadChar { field: &'static str, found: char },
}

impl From<IdError> for ApiError {
    fn from(e: IdError) -> Self {
        ApiError::invalid_field(e.to_string())
    }
}

/// Checks one caller id against the rule, naming the field in the error.
pub fn check_id(field: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { field });
    }
    let len = value.chars().count();
    if len > MAX_ID_LEN {
        return Err(IdError::TooLong { field, len });
    }
    match value.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        Some(found) => Err(IdError::BadChar { field, found }),
        None => Ok(()),
    }
}

macro_rules! caller_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The JSON/query field this id travels in.
            pub const FIELD: &'static str = $field;

            pub fn parse(value: &str) -> Result<Self, IdError> {
                check_id($field, value)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

caller_id!(
    /// The tenant: which application an object or job belongs to.
    AppId,
    "app_id"
);
caller_id!(
    /// An image, unique within its app.
    ImageId,
    "image_id"
);
caller_id!(
    /// A video, unique within its app; one transcoding job per video.
    VideoId,
    "video_id"
);

caller_id!(
    /// A transcoding job; minted as `job_` and 26 base32 characters.
    JobId,
    "job_id"
);
caller_id!(
    /// A transcoder's lease on a job (one attempt); minted as `lease_` and
    /// 26 base32 characters. Every call of the lease holder names it (fencing).
    LeaseId,
    "lease_id"
);

impl ImageId {
    /// A fresh image id from 16 random bytes: 26 lowercase base32 characters,
    /// 128 bits of entropy, so collisions are not a practical concern.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(base32_lower(&bytes))
    }
}

impl JobId {
    /// A fresh job id from 16 random bytes: `job_` and 26 base32 characters.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(format!("job_{}", base32_lower(&bytes)))
    }
}

impl LeaseId {
    /// A fresh lease id from 16 random bytes: `lease_` and 26 base32 characters.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(format!("lease_{}", base32_lower(&bytes)))
    }
}

const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

pub(crate) fn base32_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_id_rule() {
        let long = "a".repeat(64);
        let too_long = "a".repeat(65);
        let cases: &[(&str, Result<(), IdError>)] = &[
            ("a", Ok(())),
            ("yourAppId", Ok(())),
            ("My_video-01", Ok(())),
            (&long, Ok(())),
            ("", Err(IdError::Empty { field: "video_id" })),
            (&too_long, Err(IdError::TooLong { field: "video_id", len: 65 })),
            ("a/b", Err(IdError::BadChar { field: "video_id", found: '/' })),
            ("..", Err(IdError::BadChar { field: "video_id", found: '.' })),
            ("a b", Err(IdError::BadChar { field: "video_id", found: ' ' })),
            ("é", Err(IdError::BadChar { field: "video_id", found: 'é' })),
            ("a%2F", Err(IdError::BadChar { field: "video_id", found: '%' })),
            ("a\0", Err(IdError::BadChar { field: "video_id", found: '\0' })),
        ];
        for (input, want) in cases {
            assert_eq!(&check_id("video_id", input), want, "{input:?}");
            assert_eq!(VideoId::parse(input).is_ok(), want.is_ok());
        }
    }

    #[test]
    fn messages_name_the_field_and_say_what_to_change() {
        let e = AppId::parse("a/b").unwrap_err().to_string();
        assert_eq!(e, "app_id contains '/'; use only letters, digits, '-' and '_'");
        let api: ApiError = ImageId::parse("").unwrap_err().into();
        assert_eq!(api.status(), 400);
        assert_eq!(api.message, "image_id is required");
    }

    #[test]
    fn ids_deserialize_through_the_rule() {
        assert!(serde_json::from_str::<AppId>("\"ok_1\"").is_ok());
        let err = serde_json::from_str::<AppId>("\"no way\"").unwrap_err().to_string();
        assert!(err.contains("app_id contains ' '"), "{err}");
    }

    #[test]
    fn minted_ids_are_valid_caller_ids_and_distinct() {
        let a = ImageId::from_random([0; 16]);
        let b = ImageId::from_random([255; 16]);
        assert_eq!(a.as_str().len(), 26);
        assert_ne!(a, b);
        assert!(ImageId::parse(b.as_str()).is_ok());
        assert_eq!(base32_lower(&[0xff]), "zw");
        let job = JobId::from_random([7; 16]);
        assert_eq!((job.as_str().len(), JobId::parse(job.as_str()).as_ref()), (30, Ok(&job)));
        let lease = LeaseId::from_random([1; 16]);
        assert!(lease.as_str().starts_with("lease_"));
        assert_eq!(LeaseId::parse(lease.as_str()), Ok(lease));
    }

    #[test]
    fn job_and_lease_ids_follow_the_id_rule_on_the_wire() {
        let job: JobId = serde_json::from_str("\"job_nope\"").unwrap();
        assert_eq!(serde_json::to_string(&job).unwrap(), "\"job_nope\"");
        let err = serde_json::from_str::<LeaseId>("\"lease/../x\"").unwrap_err().to_string();
        assert!(err.starts_with("lease_id contains '/'"), "{err}");
        assert_eq!(JobId::parse(""), Err(IdError::Empty { field: "job_id" }));
    }
}
