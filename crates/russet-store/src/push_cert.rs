//! The MDM push certificate: one row (id 1) with the active certificate and its sealed key,
//! and the sealed key and CSR waiting for Apple's next certificate. Every write bumps
//! `version`, which processes sharing the database poll to reload their APNs client.

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::audit::{NewAuditEntry, record};
use crate::{Store, StoreError, from_millis, opt_from_millis, to_millis};

/// The row's id: Russet has one push certificate.
const ID: i64 = 1;

/// What is stored of the push certificate. No secrets.
#[derive(Clone, Debug, PartialEq)]
pub struct PushCertRecord {
    pub topic: Option<String>,
    pub certificate_pem: Option<String>,
    pub serial: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    pub apple_id: Option<String>,
    pub uploaded_at: Option<OffsetDateTime>,
    pub renewed_at: Option<OffsetDateTime>,
    /// The CSR made for the next certificate, while its certificate has not been uploaded.
    pub pending_csr_pem: Option<String>,
    pub pending_created_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

/// An issued certificate to install.
pub struct NewPushCert<'a> {
    pub topic: &'a str,
    pub certificate_pem: &'a str,
    /// The certificate's key (the pending key, or the active one for a re-upload).
    pub private_key_pem: &'a SecretString,
    pub serial: &'a str,
    pub subject: &'a str,
    pub issuer: &'a str,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub apple_id: &'a str,
    /// The key was the pending one: clear the pending key and CSR.
    pub consumes_pending: bool,
}

fn aad(field: &str) -> String {
    format!("push_certificate:{ID}:{field}")
}

const SELECT: &str = "SELECT topic, certificate_pem, serial, subject, issuer, not_before, not_after, apple_id, uploaded_at, \
     renewed_at, pending_csr_pem, pending_created_at, created_at, updated_at, version FROM push_certificate WHERE id = 1";

fn from_row(r: &AnyRow) -> Result<PushCertRecord, StoreError> {
    Ok(PushCertRecord {
        topic: r.try_get("topic")?,
        certificate_pem: r.try_get("certificate_pem")?,
        serial: r.try_get("serial")?,
        subject: r.try_get("subject")?,
        issuer: r.try_get("issuer")?,
        not_before: opt_from_millis(r.try_get("not_before")?)?,
        not_after: opt_from_millis(r.try_get("not_after")?)?,
        apple_id: r.try_get("apple_id")?,
        uploaded_at: opt_from_millis(r.try_get("uploaded_at")?)?,
        renewed_at: opt_from_millis(r.try_get("renewed_at")?)?,
        pending_csr_pem: r.try_get("pending_csr_pem")?,
        pending_created_at: opt_from_millis(r.try_get("pending_created_at")?)?,
        created_at: from_millis(r.try_get("created_at")?)?,
        updated_at: from_millis(r.try_get("updated_at")?)?,
        version: r.try_get("version")?,
    })
}

impl Store {
    pub async fn push_cert_get(&self) -> Result<Option<PushCertRecord>, StoreError> {
        let row = sqlx::query(SELECT).fetch_optional(self.pool()).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The row's version (cheap; polled to notice a renewal made by another process).
    pub async fn push_cert_version(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT version FROM push_certificate WHERE id = 1")
            .fetch_optional(self.pool())
            .await?)
    }

    /// Stores a new key and CSR for the next certificate, replacing an earlier pending one.
    /// The active certificate is untouched.
    pub async fn push_cert_set_pending(
        &self,
        key_pem: &SecretString,
        csr_pem: &str,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<PushCertRecord, StoreError> {
        let sealed = self
            .master_key()
            .seal(&aad("pending_key"), key_pem.expose_secret().as_bytes())?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO push_certificate (id, pending_key_enc, pending_csr_pem, pending_created_at, created_at, updated_at) \
             VALUES (1, $1, $2, $3, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET pending_key_enc = excluded.pending_key_enc, \
               pending_csr_pem = excluded.pending_csr_pem, pending_created_at = excluded.pending_created_at, \
               updated_at = excluded.updated_at, version = push_certificate.version + 1",
        )
        .bind(sealed)
        .bind(csr_pem)
        .bind(to_millis(now))
        .execute(&mut *tx)
        .await?;
        record(&mut tx, &audit.target(ID)).await?;
        let row = sqlx::query(SELECT).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        from_row(&row)
    }

    /// The active certificate's key and the pending key, decrypted.
    pub async fn push_cert_keys(&self) -> Result<(Option<SecretString>, Option<SecretString>), StoreError> {
        let row = sqlx::query("SELECT private_key_enc, pending_key_enc FROM push_certificate WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else {
            return Ok((None, None));
        };
        let open = |field: &str, sealed: Option<Vec<u8>>| -> Result<Option<SecretString>, StoreError> {
            sealed
                .map(|s| {
                    Ok(SecretString::from(
                        self.master_key().open_string(&aad(field), &s)?.as_str(),
                    ))
                })
                .transpose()
        };
        Ok((
            open("private_key", row.try_get("private_key_enc")?)?,
            open("pending_key", row.try_get("pending_key_enc")?)?,
        ))
    }

    /// Installs an issued certificate with its key, if the row is still at
    /// `expected_version` ([`StoreError::Concurrent`] otherwise).
    pub async fn push_cert_install(
        &self,
        expected_version: i64,
        cert: &NewPushCert<'_>,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<PushCertRecord, StoreError> {
        let sealed = self
            .master_key()
            .seal(&aad("private_key"), cert.private_key_pem.expose_secret().as_bytes())?;
        let mut tx = self.begin_write().await?;
        let pending = if cert.consumes_pending {
            "pending_key_enc = NULL, pending_csr_pem = NULL, pending_created_at = NULL, "
        } else {
            ""
        };
        let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE push_certificate SET {pending}\
               renewed_at = CASE WHEN certificate_pem IS NULL THEN renewed_at ELSE $1 END, \
               topic = $2, certificate_pem = $3, private_key_enc = $4, serial = $5, subject = $6, issuer = $7, \
               not_before = $8, not_after = $9, apple_id = $10, uploaded_at = $1, updated_at = $1, \
               version = version + 1 \
             WHERE id = 1 AND version = $11"
        )))
        .bind(to_millis(now))
        .bind(cert.topic)
        .bind(cert.certificate_pem)
        .bind(sealed)
        .bind(cert.serial)
        .bind(cert.subject)
        .bind(cert.issuer)
        .bind(to_millis(cert.not_before))
        .bind(to_millis(cert.not_after))
        .bind(cert.apple_id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(StoreError::Concurrent);
        }
        record(&mut tx, &audit.target(ID)).await?;
        let row = sqlx::query(SELECT).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        from_row(&row)
    }
}
