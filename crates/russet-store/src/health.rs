//! Credential health bookkeeping (migration 0011): the status last recorded for each Apple
//! credential, and the webhook notifications waiting to be delivered.
//!
//! A change of status is recorded by a conditional write (the row must still hold the status
//! and expiry the caller read), with its notification in the same transaction; so however
//! many processes evaluate health at once, one crossing gives one notification. Deliveries
//! are claimed for a while by one process at a time and retried with the delay the caller
//! chooses.

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::{Store, StoreError, from_millis, opt_from_millis, to_millis};

/// The recorded status of one credential.
#[derive(Clone, Debug, PartialEq)]
pub struct CredentialState {
    /// `ade_token:3`, `push_certificate`, `vpp_token:5`.
    pub key: String,
    pub kind: String,
    pub name: String,
    pub status: String,
    /// `ok`, `warning` or `critical`.
    pub severity: String,
    pub expires_at: Option<OffsetDateTime>,
    pub changed_at: OffsetDateTime,
    pub checked_at: OffsetDateTime,
}

/// A notification to deliver with the state change that caused it.
pub struct NewDelivery<'a> {
    pub event_id: &'a str,
    pub event: &'a str,
    pub payload: &'a str,
}

/// A webhook notification and how its delivery went.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub event: String,
    pub credential_key: String,
    /// The JSON body sent.
    pub payload: String,
    /// `pending`, `delivered` or `failed` (gave up).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    pub last_status_code: Option<i64>,
    pub delivered_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

fn state_from_row(row: &AnyRow) -> Result<CredentialState, StoreError> {
    Ok(CredentialState {
        key: row.try_get("credential_key")?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        severity: row.try_get("severity")?,
        expires_at: opt_from_millis(row.try_get("expires_at")?)?,
        changed_at: from_millis(row.try_get("changed_at")?)?,
        checked_at: from_millis(row.try_get("checked_at")?)?,
    })
}

const DELIVERY_COLUMNS: &str = "id, event_id, event, credential_key, payload, status, attempts, next_attempt_at, \
     last_error, last_status_code, delivered_at, created_at";

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event: row.try_get("event")?,
        credential_key: row.try_get("credential_key")?,
        payload: row.try_get("payload")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: from_millis(row.try_get("next_attempt_at")?)?,
        last_error: row.try_get("last_error")?,
        last_status_code: row.try_get("last_status_code")?,
        delivered_at: opt_from_millis(row.try_get("delivered_at")?)?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

impl Store {
    /// Every recorded credential status.
    pub async fn credential_states(&self) -> Result<Vec<CredentialState>, StoreError> {
        let rows = sqlx::query(
            "SELECT credential_key, kind, name, status, severity, expires_at, changed_at, checked_at \
             FROM credential_states ORDER BY credential_key",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(state_from_row).collect()
    }

    /// Records `new` in place of `old` (what the caller read; `None`: nothing recorded yet),
    /// with `delivery` when given, if nobody recorded a change meanwhile. Returns false,
    /// changing nothing, when another process got there first.
    pub async fn credential_state_change(
        &self,
        old: Option<&CredentialState>,
        new: &CredentialState,
        delivery: Option<&NewDelivery<'_>>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let won = match old {
            None => sqlx::query(
                "INSERT INTO credential_states (credential_key, kind, name, status, severity, expires_at, changed_at, \
                   checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (credential_key) DO NOTHING",
            )
            .bind(&new.key)
            .bind(&new.kind)
            .bind(&new.name)
            .bind(&new.status)
            .bind(&new.severity)
            .bind(new.expires_at.map(to_millis))
            .bind(to_millis(new.changed_at))
            .bind(to_millis(new.checked_at))
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            Some(old) => sqlx::query(
                "UPDATE credential_states SET kind = $1, name = $2, status = $3, severity = $4, expires_at = $5, \
                   changed_at = $6, checked_at = $7 \
                 WHERE credential_key = $8 AND status = $9 AND COALESCE(expires_at, -1) = $10",
            )
            .bind(&new.kind)
            .bind(&new.name)
            .bind(&new.status)
            .bind(&new.severity)
            .bind(new.expires_at.map(to_millis))
            .bind(to_millis(new.changed_at))
            .bind(to_millis(new.checked_at))
            .bind(&old.key)
            .bind(&old.status)
            .bind(old.expires_at.map(to_millis).unwrap_or(-1))
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        } == 1;
        if !won {
            return Ok(false);
        }
        if let Some(d) = delivery {
            sqlx::query(
                "INSERT INTO notification_deliveries (event_id, event, credential_key, payload, status, attempts, \
                   next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
            )
            .bind(d.event_id)
            .bind(d.event)
            .bind(&new.key)
            .bind(d.payload)
            .bind(to_millis(new.changed_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets the status of credentials that no longer exist (deleted tokens).
    pub async fn credential_states_retain(&self, keys: &[String]) -> Result<u64, StoreError> {
        let recorded = self.credential_states().await?;
        let mut removed = 0;
        for s in recorded.iter().filter(|s| !keys.contains(&s.key)) {
            removed += sqlx::query("DELETE FROM credential_states WHERE credential_key = $1")
                .bind(&s.key)
                .execute(self.pool())
                .await?
                .rows_affected();
        }
        Ok(removed)
    }

    /// Claims up to `limit` deliveries that are due, until `claim_until`, for this process.
    pub async fn deliveries_claim_due(
        &self,
        now: OffsetDateTime,
        claim_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let _gate = self.write_gate().await;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE notification_deliveries SET claimed_until = $1 WHERE id IN ( \
               SELECT id FROM notification_deliveries WHERE status = 'pending' AND next_attempt_at <= $2 \
               AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY id LIMIT $3) \
             RETURNING {DELIVERY_COLUMNS}"
        )))
        .bind(to_millis(claim_until))
        .bind(to_millis(now))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<Delivery> = rows.iter().map(delivery_from_row).collect::<Result<_, _>>()?;
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    /// Records one delivery attempt: delivered, to be tried again at `retry_at`, or given up
    /// (`retry_at` `None` after a failure).
    pub async fn delivery_attempted(
        &self,
        id: i64,
        now: OffsetDateTime,
        delivered: bool,
        status_code: Option<u16>,
        error: Option<&str>,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        let status = match (delivered, retry_at) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        sqlx::query(
            "UPDATE notification_deliveries SET status = $1, attempts = attempts + 1, last_error = $2, \
               last_status_code = $3, delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_at END, \
               next_attempt_at = COALESCE($5, next_attempt_at), claimed_until = NULL WHERE id = $6",
        )
        .bind(status)
        .bind(error)
        .bind(status_code.map(i64::from))
        .bind(to_millis(now))
        .bind(retry_at.map(to_millis))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The latest deliveries, newest first.
    pub async fn deliveries_list(&self, limit: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries ORDER BY id DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }
}

/// Devices of one enrollment program token in one assignment state, for metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenDeviceCount {
    pub token_id: i64,
    /// The assignment state (`pending`, `assigned`, `failed`, …), `none` before any
    /// assignment, or `removed` for devices ABM released or moved away.
    pub status: String,
    pub devices: i64,
}

impl Store {
    /// Devices per token and state.
    pub async fn metrics_device_counts(&self) -> Result<Vec<TokenDeviceCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT token_id, CASE WHEN removed_at IS NOT NULL THEN 'removed' ELSE COALESCE(assign_state, 'none') END \
               AS status, COUNT(*) AS devices FROM ade_devices GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenDeviceCount {
                    token_id: r.try_get("token_id")?,
                    status: r.try_get("status")?,
                    devices: r.try_get("devices")?,
                })
            })
            .collect()
    }

    /// MDM commands queued and not yet answered for good (the open queue).
    pub async fn metrics_queue_depth(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM mdm_queue WHERE active = 1")
            .fetch_one(self.pool())
            .await?)
    }
}
