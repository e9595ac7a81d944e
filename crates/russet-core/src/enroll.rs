//! Enrollment: Russet's certificate authority for device identities (created on first
//! start, key sealed in the store), one-time SCEP challenges, enrollment links for devices
//! outside ABM, and the enrollment profile (`.mobileconfig`) they serve.
//!
//! A profile always carries a fresh challenge that can issue exactly one identity, expires
//! after `settings.challenge_ttl`, and (for a single-use link) is refused once another
//! device enrolled through the same link.

use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use russet_apple::mdm::profile::{EnrollmentProfileSpec, ScepPayloadSpec, build_enrollment_profile, sign_profile};
use russet_store::audit::{Actor, NewAuditEntry};
use russet_store::enrollment_links::LinkRecord;
use russet_store::mdm::PURPOSE_ENROLLMENT_LINK;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::error::{CoreError, ErrorKind};
use crate::{Core, fmt_time};

/// Longest accepted link name.
pub const MAX_LINK_NAME: usize = 100;
/// Longest link validity.
pub const MAX_LINK_DAYS: i64 = 365;

/// Russet's CA, loaded once per process.
pub struct DeviceCa {
    pub cert: X509,
    pub key: PKey<Private>,
}

/// The signing identity of enrollment profiles, when configured.
#[derive(Clone)]
pub struct ProfileSigner {
    pub cert: X509,
    pub key: PKey<Private>,
    pub chain: Vec<X509>,
}

impl std::fmt::Debug for ProfileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProfileSigner([certificate and key])")
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::new(ErrorKind::Internal, "internal", format!("{what}: {e}"))
}

/// A random secret, URL-safe base64 of 24 bytes.
pub(crate) fn random_secret() -> Result<String, CoreError> {
    use base64::Engine;
    let mut b = [0u8; 24];
    russet_store::crypto::random_bytes(&mut b).map_err(|e| internal("randomness", e))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

pub(crate) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// An enrollment link as administrators see it (the secret URL only at creation).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EnrollmentLink {
    pub id: i64,
    pub name: String,
    pub single_use: bool,
    /// `active`, `expired`, `revoked`, or `used` (a single-use link a device enrolled through).
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    pub downloads: i64,
    pub enrollments: i64,
    /// The URL to open on the device; given only when the link is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A served enrollment profile.
pub struct ServedProfile {
    pub body: Vec<u8>,
    pub signed: bool,
}

impl Core {
    /// Russet's device CA: loaded from the store, or created (first start).
    pub async fn device_ca(&self) -> Result<Arc<DeviceCa>, CoreError> {
        self.device_ca
            .get_or_try_init(|| async {
                let (pem, key) = match self.store.mdm_ca_get().await? {
                    Some(ca) => ca,
                    None => {
                        let now = self.clock.now();
                        let org = self.settings.organization.clone();
                        let key_type = self.settings.ca_key_type;
                        let (cert, key) = tokio::task::spawn_blocking(move || {
                            russet_apple::scep::new_ca(&format!("{org} device CA"), &org, now, 20, key_type)
                        })
                        .await
                        .map_err(|e| internal("CA key generation was interrupted", e))?
                        .map_err(|e| internal("cannot create the device CA", e))?;
                        let pem = String::from_utf8(cert.to_pem().map_err(|e| internal("CA PEM", e))?)
                            .map_err(|e| internal("CA PEM", e))?;
                        let key_pem =
                            String::from_utf8(key.private_key_to_pem_pkcs8().map_err(|e| internal("CA key PEM", e))?)
                                .map_err(|e| internal("CA key PEM", e))?;
                        let stored = self
                            .store
                            .mdm_ca_create(&pem, &SecretString::from(key_pem), now)
                            .await?;
                        tracing::info!(key = %key_type, "created Russet's device certificate authority");
                        stored
                    }
                };
                let cert = X509::from_pem(pem.as_bytes()).map_err(|e| internal("stored CA certificate", e))?;
                let key = PKey::private_key_from_pem(key.expose_secret().as_bytes())
                    .map_err(|e| internal("stored CA key", e))?;
                Ok::<_, CoreError>(Arc::new(DeviceCa { cert, key }))
            })
            .await
            .cloned()
    }

    /// Makes a one-time SCEP challenge for `purpose` (and what asked for it).
    pub async fn new_scep_challenge(&self, purpose: &str, reference: Option<&str>) -> Result<String, CoreError> {
        let challenge = random_secret()?;
        let now = self.clock.now();
        self.store
            .scep_challenge_create(
                &sha256_hex(&challenge),
                purpose,
                reference,
                now,
                now + self.settings.challenge_ttl,
            )
            .await?;
        Ok(challenge)
    }

    fn link_view(&self, r: &LinkRecord, url: Option<String>) -> EnrollmentLink {
        let now = self.clock.now();
        let status = if r.revoked_at.is_some() {
            "revoked"
        } else if r.single_use && r.used_at.is_some() {
            "used"
        } else if r.expires_at <= now {
            "expired"
        } else {
            "active"
        };
        EnrollmentLink {
            id: r.id,
            name: r.name.clone(),
            single_use: r.single_use,
            status: status.into(),
            created_at: r.created_at,
            created_by: r.created_by.clone(),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            downloads: r.downloads,
            enrollments: r.enrollments,
            url,
        }
    }

    /// Creates an enrollment link valid for `valid_days` (1 to 365). Its URL is shown once.
    pub async fn enrollment_link_create(
        &self,
        actor: &Actor,
        name: &str,
        valid_days: i64,
        single_use: bool,
    ) -> Result<EnrollmentLink, CoreError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_LINK_NAME || name.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                "invalid_name",
                format!("give the link a name of 1 to {MAX_LINK_NAME} printable characters, e.g. \"Loaner iPads\""),
            ));
        }
        if !(1..=MAX_LINK_DAYS).contains(&valid_days) {
            return Err(CoreError::invalid(
                "invalid_validity",
                format!("a link is valid for 1 to {MAX_LINK_DAYS} days (got {valid_days})"),
            ));
        }
        let now = self.clock.now();
        let secret = random_secret()?;
        let audit = NewAuditEntry::new(
            now,
            actor,
            "enrollment_link.create",
            "enrollment_link",
            format!("created enrollment link \"{name}\""),
        )
        .details(json!({ "name": name, "valid_days": valid_days, "single_use": single_use }));
        let r = self
            .store
            .enrollment_link_create(
                name,
                &sha256_hex(&secret),
                single_use,
                now + Duration::days(valid_days),
                &actor.label,
                now,
                audit,
            )
            .await?;
        let url = format!("{}/enroll/{secret}", self.settings.public_url);
        Ok(self.link_view(&r, Some(url)))
    }

    pub async fn enrollment_link_list(&self) -> Result<Vec<EnrollmentLink>, CoreError> {
        Ok(self
            .store
            .enrollment_link_list()
            .await?
            .iter()
            .map(|r| self.link_view(r, None))
            .collect())
    }

    pub async fn enrollment_link_revoke(&self, actor: &Actor, id: i64) -> Result<EnrollmentLink, CoreError> {
        let r = self
            .store
            .enrollment_link_get(id)
            .await?
            .ok_or_else(|| CoreError::not_found("enrollment_link_not_found", format!("no enrollment link {id}")))?;
        let now = self.clock.now();
        let audit = NewAuditEntry::new(
            now,
            actor,
            "enrollment_link.revoke",
            "enrollment_link",
            format!("revoked enrollment link \"{}\"", r.name),
        );
        self.store.enrollment_link_revoke(id, now, audit).await?;
        let r = self
            .store
            .enrollment_link_get(id)
            .await?
            .ok_or_else(|| CoreError::not_found("enrollment_link_not_found", format!("no enrollment link {id}")))?;
        Ok(self.link_view(&r, None))
    }

    /// The enrollment profile behind a link's URL, with a fresh challenge.
    pub async fn enrollment_profile_for_link(&self, secret: &str) -> Result<ServedProfile, CoreError> {
        let gone = |why: &str| {
            CoreError::new(
                ErrorKind::Gone,
                "enrollment_link_unusable",
                format!("this enrollment link {why}: ask your IT administrator for a new one"),
            )
        };
        let r = self
            .store
            .enrollment_link_by_hash(&sha256_hex(secret))
            .await?
            .ok_or_else(|| CoreError::not_found("enrollment_link_not_found", "no such enrollment link"))?;
        let now = self.clock.now();
        if r.revoked_at.is_some() {
            return Err(gone("was revoked"));
        }
        if r.expires_at <= now {
            return Err(gone(&format!("expired on {}", fmt_time(r.expires_at))));
        }
        if r.single_use && r.used_at.is_some() {
            return Err(gone("was for one device and has been used"));
        }
        let challenge = self
            .new_scep_challenge(PURPOSE_ENROLLMENT_LINK, Some(&r.id.to_string()))
            .await?;
        let profile = self.enrollment_profile(&challenge).await?;
        self.store.enrollment_link_downloaded(r.id, now).await?;
        Ok(profile)
    }

    /// Builds (and signs, when a signing identity is configured) the enrollment profile
    /// carrying `challenge`.
    pub async fn enrollment_profile(&self, challenge: &str) -> Result<ServedProfile, CoreError> {
        let identity = self.push_identity().await?.ok_or_else(|| {
            CoreError::conflict(
                "no_push_certificate",
                "devices cannot enroll yet: Russet has no MDM push certificate. Install one with `russet push-cert csr` \
                 and `russet push-cert upload`",
            )
        })?;
        if identity.not_after <= self.clock.now() {
            return Err(CoreError::conflict(
                "push_certificate_expired",
                "devices cannot enroll: the MDM push certificate has expired. Renew it (same topic) first",
            ));
        }
        let ca = self.device_ca().await?;
        let base = &self.settings.public_url;
        let mut scep = ScepPayloadSpec::new(format!("{base}/scep"), challenge);
        scep.name = format!("{} device identity", self.settings.organization);
        scep.subject = vec![
            ("O".to_string(), self.settings.organization.clone()),
            ("CN".to_string(), "Russet device identity".to_string()),
        ];
        scep.ca_fingerprint = Some(
            ca.cert
                .digest(MessageDigest::sha1())
                .map_err(|e| internal("CA fingerprint", e))?
                .to_vec(),
        );
        let mut spec = EnrollmentProfileSpec::new(
            self.settings.organization.clone(),
            profile_identifier(base),
            identity.topic,
            format!("{base}/mdm/connect"),
            scep,
        );
        spec.check_in_url = Some(format!("{base}/mdm/checkin"));
        spec.server_capabilities = vec![
            "com.apple.mdm.per-user-connections".to_string(),
            "com.apple.mdm.bootstraptoken".to_string(),
        ];
        spec.anchor_certs = self.settings.profile_anchor_certs.clone();
        let xml = build_enrollment_profile(&spec)
            .map_err(|e| CoreError::new(ErrorKind::Internal, "profile_invalid", e.to_string()))?;
        match &self.settings.profile_signer {
            Some(s) => Ok(ServedProfile {
                body: sign_profile(&xml, &s.cert, &s.key, &s.chain).map_err(|e| internal("signing the profile", e))?,
                signed: true,
            }),
            None => Ok(ServedProfile {
                body: xml,
                signed: false,
            }),
        }
    }
}

/// A stable `PayloadIdentifier` base from the public URL's host, so a device replaces the
/// profile of the same server instead of installing a second one.
fn profile_identifier(public_url: &str) -> String {
    let host = public_url
        .split("://")
        .nth(1)
        .unwrap_or(public_url)
        .split(['/', ':'])
        .next()
        .unwrap_or("localhost");
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("russet.enrollment.{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_come_from_the_host() {
        assert_eq!(
            profile_identifier("https://mdm.example.com"),
            "russet.enrollment.mdm.example.com"
        );
        assert_eq!(
            profile_identifier("http://127.0.0.1:8080/x"),
            "russet.enrollment.127.0.0.1"
        );
    }
}
