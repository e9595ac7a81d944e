//! Background work: automatic delta syncs, retries of throttled assignments, purging
//! devices removed from ABM long ago, marking jobs of dead processes, Apps and Books syncs,
//! credential health checks and their notifications. Every process
//! runs the scheduler; leases make sure each piece of work runs once.

use std::time::Duration as StdDuration;

use time::Duration;

use crate::Core;
use crate::sync::{SYNC_LEASE, SyncOrigin};

/// How often the scheduler looks for work.
pub const TICK: StdDuration = StdDuration::from_secs(30);
/// Enrollments re-pushed per tick at most.
pub const REPUSH_BATCH: i64 = 5_000;
const REPUSH_LEASE: &str = "mdm:repush";

impl Core {
    /// One round of background work; returns when the work it started has finished.
    pub async fn scheduler_tick(&self) {
        let now = self.clock.now();
        if let Err(e) = self.store.job_mark_stale(now - SYNC_LEASE, now).await {
            tracing::warn!(error = %e, "cannot mark stale jobs");
        }
        let tokens = match self.store.ade_token_list().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler cannot list tokens");
                return;
            }
        };
        let mut work = Vec::new();
        for token in tokens {
            if !token.has_credentials || token.expires_at.is_some_and(|e| e <= now) {
                continue;
            }
            let Ok(state) = self.store.sync_state(token.id).await else {
                continue;
            };
            let due = state.next_sync_at.is_none_or(|next| next <= now);
            if due {
                let core = self.clone();
                let id = token.id;
                work.push(tokio::spawn(async move {
                    // A sync already running elsewhere, or a token no longer usable, is not an error here.
                    if let Err(e) = core.ade_sync_now(id, SyncOrigin::Scheduled, false).await
                        && e.code != "sync_running"
                    {
                        tracing::debug!(token_id = id, error = %e, "scheduled sync not started");
                    }
                }));
            }
        }
        for handle in work {
            let _ = handle.await;
        }
        if let Ok(tokens) = self.store.assign_tokens_due(now).await {
            for id in tokens {
                self.run_assigner(id).await;
            }
        }
        self.repush_round(now).await;
        self.vpp_sync_due().await;
        if let Err(e) = self.health_check().await {
            tracing::warn!(error = %e, "cannot check credential health");
        }
        if let Err(e) = self.deliver_notifications().await {
            tracing::warn!(error = %e, "cannot deliver notifications");
        }
        let before = now - Duration::days(i64::from(self.settings.device_retention_days));
        match self.store.device_purge_removed(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                devices = n,
                "purged devices removed from ABM before the retention period"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot purge removed devices"),
        }
    }

    /// Pushes again, in one process at a time, the enrollments whose queued commands have
    /// waited longest since their last push (at most [`REPUSH_BATCH`] per tick, so a large
    /// backlog is worked through fairly, oldest first, without flooding APNs).
    async fn repush_round(&self, now: time::OffsetDateTime) {
        match self.store.push_cert_version().await {
            Ok(Some(_)) => {}
            _ => return,
        }
        let owner = self.instance.to_string();
        match self
            .store
            .lease_acquire(REPUSH_LEASE, &owner, now, Duration::minutes(5))
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the re-push lease");
                return;
            }
        }
        match self.repush_pending(REPUSH_BATCH).await {
            Ok(r) if r.sent + r.bad_token + r.failed_transient > 0 => {
                tracing::info!(
                    sent = r.sent,
                    bad_token = r.bad_token,
                    failed = r.failed_transient,
                    "re-pushed devices with queued commands"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "re-push round failed"),
        }
        let _ = self.store.lease_release(REPUSH_LEASE, &owner).await;
    }

    /// Runs [`scheduler_tick`](Self::scheduler_tick) every [`TICK`] until `stop` resolves.
    pub async fn run_scheduler(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = interval.tick() => self.scheduler_tick().await,
            }
        }
    }
}
