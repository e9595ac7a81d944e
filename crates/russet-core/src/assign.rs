//! The assigner: sends devices marked `pending` (by an administrator's assignment, a
//! profile edit, or device sync for a token's default profile) to Apple in requests of at
//! most 1000 serials, a bounded number at once, and records each device's outcome.
//! Devices Apple throttles are retried after its `retry_after_seconds`. One assigner per
//! token runs at a time, across processes (a lease).

use std::collections::BTreeMap;

use futures::StreamExt;
use russet_apple::dep::{self, DeviceStatus};
use russet_store::assignments::{AssignedProfile, Outcome};
use russet_store::audit::NewAuditEntry;
use russet_store::jobs::NewJob;
use time::{Duration, OffsetDateTime};

use crate::Core;
use crate::abm::apple_error;

/// The assigner's lease lapses this long after its last batch.
const ASSIGN_LEASE: Duration = Duration::minutes(15);
/// Retry time for throttled devices when Apple gives none.
const DEFAULT_THROTTLE_RETRY: Duration = Duration::hours(1);
/// Retry time after Apple could not be reached.
const UNAVAILABLE_RETRY: Duration = Duration::minutes(5);

fn lease_name(token_id: i64) -> String {
    format!("ade_assign:{token_id}")
}

/// Apple's per-device status in Russet's words.
fn state_of(s: &DeviceStatus) -> &'static str {
    match s {
        DeviceStatus::Success => "success",
        DeviceStatus::NotAccessible | DeviceStatus::NotFound => "not_accessible",
        DeviceStatus::Throttled => "throttled",
        _ => "failed",
    }
}

/// The outcome of one request to Apple.
enum Batch {
    Answered(Vec<Outcome>),
    /// Apple could not be reached or refused for now: retry the batch at this time.
    Later(OffsetDateTime),
}

impl Core {
    /// After a sync: the devices it marked for the token's default profile get a job and
    /// are sent to Apple.
    pub(crate) async fn assign_default_profile(&self, token_id: i64) {
        let Ok(Some(token)) = self.store.ade_token_get(token_id).await else {
            return;
        };
        let Some(profile_id) = token.default_profile_id else {
            return;
        };
        let now = self.clock.now();
        let job = match self
            .store
            .job_create(
                &NewJob {
                    kind: "assign",
                    token_id,
                    profile_id: Some(profile_id),
                    origin: "default_profile",
                    mode: None,
                    requested_by: "system",
                    message: Some("new devices get the token's default profile"),
                },
                now,
                None,
            )
            .await
        {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(token_id, error = %e, "cannot create the default profile assignment");
                return;
            }
        };
        match self.store.assign_adopt(token_id, profile_id, job.id).await {
            Ok(0) => {
                let _ = self
                    .store
                    .job_finish(
                        job.id,
                        "succeeded",
                        &serde_json::json!({ "devices": 0 }),
                        Some("no new devices"),
                        None,
                        now,
                    )
                    .await;
            }
            Ok(n) => {
                tracing::info!(token_id, devices = n, "assigning the default profile to new devices");
                self.run_assigner(token_id).await;
            }
            Err(e) => {
                let _ = self
                    .store
                    .job_finish(
                        job.id,
                        "failed",
                        &serde_json::json!({}),
                        None,
                        Some(&e.to_string()),
                        now,
                    )
                    .await;
            }
        }
    }

    /// Sends every device of the token due for assignment, then closes the jobs that have
    /// no pending device left. Does nothing if another process is already at it.
    pub async fn run_assigner(&self, token_id: i64) {
        let lease = lease_name(token_id);
        let now = self.clock.now();
        match self
            .store
            .lease_acquire(&lease, &self.instance, now, ASSIGN_LEASE)
            .await
        {
            Ok(true) => {}
            _ => return,
        }
        if let Err(e) = self.assign_rounds(token_id).await {
            tracing::warn!(token_id, error = %e, "profile assignment stopped");
        }
        self.close_assign_jobs(token_id).await;
        let _ = self.store.lease_release(&lease, &self.instance).await;
    }

    async fn assign_rounds(&self, token_id: i64) -> Result<(), crate::CoreError> {
        let client = self.dep_client(token_id).await?;
        let per_request = dep::MAX_DEVICES_PER_REQUEST;
        let concurrency = self.settings.assign_concurrency.max(1);
        loop {
            let round = std::time::Instant::now();
            let now = self.clock.now();
            let due = self
                .store
                .assign_due(token_id, now, (per_request * concurrency) as u32)
                .await?;
            let selected = round.elapsed();
            if due.is_empty() {
                return Ok(());
            }
            // Group by profile, then cut into requests of at most 1000 serials.
            let mut by_profile: BTreeMap<i64, Vec<(String, Option<i64>)>> = BTreeMap::new();
            for (profile, serial, job) in due {
                by_profile.entry(profile).or_default().push((serial, job));
            }
            let mut requests = Vec::new();
            for (profile_id, devices) in by_profile {
                let Some((name, Some(uuid))) = self.store.profile_apple(profile_id).await? else {
                    continue;
                };
                for chunk in devices.chunks(per_request) {
                    requests.push((profile_id, name.clone(), uuid.clone(), chunk.to_vec()));
                }
            }
            let client = &client;
            let results: Vec<_> = futures::stream::iter(requests)
                .map(|(profile_id, name, uuid, devices)| async move {
                    let serials: Vec<String> = devices.iter().map(|(s, _)| s.clone()).collect();
                    let answer = client.assign_profile(&uuid, &serials).await;
                    (profile_id, name, uuid, devices, answer)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let asked = round.elapsed();
            let mut postponed = false;
            let mut batches = Vec::with_capacity(results.len());
            for (profile_id, name, uuid, devices, answer) in results {
                self.note_apple_answer(token_id, &answer).await;
                let now = self.clock.now();
                let batch = match answer {
                    Ok(resp) => {
                        let retry_at = now
                            + resp
                                .retry_after_seconds
                                .map(|s| Duration::seconds(s.min(7 * 86_400) as i64))
                                .unwrap_or(DEFAULT_THROTTLE_RETRY);
                        Batch::Answered(
                            devices
                                .iter()
                                .map(|(serial, job)| {
                                    // A serial missing from Apple's answer counts as failed.
                                    let state = resp.devices.get(serial).map(state_of).unwrap_or("failed");
                                    Outcome {
                                        serial: serial.clone(),
                                        job_id: *job,
                                        state,
                                        retry_at: (state == "throttled").then_some(retry_at),
                                    }
                                })
                                .collect(),
                        )
                    }
                    Err(e) if e.is_transient() || e.is_terms_not_signed() => {
                        let wait = e
                            .retry_after()
                            .map(|d| Duration::seconds(d.as_secs() as i64))
                            .unwrap_or(UNAVAILABLE_RETRY);
                        tracing::warn!(token_id, error = %apple_error(&e, "assigning profiles"), "assignment postponed");
                        Batch::Later(now + wait)
                    }
                    Err(e) => {
                        tracing::warn!(token_id, error = %apple_error(&e, "assigning profiles"), "assignment failed");
                        Batch::Answered(
                            devices
                                .iter()
                                .map(|(serial, job)| Outcome {
                                    serial: serial.clone(),
                                    job_id: *job,
                                    state: "failed",
                                    retry_at: None,
                                })
                                .collect(),
                        )
                    }
                };
                let batch = match batch {
                    Batch::Answered(outcomes) => (outcomes, false),
                    Batch::Later(at) => {
                        // Keep them pending, but not before `at`.
                        postponed = true;
                        let outcomes = devices
                            .iter()
                            .map(|(serial, job)| Outcome {
                                serial: serial.clone(),
                                job_id: *job,
                                state: "pending",
                                retry_at: Some(at),
                            })
                            .collect();
                        (outcomes, true)
                    }
                };
                batches.push((profile_id, name, uuid, now, batch));
            }
            // The batches hold different devices: on PostgreSQL they are recorded in parallel
            // transactions (SQLite takes them one after the other).
            futures::future::try_join_all(batches.iter().map(
                |(profile_id, name, uuid, now, (outcomes, later))| async move {
                    let profile = AssignedProfile {
                        id: *profile_id,
                        name,
                        apple_uuid: uuid,
                    };
                    if *later {
                        self.store.assign_postpone(token_id, &profile, outcomes, *now).await
                    } else {
                        self.store.assign_record(token_id, &profile, outcomes, *now).await
                    }
                },
            ))
            .await?;
            tracing::debug!(token_id, ?selected, ?asked, recorded = ?round.elapsed(), "assignment round");
            if !self
                .store
                .lease_renew(&lease_name(token_id), &self.instance, self.clock.now(), ASSIGN_LEASE)
                .await?
            {
                return Ok(());
            }
            if postponed {
                return Ok(());
            }
        }
    }

    /// Finishes the token's running assignment jobs that have no device waiting to be sent.
    async fn close_assign_jobs(&self, token_id: i64) {
        let Ok(jobs) = self.store.job_list(Some(token_id), Some("assign"), 200).await else {
            return;
        };
        for job in jobs.into_iter().filter(|j| j.status == "running") {
            let Ok(counts) = self.store.assign_job_counts(job.id).await else {
                continue;
            };
            let pending = counts.get("pending").copied().unwrap_or(0);
            let progress = serde_json::to_value(&counts).unwrap_or_default();
            let now = self.clock.now();
            if pending > 0 {
                let _ = self.store.job_progress(job.id, &progress, now).await;
                continue;
            }
            let throttled = counts.get("throttled").copied().unwrap_or(0);
            let retry = self.store.assign_next_retry(token_id).await.ok().flatten();
            let mut message = format!(
                "{} assigned, {} not accessible, {} failed",
                counts.get("success").copied().unwrap_or(0),
                counts.get("not_accessible").copied().unwrap_or(0),
                counts.get("failed").copied().unwrap_or(0)
            );
            if throttled > 0 {
                message.push_str(&format!(
                    ", {throttled} throttled by Apple (retried automatically{})",
                    retry
                        .map(|r| format!(" from {}", crate::fmt_time(r)))
                        .unwrap_or_default()
                ));
            }
            let _ = self
                .store
                .job_finish(job.id, "succeeded", &progress, Some(&message), None, now)
                .await;
        }
    }

    /// Audit entry for an administrator's assignment (written with the job).
    pub(crate) fn assign_audit(
        &self,
        actor: &russet_store::audit::Actor,
        profile_id: i64,
        what: &str,
    ) -> NewAuditEntry {
        NewAuditEntry::new(
            self.clock.now(),
            actor,
            "ade_profile.assign",
            "ade_profile",
            format!("assigned the profile to {what}"),
        )
        .target(profile_id)
    }
}
