//! Time and randomness inside a Worker, where `SystemTime::now()` panics:
//! time comes from the runtime's `Date.now()`, random bytes from
//! `crypto.getRandomValues` (through getrandom's `js` backend).

use media_core::Timestamp;

/// Now, from the Workers runtime. (Frozen during a request's CPU work, as
/// Workers' clocks are, which is fine for leases and expiries.)
pub fn now() -> Timestamp {
    Timestamp::from_millis(worker::Date::now().as_millis())
}

/// `N` cryptographically random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("crypto.getRandomValues is available in Workers");
    b
}
