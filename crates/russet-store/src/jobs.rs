//! Long-running work (token syncs, profile assignments) and its progress, so that any
//! process can report on a job another one runs.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::audit::{NewAuditEntry, record};
use crate::{Store, StoreError, from_millis, opt_from_millis, to_millis};

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: i64,
    /// `sync` or `assign`.
    pub kind: String,
    pub token_id: i64,
    pub profile_id: Option<i64>,
    /// `queued`, `running`, `succeeded`, `failed`, `interrupted`.
    pub status: String,
    /// What started it: `manual`, `scheduled`, `upload`, `profile_edit`, …
    pub origin: String,
    /// For syncs: `delta`, `full`, `full_new_only`.
    pub mode: Option<String>,
    pub requested_by: String,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    pub heartbeat_at: Option<OffsetDateTime>,
    pub progress: serde_json::Value,
    pub message: Option<String>,
    pub error: Option<String>,
}

/// A job to create.
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub token_id: i64,
    pub profile_id: Option<i64>,
    pub origin: &'a str,
    pub mode: Option<&'a str>,
    pub requested_by: &'a str,
    pub message: Option<&'a str>,
}

const SELECT: &str = "SELECT id, kind, token_id, profile_id, status, origin, mode, requested_by, created_at, started_at, \
     finished_at, heartbeat_at, progress, message, error FROM jobs";

fn from_row(row: &AnyRow) -> Result<JobRecord, StoreError> {
    let progress: String = row.try_get("progress")?;
    Ok(JobRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        token_id: row.try_get("token_id")?,
        profile_id: row.try_get("profile_id")?,
        status: row.try_get("status")?,
        origin: row.try_get("origin")?,
        mode: row.try_get("mode")?,
        requested_by: row.try_get("requested_by")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        started_at: opt_from_millis(row.try_get("started_at")?)?,
        finished_at: opt_from_millis(row.try_get("finished_at")?)?,
        heartbeat_at: opt_from_millis(row.try_get("heartbeat_at")?)?,
        progress: serde_json::from_str(&progress).map_err(|e| StoreError::Corrupt(format!("job progress: {e}")))?,
        message: row.try_get("message")?,
        error: row.try_get("error")?,
    })
}

pub(crate) async fn update_progress(
    conn: &mut sqlx::AnyConnection,
    job_id: i64,
    progress: &serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE jobs SET progress = $1, heartbeat_at = $2 WHERE id = $3")
        .bind(progress.to_string())
        .bind(to_millis(now))
        .bind(job_id)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Creates a job in state `running` (the caller starts it at once), with an audit
    /// entry when an administrator asked for it.
    pub async fn job_create(
        &self,
        job: &NewJob<'_>,
        now: OffsetDateTime,
        audit: Option<NewAuditEntry>,
    ) -> Result<JobRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (kind, token_id, profile_id, status, origin, mode, requested_by, created_at, started_at, \
               heartbeat_at, progress, message) \
             VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $7, $7, '{}', $8) RETURNING id",
        )
        .bind(job.kind)
        .bind(job.token_id)
        .bind(job.profile_id)
        .bind(job.origin)
        .bind(job.mode)
        .bind(job.requested_by)
        .bind(to_millis(now))
        .bind(job.message)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(audit) = audit {
            record(
                &mut tx,
                &audit.details(serde_json::json!({ "job_id": id, "mode": job.mode })),
            )
            .await?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let job = from_row(&row)?;
        tx.commit().await?;
        Ok(job)
    }

    pub async fn job_get(&self, id: i64) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Jobs newest first, optionally of one token and kind.
    pub async fn job_list(
        &self,
        token_id: Option<i64>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE ($1 IS NULL OR token_id = $1) AND ($2 IS NULL OR kind = $2) ORDER BY id DESC LIMIT $3"
        )))
        .bind(token_id)
        .bind(kind)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Records progress (and that the job is alive).
    pub async fn job_progress(
        &self,
        id: i64,
        progress: &serde_json::Value,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        update_progress(&mut conn, id, progress, now).await
    }

    /// Ends a job.
    pub async fn job_finish(
        &self,
        id: i64,
        status: &str,
        progress: &serde_json::Value,
        message: Option<&str>,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = $1, progress = $2, message = COALESCE($3, message), error = $4, finished_at = $5, \
               heartbeat_at = $5 WHERE id = $6",
        )
        .bind(status)
        .bind(progress.to_string())
        .bind(message)
        .bind(error)
        .bind(to_millis(now))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks `running` jobs whose last heartbeat is older than `before` as interrupted (their
    /// process died); returns how many.
    pub async fn job_mark_stale(&self, before: OffsetDateTime, now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE jobs SET status = 'interrupted', finished_at = $1, \
               error = 'the process running this job stopped; the work resumes with the next run' \
             WHERE status = 'running' AND heartbeat_at < $2",
        )
        .bind(to_millis(now))
        .bind(to_millis(before))
        .execute(self.pool())
        .await?
        .rows_affected())
    }
}
