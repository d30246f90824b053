//! Webhook delivery, below the jobs that record it: when a failed delivery
//! is tried again (to an app's endpoints, [`RetrySchedule`]: Standard
//! Webhooks' schedule, about 3 days; to a notify's `callback_url`,
//! [`DeliveryPolicy`]: exponential backoff, capped at an hour; both spread
//! by ±20%), what counts as delivered ([`is_delivered`]) and
//! where a job's delivery stands ([`CallbackState`], shown in `JobView`).
//! What is sent and how it is signed is [`crate::video::webhook`]'s.

use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::time::Timestamp;

/// The longest wait between two delivery attempts.
pub const MAX_RETRY_DELAY_MS: u64 = 3_600_000;

/// True when a destination's answer counts as delivered: any 2xx
/// (redirects are not followed, so a 3xx is a failure).
pub fn is_delivered(http_status: u16) -> bool {
    (200..300).contains(&http_status)
}

/// How hard delivery tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPolicy {
    /// Attempts in all, the first one included. Default 8.
    pub max_attempts: u32,
    /// Wait after the first failure; each further one waits twice as long
    /// (at most [`MAX_RETRY_DELAY_MS`]). Default 10 s.
    pub base_delay_ms: u64,
    /// How long one attempt may take. Default 10 s.
    pub timeout_ms: u64,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self { max_attempts: 8, base_delay_ms: 10_000, timeout_ms: 10_000 }
    }
}

impl DeliveryPolicy {
    /// When attempt `attempts_made + 1` is due, after `attempts_made`
    /// attempts failed (the last at `now`); `None` when all attempts are
    /// used. The first attempt is due at once; then base·2^(attempts_made-1),
    /// at most an hour (10, 20, 40 ... 640 s with the defaults, about 21
    /// minutes in all; a capped wait is 48-60 minutes), each wait spread by
    /// up to ±20% ([`spread`]) by
    /// `delivery` (the event and destination): deliveries that failed together
    /// in a receiver's outage do not all come back in the same second. The
    /// spread comes from `delivery`, so it stays deterministic.
    pub fn next_attempt_at(&self, attempts_made: u32, now: Timestamp, delivery: &str) -> Option<Timestamp> {
        if attempts_made >= self.max_attempts {
            return None;
        }
        if attempts_made == 0 {
            return Some(now);
        }
        let factor = 2u64.saturating_pow(attempts_made - 1);
        let wait = self.base_delay_ms.saturating_mul(factor).min(MAX_RETRY_DELAY_MS);
        let spread = spread(wait, delivery, attempts_made);
        // Past the cap, folded back below it: capped waits spread over
        // [0.8, 1] of it, rather than half of them landing on the hour.
        let spread = if spread > MAX_RETRY_DELAY_MS { 2 * MAX_RETRY_DELAY_MS - spread } else { spread };
        Some(now.plus_millis(spread))
    }
}

/// The waits of Standard Webhooks' retry schedule after each failed
/// attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (ten
/// attempts in all, the first at once; about 3 days and 8 hours).
pub const STANDARD_RETRY_WAITS_MS: [u64; 9] =
    [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 50_400_000, 72_000_000, 86_400_000];

/// When a failed delivery to an app's endpoint is tried again: a wait per
/// failed attempt, each spread by ±20% ([`spread`]); after the last wait's
/// attempt, none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    waits_ms: Vec<u64>,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self { waits_ms: STANDARD_RETRY_WAITS_MS.to_vec() }
    }
}

impl RetrySchedule {
    /// A schedule of these waits (tests use short ones), from a
    /// comma-separated list of milliseconds: 1 to 20 waits, each from 1 ms
    /// to a day.
    pub fn parse(list: &str) -> Result<RetrySchedule, String> {
        let waits: Vec<u64> = list
            .split(',')
            .map(|w| w.trim().parse::<u64>().map_err(|_| format!("{w:?} is not a number of milliseconds")))
            .collect::<Result<_, _>>()?;
        if waits.is_empty() || waits.len() > 20 {
            return Err(format!("lists {} waits; give 1 to 20", waits.len()));
        }
        if let Some(w) = waits.iter().find(|w| !(1..=86_400_000).contains(*w)) {
            return Err(format!("has a wait of {w} ms; each must be from 1 ms to a day"));
        }
        Ok(RetrySchedule { waits_ms: waits })
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.waits_ms.len() as u32 + 1
    }

    /// When attempt `attempts_made + 1` is due after `attempts_made` failed
    /// (the last at `now`), spread by `delivery` (endpoint and event);
    /// `None` when all are used.
    pub fn next_attempt_at(&self, attempts_made: u32, now: Timestamp, delivery: &str) -> Option<Timestamp> {
        if attempts_made == 0 {
            return Some(now);
        }
        let wait = *self.waits_ms.get(attempts_made as usize - 1)?;
        Some(now.plus_millis(spread(wait, delivery, attempts_made)))
    }
}

/// `wait_ms` times a factor in [0.8, 1.2), the same for the same delivery
/// and attempt, uniform over deliveries (the first 8 bytes of
/// SHA-256("<delivery>|<attempt>")).
fn spread(wait_ms: u64, delivery: &str, attempt: u32) -> u64 {
    use sha2::Digest;
    let digest = Sha256::digest(format!("{delivery}|{attempt}").as_bytes());
    let draw = u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"));
    // permille in [800, 1200)
    let permille = 800 + draw % 400;
    (u128::from(wait_ms) * u128::from(permille) / 1000) as u64
}

/// Where a webhook's delivery stands, as `JobView` shows it.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CallbackStatus {
    Pending,
    Delivered,
    Failed,
}

/// A webhook's delivery: its status, attempts made and the last failure.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct CallbackState {
    pub status: CallbackStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// The longest `last_error` kept, in characters.
pub const MAX_ERROR_CHARS: usize = 300;

impl CallbackState {
    /// A delivery not tried yet.
    pub fn pending() -> CallbackState {
        CallbackState { status: CallbackStatus::Pending, attempts: 0, last_error: None }
    }

    /// An attempt succeeded.
    pub fn record_delivery(&mut self) {
        self.attempts += 1;
        self.status = CallbackStatus::Delivered;
        self.last_error = None;
    }

    /// An attempt failed at `now` with `error` (a status, a timeout; kept
    /// to [`MAX_ERROR_CHARS`] characters): returns when the next is due, or
    /// `None` when it was the last, and the delivery is `failed`.
    /// `delivery` names the event and destination, whose waits
    /// [`DeliveryPolicy::next_attempt_at`] spreads.
    pub fn record_failure(
        &mut self,
        error: &str,
        policy: &DeliveryPolicy,
        now: Timestamp,
        delivery: &str,
    ) -> Option<Timestamp> {
        self.attempts += 1;
        self.last_error = Some(error.chars().take(MAX_ERROR_CHARS).collect());
        let next = policy.next_attempt_at(self.attempts, now, delivery);
        self.status = if next.is_some() { CallbackStatus::Pending } else { CallbackStatus::Failed };
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000;

    #[test]
    fn delivery_backs_off_exponentially_then_gives_up() {
        let p = DeliveryPolicy::default();
        assert_eq!((p.max_attempts, p.base_delay_ms, p.timeout_ms), (8, 10_000, 10_000));
        let now = Timestamp::from_secs(T);
        let nominal = [
            Some(0),
            Some(10_000),
            Some(20_000),
            Some(40_000),
            Some(80_000),
            Some(160_000),
            Some(320_000),
            Some(640_000),
            None,
        ];
        let waits = |delivery: &str| -> Vec<Option<u64>> {
            (0..=8).map(|n| p.next_attempt_at(n, now, delivery).map(|t| t.millis_since(now))).collect()
        };
        let a = waits("evt_a|https://a.example/hook");
        for (got, want) in a.iter().zip(nominal) {
            match (got, want) {
                (Some(g), Some(w)) => assert!(*g >= w * 8 / 10 && *g < w * 12 / 10 + 1, "{g} ms against {w} ms"),
                (g, w) => assert_eq!(*g, w),
            }
        }
        assert_eq!(a, waits("evt_a|https://a.example/hook"), "the same delivery waits the same");
        // Over many deliveries failing at once, the retries spread across the ±20%.
        let seconds: std::collections::BTreeSet<u64> = (0..200)
            .map(|i| p.next_attempt_at(3, now, &format!("evt_{i}|u")).unwrap().millis_since(now) / 1000)
            .collect();
        assert_eq!((seconds.first(), seconds.last()), (Some(&32), Some(&47)), "40 s spread over 32..48 s");
        assert!(seconds.len() >= 14, "{seconds:?}");
        let long = DeliveryPolicy { max_attempts: 100, ..p };
        let capped: Vec<u64> =
            (0..200).map(|i| long.next_attempt_at(10, now, &format!("evt_{i}|u")).unwrap().millis_since(now)).collect();
        assert!(
            capped.iter().all(|w| (MAX_RETRY_DELAY_MS * 8 / 10..=MAX_RETRY_DELAY_MS).contains(w)),
            "capped at an hour"
        );
        let on_the_hour = capped.iter().filter(|w| **w == MAX_RETRY_DELAY_MS).count();
        assert!(on_the_hour <= 2, "{on_the_hour} of 200 capped waits on the hour itself: they must spread below it");
        assert!(long.next_attempt_at(99, now, "d").unwrap().millis_since(now) <= MAX_RETRY_DELAY_MS, "no overflow");
        assert_eq!(long.next_attempt_at(100, now, "d"), None);
        // [status, delivered?]
        for (status, delivered) in [(200, true), (204, true), (299, true), (301, false), (400, false), (500, false)] {
            assert_eq!(is_delivered(status), delivered, "{status}");
        }
    }

    #[test]
    fn endpoints_retry_on_the_standard_schedule() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 10);
        let now = Timestamp::from_secs(T);
        assert_eq!(s.next_attempt_at(0, now, "ep|evt"), Some(now), "the first at once");
        let nominal_s = [5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400];
        for (made, want_s) in (1..).zip(nominal_s) {
            let got = s.next_attempt_at(made, now, "ep|evt").unwrap().millis_since(now);
            assert!(got >= want_s * 800 && got < want_s * 1200, "after {made}: {got} ms against {want_s} s");
        }
        assert_eq!(s.next_attempt_at(10, now, "ep|evt"), None, "ten attempts, then it gives up");
        let short = RetrySchedule::parse("100, 200,300").unwrap();
        assert_eq!(short.max_attempts(), 4);
        assert!(short.next_attempt_at(2, now, "d").unwrap().millis_since(now) < 240);
        for bad in ["", "1,x", "0", "86400001", &vec!["1"; 21].join(",")] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn callback_state_follows_the_attempts() {
        let p = DeliveryPolicy { max_attempts: 2, ..DeliveryPolicy::default() };
        let now = Timestamp::from_secs(T);
        let mut s = CallbackState::pending();
        let wait = s.record_failure("status 503", &p, now, "evt|dest").unwrap().millis_since(now);
        assert!((8_000..12_000).contains(&wait), "{wait}");
        assert_eq!((s.status, s.attempts, s.last_error.as_deref()), (CallbackStatus::Pending, 1, Some("status 503")));
        assert_eq!(s.record_failure(&"x".repeat(1000), &p, now, "evt|dest"), None);
        assert_eq!((s.status, s.attempts), (CallbackStatus::Failed, 2));
        assert_eq!(s.last_error.as_ref().unwrap().len(), 300);
        let mut d = CallbackState::pending();
        d.record_failure("timeout", &p, now, "evt|dest");
        d.record_delivery();
        assert_eq!(d, CallbackState { status: CallbackStatus::Delivered, attempts: 2, last_error: None });
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"status": "delivered", "attempts": 2, "last_error": null})
        );
    }
}
