//! Jobs (syncs, assignments) as administrators see them.

use russet_store::jobs::JobRecord;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::Core;
use crate::error::CoreError;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Job {
    pub id: i64,
    /// `sync` or `assign`.
    pub kind: String,
    pub token_id: i64,
    pub profile_id: Option<i64>,
    /// `running`, `succeeded`, `failed`, `interrupted`.
    pub status: String,
    /// `manual`, `scheduled`, `upload`, `default_profile`, `profile_edit`.
    pub origin: String,
    /// For syncs: `delta`, `full`, `full_new_only`, `resume`.
    pub mode: Option<String>,
    pub requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
    /// Counts so far (pages, devices received, added, updated, removed; or devices by assignment state).
    #[schema(value_type = Object)]
    pub progress: serde_json::Value,
    pub message: Option<String>,
    pub error: Option<String>,
}

impl From<JobRecord> for Job {
    fn from(j: JobRecord) -> Self {
        Job {
            id: j.id,
            kind: j.kind,
            token_id: j.token_id,
            profile_id: j.profile_id,
            status: j.status,
            origin: j.origin,
            mode: j.mode,
            requested_by: j.requested_by,
            created_at: j.created_at,
            finished_at: j.finished_at,
            progress: j.progress,
            message: j.message,
            error: j.error,
        }
    }
}

/// How long live counts of a running assignment job are reused.
const JOB_COUNTS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl Core {
    pub async fn job_get(&self, id: i64) -> Result<Job, CoreError> {
        let mut job = self
            .store
            .job_get(id)
            .await?
            .ok_or_else(|| CoreError::not_found("job_not_found", format!("there is no job with id {id}")))?;
        if job.kind == "assign" && job.status == "running" {
            // Live counts, whichever process is sending; recomputed at most once a second.
            let fresh = {
                let cache = self.job_counts.lock().unwrap_or_else(|e| e.into_inner());
                cache
                    .get(&id)
                    .filter(|(at, _)| at.elapsed() < JOB_COUNTS_TTL)
                    .map(|(_, counts)| counts.clone())
            };
            job.progress = match fresh {
                Some(counts) => counts,
                None => {
                    let counts = serde_json::to_value(self.store.assign_job_counts(id).await?).unwrap_or_default();
                    let mut cache = self.job_counts.lock().unwrap_or_else(|e| e.into_inner());
                    cache.retain(|_, (at, _)| at.elapsed() < JOB_COUNTS_TTL);
                    cache.insert(id, (std::time::Instant::now(), counts.clone()));
                    counts
                }
            };
        }
        Ok(job.into())
    }

    pub async fn job_list(&self, token_id: Option<i64>, kind: Option<&str>, limit: u32) -> Result<Vec<Job>, CoreError> {
        Ok(self
            .store
            .job_list(token_id, kind, limit.clamp(1, 200))
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}
