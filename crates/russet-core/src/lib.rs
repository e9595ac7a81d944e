//! Russet's domain: the rules of enrollment program tokens (and, in later issues, device
//! sync, enrollment, the command queue and credential health), with an injected clock.
//!
//! `russet-core` decides what may change and why; it holds no SQL (that is `russet-store`)
//! and no HTTP types (that is `russet-server`). Apple's formats come from `russet-apple`.
//! Every operation that changes something takes the [`Actor`] making the change and has the
//! store write the audit entry in the same transaction.

pub mod ade_tokens;
pub mod admin;
pub mod clock;
pub mod error;

use std::sync::Arc;

use russet_store::Store;
pub use russet_store::audit::Actor;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::error::{CoreError, ErrorKind};

/// Domain settings that come from configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// A credential expiring within this window is reported as `expiring`.
    pub expiry_warning: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            expiry_warning: Duration::days(30),
        }
    }
}

/// The domain services over one store; cheap to clone.
#[derive(Clone)]
pub struct Core {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

impl Core {
    pub fn new(store: Store, clock: Arc<dyn Clock>, settings: Settings) -> Core {
        Core { store, clock, settings }
    }
}

/// Whole days from `now` until `until`, rounded down (so negative once `until` has passed).
pub fn days_left(now: OffsetDateTime, until: OffsetDateTime) -> i64 {
    let secs = (until - now).whole_seconds();
    secs.div_euclid(86_400)
}

/// RFC 3339 in UTC, e.g. `2026-01-17T11:02:21Z`.
pub fn fmt_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn days_left_rounds_down() {
        let now = datetime!(2026-01-01 12:00 UTC);
        assert_eq!(days_left(now, datetime!(2026-01-31 12:00 UTC)), 30);
        assert_eq!(days_left(now, datetime!(2026-01-31 11:59 UTC)), 29);
        assert_eq!(days_left(now, datetime!(2026-01-01 13:00 UTC)), 0);
        assert_eq!(days_left(now, datetime!(2026-01-01 11:00 UTC)), -1);
        assert_eq!(days_left(now, datetime!(2025-12-30 12:00 UTC)), -2);
    }

    #[test]
    fn times_format_as_utc_rfc3339() {
        assert_eq!(fmt_time(datetime!(2026-01-17 12:02:21 +1)), "2026-01-17T11:02:21Z");
    }
}
