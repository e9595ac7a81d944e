//! Enrollment program (ADE) tokens: the key pair whose certificate goes to Apple Business
//! Manager, and the server token credentials that come back. Both secrets are sealed with
//! the master key; the row keeps only their ciphertexts.

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::audit::{NewAuditEntry, record};
use crate::{Store, StoreError, from_millis, opt_from_millis, to_millis};

/// A stored token with the counts of what depends on it. No secrets.
#[derive(Clone, Debug, PartialEq)]
pub struct AdeTokenRecord {
    pub id: i64,
    pub name: String,
    pub apple_id: Option<String>,
    pub certificate_pem: String,
    /// True once a server token has been stored.
    pub has_credentials: bool,
    /// SHA-256 (hex) of the OAuth consumer key: which ABM MDM server the credentials belong to.
    pub consumer_key_hash: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub activated_at: Option<OffsetDateTime>,
    pub renewed_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    /// Incremented on every change; writers pass the version they read.
    pub version: i64,
    /// Devices still assigned to the token's MDM server in ABM.
    pub device_count: i64,
    /// Devices ABM released or moved away, kept until the retention period ends.
    pub removed_device_count: i64,
    pub profile_count: i64,
    pub account: AbmAccount,
    /// Set when Apple last answered T_C_NOT_SIGNED (cleared by the next success).
    pub terms_not_signed_at: Option<OffsetDateTime>,
    pub default_profile_id: Option<i64>,
}

/// What Apple's `/account` says about the token's MDM server and organisation.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct AbmAccount {
    pub server_name: Option<String>,
    pub server_uuid: Option<String>,
    pub admin_id: Option<String>,
    pub org_name: Option<String>,
    pub org_email: Option<String>,
    pub org_phone: Option<String>,
    pub org_type: Option<String>,
    pub org_id: Option<String>,
    pub checked_at: Option<OffsetDateTime>,
}

/// Server token credentials to store on a token.
pub struct NewCredentials<'a> {
    /// The credentials JSON (Apple's five fields).
    pub json: &'a SecretString,
    pub consumer_key_hash: &'a str,
    pub expires_at: OffsetDateTime,
    pub apple_id: &'a str,
}

const SELECT: &str = "SELECT t.id, t.name, t.apple_id, t.certificate_pem, CASE WHEN t.credentials_enc IS NULL THEN 0 ELSE 1 END AS has_credentials, \
     t.consumer_key_hash, t.expires_at, t.created_at, t.activated_at, t.renewed_at, t.updated_at, t.version, \
     t.abm_server_name, t.abm_server_uuid, t.abm_admin_id, t.org_name, t.org_email, t.org_phone, t.org_type, t.org_id, \
     t.account_checked_at, t.terms_not_signed_at, t.default_profile_id, \
     (SELECT COUNT(*) FROM ade_devices d WHERE d.token_id = t.id AND d.removed_at IS NULL) AS device_count, \
     (SELECT COUNT(*) FROM ade_devices d WHERE d.token_id = t.id AND d.removed_at IS NOT NULL) AS removed_device_count, \
     (SELECT COUNT(*) FROM ade_profiles p WHERE p.token_id = t.id) AS profile_count \
     FROM ade_tokens t";

fn aad(id: i64, field: &str) -> String {
    format!("ade_token:{id}:{field}")
}

/// The key used for case-insensitive name uniqueness.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn from_row(row: &AnyRow) -> Result<AdeTokenRecord, StoreError> {
    Ok(AdeTokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        apple_id: row.try_get("apple_id")?,
        certificate_pem: row.try_get("certificate_pem")?,
        has_credentials: row.try_get::<i64, _>("has_credentials")? != 0,
        consumer_key_hash: row.try_get("consumer_key_hash")?,
        expires_at: opt_from_millis(row.try_get("expires_at")?)?,
        created_at: from_millis(row.try_get("created_at")?)?,
        activated_at: opt_from_millis(row.try_get("activated_at")?)?,
        renewed_at: opt_from_millis(row.try_get("renewed_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
        version: row.try_get("version")?,
        device_count: row.try_get("device_count")?,
        removed_device_count: row.try_get("removed_device_count")?,
        profile_count: row.try_get("profile_count")?,
        account: AbmAccount {
            server_name: row.try_get("abm_server_name")?,
            server_uuid: row.try_get("abm_server_uuid")?,
            admin_id: row.try_get("abm_admin_id")?,
            org_name: row.try_get("org_name")?,
            org_email: row.try_get("org_email")?,
            org_phone: row.try_get("org_phone")?,
            org_type: row.try_get("org_type")?,
            org_id: row.try_get("org_id")?,
            checked_at: opt_from_millis(row.try_get("account_checked_at")?)?,
        },
        terms_not_signed_at: opt_from_millis(row.try_get("terms_not_signed_at")?)?,
        default_profile_id: row.try_get("default_profile_id")?,
    })
}

/// A token read inside a write transaction (after changing it).
async fn fetch_in(conn: &mut sqlx::AnyConnection, id: i64) -> Result<AdeTokenRecord, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE t.id = $1")))
        .bind(id)
        .fetch_one(conn)
        .await?;
    from_row(&row)
}

impl Store {
    /// Stores a new pending token with its key pair. The id is assigned here and written
    /// into `audit` as its target.
    pub async fn ade_token_create(
        &self,
        name: &str,
        private_key_pem: &SecretString,
        certificate_pem: &str,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<AdeTokenRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        // The ciphertext is bound to the row id, which exists only after the insert; a
        // placeholder never leaves the transaction.
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO ade_tokens (name, name_key, certificate_pem, private_key_enc, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(name)
        .bind(name_key(name))
        .bind(certificate_pem)
        .bind(Vec::<u8>::new())
        .bind(to_millis(now))
        .fetch_one(&mut *tx)
        .await?;
        let sealed = self
            .master_key()
            .seal(&aad(id, "private_key"), private_key_pem.expose_secret().as_bytes())?;
        sqlx::query("UPDATE ade_tokens SET private_key_enc = $1 WHERE id = $2")
            .bind(sealed)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        record(&mut tx, &audit.target(id)).await?;
        let token = fetch_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(token)
    }

    pub async fn ade_token_list(&self) -> Result<Vec<AdeTokenRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY t.id")))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn ade_token_get(&self, id: i64) -> Result<Option<AdeTokenRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE t.id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The token whose name equals `name` ignoring case and surrounding spaces.
    pub async fn ade_token_find_by_name(&self, name: &str) -> Result<Option<AdeTokenRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE t.name_key = $1")))
            .bind(name_key(name))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The token already holding credentials of this ABM MDM server, if any.
    pub async fn ade_token_find_by_consumer_key_hash(&self, hash: &str) -> Result<Option<AdeTokenRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE t.consumer_key_hash = $1")))
            .bind(hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The token's private key (PEM), decrypted.
    pub async fn ade_token_private_key(&self, id: i64) -> Result<Option<SecretString>, StoreError> {
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT private_key_enc FROM ade_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        sealed
            .map(|s| {
                Ok(SecretString::from(
                    self.master_key().open_string(&aad(id, "private_key"), &s)?.as_str(),
                ))
            })
            .transpose()
    }

    /// The token's server token credentials (JSON), decrypted; `None` while pending.
    pub async fn ade_token_credentials(&self, id: i64) -> Result<Option<SecretString>, StoreError> {
        let sealed: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT credentials_enc FROM ade_tokens WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        sealed
            .flatten()
            .map(|s| {
                Ok(SecretString::from(
                    self.master_key().open_string(&aad(id, "credentials"), &s)?.as_str(),
                ))
            })
            .transpose()
    }

    /// Stores server token credentials on a token read at `expected_version`: the first
    /// upload (pending → active) or a renewal in place. Fails with
    /// [`StoreError::Concurrent`] if the token changed since it was read, leaving it as it was.
    pub async fn ade_token_store_credentials(
        &self,
        id: i64,
        expected_version: i64,
        creds: &NewCredentials<'_>,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<AdeTokenRecord, StoreError> {
        let sealed = self
            .master_key()
            .seal(&aad(id, "credentials"), creds.json.expose_secret().as_bytes())?;
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE ade_tokens SET credentials_enc = $1, consumer_key_hash = $2, expires_at = $3, apple_id = $4, \
               activated_at = COALESCE(activated_at, $5), \
               renewed_at = CASE WHEN credentials_enc IS NULL THEN renewed_at ELSE $5 END, \
               updated_at = $5, version = version + 1 \
             WHERE id = $6 AND version = $7",
        )
        .bind(sealed)
        .bind(creds.consumer_key_hash)
        .bind(to_millis(creds.expires_at))
        .bind(creds.apple_id)
        .bind(to_millis(now))
        .bind(id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(StoreError::Concurrent);
        }
        record(&mut tx, &audit.target(id)).await?;
        let token = fetch_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Records another Apple ID for a token read at `expected_version`, leaving its
    /// credentials and times as they are.
    pub async fn ade_token_set_apple_id(
        &self,
        id: i64,
        expected_version: i64,
        apple_id: &str,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<AdeTokenRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE ade_tokens SET apple_id = $1, updated_at = $2, version = version + 1 WHERE id = $3 AND version = $4",
        )
        .bind(apple_id)
        .bind(to_millis(now))
        .bind(id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(StoreError::Concurrent);
        }
        record(&mut tx, &audit.target(id)).await?;
        let token = fetch_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Records Apple's `/account` answer (no version change: it is Apple's data, not an
    /// administrator's edit). Clears the terms flag, since Apple answered.
    pub async fn ade_token_set_account(&self, id: i64, a: &AbmAccount) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE ade_tokens SET abm_server_name = $1, abm_server_uuid = $2, abm_admin_id = $3, org_name = $4, \
               org_email = $5, org_phone = $6, org_type = $7, org_id = $8, account_checked_at = $9, \
               terms_not_signed_at = NULL WHERE id = $10",
        )
        .bind(&a.server_name)
        .bind(&a.server_uuid)
        .bind(&a.admin_id)
        .bind(&a.org_name)
        .bind(&a.org_email)
        .bind(&a.org_phone)
        .bind(&a.org_type)
        .bind(&a.org_id)
        .bind(a.checked_at.map(to_millis))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// When Apple last answered T_C_NOT_SIGNED, if the flag is set (a cheap read for every
    /// call to Apple).
    pub async fn ade_token_terms(&self, id: i64) -> Result<Option<OffsetDateTime>, StoreError> {
        let at: Option<Option<i64>> = sqlx::query_scalar("SELECT terms_not_signed_at FROM ade_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        opt_from_millis(at.flatten())
    }

    /// Sets (Apple answered T_C_NOT_SIGNED at `at`) or clears the terms flag.
    pub async fn ade_token_set_terms(&self, id: i64, at: Option<OffsetDateTime>) -> Result<(), StoreError> {
        sqlx::query("UPDATE ade_tokens SET terms_not_signed_at = $1 WHERE id = $2")
            .bind(at.map(to_millis))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes a token read at `expected_version`, with its key material. The schema
    /// refuses (as [`StoreError::Constraint`]) while devices or profiles still refer to it.
    pub async fn ade_token_delete(
        &self,
        id: i64,
        expected_version: i64,
        audit: NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        // Devices ABM already released go with the token; devices still assigned block it.
        sqlx::query(
            "DELETE FROM ade_assignment_events WHERE serial_number IN \
               (SELECT serial_number FROM ade_devices WHERE token_id = $1 AND removed_at IS NOT NULL)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM ade_devices WHERE token_id = $1 AND removed_at IS NOT NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM ade_sync_state WHERE token_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        crate::delete_versioned(&mut tx, "ade_tokens", id, expected_version, &audit).await?;
        if self.backend() == crate::Backend::Postgres {
            // No foreign key guards devices on PostgreSQL (migration 0004). The deleted row
            // stays locked until commit, so a sync page either committed before this check
            // (and its devices are seen here) or waits and then finds the token gone.
            let devices: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ade_devices WHERE token_id = $1)")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if devices {
                return Err(StoreError::Constraint {
                    constraint: "ade_devices.token_id: devices still belong to the token".into(),
                });
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
