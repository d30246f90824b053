//! Time as the platform passes it around: milliseconds since the Unix epoch,
//! supplied by the caller (`worker::Date::now()` in a Worker, the system clock
//! natively). Nothing here reads a clock, so every rule that depends on time is
//! testable with fixed instants.
//!
//! One type, [`Timestamp`], with two JSON forms: on the wire (every API type)
//! it is an RFC 3339 string, as JavaScript's `Date.toISOString()` prints it;
//! in the job store (the Durable Object's rows and the KV playback records)
//! it stays the number of milliseconds it always was, through
//! [`epoch_millis`], so stored records read as before.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, in milliseconds since 1970-01-01T00:00:00Z. Serialises as RFC
/// 3339 (`2026-11-22T09:30:00.000Z`); see [`epoch_millis`] for the stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not an RFC 3339 UTC time like 2026-11-22T09:30:00.000Z"))
        })
    }
}

/// The stored form of a [`Timestamp`]: milliseconds since the epoch, as a
/// JSON number (`#[serde(with = "crate::time::epoch_millis")]`; [`option`]
/// for an `Option<Timestamp>`). The job store has always kept times so.
pub mod epoch_millis {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Timestamp;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(t.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        u64::deserialize(d).map(Timestamp)
    }

    /// The same for an optional time (`null` when absent).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::Timestamp;

        pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&t.0),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            Ok(Option::<u64>::deserialize(d)?.map(Timestamp))
        }
    }
}

impl Timestamp {
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    pub const fn from_secs(s: u64) -> Self {
        Self(s * 1000)
    }

    pub const fn millis(self) -> u64 {
        self.0
    }

    pub const fn secs(self) -> u64 {
        self.0 / 1000
    }

    pub const fn plus_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    pub const fn plus_secs(self, s: u64) -> Self {
        self.plus_millis(s.saturating_mul(1000))
    }

    /// Milliseconds from `earlier` to `self`, zero when `earlier` is later.
    pub const fn millis_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// RFC 3339 in UTC with milliseconds, as JavaScript's `Date.toISOString()`
    /// prints it (`2026-11-22T09:30:00.000Z`), so `new Date(s)` parses it.
    pub fn to_rfc3339(self) -> String {
        let c = Civil::from_millis(self.0);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
        )
    }

    /// The `X-Amz-Date` form SigV4 uses: `20130524T000000Z`.
    pub fn to_amz_date(self) -> String {
        let c = Civil::from_millis(self.0);
        format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
    }

    /// Parses what [`Timestamp::to_rfc3339`] prints (fraction optional).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u64> { s.get(r)?.parse().ok() };
        let (year, month, day) = (num(0..4)? as i64, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let rest = &s[19..];
        let (millis, tail) = match rest.strip_prefix('.') {
            Some(frac) => {
                let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return None;
                }
                let mut ms: u64 = 0;
                for (i, d) in frac[..digits].bytes().take(3).enumerate() {
                    ms += u64::from(d - b'0') * [100, 10, 1][i];
                }
                (ms, &frac[digits..])
            }
            None => (0, rest),
        };
        if tail != "Z" {
            return None;
        }
        let days = days_from_civil(year, month as u32, day as u32);
        if days < 0 {
            return None;
        }
        Some(Timestamp(((days as u64 * 86_400) + hour * 3600 + minute * 60 + second) * 1000 + millis))
    }
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u64,
}

impl Civil {
    fn from_millis(ms: u64) -> Civil {
        let secs = ms / 1000;
        let (days, sod) = ((secs / 86_400) as i64, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        Civil { year, month, day, hour: sod / 3600, minute: sod % 3600 / 60, second: sod % 60, millis: ms % 1000 }
    }
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z", "19700101T000000Z"),
            (1_369_353_600_000, "2013-05-24T00:00:00.000Z", "20130524T000000Z"),
            (951_782_400_123, "2000-02-29T00:00:00.123Z", "20000229T000000Z"),
            (1_795_339_199_999, "2026-11-22T09:19:59.999Z", "20261122T091959Z"),
        ];
        for (ms, rfc, amz) in cases {
            let t = Timestamp(ms);
            assert_eq!(t.to_rfc3339(), rfc);
            assert_eq!(t.to_amz_date(), amz);
            assert_eq!(Timestamp::parse_rfc3339(rfc), Some(t), "{rfc}");
        }
    }

    #[test]
    fn parses_without_fraction_and_rejects_garbage() {
        assert_eq!(Timestamp::parse_rfc3339("2013-05-24T00:00:00Z"), Some(Timestamp(1_369_353_600_000)));
        for bad in ["", "2013-05-24", "2013-13-24T00:00:00Z", "2013-05-24T00:00:00+01:00", "2013-05-24T00:00:00.Z"] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_wire_form_is_rfc3339_and_the_stored_form_millis() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Stored {
            #[serde(with = "epoch_millis")]
            at: Timestamp,
            #[serde(with = "epoch_millis::option")]
            maybe: Option<Timestamp>,
        }
        let t = Timestamp(1_795_339_199_999);
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2026-11-22T09:19:59.999Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>("\"2026-11-22T09:19:59.999Z\"").unwrap(), t);
        let err = serde_json::from_str::<Timestamp>("1795339199999").unwrap_err().to_string();
        assert!(err.contains("expected a string"), "{err}");
        let err = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err().to_string();
        assert!(err.contains("not an RFC 3339 UTC time"), "{err}");
        let stored = Stored { at: t, maybe: None };
        let text = serde_json::to_string(&stored).unwrap();
        assert_eq!(text, r#"{"at":1795339199999,"maybe":null}"#);
        assert_eq!(serde_json::from_str::<Stored>(&text).unwrap(), stored);
        let some: Stored = serde_json::from_str(r#"{"at":0,"maybe":5}"#).unwrap();
        assert_eq!(some.maybe, Some(Timestamp(5)));
        assert_eq!(t.to_string(), "2026-11-22T09:19:59.999Z");
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Timestamp(5).millis_since(Timestamp(9)), 0);
        assert_eq!(Timestamp(u64::MAX).plus_secs(10), Timestamp(u64::MAX));
    }
}
