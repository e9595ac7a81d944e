//! Device connects written together (group commit).
//!
//! Every connect request writes: it closes the command it reports on, marks the next one sent
//! and notes that the device was seen. One transaction per request made SQLite, which has one
//! writer, the limit: each statement is a round trip to the connection's worker thread, and
//! requests queued behind each other's transactions. Here one task writes the connects that
//! arrive while the previous batch was being written, in a single transaction:
//!
//! * each connect's own statements run in arrival order, so a device's reports keep their
//!   order and the NotNow rules see what the earlier ones wrote;
//! * the next command is picked and marked sent by one `UPDATE … RETURNING`, and its plist
//!   comes from a cache of command bodies (a command is never changed once queued; the same
//!   command usually goes to many devices);
//! * "last seen" is written for the whole batch by one statement per 500 devices.
//!
//! If a batch fails, each of its connects is written again in a transaction of its own, so a
//! bad one fails alone. A connect is answered only after its transaction committed.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::Row;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::devices::{IN_LIST, bulk_sql, placeholders};
use crate::mdm::{ConnectOutcome, InventoryFields, ReportRecord, write_inventory};
use crate::{Backend, StoreError, WriteTx, to_millis};

/// The most connects written in one transaction.
const MAX_BATCH: usize = 256;

/// Command bodies kept (uuid → request type and plist); the cache is emptied when full.
const MAX_CACHED_COMMANDS: usize = 4096;

/// A connect report, owned so it can wait in the writer's queue.
pub(crate) struct Job {
    enrollment_id: String,
    status: String,
    command_uuid: Option<String>,
    raw: Vec<u8>,
    error_chain: Option<String>,
    inventory: Option<(String, InventoryFields)>,
    at: i64,
    reply: oneshot::Sender<Result<ConnectOutcome, StoreError>>,
}

impl Job {
    pub(crate) fn new(
        r: &ReportRecord<'_>,
        now: OffsetDateTime,
    ) -> (Job, oneshot::Receiver<Result<ConnectOutcome, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        (
            Job {
                enrollment_id: r.enrollment_id.to_owned(),
                status: r.status.to_owned(),
                command_uuid: r.command_uuid.map(str::to_owned),
                raw: r.raw.to_vec(),
                error_chain: r.error_chain.map(str::to_owned),
                inventory: r.inventory.map(|(json, fields)| (json.to_owned(), fields.clone())),
                at: to_millis(now),
                reply,
            },
            rx,
        )
    }
}

/// What the writer needs of the store (not the store itself, whose last copy closes the
/// queue and so ends the writer).
pub(crate) struct Writer {
    pub pool: sqlx::AnyPool,
    pub backend: Backend,
    pub gate: Option<Arc<tokio::sync::Mutex<()>>>,
    commands: HashMap<String, (Arc<str>, Arc<[u8]>)>,
}

impl Writer {
    pub(crate) fn new(pool: sqlx::AnyPool, backend: Backend, gate: Option<Arc<tokio::sync::Mutex<()>>>) -> Writer {
        Writer {
            pool,
            backend,
            gate,
            commands: HashMap::new(),
        }
    }

    /// Writes batches until every sender is gone.
    pub(crate) async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
            match self.write(&jobs).await {
                Ok(outcomes) => {
                    for (job, outcome) in jobs.drain(..).zip(outcomes) {
                        let _ = job.reply.send(Ok(outcome));
                    }
                }
                Err(e) if jobs.len() == 1 => {
                    if let Some(job) = jobs.pop() {
                        let _ = job.reply.send(Err(e));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, connects = jobs.len(), "a batch of connects failed; writing them one by one");
                    for job in jobs.drain(..) {
                        let result = self.write(std::slice::from_ref(&job)).await.map(|mut v| v.remove(0));
                        let _ = job.reply.send(result);
                    }
                }
            }
        }
    }

    async fn begin(&self) -> Result<WriteTx, StoreError> {
        let gate = match &self.gate {
            Some(g) => Some(g.clone().lock_owned().await),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx { tx, _gate: gate })
    }

    /// Writes `jobs` in one transaction; one outcome per job, in order.
    async fn write(&mut self, jobs: &[Job]) -> Result<Vec<ConnectOutcome>, StoreError> {
        let mut tx = self.begin().await?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            outcomes.push(self.write_one(&mut tx, job).await?);
        }
        let mut seen: Vec<(&str, i64)> = jobs.iter().map(|j| (j.enrollment_id.as_str(), j.at)).collect();
        seen.sort_unstable();
        seen.dedup_by(|a, b| a.0 == b.0);
        let at = seen.iter().map(|s| s.1).max().unwrap_or_default();
        for chunk in seen.chunks(IN_LIST) {
            let sql = bulk_sql(self.backend, "mdm_last_seen", chunk.len(), || {
                format!(
                    "UPDATE mdm_enrollments SET last_seen_at = $1 WHERE id IN ({})",
                    placeholders(2, chunk.len())
                )
            });
            let mut q = sqlx::query(sql).bind(at);
            for (id, _) in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn write_one(&mut self, tx: &mut WriteTx, job: &Job) -> Result<ConnectOutcome, StoreError> {
        let mut unknown_command = false;
        let mut closed_request_type = None;
        let not_now = job.status == "NotNow";
        if job.status != "Idle"
            && let Some(uuid) = job.command_uuid.as_deref()
        {
            let n = if not_now {
                sqlx::query(
                    "UPDATE mdm_queue SET status = 'NotNow', not_now_count = not_now_count + 1, \
                       not_now_at = COALESCE(not_now_at, $1), answered_at = $1 \
                     WHERE enrollment_id = $2 AND command_uuid = $3 AND active = 1",
                )
                .bind(job.at)
                .bind(&job.enrollment_id)
                .bind(uuid)
                .execute(&mut **tx)
                .await?
                .rows_affected()
            } else {
                sqlx::query(
                    "UPDATE mdm_queue SET status = $1, active = 0, result = $2, error_chain = $3, answered_at = $4 \
                     WHERE enrollment_id = $5 AND command_uuid = $6 AND active = 1",
                )
                .bind(&job.status)
                .bind(&job.raw)
                .bind(&job.error_chain)
                .bind(job.at)
                .bind(&job.enrollment_id)
                .bind(uuid)
                .execute(&mut **tx)
                .await?
                .rows_affected()
            };
            if n == 0 {
                unknown_command = true;
            } else if !not_now {
                let request_type = self.command(tx, uuid).await?.map(|(t, _)| t);
                if job.status == "Acknowledged"
                    && request_type.as_deref() == Some("DeviceInformation")
                    && let Some((json, fields)) = &job.inventory
                {
                    let now = crate::from_millis(job.at)?;
                    write_inventory(tx, &job.enrollment_id, json, fields, now).await?;
                }
                if job.status == "Error" {
                    // A device waiting in Setup Assistant stays there when one of its first
                    // commands fails: the DeviceConfigured Russet queued is withdrawn, so the
                    // device shows as stuck and an administrator decides (release).
                    sqlx::query(
                        "UPDATE mdm_queue SET active = 0, status = 'Cancelled', answered_at = $1 \
                         WHERE enrollment_id = $2 AND active = 1 AND command_uuid IN \
                           (SELECT uuid FROM mdm_commands WHERE request_type = 'DeviceConfigured' \
                              AND created_by = 'system') \
                           AND EXISTS (SELECT 1 FROM mdm_enrollments \
                              WHERE id = $2 AND awaiting_configuration = 1 AND configured_at IS NULL)",
                    )
                    .bind(job.at)
                    .bind(&job.enrollment_id)
                    .execute(&mut **tx)
                    .await?;
                }
                if job.status == "Acknowledged" && request_type.as_deref() == Some("DeviceConfigured") {
                    // Setup Assistant goes on: the device no longer awaits configuration.
                    sqlx::query(
                        "UPDATE mdm_enrollments SET configured_at = $1, awaiting_configuration = 0, \
                           configured_by = COALESCE(configured_by, 'DeviceConfigured') WHERE id = $2",
                    )
                    .bind(job.at)
                    .bind(&job.enrollment_id)
                    .execute(&mut **tx)
                    .await?;
                }
                closed_request_type = request_type.map(|t| t.to_string());
            }
        }
        // After a NotNow, only commands never sent.
        let next: Option<String> = sqlx::query_scalar(
            "UPDATE mdm_queue SET sent_at = $1 WHERE enrollment_id = $2 AND command_uuid = \
               (SELECT command_uuid FROM mdm_queue WHERE enrollment_id = $2 AND active = 1 \
                  AND ($3 = 0 OR status IS NULL) ORDER BY seq LIMIT 1) \
             RETURNING command_uuid",
        )
        .bind(job.at)
        .bind(&job.enrollment_id)
        .bind(i64::from(not_now))
        .fetch_optional(&mut **tx)
        .await?;
        let next = match next {
            Some(uuid) => match self.command(tx, &uuid).await? {
                Some((_, body)) => Some((uuid, body.to_vec())),
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "the queued command {uuid} has no row in mdm_commands"
                    )));
                }
            },
            None => None,
        };
        Ok(ConnectOutcome {
            next,
            unknown_command,
            closed_request_type,
        })
    }

    /// A command's request type and plist, from the cache or the table.
    async fn command(&mut self, tx: &mut WriteTx, uuid: &str) -> Result<Option<(Arc<str>, Arc<[u8]>)>, StoreError> {
        if let Some(c) = self.commands.get(uuid) {
            return Ok(Some(c.clone()));
        }
        let row = sqlx::query("SELECT request_type, body FROM mdm_commands WHERE uuid = $1")
            .bind(uuid)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let request_type: String = row.try_get("request_type")?;
        let body: Vec<u8> = row.try_get("body")?;
        if self.commands.len() >= MAX_CACHED_COMMANDS {
            self.commands.clear();
        }
        let entry: (Arc<str>, Arc<[u8]>) = (request_type.into(), body.into());
        self.commands.insert(uuid.to_owned(), entry.clone());
        Ok(Some(entry))
    }
}
