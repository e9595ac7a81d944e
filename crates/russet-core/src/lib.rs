//! Russet's domain: the rules of enrollment program tokens, device sync, enrollment, the
//! command queue, end users and their sign-in, Apps and Books tokens and the health of every
//! Apple credential, with an injected clock.
//!
//! `russet-core` decides what may change and why; it holds no SQL (that is `russet-store`)
//! and no HTTP types (that is `russet-server`). Apple's formats come from `russet-apple`.
//! Every operation that changes something takes the [`Actor`] making the change and has the
//! store write the audit entry in the same transaction.

pub mod abm;
pub mod ade_enroll;
pub mod ade_tokens;
pub mod admin;
pub mod assign;
pub mod clock;
pub mod devices;
pub mod enroll;
pub mod error;
pub mod health;
pub mod jobs;
pub mod mdm;
pub mod metrics;
pub mod profiles;
pub mod push;
pub mod push_cert;
pub mod scep;
pub mod scheduler;
pub mod sync;
pub mod users;
pub mod vpp;

use std::collections::HashMap;
use std::sync::Arc;

use russet_apple::dep::{DepClient, DepConfig};

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
    /// The URL devices reach Russet at (no trailing slash); enrollment URLs are built from it.
    pub public_url: String,
    /// How to reach Apple's device assignment API.
    pub dep: DepConfig,
    /// Automatic delta sync interval.
    pub sync_interval: Duration,
    /// Devices removed from ABM are deleted this many days later.
    pub device_retention_days: u32,
    /// Devices per fetch/sync page (Apple's maximum is 1000).
    pub page_size: u32,
    /// Devices a full fetch commits per transaction on SQLite (whole pages, at least one).
    pub sync_batch_devices: u32,
    /// Assignment requests in flight at once per token.
    pub assign_concurrency: usize,
    /// Sync a token right after its server token is uploaded or renewed.
    pub sync_on_upload: bool,
    /// The organisation's name, shown in CSRs and enrollment profiles.
    pub organization: String,
    /// The MDM vendor identity that signs push certificate requests, when configured.
    pub push_vendor: Option<push_cert::PushVendor>,
    /// How to reach APNs.
    pub apns: russet_apple::apns::ApnsConfig,
    /// Pushes in flight at once.
    pub push_concurrency: usize,
    /// Enrollments with queued commands are pushed again after this long without an answer.
    pub repush_interval: Duration,
    /// How long a SCEP challenge in a served profile stays usable.
    pub challenge_ttl: Duration,
    /// Lifetime of device identity certificates.
    pub identity_lifetime: Duration,
    /// Accept SCEP requests encrypted with single DES (old clients such as micromdm's
    /// scepclient 2.1); off by default.
    pub scep_allow_single_des: bool,
    /// The key a new device CA gets (an existing CA is kept).
    pub ca_key_type: russet_apple::scep::CaKeyType,
    /// Signs enrollment profiles, when configured.
    pub profile_signer: Option<enroll::ProfileSigner>,
    /// Certificates (DER) enrollment profiles tell devices to trust (a private TLS CA).
    pub profile_anchor_certs: Vec<Vec<u8>>,
    /// Roots of the device identities that sign MachineInfo (Apple's device CA). Empty:
    /// the signature is checked but not its chain.
    pub device_ca_roots: Vec<openssl::x509::X509>,
    /// How long an ADE sign-in page stays usable.
    pub ade_sign_in_ttl: Duration,
    /// A device still in Setup Assistant (awaiting configuration) this long after it
    /// enrolled is shown as stuck.
    pub configuration_stuck_after: Duration,
    /// Consecutive failed sign-ins that lock a user account.
    pub user_lockout_attempts: u32,
    /// How long a locked user account stays locked.
    pub user_lockout_duration: Duration,
    /// How to reach Apple's Apps and Books API.
    pub vpp: russet_apple::vpp::VppConfig,
    /// Automatic sync of every Apps and Books token.
    pub vpp_sync_interval: Duration,
    /// Credential health thresholds and notifications.
    pub health: health::HealthSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            expiry_warning: Duration::days(30),
            public_url: "http://127.0.0.1:8080".into(),
            dep: DepConfig::default(),
            sync_interval: Duration::hours(12),
            device_retention_days: 30,
            page_size: 1000,
            sync_batch_devices: 10_000,
            assign_concurrency: 4,
            sync_on_upload: true,
            organization: "Russet".into(),
            push_vendor: None,
            apns: russet_apple::apns::ApnsConfig::default(),
            push_concurrency: 256,
            repush_interval: Duration::hours(4),
            challenge_ttl: Duration::hours(1),
            identity_lifetime: Duration::days(365),
            scep_allow_single_des: false,
            ca_key_type: russet_apple::scep::CaKeyType::default(),
            profile_signer: None,
            profile_anchor_certs: Vec::new(),
            device_ca_roots: Vec::new(),
            ade_sign_in_ttl: Duration::minutes(30),
            configuration_stuck_after: Duration::hours(1),
            user_lockout_attempts: 5,
            user_lockout_duration: Duration::minutes(15),
            vpp: russet_apple::vpp::VppConfig::default(),
            vpp_sync_interval: Duration::hours(12),
            health: health::HealthSettings::default(),
        }
    }
}

/// The domain services over one store; cheap to clone.
#[derive(Clone)]
pub struct Core {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    /// This process, as the owner of leases.
    pub instance: Arc<str>,
    /// DEP clients per token, with the credentials they were made for.
    dep_clients: Arc<tokio::sync::Mutex<HashMap<i64, (String, DepClient)>>>,
    /// Live counts of running assignment jobs, computed at most once a second per job
    /// (counting 100,000 devices takes tens of milliseconds, and clients poll).
    job_counts: Arc<std::sync::Mutex<HashMap<i64, (std::time::Instant, serde_json::Value)>>>,
    /// The APNs client, reloaded when the push certificate changes.
    push_state: push::SharedPushState,
    /// Russet's device CA, loaded once.
    device_ca: Arc<tokio::sync::OnceCell<Arc<enroll::DeviceCa>>>,
    /// The SCEP RA in use (and the one before it, still accepted), loaded or made on first use.
    scep_ra: Arc<tokio::sync::RwLock<Option<Arc<scep::ScepRa>>>>,
    /// Certificate pins already checked.
    pins: mdm::SharedPinCache,
    /// Sends webhook notifications, when the server gave one.
    webhook: Option<Arc<dyn health::WebhookTransport>>,
    /// Counts for the metrics endpoint.
    pub counters: Arc<metrics::Counters>,
    /// This installation's MDM id at Apple's Apps and Books service, read once.
    vpp_mdm_id: Arc<tokio::sync::OnceCell<String>>,
}

impl Core {
    pub fn new(store: Store, clock: Arc<dyn Clock>, settings: Settings) -> Core {
        let mut id = [0u8; 6];
        let _ = russet_store::crypto::random_bytes(&mut id);
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        let instance = format!("{host}:{}:{}", std::process::id(), hex::encode(id));
        Core {
            store,
            clock,
            settings,
            instance: instance.into(),
            dep_clients: Arc::default(),
            job_counts: Arc::default(),
            push_state: Arc::default(),
            device_ca: Arc::default(),
            scep_ra: Arc::default(),
            pins: Arc::default(),
            webhook: None,
            counters: Arc::default(),
            vpp_mdm_id: Arc::default(),
        }
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
