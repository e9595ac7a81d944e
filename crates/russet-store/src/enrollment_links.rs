//! Enrollment links: URLs that serve an enrollment profile to devices outside ABM. Only the
//! SHA-256 of each link's secret is stored.

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::audit::{NewAuditEntry, record};
use crate::{Store, StoreError, from_millis, opt_from_millis, to_millis};

/// A stored link. No secret.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkRecord {
    pub id: i64,
    pub name: String,
    pub single_use: bool,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub downloads: i64,
    pub last_download_at: Option<OffsetDateTime>,
    /// Identity certificates issued through the link's challenges.
    pub enrollments: i64,
    /// When the first device got its identity through the link.
    pub used_at: Option<OffsetDateTime>,
}

const SELECT: &str = "SELECT id, name, single_use, created_at, created_by, expires_at, revoked_at, downloads, \
     last_download_at, enrollments, used_at FROM enrollment_links";

fn from_row(r: &AnyRow) -> Result<LinkRecord, StoreError> {
    Ok(LinkRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        single_use: r.try_get::<i64, _>("single_use")? != 0,
        created_at: from_millis(r.try_get("created_at")?)?,
        created_by: r.try_get("created_by")?,
        expires_at: from_millis(r.try_get("expires_at")?)?,
        revoked_at: opt_from_millis(r.try_get("revoked_at")?)?,
        downloads: r.try_get("downloads")?,
        last_download_at: opt_from_millis(r.try_get("last_download_at")?)?,
        enrollments: r.try_get("enrollments")?,
        used_at: opt_from_millis(r.try_get("used_at")?)?,
    })
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn enrollment_link_create(
        &self,
        name: &str,
        token_hash: &str,
        single_use: bool,
        expires_at: OffsetDateTime,
        created_by: &str,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<LinkRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO enrollment_links (name, token_hash, single_use, created_at, created_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(name)
        .bind(token_hash)
        .bind(i64::from(single_use))
        .bind(to_millis(now))
        .bind(created_by)
        .bind(to_millis(expires_at))
        .fetch_one(&mut *tx)
        .await?;
        record(&mut tx, &audit.target(id)).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        from_row(&row)
    }

    pub async fn enrollment_link_list(&self) -> Result<Vec<LinkRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY id")))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn enrollment_link_get(&self, id: i64) -> Result<Option<LinkRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn enrollment_link_by_hash(&self, token_hash: &str) -> Result<Option<LinkRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE token_hash = $1")))
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Revokes a link; false when it was already revoked or does not exist.
    pub async fn enrollment_link_revoke(
        &self,
        id: i64,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE enrollment_links SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(to_millis(now))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            record(&mut tx, &audit.target(id)).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn enrollment_link_downloaded(&self, id: i64, now: OffsetDateTime) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query("UPDATE enrollment_links SET downloads = downloads + 1, last_download_at = $1 WHERE id = $2")
            .bind(to_millis(now))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
