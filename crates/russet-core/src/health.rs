//! The health of every Apple credential Russet holds — enrollment program (ADE) tokens, the
//! push certificate and Apps and Books (VPP) tokens — and the notifications sent when it
//! changes.
//!
//! Each credential gets a status from its expiry, what Apple last said of it and how recent
//! its last successful sync is, against configurable thresholds (Intune's connector rules
//! plus an earlier warning). A status change or a renewal is recorded once (a conditional
//! write in the store, so several processes agree) and, with a webhook configured, queued as
//! a notification in the same transaction; deliveries are signed with HMAC-SHA256, retried
//! with exponential backoff and recorded. The HTTP transport is injected
//! ([`WebhookTransport`]), so the domain holds no HTTP client.

use std::sync::Arc;

use russet_store::health::{CredentialState, Delivery, NewDelivery};
use serde::Serialize;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::error::CoreError;
use crate::{Core, days_left, fmt_time};

/// Deliveries attempted per round.
const DELIVERY_BATCH: i64 = 50;
/// How long a process keeps a delivery it is attempting.
const DELIVERY_CLAIM: Duration = Duration::minutes(2);
/// The first retry comes this long after a failure, then doubles.
const FIRST_RETRY: Duration = Duration::seconds(30);
/// The longest wait between two attempts.
const MAX_RETRY: Duration = Duration::hours(1);

/// Thresholds and the webhook.
#[derive(Clone, Debug)]
pub struct HealthSettings {
    /// Expiring within this long: `warning`.
    pub warning: Duration,
    /// Expiring within this long: `critical`.
    pub critical: Duration,
    /// No successful sync for longer than this: `sync_failing`, warning.
    pub sync_warning: Duration,
    /// No successful sync for this long: `sync_failing`, critical.
    pub sync_critical: Duration,
    pub webhook: Option<WebhookSettings>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            warning: Duration::days(30),
            critical: Duration::days(7),
            sync_warning: Duration::days(1),
            sync_critical: Duration::days(3),
            webhook: None,
        }
    }
}

/// Where notifications go.
#[derive(Clone)]
pub struct WebhookSettings {
    pub url: String,
    /// The HMAC-SHA256 key of the signature header.
    pub secret: secrecy::SecretString,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// One webhook request to send.
#[derive(Clone, Debug)]
pub struct WebhookRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Sends webhook requests (implemented by the server with its HTTP client). Returns the
/// HTTP status, or why no answer came.
pub trait WebhookTransport: Send + Sync {
    fn send(
        &self,
        request: WebhookRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u16, String>> + Send + '_>>;
}

/// What kind of credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    AdeToken,
    PushCertificate,
    VppToken,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AdeToken => "ade_token",
            CredentialKind::PushCertificate => "push_certificate",
            CredentialKind::VppToken => "vpp_token",
        }
    }
}

/// How bad a status is. `critical` and `failed` are what `russet status` exits non-zero for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
    /// The credential no longer works (expired, revoked, taken over, terms not signed).
    Failed,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
            Severity::Failed => "failed",
        }
    }
}

/// A credential's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    /// Expires within the warning threshold (30 days by default).
    Warning,
    /// Expires within the critical threshold (7 days by default).
    Critical,
    Expired,
    Revoked,
    /// Apple does not accept the credential (e.g. the downloading account's password changed).
    Invalid,
    TermsNotSigned,
    OwnedByOtherMdm,
    /// No successful sync for longer than the sync thresholds.
    SyncFailing,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Warning => "warning",
            HealthStatus::Critical => "critical",
            HealthStatus::Expired => "expired",
            HealthStatus::Revoked => "revoked",
            HealthStatus::Invalid => "invalid",
            HealthStatus::TermsNotSigned => "terms_not_signed",
            HealthStatus::OwnedByOtherMdm => "owned_by_other_mdm",
            HealthStatus::SyncFailing => "sync_failing",
        }
    }
}

/// One reason a credential is not `ok`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HealthProblem {
    pub status: HealthStatus,
    pub severity: Severity,
    pub message: String,
}

/// One credential's health.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CredentialHealth {
    /// Stable key: `ade_token:3`, `push_certificate`, `vpp_token:5`.
    pub key: String,
    pub kind: CredentialKind,
    /// The token's id (absent for the push certificate).
    pub id: Option<i64>,
    pub name: String,
    pub apple_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    pub days_left: Option<i64>,
    /// The worst of `problems`, or `ok`.
    pub status: HealthStatus,
    pub severity: Severity,
    /// What to do.
    pub message: String,
    pub problems: Vec<HealthProblem>,
    /// For sync connectors (tokens): the last successful sync.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_success_at: Option<OffsetDateTime>,
}

/// The thresholds in use, in days and hours.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HealthThresholds {
    pub warning_days: i64,
    pub critical_days: i64,
    pub sync_warning_hours: i64,
    pub sync_critical_hours: i64,
}

/// Every credential's health, worst first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HealthReport {
    /// The worst severity of all credentials (`ok` with none).
    pub severity: Severity,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub checked_at: OffsetDateTime,
    pub thresholds: HealthThresholds,
    pub credentials: Vec<CredentialHealth>,
}

/// A notification as recorded.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NotificationDelivery {
    pub id: i64,
    pub event_id: String,
    pub event: String,
    pub credential: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: String,
    pub attempts: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    pub last_status_code: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The JSON body sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// What one evaluation found and did.
#[derive(Clone, Debug, Default)]
pub struct HealthCheckOutcome {
    /// Status changes and renewals recorded by this process.
    pub changes: usize,
    /// Notifications queued.
    pub notifications: usize,
}

/// Facts about one credential, before the thresholds are applied.
struct Facts {
    key: String,
    kind: CredentialKind,
    id: Option<i64>,
    name: String,
    apple_id: Option<String>,
    expires_at: Option<OffsetDateTime>,
    /// What Apple said: revoked / invalid / terms_not_signed / owned_by_other_mdm.
    apple_problem: Option<(HealthStatus, String)>,
    /// For sync connectors: (last success, or since when it should have had one).
    sync: Option<(Option<OffsetDateTime>, OffsetDateTime)>,
    last_error: Option<String>,
    renew_hint: String,
}

/// The order problems are shown and the worst chosen in.
fn rank(status: HealthStatus, severity: Severity) -> u8 {
    match (status, severity) {
        (HealthStatus::Revoked, _) => 0,
        (HealthStatus::Invalid, _) => 1,
        (HealthStatus::Expired, _) => 2,
        (HealthStatus::OwnedByOtherMdm, _) => 3,
        (HealthStatus::TermsNotSigned, _) => 4,
        (HealthStatus::Critical, _) => 5,
        (HealthStatus::SyncFailing, Severity::Critical) => 6,
        (HealthStatus::Warning, _) => 7,
        (HealthStatus::SyncFailing, _) => 8,
        (HealthStatus::Ok, _) => 9,
    }
}

fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> Result<String, String> {
    let pkey = openssl::pkey::PKey::hmac(key).map_err(|e| e.to_string())?;
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey).map_err(|e| e.to_string())?;
    signer.update(data).map_err(|e| e.to_string())?;
    signer.sign_to_vec().map(hex::encode).map_err(|e| e.to_string())
}

/// The signature header value for a body sent at `timestamp`:
/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn webhook_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> Result<String, String> {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    Ok(format!("t={timestamp},v1={}", hmac_sha256_hex(secret, &signed)?))
}

impl Core {
    /// Sets the transport webhook notifications are sent with.
    pub fn set_webhook_transport(&mut self, transport: Arc<dyn WebhookTransport>) {
        self.webhook = Some(transport);
    }

    fn judge(&self, f: Facts, now: OffsetDateTime) -> CredentialHealth {
        let h = &self.settings.health;
        let mut problems = Vec::new();
        if let Some((status, message)) = &f.apple_problem {
            problems.push(HealthProblem {
                status: *status,
                severity: Severity::Failed,
                message: message.clone(),
            });
        }
        if let Some(exp) = f.expires_at {
            let left = exp - now;
            let when = fmt_time(exp);
            if left <= Duration::ZERO {
                problems.push(HealthProblem {
                    status: HealthStatus::Expired,
                    severity: Severity::Failed,
                    message: format!("expired on {when}: {}", f.renew_hint),
                });
            } else if left <= h.critical {
                problems.push(HealthProblem {
                    status: HealthStatus::Critical,
                    severity: Severity::Critical,
                    message: format!("expires on {when}, in {} days: {}", days_left(now, exp), f.renew_hint),
                });
            } else if left <= h.warning {
                problems.push(HealthProblem {
                    status: HealthStatus::Warning,
                    severity: Severity::Warning,
                    message: format!("expires on {when}, in {} days: {}", days_left(now, exp), f.renew_hint),
                });
            }
        }
        let mut last_success_at = None;
        if let Some((last_success, since)) = f.sync {
            last_success_at = last_success;
            let reference = last_success.unwrap_or(since);
            let stale = now - reference;
            let what = match last_success {
                Some(t) => format!("no successful sync since {}", fmt_time(t)),
                None => format!("no successful sync since it was added on {}", fmt_time(since)),
            };
            let error = f
                .last_error
                .as_deref()
                .map(|e| format!("; the last attempt failed: {e}"))
                .unwrap_or_default();
            let severity = if stale >= h.sync_critical {
                Some(Severity::Critical)
            } else if stale > h.sync_warning {
                Some(Severity::Warning)
            } else {
                None
            };
            if let Some(severity) = severity {
                problems.push(HealthProblem {
                    status: HealthStatus::SyncFailing,
                    severity,
                    message: format!("{what}{error}"),
                });
            }
        }
        problems.sort_by_key(|p| rank(p.status, p.severity));
        let (status, severity, message) = match problems.first() {
            Some(p) => (p.status, p.severity, p.message.clone()),
            None => (HealthStatus::Ok, Severity::Ok, "nothing to do".into()),
        };
        CredentialHealth {
            key: f.key,
            kind: f.kind,
            id: f.id,
            name: f.name,
            apple_id: f.apple_id,
            expires_at: f.expires_at,
            days_left: f.expires_at.map(|e| days_left(now, e)),
            status,
            severity,
            message,
            problems,
            last_success_at,
        }
    }

    async fn credential_facts(&self) -> Result<Vec<Facts>, CoreError> {
        let mut out = Vec::new();
        if let Some(p) = self.store.push_cert_get().await?
            && let Some(exp) = p.not_after
        {
            let apple = p.apple_id.as_deref().unwrap_or("the Apple ID it was made with");
            out.push(Facts {
                key: "push_certificate".into(),
                kind: CredentialKind::PushCertificate,
                id: None,
                name: p.topic.clone().unwrap_or_else(|| "MDM push certificate".into()),
                apple_id: p.apple_id.clone(),
                expires_at: Some(exp),
                apple_problem: None,
                sync: None,
                last_error: None,
                renew_hint: format!(
                    "renew it with `russet push-cert csr`, then Renew (not Create) in Apple's push certificate portal \
                     as {apple}, then `russet push-cert upload`"
                ),
            });
        }
        for t in self.store.ade_token_list().await? {
            if !t.has_credentials {
                continue;
            }
            let state = self.store.sync_state(t.id).await?;
            out.push(Facts {
                key: format!("ade_token:{}", t.id),
                kind: CredentialKind::AdeToken,
                id: Some(t.id),
                name: t.name.clone(),
                apple_id: t.apple_id.clone(),
                expires_at: t.expires_at,
                apple_problem: t
                    .terms_not_signed_at
                    .map(|_| (HealthStatus::TermsNotSigned, crate::abm::TERMS_MESSAGE.to_string())),
                sync: Some((
                    state.last_success_at,
                    t.renewed_at.or(t.activated_at).unwrap_or(t.created_at),
                )),
                last_error: (state.last_sync_status.as_deref() == Some("failed"))
                    .then(|| state.last_sync_error.clone())
                    .flatten(),
                renew_hint: format!(
                    "in Apple Business Manager download a new server token for this MDM server and run \
                     `russet ade-token renew {} --file <file.p7m>`",
                    t.id
                ),
            });
        }
        let ours = self.vpp_token_list().await?;
        for v in ours {
            use crate::vpp::VppTokenStatus as S;
            let apple_problem = match v.status {
                S::Revoked => Some((HealthStatus::Revoked, v.status_message.clone())),
                S::Invalid => Some((HealthStatus::Invalid, v.status_message.clone())),
                S::OwnedByOtherMdm => Some((HealthStatus::OwnedByOtherMdm, v.status_message.clone())),
                // Apple said expired (9621) before the date in the file.
                S::Expired if v.days_left >= 0 => Some((HealthStatus::Expired, v.status_message.clone())),
                _ => None,
            };
            out.push(Facts {
                key: format!("vpp_token:{}", v.id),
                kind: CredentialKind::VppToken,
                id: Some(v.id),
                name: v.name.clone(),
                apple_id: v.apple_id.clone(),
                expires_at: Some(v.expires_at),
                apple_problem,
                sync: Some((v.sync.last_success_at, v.renewed_at.unwrap_or(v.created_at))),
                last_error: (v.sync.last_result.as_deref() == Some("failed"))
                    .then(|| v.sync.last_error.clone())
                    .flatten(),
                renew_hint: format!(
                    "download a new token for location \"{}\" in Apple Business Manager and run \
                     `russet vpp-token renew {} --file <file.vpptoken>`",
                    v.location_name, v.id
                ),
            });
        }
        Ok(out)
    }

    /// Every credential's health now.
    pub async fn credential_health(&self) -> Result<HealthReport, CoreError> {
        let now = self.clock.now();
        let mut credentials: Vec<CredentialHealth> = self
            .credential_facts()
            .await?
            .into_iter()
            .map(|f| self.judge(f, now))
            .collect();
        credentials.sort_by(|a, b| {
            rank(a.status, a.severity)
                .cmp(&rank(b.status, b.severity))
                .then_with(|| a.key.cmp(&b.key))
        });
        let h = &self.settings.health;
        Ok(HealthReport {
            severity: credentials.iter().map(|c| c.severity).max().unwrap_or(Severity::Ok),
            checked_at: now,
            thresholds: HealthThresholds {
                warning_days: h.warning.whole_days(),
                critical_days: h.critical.whole_days(),
                sync_warning_hours: h.sync_warning.whole_hours(),
                sync_critical_hours: h.sync_critical.whole_hours(),
            },
            credentials,
        })
    }

    /// Evaluates every credential, records changes of status and renewals (once across
    /// processes), logs them and queues their notifications.
    pub async fn health_check(&self) -> Result<HealthCheckOutcome, CoreError> {
        let report = self.credential_health().await?;
        let recorded = self.store.credential_states().await?;
        let now = report.checked_at;
        let mut outcome = HealthCheckOutcome::default();
        for c in &report.credentials {
            let old = recorded.iter().find(|s| s.key == c.key);
            let new = CredentialState {
                key: c.key.clone(),
                kind: c.kind.as_str().to_string(),
                name: c.name.clone(),
                status: c.status.as_str().to_string(),
                severity: c.severity.as_str().to_string(),
                expires_at: c.expires_at,
                changed_at: now,
                checked_at: now,
            };
            let status_changed = old.is_none_or(|o| o.status != new.status);
            let renewed = old.is_some_and(|o| matches!((o.expires_at, c.expires_at), (Some(a), Some(b)) if b > a));
            let expiry_moved = old.is_some_and(|o| o.expires_at != c.expires_at);
            if !status_changed && !expiry_moved && old.is_some_and(|o| o.name == new.name) {
                continue;
            }
            // A credential seen for the first time in good health is not news.
            let event = if renewed {
                Some("credential.renewed")
            } else if status_changed && (old.is_some() || c.severity != Severity::Ok) {
                Some("credential.status_changed")
            } else {
                None
            };
            let event_id = new_event_id()?;
            let payload = event.map(|e| {
                json!({
                    "event": e,
                    "event_id": event_id,
                    "occurred_at": fmt_time(now),
                    "credential": {
                        "key": c.key,
                        "kind": c.kind,
                        "id": c.id,
                        "name": c.name,
                        "apple_id": c.apple_id,
                        "expires_at": c.expires_at.map(fmt_time),
                        "days_left": c.days_left,
                        "status": c.status,
                        "severity": c.severity,
                        "message": c.message,
                    },
                    "previous": old.map(|o| json!({
                        "status": o.status,
                        "severity": o.severity,
                        "expires_at": o.expires_at.map(fmt_time),
                    })),
                })
                .to_string()
            });
            let delivery = match (event, &payload) {
                (Some(e), Some(p)) if self.settings.health.webhook.is_some() => Some(NewDelivery {
                    event_id: &event_id,
                    event: e,
                    payload: p,
                }),
                _ => None,
            };
            if !self.store.credential_state_change(old, &new, delivery.as_ref()).await? {
                continue;
            }
            outcome.changes += 1;
            if delivery.is_some() {
                outcome.notifications += 1;
            }
            match event {
                Some("credential.renewed") => tracing::info!(
                    event = "credential.renewed",
                    credential = %c.key,
                    name = %c.name,
                    expires_at = %c.expires_at.map(fmt_time).unwrap_or_default(),
                    status = c.status.as_str(),
                    "credential renewed"
                ),
                Some(e) => {
                    let previous = old.map(|o| o.status.clone()).unwrap_or_else(|| "none".into());
                    if c.severity >= Severity::Critical {
                        tracing::error!(event = e, credential = %c.key, name = %c.name, status = c.status.as_str(), previous = %previous, what_to_do = %c.message, "credential health changed");
                    } else if c.severity == Severity::Warning {
                        tracing::warn!(event = e, credential = %c.key, name = %c.name, status = c.status.as_str(), previous = %previous, what_to_do = %c.message, "credential health changed");
                    } else {
                        tracing::info!(event = e, credential = %c.key, name = %c.name, status = c.status.as_str(), previous = %previous, "credential health changed");
                    }
                }
                _ => {}
            }
        }
        let keys: Vec<String> = report.credentials.iter().map(|c| c.key.clone()).collect();
        self.store.credential_states_retain(&keys).await?;
        Ok(outcome)
    }

    /// Attempts the notifications that are due; returns how many were delivered.
    pub async fn deliver_notifications(&self) -> Result<usize, CoreError> {
        let (Some(webhook), Some(transport)) = (&self.settings.health.webhook, &self.webhook) else {
            return Ok(0);
        };
        let now = self.clock.now();
        let due = self
            .store
            .deliveries_claim_due(now, now + DELIVERY_CLAIM, DELIVERY_BATCH)
            .await?;
        let mut delivered = 0;
        for d in due {
            let sent_at = self.clock.now();
            let signature = webhook_signature(
                secrecy::ExposeSecret::expose_secret(&webhook.secret).as_bytes(),
                sent_at.unix_timestamp(),
                d.payload.as_bytes(),
            );
            let result = match signature {
                Ok(sig) => {
                    transport
                        .send(WebhookRequest {
                            url: webhook.url.clone(),
                            headers: vec![
                                ("content-type".into(), "application/json".into()),
                                ("x-russet-event".into(), d.event.clone()),
                                ("x-russet-delivery".into(), d.event_id.clone()),
                                ("x-russet-signature".into(), sig),
                            ],
                            body: d.payload.clone().into_bytes(),
                        })
                        .await
                }
                Err(e) => Err(format!("cannot sign the notification: {e}")),
            };
            let attempts = d.attempts + 1;
            let after = self.clock.now();
            let (ok, code, error) = match result {
                Ok(code) if (200..300).contains(&code) => (true, Some(code), None),
                Ok(code) => (false, Some(code), Some(format!("the webhook answered HTTP {code}"))),
                Err(e) => (false, None, Some(e)),
            };
            let retry_at = (!ok && attempts < i64::from(webhook.max_attempts)).then(|| after + backoff(attempts));
            if ok {
                delivered += 1;
                tracing::info!(event = %d.event, delivery = %d.event_id, attempts, "notification delivered");
            } else if retry_at.is_some() {
                tracing::warn!(event = %d.event, delivery = %d.event_id, attempts, error = ?error, "notification not delivered; will retry");
            } else {
                tracing::error!(event = %d.event, delivery = %d.event_id, attempts, error = ?error, "notification not delivered; giving up");
            }
            self.store
                .delivery_attempted(d.id, after, ok, code, error.as_deref(), retry_at)
                .await?;
        }
        Ok(delivered)
    }

    /// The latest notifications and how their delivery went.
    pub async fn notification_deliveries(&self, limit: i64) -> Result<Vec<NotificationDelivery>, CoreError> {
        Ok(self
            .store
            .deliveries_list(limit.clamp(1, 1000))
            .await?
            .into_iter()
            .map(|d: Delivery| NotificationDelivery {
                payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
                id: d.id,
                event_id: d.event_id,
                event: d.event,
                credential: d.credential_key,
                status: d.status,
                attempts: d.attempts,
                next_attempt_at: d.next_attempt_at,
                last_error: d.last_error,
                last_status_code: d.last_status_code,
                delivered_at: d.delivered_at,
                created_at: d.created_at,
            })
            .collect())
    }
}

/// The wait after the `attempts`-th failed attempt: 30 s, 1 min, 2 min, … up to an hour.
fn backoff(attempts: i64) -> Duration {
    let factor = 1i64 << (attempts - 1).clamp(0, 20);
    (FIRST_RETRY * factor as i32).min(MAX_RETRY)
}

fn new_event_id() -> Result<String, CoreError> {
    let mut b = [0u8; 16];
    russet_store::crypto::random_bytes(&mut b).map_err(russet_store::StoreError::from)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::seconds(30));
        assert_eq!(backoff(2), Duration::minutes(1));
        assert_eq!(backoff(3), Duration::minutes(2));
        assert_eq!(backoff(12), Duration::hours(1));
        assert_eq!(backoff(60), Duration::hours(1));
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_and_body() {
        // RFC 4231 test case 2, with the timestamp prefix folded into the data.
        let sig = webhook_signature(b"Jefe", 0, b"").unwrap();
        assert!(sig.starts_with("t=0,v1="));
        let direct = hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(
            direct,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(
            webhook_signature(b"Jefe", 1, b"x").unwrap(),
            webhook_signature(b"Jefe", 2, b"x").unwrap()
        );
    }

    #[test]
    fn worst_problem_first() {
        assert!(rank(HealthStatus::Revoked, Severity::Failed) < rank(HealthStatus::Expired, Severity::Failed));
        assert!(rank(HealthStatus::Critical, Severity::Critical) < rank(HealthStatus::SyncFailing, Severity::Critical));
        assert!(rank(HealthStatus::SyncFailing, Severity::Critical) < rank(HealthStatus::Warning, Severity::Warning));
        assert!(rank(HealthStatus::Warning, Severity::Warning) < rank(HealthStatus::SyncFailing, Severity::Warning));
        assert!(Severity::Failed > Severity::Critical && Severity::Critical > Severity::Warning);
    }
}
