//! Device sync with Apple Business Manager, per token.
//!
//! The algorithm is Apple's: a full fetch (`/server/devices`) page by page, then sync
//! (`/devices/sync`) from the cursor the fetch ended with. `EXHAUSTED_CURSOR` on a fetch
//! means "switch to sync"; `EXPIRED_CURSOR` / `INVALID_CURSOR` mean "fetch everything
//! again". Each page is committed together with the cursor that follows it, so a crash can
//! neither lose nor skip a device: the next run resumes from the last committed cursor.
//!
//! Apple's acceptable-traffic rules, as Intune applies them: one sync per token at a time (a
//! lease in the database, lapsing 15 minutes after the last sign of life), a manual sync at
//! most every 15 minutes, a full sync at most once every 7 days (a full sync asked for
//! sooner only adds serials not yet known), an automatic delta sync every 12 hours.

use std::collections::HashMap;

use russet_apple::dep::{self, DepError, OpType};
use russet_store::audit::{Actor, NewAuditEntry};
use russet_store::devices::DeviceUpsert;
use russet_store::jobs::{JobRecord, NewJob};
use russet_store::sync::{PageCounts, SyncPage, SyncState};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::abm::apple_error;
use crate::error::{CoreError, ErrorKind};
use crate::{Core, fmt_time};

/// A token's sync lease lapses this long after the last sign of life.
pub const SYNC_LEASE: Duration = Duration::minutes(15);
/// Manual syncs of one token at most this often.
pub const MANUAL_SYNC_INTERVAL: Duration = Duration::minutes(15);
/// Full syncs of one token at most this often.
pub const FULL_SYNC_INTERVAL: Duration = Duration::days(7);
/// Apple returning the same cursor with nothing new this many times in a row stops a sync.
const MAX_STALLED_PAGES: u32 = 3;

/// What a sync does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Changes since the stored cursor.
    Delta,
    /// Every device Apple assigns to the token's MDM server, then the changes since.
    Full,
    /// A full fetch that only adds serials not yet known (a full sync asked for within 7
    /// days of the last one).
    FullNewOnly,
    /// Continue a full fetch an earlier run left unfinished.
    Resume,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Delta => "delta",
            SyncMode::Full => "full",
            SyncMode::FullNewOnly => "full_new_only",
            SyncMode::Resume => "resume",
        }
    }
}

/// Who or what started a sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncOrigin {
    Manual,
    Scheduled,
    Upload,
}

impl SyncOrigin {
    fn as_str(self) -> &'static str {
        match self {
            SyncOrigin::Manual => "manual",
            SyncOrigin::Scheduled => "scheduled",
            SyncOrigin::Upload => "upload",
        }
    }
}

/// Counts of a sync run, stored as the job's progress.
#[derive(Clone, Debug, Default, serde::Serialize)]
struct Progress {
    mode: &'static str,
    phase: &'static str,
    pages: u64,
    /// Device records received from Apple.
    received: u64,
    added: u64,
    updated: u64,
    moved_in: u64,
    removed: u64,
    /// Records without a serial number, ignored.
    ignored: u64,
    /// New devices marked for the token's default profile.
    default_profile: u64,
}

impl Progress {
    fn counts(&self) -> PageCounts {
        PageCounts {
            added: self.added,
            updated: self.updated,
            removed: self.removed,
            moved_in: self.moved_in,
            default_marked: self.default_profile,
        }
    }

    fn set_counts(&mut self, c: PageCounts) {
        self.added = c.added;
        self.updated = c.updated;
        self.removed = c.removed;
        self.moved_in = c.moved_in;
        self.default_profile = c.default_marked;
    }
}

/// A page being written in the background (PostgreSQL full fetch); it yields the run's
/// counts so far, its own included, once committed.
type PageWrite = tokio::task::JoinHandle<Result<PageCounts, CoreError>>;

/// A fetched page waiting in a batch to be written.
struct PendingPage {
    upserts: Vec<DeviceUpsert>,
    removals: Vec<(String, Option<OffsetDateTime>)>,
    /// The cursor that follows the page.
    cursor: String,
    seen_at: OffsetDateTime,
    now: OffsetDateTime,
}

/// A batch is written at the latest this long after its first page arrived, so that a slow
/// Apple still shows progress.
const BATCH_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits for the page being written, if any, and takes its counts.
async fn drain(inflight: &mut Option<PageWrite>, p: &mut Progress) -> Result<(), CoreError> {
    if let Some(write) = inflight.take() {
        let total = write
            .await
            .map_err(|e| CoreError::new(ErrorKind::Internal, "internal", format!("a page write stopped: {e}")))??;
        p.set_counts(total);
    }
    Ok(())
}

fn lease_lost(e: russet_store::StoreError) -> CoreError {
    match e {
        russet_store::StoreError::Concurrent => {
            CoreError::conflict("sync_lease_lost", "another process took over this token's sync")
        }
        other => other.into(),
    }
}

fn lease_name(token_id: i64) -> String {
    format!("ade_sync:{token_id}")
}

fn serial(d: &dep::Device) -> Option<String> {
    let s = d.serial_number.trim().to_ascii_uppercase();
    (!s.is_empty()).then_some(s)
}

/// One page's devices, newest record per serial: upserts and removals.
fn split_page(
    devices: &[dep::Device],
    ignored: &mut u64,
) -> (Vec<DeviceUpsert>, Vec<(String, Option<OffsetDateTime>)>) {
    // The newest op_date wins; among equal dates, the later record.
    let mut newest: HashMap<String, (usize, &dep::Device)> = HashMap::with_capacity(devices.len());
    for (i, d) in devices.iter().enumerate() {
        let Some(s) = serial(d) else {
            *ignored += 1;
            continue;
        };
        match newest.get(&s) {
            Some((_, old)) if old.op_date > d.op_date => {}
            _ => {
                newest.insert(s, (i, d));
            }
        }
    }
    let mut ordered: Vec<(usize, String, &dep::Device)> = newest.into_iter().map(|(s, (i, d))| (i, s, d)).collect();
    ordered.sort_by_key(|(i, _, _)| *i);
    let mut upserts = Vec::with_capacity(ordered.len());
    let mut removals = Vec::new();
    for (_, serial, d) in ordered {
        let op = match &d.op_type {
            None => "fetched",
            Some(OpType::Added) => "added",
            // A modified serial Russet does not know is stored as new (the upsert does that).
            Some(OpType::Modified) => "modified",
            Some(OpType::Deleted) => {
                removals.push((serial, d.op_date));
                continue;
            }
            Some(OpType::Other(_)) => "modified",
        };
        upserts.push(DeviceUpsert {
            serial_number: serial,
            model: d.model.clone(),
            description: d.description.clone(),
            color: d.color.clone(),
            asset_tag: d.asset_tag.clone(),
            os: d.os.clone(),
            device_family: d.device_family.clone(),
            profile_uuid: d.profile_uuid.clone(),
            profile_status: d.profile_status.clone(),
            profile_assign_time: d.profile_assign_time,
            profile_push_time: d.profile_push_time,
            device_assigned_date: d.device_assigned_date,
            device_assigned_by: d.device_assigned_by.clone(),
            op_type: op.to_string(),
            op_date: d.op_date,
        });
    }
    (upserts, removals)
}

/// What every batch of a run is written with.
#[derive(Clone)]
struct BatchWriter {
    token_id: i64,
    job_id: i64,
    default_profile_id: Option<i64>,
    lease: String,
    owner: String,
    /// One writer at a time (SQLite).
    sequential: bool,
}

/// Waits for the batch written before, if any; the run's counts after it.
async fn settle(prev: Option<PageWrite>, base: &Progress) -> Result<PageCounts, CoreError> {
    match prev {
        Some(write) => write
            .await
            .map_err(|e| CoreError::new(ErrorKind::Internal, "internal", format!("a page write stopped: {e}")))?,
        None => Ok(base.counts()),
    }
}

/// The background half of [`Core::write_batch`]; the run's counts after the batch.
async fn write_batch_task<'a>(
    store: russet_store::Store,
    w: &'a BatchWriter,
    batch: &'a [PendingPage],
    new_only: bool,
    prev: Option<PageWrite>,
    base: Progress,
) -> Result<PageCounts, CoreError> {
    let page = |b: &'a PendingPage| -> SyncPage<'a> {
        SyncPage {
            token_id: w.token_id,
            upserts: &b.upserts,
            removals: &b.removals,
            new_only,
            default_profile_id: w.default_profile_id,
            cursor: &b.cursor,
            phase: "fetch",
            job_id: w.job_id,
            progress: &serde_json::Value::Null,
            seen_at: b.seen_at,
            now: b.now,
            lease: (&w.lease, &w.owner),
            lease_until: b.now + SYNC_LEASE,
        }
    };
    let mut prev = Some(prev);
    // One writer (SQLite): wait for the previous batch before taking the lock.
    let mut before = if w.sequential {
        Some(settle(prev.take().flatten(), &base).await?)
    } else {
        None
    };
    let Some((first, rest)) = batch.split_first() else {
        return match before {
            Some(counts) => Ok(counts),
            None => settle(prev.take().flatten(), &base).await,
        };
    };
    let mut prepared = store.sync_page_begin(&page(first)).await.map_err(lease_lost)?;
    for b in rest {
        prepared.add(&page(b)).await.map_err(lease_lost)?;
    }
    // The previous batch first; if it failed, this one rolls back.
    let before = match before.take() {
        Some(counts) => counts,
        None => settle(prev.take().flatten(), &base).await?,
    };
    let total = before + prepared.counts;
    let mut progress = base;
    progress.set_counts(total);
    prepared
        .commit(&serde_json::to_value(&progress).unwrap_or_default())
        .await
        .map_err(lease_lost)?;
    Ok(total)
}

/// A failure that ends a run, with what to record.
struct RunFailure {
    error: CoreError,
    dep: Option<DepError>,
}

impl From<CoreError> for RunFailure {
    fn from(error: CoreError) -> Self {
        RunFailure { error, dep: None }
    }
}

impl From<russet_store::StoreError> for RunFailure {
    fn from(e: russet_store::StoreError) -> Self {
        CoreError::from(e).into()
    }
}

impl Core {
    /// Checks whether a token may sync now and how; for the API and the scheduler.
    async fn sync_plan(
        &self,
        token_id: i64,
        origin: SyncOrigin,
        full: bool,
    ) -> Result<(SyncMode, Option<String>), CoreError> {
        let token = self.store.ade_token_get(token_id).await?.ok_or_else(|| {
            CoreError::not_found(
                "ade_token_not_found",
                format!("there is no enrollment program token with id {token_id}"),
            )
        })?;
        let now = self.clock.now();
        if !token.has_credentials {
            return Err(CoreError::conflict(
                "ade_token_pending",
                format!(
                    "token \"{}\" has no server token yet: upload one before syncing",
                    token.name
                ),
            ));
        }
        if token.expires_at.is_some_and(|e| e <= now) {
            return Err(CoreError::conflict(
                "ade_token_expired",
                format!(
                    "token \"{}\" expired on {}: Apple refuses it. Download a new server token in Apple Business Manager and \
                     renew the token",
                    token.name,
                    token.expires_at.map(fmt_time).unwrap_or_default()
                ),
            ));
        }
        let state = self.store.sync_state(token_id).await?;
        if let Some((_, until)) = self.store.lease_holder(&lease_name(token_id), now).await? {
            let running = self.store.job_list(Some(token_id), Some("sync"), 1).await?;
            let job = running
                .first()
                .filter(|j| j.status == "running")
                .map(|j| format!(" (job {})", j.id))
                .unwrap_or_default();
            return Err(CoreError::conflict(
                "sync_running",
                format!(
                    "a sync of token \"{}\" is already running{job}; one sync per token runs at a time (its lock lapses {} \
                     if it stops answering)",
                    token.name,
                    crate::abm::at(until)
                ),
            ));
        }
        if origin == SyncOrigin::Manual
            && let Some(last) = state.last_manual_sync_at
            && now - last < MANUAL_SYNC_INTERVAL
        {
            let next = last + MANUAL_SYNC_INTERVAL;
            let mut e = CoreError::new(
                ErrorKind::RateLimited,
                "sync_too_soon",
                format!(
                    "token \"{}\" was synced on request {} ago; Apple's acceptable-traffic terms allow one manual sync every 15 \
                     minutes: the next is possible at {}",
                    token.name,
                    human(now - last),
                    fmt_time(next)
                ),
            )
            .with_details(json!({ "available_at": fmt_time(next) }));
            e.retry_after = Some((next - now).whole_seconds().max(1) as u64);
            return Err(e);
        }
        let no_cursor = state.cursor.is_none();
        if state.phase.as_deref() == Some("fetch") && !no_cursor {
            return Ok((
                SyncMode::Resume,
                Some("continuing the full fetch an earlier sync left unfinished".into()),
            ));
        }
        if no_cursor {
            return Ok((SyncMode::Full, None));
        }
        if full {
            if let Some(last) = state.last_full_sync_at
                && now - last < FULL_SYNC_INTERVAL
            {
                return Ok((
                    SyncMode::FullNewOnly,
                    Some(format!(
                        "the last full sync ran {} ago; Apple's acceptable-traffic terms allow one full sync every 7 days, so this \
                         one only adds serials Russet does not know yet (a complete refresh is possible from {})",
                        human(now - last),
                        fmt_time(last + FULL_SYNC_INTERVAL)
                    )),
                ));
            }
            return Ok((SyncMode::Full, None));
        }
        Ok((SyncMode::Delta, None))
    }

    /// Starts a sync of a token and returns its job at once; the sync runs in the background.
    pub async fn ade_sync_request(&self, actor: &Actor, token_id: i64, full: bool) -> Result<JobRecord, CoreError> {
        let job = self
            .ade_sync_start(token_id, SyncOrigin::Manual, full, Some(actor))
            .await?;
        let core = self.clone();
        let id = job.id;
        tokio::spawn(async move {
            core.ade_sync_execute(id).await;
        });
        Ok(job)
    }

    /// Runs a sync to its end (for the scheduler, uploads and tests).
    pub async fn ade_sync_now(&self, token_id: i64, origin: SyncOrigin, full: bool) -> Result<JobRecord, CoreError> {
        let job = self.ade_sync_start(token_id, origin, full, None).await?;
        self.ade_sync_execute(job.id).await;
        self.store
            .job_get(job.id)
            .await?
            .ok_or_else(|| CoreError::new(ErrorKind::Internal, "internal", "the job vanished"))
    }

    /// Takes the token's sync lease and creates the job.
    async fn ade_sync_start(
        &self,
        token_id: i64,
        origin: SyncOrigin,
        full: bool,
        actor: Option<&Actor>,
    ) -> Result<JobRecord, CoreError> {
        let (mode, note) = self.sync_plan(token_id, origin, full).await?;
        let now = self.clock.now();
        if !self
            .store
            .lease_acquire(&lease_name(token_id), &self.instance, now, SYNC_LEASE)
            .await?
        {
            return Err(CoreError::conflict(
                "sync_running",
                "a sync of this token started a moment ago; wait for it to finish",
            ));
        }
        let requested_by = actor.map(|a| a.label.clone()).unwrap_or_else(|| "system".into());
        let audit = actor.map(|a| {
            NewAuditEntry::new(
                now,
                a,
                "ade_token.sync",
                "ade_token",
                format!("requested a {} sync", if full { "full" } else { "delta" }),
            )
            .target(token_id)
        });
        let job = self
            .store
            .job_create(
                &NewJob {
                    kind: "sync",
                    token_id,
                    profile_id: None,
                    origin: origin.as_str(),
                    mode: Some(mode.as_str()),
                    requested_by: &requested_by,
                    message: note.as_deref(),
                },
                now,
                audit,
            )
            .await;
        let job = match job {
            Ok(j) => j,
            Err(e) => {
                let _ = self.store.lease_release(&lease_name(token_id), &self.instance).await;
                return Err(e.into());
            }
        };
        if origin == SyncOrigin::Manual {
            let mut state = self.store.sync_state(token_id).await?;
            state.last_manual_sync_at = Some(now);
            self.store.sync_state_save(&state).await?;
        }
        Ok(job)
    }

    /// Runs a started sync job and records how it ended. Never fails: failures are
    /// recorded on the job and the token's sync state.
    async fn ade_sync_execute(&self, job_id: i64) {
        let Ok(Some(job)) = self.store.job_get(job_id).await else {
            return;
        };
        let token_id = job.token_id;
        let mode = match job.mode.as_deref() {
            Some("full") => SyncMode::Full,
            Some("full_new_only") => SyncMode::FullNewOnly,
            Some("resume") => SyncMode::Resume,
            _ => SyncMode::Delta,
        };
        let mut progress = Progress {
            mode: mode.as_str(),
            phase: "starting",
            ..Progress::default()
        };
        let result = self.run_sync(job_id, token_id, mode, &mut progress).await;
        let now = self.clock.now();
        let mut state = self.store.sync_state(token_id).await.unwrap_or(SyncState {
            token_id,
            ..SyncState::default()
        });
        state.last_sync_at = Some(now);
        let progress_json = serde_json::to_value(&progress).unwrap_or_default();
        match result {
            Ok(full_done) => {
                state.last_sync_status = Some("succeeded".into());
                state.last_sync_error = None;
                state.last_success_at = Some(now);
                state.consecutive_failures = 0;
                state.next_sync_at = Some(now + self.settings.sync_interval);
                if full_done {
                    state.last_full_sync_at = Some(now);
                }
                let message = format!(
                    "{} devices received: {} new, {} updated, {} moved from another token, {} removed",
                    progress.received, progress.added, progress.updated, progress.moved_in, progress.removed
                );
                let _ = self.store.sync_state_save(&state).await;
                if progress.added + progress.removed + progress.moved_in >= 1000 {
                    // Many devices changed: the planner's statistics must follow (see analyze_devices).
                    if let Err(e) = self.store.analyze_devices().await {
                        tracing::warn!(error = %e, "cannot refresh the device statistics");
                    }
                }
                let _ = self
                    .store
                    .job_finish(job_id, "succeeded", &progress_json, Some(&message), None, now)
                    .await;
                tracing::info!(token_id, job_id, %message, "device sync finished");
                self.assign_default_profile(token_id).await;
            }
            Err(failure) => {
                state.last_sync_status = Some("failed".into());
                state.last_sync_error = Some(failure.error.message.clone());
                state.consecutive_failures += 1;
                // Retry sooner than the regular interval, backing off: 5, 10, 20… minutes.
                let backoff = Duration::minutes(5 * (1i64 << (state.consecutive_failures - 1).clamp(0, 6)));
                let mut next = now + backoff.min(self.settings.sync_interval);
                if let Some(secs) = failure.dep.as_ref().and_then(|d| d.retry_after()) {
                    next = next.max(now + Duration::seconds(secs.as_secs() as i64));
                }
                state.next_sync_at = Some(next);
                let _ = self.store.sync_state_save(&state).await;
                let _ = self
                    .store
                    .job_finish(
                        job_id,
                        "failed",
                        &progress_json,
                        None,
                        Some(&failure.error.message),
                        now,
                    )
                    .await;
                tracing::warn!(token_id, job_id, error = %failure.error.message, "device sync failed");
            }
        }
        let _ = self.store.lease_release(&lease_name(token_id), &self.instance).await;
    }

    /// The pages of one sync. Returns whether a complete full fetch happened.
    async fn run_sync(&self, job_id: i64, token_id: i64, mode: SyncMode, p: &mut Progress) -> Result<bool, RunFailure> {
        let client = self.dep_client(token_id).await?;
        if let Err(e) = self.refresh_account(token_id, &client).await {
            return Err(RunFailure {
                error: apple_error(&e, "the account details"),
                dep: Some(e),
            });
        }
        let limit = self.settings.page_size;
        let lease = lease_name(token_id);
        let default_profile_id = self
            .store
            .ade_token_get(token_id)
            .await?
            .and_then(|t| t.default_profile_id);
        let mut state = self.store.sync_state(token_id).await?;
        let mut fetching;
        let mut new_only = false;
        let mut cursor: Option<String>;
        let mut marker = state.fetch_started_at.unwrap_or_else(|| self.clock.now());
        match mode {
            SyncMode::Full | SyncMode::FullNewOnly => {
                new_only = mode == SyncMode::FullNewOnly;
                marker = self.begin_fetch(&mut state, new_only).await?;
                fetching = true;
                cursor = None;
            }
            SyncMode::Resume => {
                new_only = state.fetch_new_only;
                fetching = true;
                cursor = state.cursor.clone();
            }
            SyncMode::Delta => {
                fetching = false;
                cursor = state.cursor.clone();
            }
        }
        let mut full_done = false;
        let mut prefetch: Option<tokio::task::JoinHandle<Result<dep::DevicePage, DepError>>> = None;
        // During a full fetch, pages are written in the background while the next ones are
        // fetched, in batches committed in order: a batch commits
        // only after the one before it, so the cursor never passes an uncommitted page. On
        // PostgreSQL the next batch's devices go in while the previous one commits (a fetch
        // returns each serial once, so the two transactions never wait on each other's
        // rows); SQLite has one writer, so there a batch begins once the previous committed.
        // At most two batches (PostgreSQL) or one (SQLite) are being written at once (the
        // permits), which also bounds the pages held in memory: the loop waits for a permit
        // before writing another batch.
        let sequential = self.store.backend() != russet_store::Backend::Postgres;
        // On SQLite, committing ten pages of 1000 at once writes the serial index's leaf
        // pages they share to the WAL once instead of ten times (a page of 1000 random
        // serials dirties about 1000 of them): 38,000 → 59,500 devices/s in the store
        // benchmark. PostgreSQL gains nothing from it; it writes two transactions at once.
        let batch_pages = if sequential {
            (self.settings.sync_batch_devices / limit.max(1)).max(1) as usize
        } else {
            1
        };
        let mut batch: Vec<PendingPage> = Vec::new();
        let mut batch_since = std::time::Instant::now();
        let mut inflight: Option<PageWrite> = None;
        // SQLite writes one batch at a time: a second one in flight would only wait, holding
        // its pages in memory, while the loop gathers the next.
        let writers = std::sync::Arc::new(tokio::sync::Semaphore::new(if sequential { 1 } else { 2 }));
        let writer = BatchWriter {
            token_id,
            job_id,
            default_profile_id,
            lease: lease.clone(),
            owner: self.instance.to_string(),
            sequential,
        };
        let mut resets = 0;
        let mut stalled = 0;
        loop {
            let now = self.clock.now();
            p.phase = if fetching { "fetch" } else { "sync" };
            let waited = std::time::Instant::now();
            let answer = match prefetch.take() {
                // The request for this page went out while the previous one was being written.
                Some(request) => request
                    .await
                    .unwrap_or_else(|e| Err(DepError::Transport { detail: e.to_string() })),
                None => match (&cursor, fetching) {
                    (_, true) => client.fetch_devices(cursor.as_deref(), limit).await,
                    (Some(c), false) => client.sync_devices(c, limit).await,
                    (None, false) => {
                        // No cursor to sync from: fetch everything.
                        marker = self.begin_fetch(&mut state, false).await?;
                        fetching = true;
                        continue;
                    }
                },
            };
            if answer.is_err() {
                // Settle the pages fetched so far before acting on Apple's refusal.
                self.settle_writes(&writer, &writers, &mut batch, new_only, &mut inflight, p)
                    .await?;
            }
            let page = match answer {
                Ok(page) => page,
                Err(e) if fetching && e.is_exhausted_cursor() => {
                    // This cursor's fetch was already complete: switch to sync.
                    full_done |= self.end_fetch(token_id, new_only, marker, p).await?;
                    fetching = false;
                    self.save_phase(token_id, cursor.as_deref(), "sync").await?;
                    continue;
                }
                Err(e) if e.is_cursor_reset() => {
                    resets += 1;
                    if resets > 2 {
                        return Err(RunFailure {
                            error: apple_error(&e, "syncing devices"),
                            dep: Some(e),
                        });
                    }
                    tracing::info!(token_id, code = ?e.code(), "Apple reset the sync cursor; fetching every device again");
                    marker = self.begin_fetch(&mut state, false).await?;
                    new_only = false;
                    fetching = true;
                    cursor = None;
                    p.mode = SyncMode::Full.as_str();
                    continue;
                }
                Err(e) => {
                    return Err(RunFailure {
                        error: apple_error(&e, "syncing devices"),
                        dep: Some(e),
                    });
                }
            };
            if page.more_to_follow {
                // Ask for the next page now; it arrives while this one is written.
                let next = client.clone();
                let next_cursor = page.cursor.clone();
                prefetch = Some(tokio::spawn(async move {
                    if fetching {
                        next.fetch_devices(Some(&next_cursor), limit).await
                    } else {
                        next.sync_devices(&next_cursor, limit).await
                    }
                }));
            }
            let waited = waited.elapsed();
            let writing = std::time::Instant::now();
            let (upserts, removals) = split_page(&page.devices, &mut p.ignored);
            p.pages += 1;
            p.received += page.devices.len() as u64;
            let fetch_continues = fetching && page.more_to_follow;
            let phase = if fetch_continues { "fetch" } else { "sync" };
            if inflight.as_ref().is_some_and(|w| w.is_finished()) {
                // Surface a failed background write now rather than pages later.
                drain(&mut inflight, p).await?;
            }
            let seen_at = if fetching { marker } else { now };
            if fetch_continues {
                if batch.is_empty() {
                    batch_since = std::time::Instant::now();
                }
                batch.push(PendingPage {
                    upserts,
                    removals,
                    cursor: page.cursor.clone(),
                    seen_at,
                    now,
                });
                if batch.len() >= batch_pages || batch_since.elapsed() >= BATCH_MAX_WAIT {
                    self.write_batch(
                        &writer,
                        &writers,
                        std::mem::take(&mut batch),
                        new_only,
                        &mut inflight,
                        p,
                    )
                    .await?;
                }
            } else {
                self.settle_writes(&writer, &writers, &mut batch, new_only, &mut inflight, p)
                    .await?;
                // Progress is committed with the page; the counts of this page are added after.
                let progress_json = serde_json::to_value(&*p).unwrap_or_default();
                let counts = self
                    .store
                    .sync_apply_page(&SyncPage {
                        token_id,
                        upserts: &upserts,
                        removals: &removals,
                        new_only: fetching && new_only,
                        default_profile_id,
                        cursor: &page.cursor,
                        phase,
                        job_id,
                        progress: &progress_json,
                        seen_at,
                        now,
                        lease: (&lease, &self.instance),
                        lease_until: now + SYNC_LEASE,
                    })
                    .await
                    .map_err(lease_lost)?;
                p.set_counts(p.counts() + counts);
            }
            tracing::trace!(token_id, ?waited, written = ?writing.elapsed(), devices = page.devices.len(), "sync page");
            if page.more_to_follow && page.devices.is_empty() && cursor.as_deref() == Some(page.cursor.as_str()) {
                stalled += 1;
                if stalled >= MAX_STALLED_PAGES {
                    self.settle_writes(&writer, &writers, &mut batch, new_only, &mut inflight, p)
                        .await?;
                    return Err(CoreError::new(
                        ErrorKind::Upstream,
                        "abm_cursor_stalled",
                        "Apple returned the same cursor with nothing new several times in a row; the sync stopped to avoid a \
                         loop and resumes at the next attempt",
                    )
                    .into());
                }
            } else {
                stalled = 0;
            }
            cursor = Some(page.cursor);
            if fetching && !page.more_to_follow {
                full_done |= self.end_fetch(token_id, new_only, marker, p).await?;
                fetching = false;
                // Go on with sync to pick up what changed while the fetch ran.
                continue;
            }
            if !fetching && !page.more_to_follow {
                break;
            }
        }
        let _ = self
            .store
            .job_progress(job_id, &serde_json::to_value(&*p).unwrap_or_default(), self.clock.now())
            .await;
        Ok(full_done)
    }

    /// Writes a batch of fetched pages in the background, after the batch before it
    /// (`inflight`, which it replaces): one transaction, committed with the cursor that
    /// follows its last page and the run's counts so far.
    async fn write_batch(
        &self,
        w: &BatchWriter,
        writers: &std::sync::Arc<tokio::sync::Semaphore>,
        batch: Vec<PendingPage>,
        new_only: bool,
        inflight: &mut Option<PageWrite>,
        p: &Progress,
    ) -> Result<(), CoreError> {
        let permit = writers
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| CoreError::new(ErrorKind::Internal, "internal", format!("page writers closed: {e}")))?;
        let prev = inflight.take();
        let store = self.store.clone();
        let base = p.clone();
        let w = w.clone();
        *inflight = Some(tokio::spawn(async move {
            let total = write_batch_task(store, &w, &batch, new_only, prev, base).await;
            drop(permit);
            total
        }));
        Ok(())
    }

    /// Writes the pages still waiting in `batch`, then waits until every write is committed
    /// and takes the run's counts.
    async fn settle_writes(
        &self,
        w: &BatchWriter,
        writers: &std::sync::Arc<tokio::sync::Semaphore>,
        batch: &mut Vec<PendingPage>,
        new_only: bool,
        inflight: &mut Option<PageWrite>,
        p: &mut Progress,
    ) -> Result<(), CoreError> {
        if !batch.is_empty() {
            self.write_batch(w, writers, std::mem::take(batch), new_only, inflight, p)
                .await?;
        }
        drain(inflight, p).await
    }

    /// Starts a full fetch: a fresh marker, later than every earlier fetch's.
    async fn begin_fetch(&self, state: &mut SyncState, new_only: bool) -> Result<OffsetDateTime, CoreError> {
        let now = self.clock.now();
        let marker = match state.fetch_started_at {
            Some(prev) if prev >= now => prev + Duration::milliseconds(1),
            _ => now,
        };
        state.cursor = None;
        state.phase = Some("fetch".into());
        state.fetch_started_at = Some(marker);
        state.fetch_new_only = new_only;
        self.store.sync_state_save(state).await?;
        Ok(marker)
    }

    /// A full fetch completed: devices it did not return left the token's MDM server.
    /// Returns whether it counts as a full sync.
    async fn end_fetch(
        &self,
        token_id: i64,
        new_only: bool,
        marker: OffsetDateTime,
        p: &mut Progress,
    ) -> Result<bool, CoreError> {
        if new_only {
            return Ok(false);
        }
        p.removed += self
            .store
            .sync_remove_unseen(token_id, marker, self.clock.now())
            .await?;
        Ok(true)
    }

    async fn save_phase(&self, token_id: i64, cursor: Option<&str>, phase: &str) -> Result<(), CoreError> {
        let mut state = self.store.sync_state(token_id).await?;
        state.cursor = cursor.map(str::to_string);
        state.phase = Some(phase.to_string());
        state.cursor_at = Some(self.clock.now());
        Ok(self.store.sync_state_save(&state).await?)
    }
}

/// "3 minutes", "2 days".
pub(crate) fn human(d: Duration) -> String {
    let s = d.whole_seconds().max(0);
    let (n, unit) = if s < 120 {
        (s, "second")
    } else if s < 7200 {
        (s / 60, "minute")
    } else if s < 172_800 {
        (s / 3600, "hour")
    } else {
        (s / 86_400, "day")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn dev(serial: &str, op: Option<OpType>, at: Option<OffsetDateTime>) -> dep::Device {
        dep::Device {
            serial_number: serial.into(),
            op_type: op,
            op_date: at,
            ..dep::Device::default()
        }
    }

    #[test]
    fn newest_record_per_serial_wins() {
        let t1 = Some(datetime!(2026-01-01 10:00 UTC));
        let t2 = Some(datetime!(2026-01-01 11:00 UTC));
        let page = vec![
            dev("a1", Some(OpType::Added), t1),
            dev("B2", Some(OpType::Added), t1),
            dev("A1", Some(OpType::Deleted), t2),
            dev("b2", Some(OpType::Modified), t2),
            dev("C3", Some(OpType::Deleted), t2),
            dev("C3", Some(OpType::Added), t1),
            dev(" ", None, None),
        ];
        let mut ignored = 0;
        let (up, rm) = split_page(&page, &mut ignored);
        assert_eq!(ignored, 1);
        assert_eq!(
            up.iter()
                .map(|d| (d.serial_number.as_str(), d.op_type.as_str()))
                .collect::<Vec<_>>(),
            [("B2", "modified")]
        );
        assert_eq!(rm.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["A1", "C3"]);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::seconds(90)), "90 seconds");
        assert_eq!(human(Duration::minutes(7)), "7 minutes");
        assert_eq!(human(Duration::hours(5)), "5 hours");
        assert_eq!(human(Duration::days(3)), "3 days");
    }
}
