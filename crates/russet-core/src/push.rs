//! Waking devices through APNs: one client per push certificate, reloaded when the
//! certificate in the database changes (a renewal uploaded to any process), pushes sent
//! concurrently over HTTP/2, transient failures retried with backoff, dead tokens recorded
//! so they are not pushed again until the device sends a new TokenUpdate.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use russet_apple::apns::{ApnsClient, PushOutcome};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use crate::Core;
use crate::error::{CoreError, ErrorKind};

/// Attempts per push for transient failures (rate limits, Apple's 5xx, network).
const ATTEMPTS: u32 = 3;
/// Longest wait between attempts, whatever Retry-After says (the periodic re-push round
/// takes over after that).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The APNs client in use and the certificate version it was made from.
#[derive(Default)]
pub(crate) struct PushState {
    client: tokio::sync::Mutex<Option<(i64, ApnsClient)>>,
}

/// What a round of pushes did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct PushReport {
    pub sent: u64,
    /// Dead device tokens (Unregistered, BadDeviceToken, DeviceTokenNotForTopic…).
    pub bad_token: u64,
    /// APNs refused the push certificate.
    pub certificate_refused: u64,
    /// Still failing after the retries; the re-push round tries again.
    pub failed_transient: u64,
    /// Not pushed: the enrollment has no push token, is disabled, or was enrolled under
    /// another topic.
    pub skipped: u64,
}

impl Core {
    /// The APNs client for the current push certificate, rebuilt when the stored
    /// certificate changed since it was made.
    async fn apns_client(&self) -> Result<ApnsClient, CoreError> {
        let version = self.store.push_cert_version().await?;
        let mut slot = self.push_state.client.lock().await;
        if let (Some((v, client)), Some(current)) = (slot.as_ref(), version)
            && *v == current
        {
            return Ok(client.clone());
        }
        let identity = self.push_identity().await?.ok_or_else(|| {
            CoreError::conflict(
                "no_push_certificate",
                "no push certificate is installed, so devices cannot be woken: run `russet push-cert csr` and \
                 `russet push-cert upload`",
            )
        })?;
        let client = ApnsClient::new(
            &self.settings.apns,
            &identity.topic,
            &identity.certificate_pem,
            identity.private_key_pem.expose_secret(),
        )
        .map_err(|e| CoreError::new(ErrorKind::Internal, "apns_client", e.to_string()))?;
        if slot.is_some() {
            tracing::info!(topic = %identity.topic, "push certificate changed; APNs client reloaded");
        }
        *slot = Some((identity.version, client.clone()));
        Ok(client)
    }

    /// Pushes the given enrollments (ids) now. Enrollments without push details are skipped.
    pub async fn push_enrollments(&self, ids: &[String]) -> Result<PushReport, CoreError> {
        let mut report = PushReport::default();
        if ids.is_empty() {
            return Ok(report);
        }
        let client = self.apns_client().await?;
        let targets = self.store.mdm_push_targets(ids).await?;
        report.skipped = (ids.len() - targets.len()) as u64;
        let mut failed: Vec<(String, String)> = Vec::new();
        let mut pushable = Vec::with_capacity(targets.len());
        for t in targets {
            if t.topic != client.topic() {
                failed.push((
                    t.enrollment_id,
                    format!(
                        "enrolled for push topic {} but the push certificate's topic is {}: the device must re-enroll",
                        t.topic,
                        client.topic()
                    ),
                ));
                report.skipped += 1;
            } else {
                pushable.push(t);
            }
        }
        let now_unix = self.clock.now().unix_timestamp();
        let outcomes: Vec<(String, PushOutcome)> = futures::stream::iter(pushable)
            .map(|t| {
                let client = client.clone();
                async move {
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let outcome = client.push(&t.token_hex, &t.push_magic, now_unix).await;
                        match &outcome {
                            PushOutcome::Retry { retry_after, .. } if attempt < ATTEMPTS => {
                                let base = Duration::from_millis(500 * 4u64.pow(attempt - 1));
                                let wait = retry_after.unwrap_or(base).min(MAX_BACKOFF);
                                tokio::time::sleep(jitter(wait)).await;
                            }
                            _ => return (t.enrollment_id, outcome),
                        }
                    }
                }
            })
            .buffer_unordered(self.settings.push_concurrency.max(1))
            .collect()
            .await;
        let mut sent = Vec::new();
        for (id, outcome) in outcomes {
            match outcome {
                PushOutcome::Sent { .. } => {
                    report.sent += 1;
                    sent.push(id);
                }
                PushOutcome::BadToken { reason, .. } => {
                    report.bad_token += 1;
                    failed.push((id, format!("APNs: {reason}; waiting for the device's next TokenUpdate")));
                }
                PushOutcome::CertificateRefused { status, reason } => {
                    report.certificate_refused += 1;
                    tracing::error!(status, %reason, "APNs refused the push certificate");
                }
                PushOutcome::Retry { reason, .. } => {
                    report.failed_transient += 1;
                    tracing::warn!(enrollment = %id, %reason, "push failed; the re-push round will try again");
                }
                PushOutcome::Rejected { status, reason } => {
                    report.failed_transient += 1;
                    tracing::error!(enrollment = %id, status, %reason, "APNs rejected the push request");
                }
            }
        }
        self.counters.add_pushes(
            report.sent,
            report.bad_token + report.certificate_refused + report.failed_transient,
        );
        self.store.mdm_push_results(&sent, &failed, self.clock.now()).await?;
        Ok(report)
    }

    /// Pushes the enrollments in the background (after an enqueue); failures are logged.
    pub fn push_in_background(&self, ids: Vec<String>) {
        let core = self.clone();
        tokio::spawn(async move {
            match core.push_enrollments(&ids).await {
                Ok(r) => tracing::debug!(?r, "pushed after enqueue"),
                Err(e) if e.code == "no_push_certificate" => {
                    tracing::warn!("commands queued but no push certificate: devices get them at their next check-in")
                }
                Err(e) => tracing::warn!(error = %e, "pushing after enqueue failed"),
            }
        });
    }

    /// The re-push round: enrollments with queued commands not pushed for
    /// `settings.repush_interval`, oldest push first, at most `limit`.
    pub async fn repush_pending(&self, limit: i64) -> Result<PushReport, CoreError> {
        let before = self.clock.now() - self.settings.repush_interval;
        let ids = self.store.mdm_stale_pending(before, limit).await?;
        if ids.is_empty() {
            return Ok(PushReport::default());
        }
        self.push_enrollments(&ids).await
    }
}

/// ±20 % around `d`.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 1];
    let _ = russet_store::crypto::random_bytes(&mut b);
    let factor = 0.8 + 0.4 * f64::from(b[0]) / 255.0;
    d.mul_f64(factor)
}

/// Shared handle for [`Core`].
pub(crate) type SharedPushState = Arc<PushState>;
