//! Admin API keys. A key is 32 random bytes shown once (`rst_` + base64url); only its
//! SHA-256 is stored. A slow password hash is not needed for a 256-bit random secret, and
//! a fast one keeps the check cheap on every API request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use time::OffsetDateTime;

use crate::audit::{NewAuditEntry, record};
use crate::crypto::random_bytes;
use crate::{Store, StoreError, from_millis, opt_from_millis, to_millis};

const KEY_PREFIX: &str = "rst_";
const BOOTSTRAP_SETTING: &str = "admin_key_bootstrapped";

/// A stored admin key (without the secret).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdminKey {
    pub id: i64,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A key just created: the only moment its secret exists outside the caller's hands.
pub struct NewAdminKey {
    pub key: AdminKey,
    pub secret: SecretString,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn generate() -> Result<SecretString, StoreError> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    random_bytes(raw.as_mut_slice())?;
    Ok(SecretString::from(format!(
        "{KEY_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(raw.as_slice())
    )))
}

async fn insert(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    secret: &SecretString,
    now: OffsetDateTime,
) -> Result<AdminKey, StoreError> {
    let prefix: String = secret.expose_secret().chars().take(KEY_PREFIX.len() + 6).collect();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO admin_keys (name, key_hash, key_prefix, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(hash(secret.expose_secret()))
    .bind(&prefix)
    .bind(to_millis(now))
    .fetch_one(&mut *conn)
    .await?;
    Ok(AdminKey {
        id,
        name: name.to_string(),
        prefix,
        created_at: now,
        revoked_at: None,
    })
}

impl Store {
    /// Creates the first admin key if no process ever did for this database. Returns
    /// `None` when one was already made (possibly by another process at the same moment).
    pub async fn admin_key_bootstrap(
        &self,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<Option<NewAdminKey>, StoreError> {
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(BOOTSTRAP_SETTING)
            .bind(to_millis(now).to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !claimed {
            return Ok(None);
        }
        let secret = generate()?;
        let key = insert(&mut tx, "initial", &secret, now).await?;
        record(&mut tx, &audit.target(key.id)).await?;
        tx.commit().await?;
        Ok(Some(NewAdminKey { key, secret }))
    }

    /// Revokes every active key and creates a new one, atomically.
    pub async fn admin_key_rotate(
        &self,
        name: &str,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<(NewAdminKey, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        let revoked = sqlx::query("UPDATE admin_keys SET revoked_at = $1 WHERE revoked_at IS NULL")
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Rotation also counts as bootstrapping, so a later start does not add a second key.
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(BOOTSTRAP_SETTING)
            .bind(to_millis(now).to_string())
            .execute(&mut *tx)
            .await?;
        let secret = generate()?;
        let key = insert(&mut tx, name, &secret, now).await?;
        let audit = audit
            .target(key.id)
            .details(serde_json::json!({ "revoked_keys": revoked, "new_key_prefix": key.prefix }));
        record(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok((NewAdminKey { key, secret }, revoked))
    }

    /// The active key with this secret, if any.
    pub async fn admin_key_verify(&self, presented: &str) -> Result<Option<AdminKey>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, key_prefix, created_at, revoked_at FROM admin_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash(presented))
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(AdminKey {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                prefix: row.try_get("key_prefix")?,
                created_at: from_millis(row.try_get("created_at")?)?,
                revoked_at: opt_from_millis(row.try_get("revoked_at")?)?,
            })
        })
        .transpose()
    }
}
