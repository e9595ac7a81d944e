//! Profile assignment as desired state: an administrator's action (or device sync, for a
//! token's default profile) marks devices `pending` for a profile; the assigner sends
//! pending devices to Apple in batches and records each device's outcome. A process that
//! dies mid-way leaves the rest `pending`, and any process picks them up later.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::devices::{IN_LIST, ROWS_PER_STATEMENT, bulk_sql, placeholders};
use crate::{Store, StoreError, to_millis};

/// Which devices of a token an assignment covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    Serials(Vec<String>),
    /// Devices with no profile chosen in Russet.
    Unassigned,
    /// Every device still assigned to the token's MDM server in ABM.
    Any,
    /// Devices that should have this profile now.
    Profile(i64),
}

/// One device's outcome from Apple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub serial: String,
    pub job_id: Option<i64>,
    /// `success`, `not_accessible`, `failed`, `throttled`.
    pub state: &'static str,
    pub retry_at: Option<OffsetDateTime>,
}

/// The Apple profile a batch was assigned to.
pub struct AssignedProfile<'a> {
    pub id: i64,
    pub name: &'a str,
    pub apple_uuid: &'a str,
}

impl Store {
    /// Serials among `serials` that are not devices of `token_id` still in ABM.
    pub async fn assign_foreign_serials(&self, token_id: i64, serials: &[String]) -> Result<Vec<String>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in serials.chunks(IN_LIST) {
            let sql = bulk_sql(self.backend(), "assign_foreign", chunk.len(), || {
                format!(
                    "SELECT serial_number FROM ade_devices WHERE +token_id = $1 AND removed_at IS NULL AND serial_number IN ({})",
                    placeholders(2, chunk.len())
                )
            });
            let mut q = sqlx::query_scalar::<_, String>(sql).bind(token_id);
            for s in chunk {
                q = q.bind(s);
            }
            found.extend(q.fetch_all(self.pool()).await?);
        }
        Ok(serials.iter().filter(|s| !found.contains(*s)).cloned().collect())
    }

    /// Marks the selected devices of a token for `profile_id` under `job_id`. Returns how many.
    pub async fn assign_mark(
        &self,
        token_id: i64,
        profile_id: i64,
        selection: &Selection,
        job_id: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        // `+token_id`: the serial numbers, not the token, must drive the lookup (see SERIAL_KEYED).
        const SET: &str = "UPDATE ade_devices SET profile_id = $1, assign_state = 'pending', assign_job_id = $2, \
             assign_retry_at = NULL, assign_updated_at = $3 WHERE +token_id = $4 AND removed_at IS NULL";
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        let base = |q: sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>| {
            q.bind(profile_id).bind(job_id).bind(to_millis(now)).bind(token_id)
        };
        match selection {
            Selection::Serials(serials) => {
                for chunk in serials.chunks(IN_LIST) {
                    let sql = bulk_sql(self.backend(), "assign_mark", chunk.len(), || {
                        format!("{SET} AND serial_number IN ({})", placeholders(5, chunk.len()))
                    });
                    let mut q = base(sqlx::query(sql));
                    for s in chunk {
                        q = q.bind(s.clone());
                    }
                    n += q.execute(&mut *tx).await?.rows_affected();
                }
            }
            Selection::Unassigned => {
                n += base(sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{SET} AND profile_id IS NULL"
                ))))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            Selection::Any => {
                n += base(sqlx::query(SET)).execute(&mut *tx).await?.rows_affected();
            }
            Selection::Profile(other) => {
                n += base(sqlx::query(sqlx::AssertSqlSafe(format!("{SET} AND profile_id = $5"))))
                    .bind(*other)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Up to `limit` devices of a token due for assignment (pending, or throttled and past
    /// their retry time): (profile id, serial, job id), in no particular order. No ORDER BY:
    /// the `(token_id, assign_state)` index finds them and the scan stops at `limit`, where
    /// sorting would read every pending device of the token in every round.
    pub async fn assign_due(
        &self,
        token_id: i64,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<(i64, String, Option<i64>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT profile_id, serial_number, assign_job_id FROM ade_devices WHERE token_id = $1 AND removed_at IS NULL \
               AND profile_id IS NOT NULL \
               AND assign_state IN ('pending', 'throttled') AND (assign_retry_at IS NULL OR assign_retry_at <= $2) \
             LIMIT $3",
        )
        .bind(token_id)
        .bind(to_millis(now))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?)
    }

    /// The earliest retry time of a token's throttled devices, if any.
    pub async fn assign_next_retry(&self, token_id: i64) -> Result<Option<OffsetDateTime>, StoreError> {
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(assign_retry_at) FROM ade_devices WHERE token_id = $1 AND assign_state = 'throttled' \
               AND removed_at IS NULL",
        )
        .bind(token_id)
        .fetch_one(self.pool())
        .await?;
        crate::opt_from_millis(ms)
    }

    /// Tokens with devices due for assignment now.
    pub async fn assign_tokens_due(&self, now: OffsetDateTime) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT token_id FROM ade_devices WHERE removed_at IS NULL AND profile_id IS NOT NULL \
               AND assign_state IN ('pending', 'throttled') AND (assign_retry_at IS NULL OR assign_retry_at <= $1)",
        )
        .bind(to_millis(now))
        .fetch_all(self.pool())
        .await?)
    }

    /// Records Apple's answer for a batch: each device's state, Apple's profile fields on
    /// success, and one history row per device, in one transaction.
    pub async fn assign_record(
        &self,
        token_id: i64,
        profile: &AssignedProfile<'_>,
        outcomes: &[Outcome],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut by_state: BTreeMap<(&str, Option<i64>), Vec<&str>> = BTreeMap::new();
        for o in outcomes {
            by_state
                .entry((o.state, o.retry_at.map(to_millis)))
                .or_default()
                .push(&o.serial);
        }
        for ((state, retry), serials) in &by_state {
            let success = *state == "success";
            for chunk in serials.chunks(IN_LIST) {
                let apple = if success {
                    ", abm_profile_uuid = $4, abm_profile_status = 'assigned', abm_profile_assign_time = $5"
                } else {
                    ""
                };
                let first = if success { 6 } else { 4 };
                let name = if success {
                    "assign_record_success"
                } else {
                    "assign_record"
                };
                let sql = bulk_sql(self.backend(), name, chunk.len(), || {
                    format!(
                        "UPDATE ade_devices SET assign_state = $1, assign_retry_at = $2, assign_updated_at = $3, \
                           assign_attempts = assign_attempts + 1{apple} \
                         WHERE +token_id = ${} AND COALESCE(profile_id, 0) = ${} AND serial_number IN ({})",
                        first,
                        first + 1,
                        placeholders(first + 2, chunk.len())
                    )
                });
                let mut q = sqlx::query(sql).bind(*state).bind(*retry).bind(to_millis(now));
                if success {
                    q = q.bind(profile.apple_uuid).bind(to_millis(now));
                }
                q = q.bind(token_id).bind(profile.id);
                for s in chunk {
                    q = q.bind(*s);
                }
                q.execute(&mut *tx).await?;
            }
        }
        const COLS: usize = 9;
        for chunk in outcomes.chunks(ROWS_PER_STATEMENT) {
            let sql = bulk_sql(self.backend(), "assign_events", chunk.len(), || {
                let rows: Vec<String> = (0..chunk.len())
                    .map(|i| format!("({})", placeholders(1 + i * COLS, COLS)))
                    .collect();
                format!(
                    "INSERT INTO ade_assignment_events (serial_number, token_id, profile_id, profile_name, profile_uuid, \
                       result, retry_at, job_id, at) VALUES {}",
                    rows.join(", ")
                )
            });
            let mut q = sqlx::query(sql);
            for o in chunk {
                q = q
                    .bind(o.serial.clone())
                    .bind(token_id)
                    .bind(profile.id)
                    .bind(profile.name.to_string())
                    .bind(profile.apple_uuid.to_string())
                    .bind(o.state)
                    .bind(o.retry_at.map(to_millis))
                    .bind(o.job_id)
                    .bind(to_millis(now));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Leaves devices pending but not to be sent before each outcome's `retry_at` (Apple
    /// could not be reached). No history is written: nothing was decided.
    pub async fn assign_postpone(
        &self,
        token_id: i64,
        profile: &AssignedProfile<'_>,
        outcomes: &[Outcome],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for o in outcomes {
            sqlx::query(
                "UPDATE ade_devices SET assign_retry_at = $1, assign_updated_at = $2 \
                 WHERE token_id = $3 AND profile_id = $4 AND serial_number = $5",
            )
            .bind(o.retry_at.map(to_millis))
            .bind(to_millis(now))
            .bind(token_id)
            .bind(profile.id)
            .bind(o.serial.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Attaches a job to the token's pending devices of `profile_id` that have none (those
    /// device sync marked for the default profile). Returns how many.
    pub async fn assign_adopt(&self, token_id: i64, profile_id: i64, job_id: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE ade_devices SET assign_job_id = $1 WHERE token_id = $2 AND profile_id = $3 AND assign_state = 'pending' \
               AND assign_job_id IS NULL",
        )
        .bind(job_id)
        .bind(token_id)
        .bind(profile_id)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    /// How the devices of an assignment job stand, by state.
    pub async fn assign_job_counts(&self, job_id: i64) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT assign_state, COUNT(*) FROM ade_devices WHERE assign_job_id = $1 GROUP BY assign_state",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s.unwrap_or_else(|| "none".into()), n))
            .collect())
    }
}
