//! The MDM core's storage: Russet's certificate authority (key sealed), one-time SCEP
//! challenges (only their hash), the device identities the CA issued with the enrollment
//! each is pinned to, enrollments (device and user channels, push details, sealed unlock
//! and bootstrap tokens), and commands with their per-enrollment queue.
//!
//! The queue follows Apple's NotNow rules as NanoMDM implements them: a command stays queued
//! until the device answers `Acknowledged`, `Error` or `CommandFormatError`; after a
//! `NotNow` only never-sent commands are offered on that connection; a new `Authenticate`
//! cancels what was still queued for the device and its user channels.

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::audit::{NewAuditEntry, record};
use crate::devices::{IN_LIST, ROWS_PER_STATEMENT, bulk_sql, placeholders};
use crate::{Store, StoreError, from_millis, opt_from_millis, to_millis};

// ---------------------------------------------------------------------------------------
// Certificate authority, challenges, issued certificates

/// A one-time SCEP challenge as stored (its hash only).
#[derive(Clone, Debug, PartialEq)]
pub struct ChallengeRecord {
    pub id: i64,
    pub purpose: String,
    pub reference: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// Why a challenge could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChallengeRefusal {
    Unknown,
    Expired,
    Used,
    /// The challenge came from a single-use enrollment link another device already used.
    LinkSpent,
}

/// The purpose of challenges served by enrollment links (their reference is the link id).
pub const PURPOSE_ENROLLMENT_LINK: &str = "enrollment_link";

/// A certificate the CA issued.
#[derive(Clone, Debug, PartialEq)]
pub struct CertRecord {
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
    /// Upper-case hex.
    pub serial: String,
    pub subject: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub issued_at: OffsetDateTime,
    pub challenge_id: Option<i64>,
    /// The certificate this one renewed.
    pub renewed_from: Option<String>,
    /// The device channel it is pinned to (set at Authenticate).
    pub enrollment_id: Option<String>,
}

fn cert_from_row(r: &AnyRow) -> Result<CertRecord, StoreError> {
    Ok(CertRecord {
        sha256: r.try_get("sha256")?,
        serial: r.try_get("serial")?,
        subject: r.try_get("subject")?,
        not_before: from_millis(r.try_get("not_before")?)?,
        not_after: from_millis(r.try_get("not_after")?)?,
        issued_at: from_millis(r.try_get("issued_at")?)?,
        challenge_id: r.try_get("challenge_id")?,
        renewed_from: r.try_get("renewed_from")?,
        enrollment_id: r.try_get("enrollment_id")?,
    })
}

const CA_AAD: &str = "mdm_ca:1:private_key";
const RA_AAD: &str = "mdm_ca:1:ra_private_key";

async fn insert_cert(conn: &mut sqlx::AnyConnection, c: &CertRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mdm_certificates (sha256, serial, subject, not_before, not_after, issued_at, challenge_id, renewed_from) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&c.sha256)
    .bind(&c.serial)
    .bind(&c.subject)
    .bind(to_millis(c.not_before))
    .bind(to_millis(c.not_after))
    .bind(to_millis(c.issued_at))
    .bind(c.challenge_id)
    .bind(&c.renewed_from)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// The CA's certificate (PEM) and key, if created.
    pub async fn mdm_ca_get(&self) -> Result<Option<(String, SecretString)>, StoreError> {
        let row = sqlx::query("SELECT certificate_pem, private_key_enc FROM mdm_ca WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get("private_key_enc")?;
        let key = self.master_key().open_string(CA_AAD, &sealed)?;
        Ok(Some((
            row.try_get("certificate_pem")?,
            SecretString::from(key.as_str()),
        )))
    }

    /// Stores the CA unless one exists (several processes may start at once); returns the
    /// CA in place afterwards, which may be another process's.
    pub async fn mdm_ca_create(
        &self,
        certificate_pem: &str,
        key_pem: &SecretString,
        now: OffsetDateTime,
    ) -> Result<(String, SecretString), StoreError> {
        let sealed = self.master_key().seal(CA_AAD, key_pem.expose_secret().as_bytes())?;
        sqlx::query(
            "INSERT INTO mdm_ca (id, certificate_pem, private_key_enc, created_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(certificate_pem)
        .bind(sealed)
        .bind(to_millis(now))
        .execute(self.pool())
        .await?;
        self.mdm_ca_get()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the CA row vanished after it was written".into()))
    }

    /// The SCEP RA's certificate (PEM) and key, if one was made.
    pub async fn mdm_ra_get(&self) -> Result<Option<(String, SecretString)>, StoreError> {
        let row = sqlx::query("SELECT ra_certificate_pem, ra_private_key_enc FROM mdm_ca WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (Some(pem), Some(sealed)) = (
            row.try_get::<Option<String>, _>("ra_certificate_pem")?,
            row.try_get::<Option<Vec<u8>>, _>("ra_private_key_enc")?,
        ) else {
            return Ok(None);
        };
        let key = self.master_key().open_string(RA_AAD, &sealed)?;
        Ok(Some((pem, SecretString::from(key.as_str()))))
    }

    /// Puts a new RA in place of `replacing` (the RA's certificate PEM as read, `None` when
    /// there was none), unless another process already replaced it; returns the RA in place
    /// afterwards, which may be the other process's.
    pub async fn mdm_ra_replace(
        &self,
        replacing: Option<&str>,
        certificate_pem: &str,
        key_pem: &SecretString,
    ) -> Result<(String, SecretString), StoreError> {
        let sealed = self.master_key().seal(RA_AAD, key_pem.expose_secret().as_bytes())?;
        let gate = self.write_gate().await;
        sqlx::query(
            "UPDATE mdm_ca SET ra_certificate_pem = $1, ra_private_key_enc = $2 \
             WHERE id = 1 AND COALESCE(ra_certificate_pem, '') = $3",
        )
        .bind(certificate_pem)
        .bind(sealed)
        .bind(replacing.unwrap_or(""))
        .execute(self.pool())
        .await?;
        drop(gate);
        self.mdm_ra_get()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the SCEP RA is missing right after it was written".into()))
    }

    /// Stores a new challenge (its hash). Returns its id.
    pub async fn scep_challenge_create(
        &self,
        challenge_hash: &str,
        purpose: &str,
        reference: Option<&str>,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO scep_challenges (challenge_hash, purpose, reference, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(challenge_hash)
        .bind(purpose)
        .bind(reference)
        .bind(to_millis(now))
        .bind(to_millis(expires_at))
        .fetch_one(self.pool())
        .await?)
    }

    /// Uses a challenge and records the certificate issued for it, atomically: a challenge
    /// serves exactly one certificate. Nothing is written when the challenge is refused.
    pub async fn scep_issue_with_challenge(
        &self,
        challenge_hash: &str,
        cert: &CertRecord,
        now: OffsetDateTime,
    ) -> Result<Result<ChallengeRecord, ChallengeRefusal>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT id, purpose, reference, created_at, expires_at, used_at FROM scep_challenges WHERE challenge_hash = $1",
        )
        .bind(challenge_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Err(ChallengeRefusal::Unknown));
        };
        let rec = ChallengeRecord {
            id: row.try_get("id")?,
            purpose: row.try_get("purpose")?,
            reference: row.try_get("reference")?,
            created_at: from_millis(row.try_get("created_at")?)?,
            expires_at: from_millis(row.try_get("expires_at")?)?,
            used_at: opt_from_millis(row.try_get("used_at")?)?,
        };
        if rec.used_at.is_some() {
            return Ok(Err(ChallengeRefusal::Used));
        }
        if rec.expires_at <= now {
            return Ok(Err(ChallengeRefusal::Expired));
        }
        // The guard on used_at makes a concurrent second use lose on PostgreSQL too.
        let taken =
            sqlx::query("UPDATE scep_challenges SET used_at = $1, used_by_cert = $2 WHERE id = $3 AND used_at IS NULL")
                .bind(to_millis(now))
                .bind(&cert.sha256)
                .bind(rec.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if taken != 1 {
            return Ok(Err(ChallengeRefusal::Used));
        }
        if rec.purpose == PURPOSE_ENROLLMENT_LINK
            && let Some(link) = rec.reference.as_deref().and_then(|r| r.parse::<i64>().ok())
        {
            let counted = sqlx::query(
                "UPDATE enrollment_links SET enrollments = enrollments + 1, used_at = COALESCE(used_at, $1) \
                 WHERE id = $2 AND (single_use = 0 OR used_at IS NULL)",
            )
            .bind(to_millis(now))
            .bind(link)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if counted != 1 {
                return Ok(Err(ChallengeRefusal::LinkSpent));
            }
        }
        let mut cert = cert.clone();
        cert.challenge_id = Some(rec.id);
        insert_cert(&mut tx, &cert).await?;
        tx.commit().await?;
        Ok(Ok(ChallengeRecord {
            used_at: Some(now),
            ..rec
        }))
    }

    /// Records a certificate issued without a challenge (a renewal signed by the identity
    /// it replaces).
    pub async fn mdm_certificate_record(&self, cert: &CertRecord) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        insert_cert(&mut conn, cert).await
    }

    pub async fn mdm_certificate_get(&self, sha256: &str) -> Result<Option<CertRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT sha256, serial, subject, not_before, not_after, issued_at, challenge_id, renewed_from, enrollment_id \
             FROM mdm_certificates WHERE sha256 = $1",
        )
        .bind(sha256)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(cert_from_row).transpose()
    }

    /// Pins a certificate to a device channel unless it is pinned to another one. Returns
    /// the enrollment it is pinned to afterwards (`None` if the certificate is unknown).
    pub async fn mdm_certificate_pin(
        &self,
        sha256: &str,
        enrollment_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let gate = self.write_gate().await;
        sqlx::query(
            "UPDATE mdm_certificates SET enrollment_id = $1, pinned_at = $2 WHERE sha256 = $3 AND enrollment_id IS NULL",
        )
        .bind(enrollment_id)
        .bind(to_millis(now))
        .bind(sha256)
        .execute(self.pool())
        .await?;
        drop(gate);
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT enrollment_id FROM mdm_certificates WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(self.pool())
                .await?
                .flatten(),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Enrollments

/// What an Authenticate says about the device channel.
#[derive(Clone, Debug, Default)]
pub struct AuthenticateRecord {
    pub id: String,
    pub kind: String,
    pub udid: Option<String>,
    pub enrollment_id: Option<String>,
    pub serial_number: Option<String>,
    pub device_name: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub product_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub imei: Option<String>,
    pub meid: Option<String>,
    pub topic: String,
    /// The ABM device, profile and user of an Automated Device Enrollment; `None` for an
    /// enrollment through a link (which clears an earlier binding).
    pub ade: Option<crate::ade_enroll::AdeBinding>,
}

/// What a TokenUpdate says about a channel.
#[derive(Clone, Debug, Default)]
pub struct TokenUpdateRecord {
    pub id: String,
    pub device_id: String,
    pub kind: String,
    pub udid: Option<String>,
    pub enrollment_id: Option<String>,
    pub user_id: Option<String>,
    pub user_short_name: Option<String>,
    pub user_long_name: Option<String>,
    pub topic: String,
    /// Hex of the APNs device token.
    pub push_token: String,
    pub push_magic: String,
    pub unlock_token: Option<Vec<u8>>,
    pub awaiting_configuration: bool,
}

/// An enrollment as stored. No secrets (the unlock and bootstrap tokens stay sealed).
#[derive(Clone, Debug, PartialEq)]
pub struct EnrollmentRecord {
    pub id: String,
    pub device_id: String,
    pub kind: String,
    pub udid: Option<String>,
    pub enrollment_id: Option<String>,
    pub user_id: Option<String>,
    pub user_short_name: Option<String>,
    pub serial_number: Option<String>,
    pub device_name: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub product_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub topic: Option<String>,
    pub push_token: Option<String>,
    pub push_magic: Option<String>,
    pub has_unlock_token: bool,
    pub has_bootstrap_token: bool,
    pub awaiting_configuration: bool,
    pub enabled: bool,
    pub token_update_count: i64,
    pub inventory: Option<String>,
    pub inventory_at: Option<OffsetDateTime>,
    pub authenticated_at: Option<OffsetDateTime>,
    pub enrolled_at: Option<OffsetDateTime>,
    pub checked_out_at: Option<OffsetDateTime>,
    pub last_seen_at: Option<OffsetDateTime>,
    pub last_push_at: Option<OffsetDateTime>,
    pub push_failed_at: Option<OffsetDateTime>,
    pub push_error: Option<String>,
    pub created_at: OffsetDateTime,
    /// Commands still queued (never answered or NotNow).
    pub pending_commands: i64,
    /// Automated Device Enrollment: the ABM device, its token and profile, the user who
    /// signed in; supervision and locked enrollment as the profile set them.
    pub ade_serial: Option<String>,
    pub ade_token_id: Option<i64>,
    pub ade_profile_id: Option<i64>,
    pub ade_user: Option<String>,
    pub supervised: bool,
    pub locked_enrollment: bool,
    /// When Setup Assistant was released (DeviceConfigured acknowledged, or an
    /// administrator), and by whom.
    pub configured_at: Option<OffsetDateTime>,
    pub configured_by: Option<String>,
}

const ENROLLMENT_SELECT: &str = "SELECT e.id, e.device_id, e.kind, e.udid, e.enrollment_id, e.user_id, e.user_short_name, \
     e.serial_number, e.device_name, e.model, e.model_name, e.product_name, e.os_version, e.build_version, e.topic, \
     e.push_token, e.push_magic, CASE WHEN e.unlock_token_enc IS NULL THEN 0 ELSE 1 END AS has_unlock, \
     CASE WHEN e.bootstrap_token_enc IS NULL THEN 0 ELSE 1 END AS has_bootstrap, e.awaiting_configuration, e.enabled, \
     e.token_update_count, e.inventory, e.inventory_at, e.authenticated_at, e.enrolled_at, e.checked_out_at, \
     e.last_seen_at, e.last_push_at, e.push_failed_at, e.push_error, e.created_at, e.ade_serial, e.ade_token_id, \
     e.ade_profile_id, e.ade_user, e.supervised, e.locked_enrollment, e.configured_at, e.configured_by, \
     (SELECT COUNT(*) FROM mdm_queue q WHERE q.enrollment_id = e.id AND q.active = 1) AS pending_commands \
     FROM mdm_enrollments e";

fn enrollment_from_row(r: &AnyRow) -> Result<EnrollmentRecord, StoreError> {
    Ok(EnrollmentRecord {
        id: r.try_get("id")?,
        device_id: r.try_get("device_id")?,
        kind: r.try_get("kind")?,
        udid: r.try_get("udid")?,
        enrollment_id: r.try_get("enrollment_id")?,
        user_id: r.try_get("user_id")?,
        user_short_name: r.try_get("user_short_name")?,
        serial_number: r.try_get("serial_number")?,
        device_name: r.try_get("device_name")?,
        model: r.try_get("model")?,
        model_name: r.try_get("model_name")?,
        product_name: r.try_get("product_name")?,
        os_version: r.try_get("os_version")?,
        build_version: r.try_get("build_version")?,
        topic: r.try_get("topic")?,
        push_token: r.try_get("push_token")?,
        push_magic: r.try_get("push_magic")?,
        has_unlock_token: r.try_get::<i64, _>("has_unlock")? != 0,
        has_bootstrap_token: r.try_get::<i64, _>("has_bootstrap")? != 0,
        awaiting_configuration: r.try_get::<i64, _>("awaiting_configuration")? != 0,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        token_update_count: r.try_get("token_update_count")?,
        inventory: r.try_get("inventory")?,
        inventory_at: opt_from_millis(r.try_get("inventory_at")?)?,
        authenticated_at: opt_from_millis(r.try_get("authenticated_at")?)?,
        enrolled_at: opt_from_millis(r.try_get("enrolled_at")?)?,
        checked_out_at: opt_from_millis(r.try_get("checked_out_at")?)?,
        last_seen_at: opt_from_millis(r.try_get("last_seen_at")?)?,
        last_push_at: opt_from_millis(r.try_get("last_push_at")?)?,
        push_failed_at: opt_from_millis(r.try_get("push_failed_at")?)?,
        push_error: r.try_get("push_error")?,
        created_at: from_millis(r.try_get("created_at")?)?,
        pending_commands: r.try_get("pending_commands")?,
        ade_serial: r.try_get("ade_serial")?,
        ade_token_id: r.try_get("ade_token_id")?,
        ade_profile_id: r.try_get("ade_profile_id")?,
        ade_user: r.try_get("ade_user")?,
        supervised: r.try_get::<i64, _>("supervised")? != 0,
        locked_enrollment: r.try_get::<i64, _>("locked_enrollment")? != 0,
        configured_at: opt_from_millis(r.try_get("configured_at")?)?,
        configured_by: r.try_get("configured_by")?,
    })
}

fn token_aad(id: &str, field: &str) -> String {
    format!("mdm_enrollment:{id}:{field}")
}

/// Cancels what is still queued (never answered, or NotNow) for a device channel and its
/// user channels.
async fn cancel_queue(conn: &mut sqlx::AnyConnection, device_id: &str, now: OffsetDateTime) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE mdm_queue SET status = 'Cancelled', active = 0, answered_at = $1 \
         WHERE active = 1 AND enrollment_id IN (SELECT id FROM mdm_enrollments WHERE device_id = $2)",
    )
    .bind(to_millis(now))
    .bind(device_id)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

impl Store {
    /// Records an Authenticate: creates or refreshes the device channel, disables it (and
    /// its user channels) until the TokenUpdate, forgets the bootstrap token, and cancels
    /// the commands still queued from an earlier enrollment. Returns how many were cancelled.
    pub async fn mdm_authenticate(&self, a: &AuthenticateRecord, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO mdm_enrollments (id, device_id, kind, udid, enrollment_id, serial_number, device_name, model, \
               model_name, product_name, os_version, build_version, imei, meid, topic, authenticated_at, created_at, updated_at) \
             VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $15) \
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, udid = excluded.udid, \
               enrollment_id = excluded.enrollment_id, \
               serial_number = COALESCE(excluded.serial_number, mdm_enrollments.serial_number), \
               device_name = COALESCE(excluded.device_name, mdm_enrollments.device_name), \
               model = COALESCE(excluded.model, mdm_enrollments.model), \
               model_name = COALESCE(excluded.model_name, mdm_enrollments.model_name), \
               product_name = COALESCE(excluded.product_name, mdm_enrollments.product_name), \
               os_version = COALESCE(excluded.os_version, mdm_enrollments.os_version), \
               build_version = COALESCE(excluded.build_version, mdm_enrollments.build_version), \
               imei = COALESCE(excluded.imei, mdm_enrollments.imei), meid = COALESCE(excluded.meid, mdm_enrollments.meid), \
               topic = excluded.topic, authenticated_at = excluded.authenticated_at, updated_at = excluded.updated_at, \
               bootstrap_token_enc = NULL, checked_out_at = NULL",
        )
        .bind(&a.id)
        .bind(&a.kind)
        .bind(&a.udid)
        .bind(&a.enrollment_id)
        .bind(&a.serial_number)
        .bind(&a.device_name)
        .bind(&a.model)
        .bind(&a.model_name)
        .bind(&a.product_name)
        .bind(&a.os_version)
        .bind(&a.build_version)
        .bind(&a.imei)
        .bind(&a.meid)
        .bind(&a.topic)
        .bind(to_millis(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE mdm_enrollments SET enabled = 0, token_update_count = 0, updated_at = $1 WHERE device_id = $2",
        )
        .bind(to_millis(now))
        .bind(&a.id)
        .execute(&mut *tx)
        .await?;
        let ade = a.ade.as_ref();
        sqlx::query(
            "UPDATE mdm_enrollments SET ade_serial = $1, ade_token_id = $2, ade_profile_id = $3, ade_user = $4, \
               supervised = $5, locked_enrollment = $6, configured_at = NULL, configured_by = NULL WHERE id = $7",
        )
        .bind(ade.map(|b| b.serial.clone()))
        .bind(ade.map(|b| b.token_id))
        .bind(ade.map(|b| b.profile_id))
        .bind(ade.and_then(|b| b.user.clone()))
        .bind(i64::from(ade.is_some_and(|b| b.supervised)))
        .bind(i64::from(ade.is_some_and(|b| b.locked_enrollment)))
        .bind(&a.id)
        .execute(&mut *tx)
        .await?;
        let cancelled = cancel_queue(&mut tx, &a.id, now).await?;
        tx.commit().await?;
        Ok(cancelled)
    }

    /// Records a TokenUpdate: the channel's push details, enabled. Creates a user channel on
    /// its first TokenUpdate. Returns true for the first TokenUpdate since Authenticate
    /// (the enrollment is complete). Fails with [`StoreError::Constraint`] when the device
    /// channel never authenticated.
    pub async fn mdm_token_update(&self, t: &TokenUpdateRecord, now: OffsetDateTime) -> Result<bool, StoreError> {
        let unlock = match &t.unlock_token {
            Some(u) => Some(self.master_key().seal(&token_aad(&t.device_id, "unlock_token"), u)?),
            None => None,
        };
        let mut tx = self.begin_write().await?;
        let device: Option<i64> = sqlx::query_scalar("SELECT token_update_count FROM mdm_enrollments WHERE id = $1")
            .bind(&t.device_id)
            .fetch_optional(&mut *tx)
            .await?;
        if device.is_none() {
            return Err(StoreError::Constraint {
                constraint: format!("mdm_enrollments: device {} has not authenticated", t.device_id),
            });
        }
        let before: Option<i64> = sqlx::query_scalar("SELECT token_update_count FROM mdm_enrollments WHERE id = $1")
            .bind(&t.id)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO mdm_enrollments (id, device_id, kind, udid, enrollment_id, user_id, user_short_name, user_long_name, \
               topic, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&t.id)
        .bind(&t.device_id)
        .bind(&t.kind)
        .bind(&t.udid)
        .bind(&t.enrollment_id)
        .bind(&t.user_id)
        .bind(&t.user_short_name)
        .bind(&t.user_long_name)
        .bind(&t.topic)
        .bind(to_millis(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE mdm_enrollments SET topic = $1, push_token = $2, push_magic = $3, \
               unlock_token_enc = COALESCE($4, unlock_token_enc), awaiting_configuration = $5, enabled = 1, \
               token_update_count = token_update_count + 1, token_updated_at = $6, \
               enrolled_at = CASE WHEN token_update_count = 0 THEN $6 ELSE enrolled_at END, \
               push_failed_at = NULL, push_error = NULL, last_seen_at = $6, updated_at = $6 WHERE id = $7",
        )
        .bind(&t.topic)
        .bind(&t.push_token)
        .bind(&t.push_magic)
        .bind(unlock)
        .bind(i64::from(t.awaiting_configuration))
        .bind(to_millis(now))
        .bind(&t.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(before.unwrap_or(0) == 0)
    }

    /// Records a CheckOut: the device channel and its user channels are disabled (no more
    /// pushes) and what was queued is cancelled.
    pub async fn mdm_checkout(&self, device_id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE mdm_enrollments SET enabled = 0, checked_out_at = $1, updated_at = $1 WHERE device_id = $2",
        )
        .bind(to_millis(now))
        .bind(device_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        cancel_queue(&mut tx, device_id, now).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Stores (or, with `None`, clears) a device's bootstrap token, sealed.
    pub async fn mdm_set_bootstrap_token(
        &self,
        device_id: &str,
        token: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let sealed = match token {
            Some(t) => Some(self.master_key().seal(&token_aad(device_id, "bootstrap_token"), t)?),
            None => None,
        };
        let _gate = self.write_gate().await;
        let n = sqlx::query("UPDATE mdm_enrollments SET bootstrap_token_enc = $1, updated_at = $2 WHERE id = $3")
            .bind(sealed)
            .bind(to_millis(now))
            .bind(device_id)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// A device's bootstrap token, decrypted.
    pub async fn mdm_bootstrap_token(&self, device_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT bootstrap_token_enc FROM mdm_enrollments WHERE id = $1")
                .bind(device_id)
                .fetch_optional(self.pool())
                .await?;
        sealed
            .flatten()
            .map(|s| {
                Ok(self
                    .master_key()
                    .open(&token_aad(device_id, "bootstrap_token"), &s)?
                    .to_vec())
            })
            .transpose()
    }

    pub async fn mdm_enrollment_get(&self, id: &str) -> Result<Option<EnrollmentRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{ENROLLMENT_SELECT} WHERE e.id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(enrollment_from_row).transpose()
    }

    /// Enrollments (device and user channels) ordered by id, after `after`, at most `limit`,
    /// only those of one serial number when `serial` is given.
    pub async fn mdm_enrollment_list(
        &self,
        after: Option<&str>,
        limit: i64,
        serial: Option<&str>,
    ) -> Result<Vec<EnrollmentRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ENROLLMENT_SELECT} WHERE ($1 IS NULL OR e.id > $1) AND ($2 IS NULL OR e.serial_number = $2 OR e.ade_serial = $2) \
             ORDER BY e.id LIMIT $3"
        )))
        .bind(after)
        .bind(serial)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(enrollment_from_row).collect()
    }

    /// Resolves targets to enabled device channels: `ids` are enrollment ids (the UDID of a
    /// device channel), `serials` serial numbers. Returns the channels (sorted, once each) and
    /// the targets that are no enrolled device. Both lookups use an index, a list at a time.
    pub async fn mdm_resolve_targets(
        &self,
        ids: &[String],
        serials: &[String],
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let mut found = std::collections::BTreeSet::new();
        let mut matched = std::collections::HashSet::new();
        for (list, column, name) in [
            (ids, "id", "mdm_resolve_ids"),
            (serials, "serial_number", "mdm_resolve_serials"),
        ] {
            for chunk in list.chunks(IN_LIST) {
                let sql = bulk_sql(self.backend(), name, chunk.len(), || {
                    format!(
                        "SELECT id, {column} AS matched FROM mdm_enrollments WHERE {column} IN ({}) \
                         AND id = device_id AND enabled = 1",
                        placeholders(1, chunk.len())
                    )
                });
                let mut q = sqlx::query(sql);
                for t in chunk {
                    q = q.bind(t);
                }
                for row in q.fetch_all(self.pool()).await? {
                    found.insert(row.try_get::<String, _>("id")?);
                    matched.insert(row.try_get::<Option<String>, _>("matched")?.unwrap_or_default());
                }
            }
        }
        let missing = ids
            .iter()
            .chain(serials)
            .filter(|t| !matched.contains(*t))
            .cloned()
            .collect();
        Ok((found.into_iter().collect(), missing))
    }

    /// Stores the latest DeviceInformation answer (JSON) and the fields Russet shows.
    pub async fn mdm_set_inventory(
        &self,
        id: &str,
        inventory_json: &str,
        fields: &InventoryFields,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        write_inventory(&mut tx, id, inventory_json, fields, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a round of pushes: `sent` were accepted by APNs; `failed` were refused for
    /// good (dead token, topic mismatch), with the reason, and are not pushed again until the
    /// device sends a new TokenUpdate.
    pub async fn mdm_push_results(
        &self,
        sent: &[String],
        failed: &[(String, String)],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for chunk in sent.chunks(IN_LIST) {
            let sql = bulk_sql(self.backend(), "mdm_push_sent", chunk.len(), || {
                format!(
                    "UPDATE mdm_enrollments SET last_push_at = $1, push_error = NULL WHERE id IN ({})",
                    placeholders(2, chunk.len())
                )
            });
            let mut q = sqlx::query(sql).bind(to_millis(now));
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        for (id, reason) in failed {
            sqlx::query("UPDATE mdm_enrollments SET push_failed_at = $1, push_error = $2 WHERE id = $3")
                .bind(to_millis(now))
                .bind(reason)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Push details of enabled enrollments among `ids` whose token is not known bad:
    /// (id, topic, token hex, push magic).
    pub async fn mdm_push_targets(&self, ids: &[String]) -> Result<Vec<PushTarget>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_LIST) {
            let sql = bulk_sql(self.backend(), "mdm_push_targets", chunk.len(), || {
                format!(
                    "SELECT id, topic, push_token, push_magic FROM mdm_enrollments WHERE enabled = 1 \
                     AND push_token IS NOT NULL AND push_magic IS NOT NULL AND push_failed_at IS NULL AND id IN ({})",
                    placeholders(1, chunk.len())
                )
            });
            let mut q = sqlx::query(sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.push(PushTarget {
                    enrollment_id: r.try_get("id")?,
                    topic: r.try_get::<Option<String>, _>("topic")?.unwrap_or_default(),
                    token_hex: r.try_get::<Option<String>, _>("push_token")?.unwrap_or_default(),
                    push_magic: r.try_get::<Option<String>, _>("push_magic")?.unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// Enabled enrollments with queued commands whose last push is older than `before`
    /// (or that were never pushed), oldest push first: the re-push round's targets.
    pub async fn mdm_stale_pending(&self, before: OffsetDateTime, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT e.id FROM mdm_enrollments e WHERE e.enabled = 1 AND e.push_failed_at IS NULL \
               AND (e.last_push_at IS NULL OR e.last_push_at < $1) \
               AND EXISTS (SELECT 1 FROM mdm_queue q WHERE q.enrollment_id = e.id AND q.active = 1) \
             ORDER BY COALESCE(e.last_push_at, 0), e.id LIMIT $2",
        )
        .bind(to_millis(before))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}

pub(crate) async fn write_inventory(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    inventory_json: &str,
    fields: &InventoryFields,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE mdm_enrollments SET inventory = $1, inventory_at = $2, \
           device_name = COALESCE($3, device_name), os_version = COALESCE($4, os_version), \
           build_version = COALESCE($5, build_version), model = COALESCE($6, model), \
           model_name = COALESCE($7, model_name), product_name = COALESCE($8, product_name), \
           serial_number = COALESCE($9, serial_number), updated_at = $2 WHERE id = $10",
    )
    .bind(inventory_json)
    .bind(to_millis(now))
    .bind(&fields.device_name)
    .bind(&fields.os_version)
    .bind(&fields.build_version)
    .bind(&fields.model)
    .bind(&fields.model_name)
    .bind(&fields.product_name)
    .bind(&fields.serial_number)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// An enrollment to push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushTarget {
    pub enrollment_id: String,
    pub topic: String,
    pub token_hex: String,
    pub push_magic: String,
}

/// The inventory fields Russet keeps in columns.
#[derive(Clone, Debug, Default)]
pub struct InventoryFields {
    pub device_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub product_name: Option<String>,
    pub serial_number: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Commands and the queue

/// A command to queue.
pub struct NewCommand<'a> {
    pub uuid: &'a str,
    pub request_type: &'a str,
    /// The command plist as sent to devices.
    pub body: &'a [u8],
    pub created_by: &'a str,
}

/// A device's report on a connect request.
pub struct ReportRecord<'a> {
    pub enrollment_id: &'a str,
    /// `Idle`, `Acknowledged`, `Error`, `CommandFormatError` or `NotNow`.
    pub status: &'a str,
    pub command_uuid: Option<&'a str>,
    /// The report as received, kept for the command's result.
    pub raw: &'a [u8],
    /// Apple's ErrorChain as JSON, for `Error`.
    pub error_chain: Option<&'a str>,
    /// The inventory the report carries (a DeviceInformation answer: JSON and the fields
    /// kept in columns), stored when the report acknowledges a DeviceInformation command.
    pub inventory: Option<(&'a str, &'a InventoryFields)>,
}

/// What the connect request answers, and whether the report matched a queued command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOutcome {
    /// The next command to send: uuid and plist.
    pub next: Option<(String, Vec<u8>)>,
    /// The report named a command not queued for this enrollment (ignored).
    pub unknown_command: bool,
    /// The report closed a command of this request type (for follow-up such as inventory).
    pub closed_request_type: Option<String>,
}

/// One enrollment's state for a command.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueEntry {
    pub enrollment_id: String,
    /// `Queued` (never sent), `Sent` (sent, no answer yet), or the device's last status, or
    /// `Cancelled`.
    pub status: String,
    pub queued_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
    pub answered_at: Option<OffsetDateTime>,
    pub not_now_count: i64,
    pub error_chain: Option<String>,
    pub result: Option<Vec<u8>>,
}

/// A command with its per-enrollment states.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandRecord {
    pub uuid: String,
    pub request_type: String,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub target_count: i64,
    pub entries: Vec<QueueEntry>,
}

impl Store {
    /// Queues a command for enrollments, with its audit entry.
    pub async fn mdm_enqueue(
        &self,
        cmd: &NewCommand<'_>,
        targets: &[String],
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO mdm_commands (uuid, request_type, body, created_at, created_by, target_count) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(cmd.uuid)
        .bind(cmd.request_type)
        .bind(cmd.body)
        .bind(to_millis(now))
        .bind(cmd.created_by)
        .bind(targets.len() as i64)
        .fetch_one(&mut *tx)
        .await?;
        const COLS: usize = 4;
        for chunk in targets.chunks(ROWS_PER_STATEMENT) {
            let sql = bulk_sql(self.backend(), "mdm_enqueue", chunk.len(), || {
                let rows: Vec<String> = (0..chunk.len())
                    .map(|i| format!("({})", placeholders(1 + i * COLS, COLS)))
                    .collect();
                format!(
                    "INSERT INTO mdm_queue (enrollment_id, command_uuid, seq, queued_at) VALUES {}",
                    rows.join(", ")
                )
            });
            let mut q = sqlx::query(sql);
            for t in chunk {
                q = q.bind(t).bind(cmd.uuid).bind(id).bind(to_millis(now));
            }
            q.execute(&mut *tx).await?;
        }
        record(&mut tx, &audit.target(cmd.uuid)).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Handles a connect request: stores the report, picks the next command (after a NotNow,
    /// only commands never sent), marks it sent, and notes that the enrollment was seen. The
    /// request's writes are one unit, committed with the connects of other devices that
    /// arrived meanwhile (see `connect_batch`) before this returns.
    pub async fn mdm_connect(&self, r: &ReportRecord<'_>, now: OffsetDateTime) -> Result<ConnectOutcome, StoreError> {
        let (job, reply) = crate::connect_batch::Job::new(r, now);
        self.connects
            .send(job)
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        reply.await.map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?
    }

    /// A command with each enrollment's state.
    pub async fn mdm_command_get(&self, uuid: &str) -> Result<Option<CommandRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT uuid, request_type, created_at, created_by, target_count FROM mdm_commands WHERE uuid = $1",
        )
        .bind(uuid)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let entries = sqlx::query(
            "SELECT enrollment_id, status, sent_at, queued_at, answered_at, not_now_count, error_chain, result \
             FROM mdm_queue WHERE command_uuid = $1 ORDER BY enrollment_id",
        )
        .bind(uuid)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            let status: Option<String> = r.try_get("status")?;
            let sent_at = opt_from_millis(r.try_get("sent_at")?)?;
            Ok(QueueEntry {
                enrollment_id: r.try_get("enrollment_id")?,
                status: status.unwrap_or_else(|| if sent_at.is_some() { "Sent" } else { "Queued" }.to_string()),
                queued_at: from_millis(r.try_get("queued_at")?)?,
                sent_at,
                answered_at: opt_from_millis(r.try_get("answered_at")?)?,
                not_now_count: r.try_get("not_now_count")?,
                error_chain: r.try_get("error_chain")?,
                result: r.try_get("result")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(CommandRecord {
            uuid: row.try_get("uuid")?,
            request_type: row.try_get("request_type")?,
            created_at: from_millis(row.try_get("created_at")?)?,
            created_by: row.try_get("created_by")?,
            target_count: row.try_get("target_count")?,
            entries,
        }))
    }
}
