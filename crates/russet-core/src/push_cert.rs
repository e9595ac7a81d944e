//! The MDM push certificate lifecycle: make the key and CSR (and, with a vendor signing
//! identity, the signed request for Apple's portal), accept the certificate Apple issues,
//! renew it in place.
//!
//! The rule that matters most: **a renewal keeps the topic.** Every enrolled device accepts
//! pushes only for the topic its enrollment profile named; a certificate with another topic
//! (made with "Create" instead of "Renew" in Apple's portal, or under another Apple ID) would
//! silently cut every device off until it is re-enrolled. Such a certificate is refused
//! unless the administrator says `accept_topic_change`.
//!
//! Also refused: a certificate that matches neither Russet's pending key nor its active key,
//! one already expired, one older than the certificate in place. Every refused upload leaves
//! everything as it was.

use std::sync::Arc;

use russet_apple::push_cert::{self, PushCertError, PushCertificate, VendorIdentity};
use russet_store::audit::{Actor, NewAuditEntry};
use russet_store::push_cert::{NewPushCert, PushCertRecord};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::ade_tokens::check_apple_id;
use crate::error::{CoreError, ErrorKind};
use crate::{Core, days_left, fmt_time};

/// Largest certificate file accepted.
pub const MAX_CERTIFICATE_BYTES: usize = push_cert::MAX_CERTIFICATE_BYTES;

/// The MDM vendor identity that signs push certificate requests, when configured.
#[derive(Clone)]
pub struct PushVendor(pub Arc<VendorIdentity>);

impl std::fmt::Debug for PushVendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushVendor([vendor certificate and key])")
    }
}

/// Where the push certificate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushCertStatus {
    /// No certificate and no CSR yet.
    None,
    /// A CSR was made; waiting for Apple's certificate.
    Pending,
    Active,
    /// Active, expiring within the warning window.
    Expiring,
    Expired,
}

/// The push certificate as administrators see it. No secrets.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PushCert {
    pub status: PushCertStatus,
    /// The APNs topic (`com.apple.mgmt.External.…`); enrollment profiles carry it.
    pub topic: Option<String>,
    /// Certificate serial number (uppercase hex).
    pub serial: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub not_before: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// Whole days until expiry, negative once expired.
    pub days_left: Option<i64>,
    /// The Apple ID the certificate was made with: renew with the same one.
    pub apple_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub uploaded_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub renewed_at: Option<OffsetDateTime>,
    /// A CSR is waiting for its certificate.
    pub csr_pending: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub csr_created_at: Option<OffsetDateTime>,
    /// What to do next.
    pub message: String,
}

/// A CSR for the push certificate, and the request for Apple's portal when Russet can sign it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PushCsr {
    pub csr_pem: String,
    /// The vendor-signed request (base64 plist) to upload to Apple's push certificate
    /// portal; absent when no MDM vendor signing certificate is configured.
    pub signed_request: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// What to do with it.
    pub instructions: String,
}

/// An uploaded certificate.
pub struct PushCertUpload<'a> {
    pub certificate: &'a [u8],
    /// Required for the first certificate; a renewal keeps the stored one when absent.
    pub apple_id: Option<&'a str>,
    /// Install a certificate whose topic differs from the active one's.
    pub accept_topic_change: bool,
}

/// The active certificate and key, for the APNs client.
pub struct PushIdentity {
    pub topic: String,
    pub certificate_pem: String,
    pub private_key_pem: SecretString,
    pub not_after: OffsetDateTime,
    /// The stored version it was read at; a different version means it was replaced.
    pub version: i64,
}

fn cert_error(e: PushCertError) -> CoreError {
    let code = match &e {
        PushCertError::Key(_) => return CoreError::new(ErrorKind::Internal, "internal", e.to_string()),
        PushCertError::Vendor(_) => "push_vendor_unusable",
        PushCertError::NotACertificate(_) | PushCertError::SeveralCertificates(_) => "push_cert_unreadable",
        PushCertError::NoTopic | PushCertError::NotMdmTopic(_) => "push_cert_not_mdm",
    };
    CoreError::invalid(code, e.to_string())
}

fn interrupted(e: tokio::task::JoinError) -> CoreError {
    CoreError::new(
        ErrorKind::Internal,
        "internal",
        format!("key generation was interrupted: {e}"),
    )
}

impl Core {
    fn push_cert_view(&self, r: Option<&PushCertRecord>) -> PushCert {
        let now = self.clock.now();
        let Some(r) = r else {
            return PushCert {
                status: PushCertStatus::None,
                topic: None,
                serial: None,
                subject: None,
                issuer: None,
                not_before: None,
                expires_at: None,
                days_left: None,
                apple_id: None,
                uploaded_at: None,
                renewed_at: None,
                csr_pending: false,
                csr_created_at: None,
                message: "no push certificate: run `russet push-cert csr`, get the certificate from Apple's push \
                          certificate portal, then `russet push-cert upload`"
                    .into(),
            };
        };
        let status = match (r.not_after, r.pending_csr_pem.is_some()) {
            (Some(until), _) if until <= now => PushCertStatus::Expired,
            (Some(until), _) if until - now <= self.settings.expiry_warning => PushCertStatus::Expiring,
            (Some(_), _) => PushCertStatus::Active,
            (None, true) => PushCertStatus::Pending,
            (None, false) => PushCertStatus::None,
        };
        let apple = r.apple_id.as_deref().unwrap_or("the Apple ID it was made with");
        let topic = r.topic.as_deref().unwrap_or("");
        let message = match status {
            PushCertStatus::None | PushCertStatus::Pending => {
                "upload the certificate Apple's push certificate portal issued for the CSR: `russet push-cert upload`"
                    .to_string()
            }
            PushCertStatus::Active => "the push certificate is valid".to_string(),
            PushCertStatus::Expiring => format!(
                "renew before it expires: `russet push-cert csr`, then in Apple's push certificate portal sign in as \
                 {apple} and choose Renew on the certificate for topic {topic} (not Create), then \
                 `russet push-cert upload`"
            ),
            PushCertStatus::Expired => format!(
                "the push certificate has expired: devices receive no commands. Renew it now with Apple ID {apple} \
                 (Renew on topic {topic}, not Create): a new topic would mean re-enrolling every device"
            ),
        };
        PushCert {
            status,
            topic: r.topic.clone(),
            serial: r.serial.clone(),
            subject: r.subject.clone(),
            issuer: r.issuer.clone(),
            not_before: r.not_before,
            expires_at: r.not_after,
            days_left: r.not_after.map(|t| days_left(now, t)),
            apple_id: r.apple_id.clone(),
            uploaded_at: r.uploaded_at,
            renewed_at: r.renewed_at,
            csr_pending: r.pending_csr_pem.is_some(),
            csr_created_at: r.pending_created_at,
            message,
        }
    }

    pub async fn push_cert_get(&self) -> Result<PushCert, CoreError> {
        let r = self.store.push_cert_get().await?;
        Ok(self.push_cert_view(r.as_ref()))
    }

    fn csr_answer(&self, csr_pem: String, created_at: OffsetDateTime) -> Result<PushCsr, CoreError> {
        let signed_request = match &self.settings.push_vendor {
            Some(v) => Some(push_cert::signed_push_request(&csr_pem, &v.0).map_err(cert_error)?),
            None => None,
        };
        let instructions = if signed_request.is_some() {
            "upload the signed request to Apple's push certificate portal (identity.apple.com/pushcert) — for a \
             renewal choose Renew on the existing certificate with the same Apple ID — then run \
             `russet push-cert upload --file <certificate.pem> --apple-id <Apple ID>`"
        } else {
            "no MDM vendor signing certificate is configured (mdm.vendor_certificate_file): have your MDM vendor \
             sign this CSR into a push certificate request, upload that to Apple's push certificate portal, then \
             run `russet push-cert upload --file <certificate.pem> --apple-id <Apple ID>`"
        };
        Ok(PushCsr {
            csr_pem,
            signed_request,
            created_at,
            instructions: instructions.into(),
        })
    }

    /// Makes a new key and CSR for the next certificate (the active one stays in use until
    /// its successor is uploaded), replacing an earlier pending CSR.
    pub async fn push_cert_new_csr(&self, actor: &Actor) -> Result<PushCsr, CoreError> {
        let now = self.clock.now();
        let org = self.settings.organization.clone();
        let pair = tokio::task::spawn_blocking(move || push_cert::generate_key_and_csr("Russet MDM push", &org))
            .await
            .map_err(interrupted)?
            .map_err(cert_error)?;
        let audit = NewAuditEntry::new(
            now,
            actor,
            "push_cert.csr",
            "push_certificate",
            "made a new key and CSR for the push certificate".into(),
        );
        self.store
            .push_cert_set_pending(&pair.private_key_pem, &pair.csr_pem, now, audit)
            .await?;
        tracing::info!("push certificate CSR made");
        self.csr_answer(pair.csr_pem, now)
    }

    /// The pending CSR (and signed request) again.
    pub async fn push_cert_pending_csr(&self) -> Result<PushCsr, CoreError> {
        let r = self.store.push_cert_get().await?;
        match r.and_then(|r| r.pending_csr_pem.zip(r.pending_created_at)) {
            Some((csr, at)) => self.csr_answer(csr, at),
            None => Err(CoreError::not_found(
                "push_csr_not_found",
                "no CSR is waiting for a certificate: make one with `russet push-cert csr`",
            )),
        }
    }

    /// Installs the certificate Apple issued. See the module's rules.
    pub async fn push_cert_upload(&self, actor: &Actor, upload: &PushCertUpload<'_>) -> Result<PushCert, CoreError> {
        if upload.certificate.len() > MAX_CERTIFICATE_BYTES {
            return Err(CoreError::new(
                ErrorKind::TooLarge,
                "push_cert_too_large",
                format!(
                    "the file is {} bytes; a push certificate is about 2 KB (at most {MAX_CERTIFICATE_BYTES} accepted). \
                     Upload the certificate Apple's portal issued",
                    upload.certificate.len()
                ),
            ));
        }
        let now = self.clock.now();
        let (info, cert) = PushCertificate::parse(upload.certificate).map_err(cert_error)?;
        let record = self.store.push_cert_get().await?;
        let Some(record) = record else {
            return Err(CoreError::conflict(
                "push_csr_not_found",
                "Russet has no key for this certificate: make the CSR with `russet push-cert csr`, get its \
                 certificate from Apple's push certificate portal, and upload that",
            ));
        };
        if info.not_after <= now {
            return Err(CoreError::invalid(
                "push_cert_expired",
                format!(
                    "this certificate expired on {}: download the current one from Apple's push certificate portal \
                     (or renew it there) and upload that",
                    fmt_time(info.not_after)
                ),
            ));
        }
        // Which of Russet's keys it was issued for.
        let (active_key, pending_key) = self.store.push_cert_keys().await?;
        let matches = |k: &Option<SecretString>| -> bool {
            k.as_ref().is_some_and(|k| {
                openssl::pkey::PKey::private_key_from_pem(k.expose_secret().as_bytes())
                    .is_ok_and(|key| push_cert::cert_matches_key(&cert, &key))
            })
        };
        let (key, consumes_pending) = if matches(&pending_key) {
            (pending_key, true)
        } else if matches(&active_key) {
            (active_key, false)
        } else {
            return Err(CoreError::invalid(
                "push_cert_key_mismatch",
                "this certificate was not issued for Russet's CSR: its public key matches neither the pending CSR \
                 nor the certificate in place. Upload the certificate Apple issued for the request made by \
                 `russet push-cert csr` (a CSR made since replaces earlier ones)",
            )
            .with_details(json!({ "topic": info.topic, "serial": info.serial })));
        };
        let Some(key) = key else {
            return Err(CoreError::new(
                ErrorKind::Internal,
                "internal",
                "the matched key vanished",
            ));
        };
        // The topic rule.
        let renewal = record.topic.is_some();
        if let Some(current) = record.topic.as_deref()
            && current != info.topic
            && !upload.accept_topic_change
        {
            return Err(CoreError::conflict(
                "push_topic_changed",
                format!(
                    "refused: this certificate's topic is {new}, but the certificate in place has topic {current}. \
                     Every enrolled device only accepts pushes for {current}: with the new certificate they would \
                     silently stop receiving commands until each one is re-enrolled. In Apple's push certificate \
                     portal, sign in with {apple} and choose Renew on the certificate for {current} (not Create), \
                     then upload that certificate. Only if you really mean to re-enroll every device, upload again \
                     with accept_topic_change=true",
                    new = info.topic,
                    apple = record.apple_id.as_deref().unwrap_or("the Apple ID that made it"),
                ),
            )
            .with_details(json!({ "current_topic": current, "new_topic": info.topic })));
        }
        if let Some(current_until) = record.not_after
            && record.topic.as_deref() == Some(info.topic.as_str())
            && info.not_after < current_until
        {
            return Err(CoreError::conflict(
                "push_cert_older",
                format!(
                    "this certificate expires on {}, before the one in place ({}): it is an older download. Upload the \
                     newest certificate from Apple's push certificate portal",
                    fmt_time(info.not_after),
                    fmt_time(current_until)
                ),
            ));
        }
        let apple_id = match (upload.apple_id, record.apple_id.as_deref()) {
            (Some(a), _) => check_apple_id(
                a,
                "the Apple ID you signed in to Apple's push certificate portal with; renew next year with the same one",
            )?,
            (None, Some(stored)) => stored.to_string(),
            (None, None) => {
                return Err(CoreError::invalid(
                    "invalid_apple_id",
                    "the Apple ID is missing: give the Apple ID you signed in to Apple's push certificate portal \
                     with; renew next year with the same one",
                ));
            }
        };
        let topic_changed = renewal && record.topic.as_deref() != Some(info.topic.as_str());
        let (action, summary) = if topic_changed {
            (
                "push_cert.topic_change",
                format!(
                    "installed a push certificate with a NEW topic {} (was {}): enrolled devices must re-enroll",
                    info.topic,
                    record.topic.as_deref().unwrap_or("")
                ),
            )
        } else if renewal {
            (
                "push_cert.renew",
                format!("renewed the push certificate for topic {}", info.topic),
            )
        } else {
            (
                "push_cert.upload",
                format!("installed the push certificate for topic {}", info.topic),
            )
        };
        let audit = NewAuditEntry::new(now, actor, action, "push_certificate", summary).details(json!({
            "topic": info.topic,
            "previous_topic": record.topic,
            "serial": info.serial,
            "previous_serial": record.serial,
            "expires_at": fmt_time(info.not_after),
            "apple_id": apple_id,
        }));
        let stored = self
            .store
            .push_cert_install(
                record.version,
                &NewPushCert {
                    topic: &info.topic,
                    certificate_pem: &info.pem,
                    private_key_pem: &key,
                    serial: &info.serial,
                    subject: &info.subject,
                    issuer: &info.issuer,
                    not_before: info.not_before,
                    not_after: info.not_after,
                    apple_id: &apple_id,
                    consumes_pending,
                },
                now,
                audit,
            )
            .await?;
        if topic_changed {
            tracing::warn!(topic = %info.topic, "push certificate installed with a new topic: devices must re-enroll");
        } else {
            tracing::info!(topic = %info.topic, serial = %info.serial, renewal, "push certificate installed");
        }
        Ok(self.push_cert_view(Some(&stored)))
    }

    /// The active certificate and key (for APNs), or `None` when none is installed.
    pub async fn push_identity(&self) -> Result<Option<PushIdentity>, CoreError> {
        let Some(r) = self.store.push_cert_get().await? else {
            return Ok(None);
        };
        let (Some(topic), Some(certificate_pem), Some(not_after)) = (r.topic, r.certificate_pem, r.not_after) else {
            return Ok(None);
        };
        let (key, _) = self.store.push_cert_keys().await?;
        let Some(private_key_pem) = key else {
            return Ok(None);
        };
        Ok(Some(PushIdentity {
            topic,
            certificate_pem,
            private_key_pem,
            not_after,
            version: r.version,
        }))
    }
}
