//! Device sync state per token, and the atomic write of one page of Apple's answer: the
//! devices, the cursor that follows them and the job's progress commit together, so a
//! crash can neither lose nor skip a device.

use serde::Serialize;
use sqlx::Row;
use time::OffsetDateTime;

use crate::Backend;
use crate::devices::{DeviceUpsert, IN_LIST, bulk_sql, mark_removed, placeholders, take_moved, upsert};
use crate::jobs::update_progress;
use crate::{Store, StoreError, opt_from_millis, to_millis};

/// Where a token's sync stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SyncState {
    pub token_id: i64,
    pub cursor: Option<String>,
    /// `fetch` while a full fetch is under way, `sync` once it completed.
    pub phase: Option<String>,
    pub cursor_at: Option<OffsetDateTime>,
    pub fetch_started_at: Option<OffsetDateTime>,
    /// The fetch under way only adds serials not yet known.
    pub fetch_new_only: bool,
    pub last_sync_at: Option<OffsetDateTime>,
    pub last_sync_status: Option<String>,
    pub last_sync_error: Option<String>,
    pub last_success_at: Option<OffsetDateTime>,
    pub last_full_sync_at: Option<OffsetDateTime>,
    pub last_manual_sync_at: Option<OffsetDateTime>,
    pub next_sync_at: Option<OffsetDateTime>,
    pub consecutive_failures: i64,
}

/// One page to commit.
pub struct SyncPage<'a> {
    pub token_id: i64,
    /// Added or modified devices, one per serial (the newest record of the page).
    pub upserts: &'a [DeviceUpsert],
    /// Serials Apple reports deleted, with the operation's date.
    pub removals: &'a [(String, Option<OffsetDateTime>)],
    /// Only insert serials not yet known (a full sync within 7 days of the last one).
    pub new_only: bool,
    /// The token's default profile: devices new to the token get it (marked pending).
    pub default_profile_id: Option<i64>,
    /// The cursor to resume from after this page, and the phase it belongs to.
    pub cursor: &'a str,
    pub phase: &'a str,
    pub job_id: i64,
    pub progress: &'a serde_json::Value,
    /// Written as the devices' `last_seen_at`: during a full fetch, the fetch's marker (see
    /// [`Store::sync_remove_unseen`]).
    pub seen_at: OffsetDateTime,
    pub now: OffsetDateTime,
    /// The sync's lease (name, owner), renewed until `lease_until` with the page; the page
    /// is refused with [`StoreError::Concurrent`] when the lease was lost.
    pub lease: (&'a str, &'a str),
    pub lease_until: OffsetDateTime,
}

/// What a page changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Serials not known before.
    pub added: u64,
    /// Known serials written again.
    pub updated: u64,
    pub removed: u64,
    /// Known serials of another token that moved to this one.
    pub moved_in: u64,
    /// Devices new to the token marked for its default profile.
    pub default_marked: u64,
}

impl std::ops::Add for PageCounts {
    type Output = PageCounts;

    fn add(self, o: PageCounts) -> PageCounts {
        PageCounts {
            added: self.added + o.added,
            updated: self.updated + o.updated,
            removed: self.removed + o.removed,
            moved_in: self.moved_in + o.moved_in,
            default_marked: self.default_marked + o.default_marked,
        }
    }
}

/// A page whose devices are written in an open transaction (see [`Store::sync_page_begin`]).
/// Dropping it rolls the page back.
pub struct PreparedPage {
    tx: crate::WriteTx,
    backend: Backend,
    /// What the page changes, once committed.
    pub counts: PageCounts,
    token_id: i64,
    cursor: String,
    phase: String,
    job_id: i64,
    lease_name: String,
    lease_owner: String,
    lease_until: OffsetDateTime,
    now: OffsetDateTime,
}

impl PreparedPage {
    /// Writes a further page in the same transaction: the cursor and phase that follow it
    /// replace the earlier page's, and its counts add up. Pages are applied in order, so a
    /// batch ends exactly as the same pages committed one by one would; fewer commits write
    /// the index pages they share to the WAL once instead of once per page.
    pub async fn add(&mut self, page: &SyncPage<'_>) -> Result<(), StoreError> {
        let counts = write_devices(&mut self.tx, self.backend, page).await?;
        self.counts = self.counts + counts;
        self.cursor = page.cursor.to_string();
        self.phase = page.phase.to_string();
        self.lease_until = page.lease_until;
        self.now = page.now;
        Ok(())
    }

    /// Renews the sync lease, stores the cursor that follows the page and the job's
    /// progress, and commits. Fails with [`StoreError::Concurrent`], committing nothing,
    /// when the lease was lost.
    pub async fn commit(mut self, progress: &serde_json::Value) -> Result<PageCounts, StoreError> {
        let renewed = sqlx::query("UPDATE leases SET expires_at = $1 WHERE name = $2 AND owner = $3")
            .bind(to_millis(self.lease_until))
            .bind(&self.lease_name)
            .bind(&self.lease_owner)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if renewed != 1 {
            return Err(StoreError::Concurrent);
        }
        sqlx::query(
            "INSERT INTO ade_sync_state (token_id, cursor, phase, cursor_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (token_id) DO UPDATE SET cursor = excluded.cursor, phase = excluded.phase, cursor_at = excluded.cursor_at",
        )
        .bind(self.token_id)
        .bind(&self.cursor)
        .bind(&self.phase)
        .bind(to_millis(self.now))
        .execute(&mut *self.tx)
        .await?;
        update_progress(&mut self.tx, self.job_id, progress, self.now).await?;
        self.tx.commit().await?;
        Ok(self.counts)
    }
}

/// Marks the given devices of a token, if they have no profile yet, for `profile_id`
/// (without a job: the sync's caller attaches one). Returns how many.
async fn mark_default(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    token_id: i64,
    profile_id: i64,
    serials: &[&str],
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for chunk in serials.chunks(IN_LIST) {
        let sql = bulk_sql(backend, "mark_default", chunk.len(), || {
            format!(
                "UPDATE ade_devices SET profile_id = $1, assign_state = 'pending', assign_job_id = NULL, \
                   assign_retry_at = NULL, assign_updated_at = $2 \
                 WHERE +token_id = $3 AND profile_id IS NULL AND serial_number IN ({})",
                placeholders(4, chunk.len())
            )
        });
        let mut q = sqlx::query(sql).bind(profile_id).bind(to_millis(now)).bind(token_id);
        for s in chunk {
            q = q.bind(*s);
        }
        n += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(n)
}

/// Marks the devices this transaction inserted (ids above `last_id`; SQLite) for the
/// token's default profile. Returns how many.
async fn mark_default_inserted(
    conn: &mut sqlx::AnyConnection,
    token_id: i64,
    profile_id: i64,
    last_id: i64,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE ade_devices SET profile_id = $1, assign_state = 'pending', assign_job_id = NULL, \
           assign_retry_at = NULL, assign_updated_at = $2 \
         WHERE id > $3 AND +token_id = $4 AND profile_id IS NULL",
    )
    .bind(profile_id)
    .bind(to_millis(now))
    .bind(last_id)
    .bind(token_id)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Writes a page's devices and removals in the open transaction `conn`; returns what it
/// changed.
async fn write_devices(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    page: &SyncPage<'_>,
) -> Result<PageCounts, StoreError> {
    // Which devices are new or moved, without looking every serial up first (that cost
    // 10-20 % of a page): the upsert marks the devices it moves with the token they left.
    // PostgreSQL returns the serials it inserted and moved. On SQLite (where RETURNING cost as
    // much as the lookup), with a single writer, the rows this transaction inserts are exactly
    // those above the highest id before it, and take_moved collects and clears the marks.
    let last_id = match backend {
        Backend::Postgres => 0,
        Backend::Sqlite => {
            sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM ade_devices")
                .fetch_one(&mut *conn)
                .await?
        }
    };
    let inserted = upsert(
        &mut *conn,
        backend,
        page.token_id,
        page.upserts,
        page.new_only,
        page.seen_at,
        page.now,
    )
    .await?;
    // A limited fetch leaves known devices where they are, so it moves none.
    let (inserted, moved) = match inserted {
        Some(w) => (Some(w.inserted), w.moved),
        None if page.new_only => (None, Vec::new()),
        None => (None, take_moved(&mut *conn, page.token_id).await?),
    };
    let added = match &inserted {
        Some(serials) => serials.len() as u64,
        None => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM ade_devices WHERE id > $1")
                .bind(last_id)
                .fetch_one(&mut *conn)
                .await? as u64
        }
    };
    let mut counts = PageCounts {
        added,
        moved_in: moved.len() as u64,
        ..PageCounts::default()
    };
    if !page.new_only {
        // Known devices of this token, written again or (when the stored record is newer)
        // left alone: Apple reported them again either way.
        counts.updated = (page.upserts.len() as u64).saturating_sub(counts.added + counts.moved_in);
    }
    if let Some(profile_id) = page.default_profile_id {
        // Devices new to this token: inserted, or moved in from another token.
        let mut fresh: Vec<&str> = moved.iter().map(String::as_str).collect();
        match &inserted {
            Some(serials) => fresh.extend(serials.iter().map(String::as_str)),
            None => {
                counts.default_marked +=
                    mark_default_inserted(&mut *conn, page.token_id, profile_id, last_id, page.now).await?;
            }
        }
        counts.default_marked += mark_default(&mut *conn, backend, page.token_id, profile_id, &fresh, page.now).await?;
    }
    counts.removed = mark_removed(&mut *conn, page.token_id, page.removals, page.now).await?;
    Ok(counts)
}
impl Store {
    pub async fn sync_state(&self, token_id: i64) -> Result<SyncState, StoreError> {
        let row = sqlx::query(
            "SELECT token_id, cursor, phase, cursor_at, fetch_started_at, fetch_new_only, last_sync_at, last_sync_status, \
               last_sync_error, last_success_at, last_full_sync_at, last_manual_sync_at, next_sync_at, consecutive_failures \
             FROM ade_sync_state WHERE token_id = $1",
        )
        .bind(token_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else {
            return Ok(SyncState {
                token_id,
                ..SyncState::default()
            });
        };
        Ok(SyncState {
            token_id,
            cursor: r.try_get("cursor")?,
            phase: r.try_get("phase")?,
            cursor_at: opt_from_millis(r.try_get("cursor_at")?)?,
            fetch_started_at: opt_from_millis(r.try_get("fetch_started_at")?)?,
            fetch_new_only: r.try_get::<i64, _>("fetch_new_only")? != 0,
            last_sync_at: opt_from_millis(r.try_get("last_sync_at")?)?,
            last_sync_status: r.try_get("last_sync_status")?,
            last_sync_error: r.try_get("last_sync_error")?,
            last_success_at: opt_from_millis(r.try_get("last_success_at")?)?,
            last_full_sync_at: opt_from_millis(r.try_get("last_full_sync_at")?)?,
            last_manual_sync_at: opt_from_millis(r.try_get("last_manual_sync_at")?)?,
            next_sync_at: opt_from_millis(r.try_get("next_sync_at")?)?,
            consecutive_failures: r.try_get("consecutive_failures")?,
        })
    }

    /// Writes every field of the state (the row is created on first use).
    pub async fn sync_state_save(&self, s: &SyncState) -> Result<(), StoreError> {
        let ms = |t: Option<OffsetDateTime>| t.map(to_millis);
        sqlx::query(
            "INSERT INTO ade_sync_state (token_id, cursor, phase, cursor_at, fetch_started_at, fetch_new_only, last_sync_at, \
               last_sync_status, last_sync_error, last_success_at, last_full_sync_at, last_manual_sync_at, next_sync_at, \
               consecutive_failures) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (token_id) DO UPDATE SET cursor = excluded.cursor, phase = excluded.phase, \
               cursor_at = excluded.cursor_at, fetch_started_at = excluded.fetch_started_at, \
               fetch_new_only = excluded.fetch_new_only, last_sync_at = excluded.last_sync_at, \
               last_sync_status = excluded.last_sync_status, last_sync_error = excluded.last_sync_error, \
               last_success_at = excluded.last_success_at, last_full_sync_at = excluded.last_full_sync_at, \
               last_manual_sync_at = excluded.last_manual_sync_at, next_sync_at = excluded.next_sync_at, \
               consecutive_failures = excluded.consecutive_failures",
        )
        .bind(s.token_id)
        .bind(&s.cursor)
        .bind(&s.phase)
        .bind(ms(s.cursor_at))
        .bind(ms(s.fetch_started_at))
        .bind(i64::from(s.fetch_new_only))
        .bind(ms(s.last_sync_at))
        .bind(&s.last_sync_status)
        .bind(&s.last_sync_error)
        .bind(ms(s.last_success_at))
        .bind(ms(s.last_full_sync_at))
        .bind(ms(s.last_manual_sync_at))
        .bind(ms(s.next_sync_at))
        .bind(s.consecutive_failures)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Commits one page: devices, removals, the cursor after them and the job's progress,
    /// in one transaction.
    pub async fn sync_apply_page(&self, page: &SyncPage<'_>) -> Result<PageCounts, StoreError> {
        let prepared = self.sync_page_begin(page).await?;
        prepared.commit(page.progress).await
    }

    /// The first half of [`sync_apply_page`](Self::sync_apply_page): writes the page's
    /// devices in a transaction that stays open. [`PreparedPage::commit`] then renews the
    /// lease, moves the cursor and commits, all in that same transaction. Splitting the two
    /// lets a caller write the next page while the previous one commits (on PostgreSQL; on
    /// SQLite the second writer would only wait).
    pub async fn sync_page_begin(&self, page: &SyncPage<'_>) -> Result<PreparedPage, StoreError> {
        let mut tx = self.begin_write().await?;
        if self.backend() == Backend::Postgres {
            // The cursor commits with its page, so losing the last commits in a crash only
            // means fetching those pages again: no need to wait for the WAL flush.
            sqlx::query("SET LOCAL synchronous_commit TO OFF")
                .execute(&mut *tx)
                .await?;
            // PostgreSQL has no foreign key from devices to their token (it cost a check per
            // device): lock the token row once instead, so that it cannot be deleted while
            // this page writes devices for it (see ade_token_delete).
            let token: Option<i64> = sqlx::query_scalar("SELECT id FROM ade_tokens WHERE id = $1 FOR KEY SHARE")
                .bind(page.token_id)
                .fetch_optional(&mut *tx)
                .await?;
            if token.is_none() {
                return Err(StoreError::Constraint {
                    constraint: format!("ade_devices.token_id: token {} no longer exists", page.token_id),
                });
            }
        }
        let counts = write_devices(&mut tx, self.backend(), page).await?;
        Ok(PreparedPage {
            tx,
            backend: self.backend(),
            counts,
            token_id: page.token_id,
            cursor: page.cursor.to_string(),
            phase: page.phase.to_string(),
            job_id: page.job_id,
            lease_name: page.lease.0.to_string(),
            lease_owner: page.lease.1.to_string(),
            lease_until: page.lease_until,
            now: page.now,
        })
    }

    /// After a complete full fetch: devices of the token that the fetch did not return are
    /// no longer assigned to its MDM server; mark them removed. `fetch_marker` is the
    /// `seen_at` the fetch's pages were written with; it must be later than every earlier
    /// fetch's marker. Returns how many were marked.
    pub async fn sync_remove_unseen(
        &self,
        token_id: i64,
        fetch_marker: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE ade_devices SET removed_at = $1, op_type = 'deleted', updated_at = $1 \
             WHERE token_id = $2 AND removed_at IS NULL AND (last_seen_at IS NULL OR last_seen_at < $3)",
        )
        .bind(to_millis(now))
        .bind(token_id)
        .bind(to_millis(fetch_marker))
        .execute(self.pool())
        .await?
        .rows_affected())
    }
}
