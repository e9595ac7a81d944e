//! Automated Device Enrollment's storage: the sign-in sessions of devices in Setup
//! Assistant (profiles with user affinity), the challenge behind a device certificate, and
//! the ABM device, profile and user an enrollment came from.

use sqlx::Row;
use time::OffsetDateTime;

use crate::mdm::ChallengeRecord;
use crate::{Store, StoreError, from_millis, opt_from_millis, to_millis};

/// A sign-in page served to a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInRecord {
    pub id: i64,
    pub profile_id: i64,
    pub serial: String,
    pub udid: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub attempts: i64,
    pub signed_in_at: Option<OffsetDateTime>,
    pub username: Option<String>,
}

/// Where an ADE enrollment came from, written on its device channel at Authenticate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdeBinding {
    pub serial: String,
    pub token_id: i64,
    pub profile_id: i64,
    /// The local user who signed in (profiles with user affinity).
    pub user: Option<String>,
    pub supervised: bool,
    pub locked_enrollment: bool,
}

impl Store {
    /// Records a sign-in session (the SHA-256 of its secret).
    pub async fn ade_sign_in_create(
        &self,
        secret_hash: &str,
        profile_id: i64,
        serial: &str,
        udid: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        // Expired sessions are of no use to anyone.
        sqlx::query("DELETE FROM ade_sign_ins WHERE expires_at < $1")
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO ade_sign_ins (secret_hash, profile_id, serial, udid, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(secret_hash)
        .bind(profile_id)
        .bind(serial)
        .bind(udid)
        .bind(to_millis(now))
        .bind(to_millis(expires_at))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The session with this secret's SHA-256.
    pub async fn ade_sign_in_get(&self, secret_hash: &str) -> Result<Option<SignInRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, profile_id, serial, udid, created_at, expires_at, attempts, signed_in_at, username \
             FROM ade_sign_ins WHERE secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(SignInRecord {
                id: r.try_get("id")?,
                profile_id: r.try_get("profile_id")?,
                serial: r.try_get("serial")?,
                udid: r.try_get("udid")?,
                created_at: from_millis(r.try_get("created_at")?)?,
                expires_at: from_millis(r.try_get("expires_at")?)?,
                attempts: r.try_get("attempts")?,
                signed_in_at: opt_from_millis(r.try_get("signed_in_at")?)?,
                username: r.try_get("username")?,
            })
        })
        .transpose()
    }

    /// Counts a sign-in attempt on a session that is still open; returns the attempts so
    /// far, or `None` when the session was used or is unknown.
    pub async fn ade_sign_in_attempt(&self, id: i64) -> Result<Option<i64>, StoreError> {
        let _gate = self.write_gate().await;
        Ok(sqlx::query_scalar(
            "UPDATE ade_sign_ins SET attempts = attempts + 1 WHERE id = $1 AND signed_in_at IS NULL RETURNING attempts",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Marks a session signed in by `username`; false when it already was.
    pub async fn ade_sign_in_done(&self, id: i64, username: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        Ok(sqlx::query(
            "UPDATE ade_sign_ins SET signed_in_at = $1, username = $2 WHERE id = $3 AND signed_in_at IS NULL",
        )
        .bind(to_millis(now))
        .bind(username)
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// The SCEP challenge a certificate was issued for, if it was.
    pub async fn scep_challenge_of_certificate(&self, sha256: &str) -> Result<Option<ChallengeRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT c.id, c.purpose, c.reference, c.created_at, c.expires_at, c.used_at \
             FROM mdm_certificates m JOIN scep_challenges c ON c.id = m.challenge_id WHERE m.sha256 = $1",
        )
        .bind(sha256)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(ChallengeRecord {
                id: r.try_get("id")?,
                purpose: r.try_get("purpose")?,
                reference: r.try_get("reference")?,
                created_at: from_millis(r.try_get("created_at")?)?,
                expires_at: from_millis(r.try_get("expires_at")?)?,
                used_at: opt_from_millis(r.try_get("used_at")?)?,
            })
        })
        .transpose()
    }

    /// Marks a device channel configured (DeviceConfigured acknowledged, or released by an
    /// administrator): it no longer awaits configuration.
    pub async fn mdm_set_configured(&self, id: &str, by: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        Ok(sqlx::query(
            "UPDATE mdm_enrollments SET configured_at = $1, configured_by = $2, awaiting_configuration = 0, \
               updated_at = $1 WHERE id = $3",
        )
        .bind(to_millis(now))
        .bind(by)
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }
}
