//! The simulated clock.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use time::OffsetDateTime;

/// The simulator's clock. It runs at real speed from a settable origin, so tests can jump
/// forwards (token and cursor expiry) without waiting. Cheap to clone; clones share the clock.
///
/// Everything Apple-side that depends on time reads this clock: token expiry, session
/// lifetime, cursor age, `device_assigned_date`, `op_date`, throttle windows. HTTP
/// `Retry-After` values and `Slow` faults use real time.
#[derive(Clone, Debug)]
pub struct SimClock {
    inner: Arc<Mutex<ClockState>>,
}

#[derive(Debug)]
struct ClockState {
    origin: OffsetDateTime,
    at: Instant,
}

impl SimClock {
    /// A clock showing the real current time (UTC).
    pub fn new() -> SimClock {
        SimClock::starting_at(OffsetDateTime::now_utc())
    }

    /// A clock showing `t` now (it then runs on at real speed).
    pub fn starting_at(t: OffsetDateTime) -> SimClock {
        SimClock {
            inner: Arc::new(Mutex::new(ClockState {
                origin: t,
                at: Instant::now(),
            })),
        }
    }

    /// The current simulated time (UTC).
    pub fn now(&self) -> OffsetDateTime {
        let s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        later(s.origin, s.at.elapsed())
    }

    /// Set the simulated time; it runs on from there.
    pub fn set(&self, t: OffsetDateTime) {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        s.origin = t.checked_to_offset(time::UtcOffset::UTC).unwrap_or(t);
        s.at = Instant::now();
    }

    /// Move the simulated time by `d` (may be negative).
    pub fn advance(&self, d: time::Duration) {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = later(s.origin, s.at.elapsed());
        s.origin = now.saturating_add(d);
        s.at = Instant::now();
    }
}

/// `t` plus a real-time duration, saturating at the end of time.
fn later(t: OffsetDateTime, d: std::time::Duration) -> OffsetDateTime {
    t.saturating_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_and_set() {
        let c = SimClock::new();
        let before = c.now();
        c.advance(time::Duration::days(365));
        let after = c.now();
        assert!(after - before >= time::Duration::days(365));
        assert!(after - before < time::Duration::days(365) + time::Duration::minutes(1));
        let t = time::macros::datetime!(2030-01-01 00:00:00 UTC);
        c.set(t);
        assert!(c.now() - t < time::Duration::seconds(5));
        assert!(c.now() >= t);
        // Absurd jumps saturate instead of panicking.
        c.advance(time::Duration::MAX);
        c.advance(time::Duration::MAX);
        assert!(c.now().year() >= 9999);
        c.advance(time::Duration::MIN);
        c.advance(time::Duration::MIN);
        let _ = c.now();
    }
}
