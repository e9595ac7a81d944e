//! The audit log: who changed what, and when. Entries are written in the same transaction
//! as the change they describe and are never updated or deleted by Russet.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::{Store, StoreError, from_millis, to_millis};

/// Who made a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// Human-readable: `admin-key:3 (initial)`, `local: <command>`, `sign-in: <username>`, `system`.
    pub label: String,
    /// The admin API key used, when the change came through the API.
    pub key_id: Option<i64>,
}

impl Actor {
    pub fn admin_key(id: i64, name: &str) -> Actor {
        Actor {
            label: format!("admin-key:{id} ({name})"),
            key_id: Some(id),
        }
    }

    /// A command run on the server machine itself with access to the database.
    pub fn local(command: &str) -> Actor {
        Actor {
            label: format!("local: {command}"),
            key_id: None,
        }
    }

    /// A sign-in attempt, for what it changes on its own (locking an account).
    pub fn sign_in(username: &str) -> Actor {
        Actor {
            label: format!("sign-in: {username}"),
            key_id: None,
        }
    }

    pub fn system() -> Actor {
        Actor {
            label: "system".to_string(),
            key_id: None,
        }
    }
}

/// An entry to append. `details` must never hold a secret.
#[derive(Clone, Debug)]
pub struct NewAuditEntry {
    pub at: OffsetDateTime,
    pub actor: Actor,
    /// Dotted verb, e.g. `ade_token.create`.
    pub action: String,
    pub target_type: String,
    /// Filled in by the store when the target is being created.
    pub target_id: Option<String>,
    pub summary: String,
    pub details: serde_json::Value,
}

impl NewAuditEntry {
    pub fn new(at: OffsetDateTime, actor: &Actor, action: &str, target_type: &str, summary: String) -> Self {
        NewAuditEntry {
            at,
            actor: actor.clone(),
            action: action.to_string(),
            target_type: target_type.to_string(),
            target_id: None,
            summary,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, id: impl ToString) -> Self {
        self.target_id = Some(id.to_string());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// A stored entry.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Who: `admin-key:<id> (<name>)`, `local: <command>`, `sign-in: <username>` or `system`.
    pub actor: String,
    /// The admin API key used, for changes made through the API.
    pub actor_key_id: Option<i64>,
    /// e.g. `ade_token.renew`.
    pub action: String,
    /// e.g. `ade_token`.
    pub target_type: String,
    pub target_id: Option<String>,
    pub summary: String,
    /// Facts about the change (never secrets).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// Which entries to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Only entries with an id lower than this (the `next_before` of the previous page).
    pub before_id: Option<i64>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub limit: u32,
}

pub(crate) async fn record(conn: &mut sqlx::AnyConnection, entry: &NewAuditEntry) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, actor_key_id, action, target_type, target_id, summary, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(to_millis(entry.at))
    .bind(&entry.actor.label)
    .bind(entry.actor.key_id)
    .bind(&entry.action)
    .bind(&entry.target_type)
    .bind(&entry.target_id)
    .bind(&entry.summary)
    .bind(entry.details.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

fn from_row(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    let details: String = row.try_get("details")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: from_millis(row.try_get("at")?)?,
        actor: row.try_get("actor")?,
        actor_key_id: row.try_get("actor_key_id")?,
        action: row.try_get("action")?,
        target_type: row.try_get("target_type")?,
        target_id: row.try_get("target_id")?,
        summary: row.try_get("summary")?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::Corrupt(format!("audit entry details are not JSON: {e}")))?,
    })
}

impl Store {
    /// Appends an entry on its own (for changes made outside a store transaction).
    pub async fn audit_record(&self, entry: &NewAuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        record(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Entries newest first, filtered and paged by id.
    pub async fn audit_list(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, actor_key_id, action, target_type, target_id, summary, details \
             FROM audit_log \
             WHERE ($1 IS NULL OR id < $1) \
               AND ($2 IS NULL OR target_type = $2) \
               AND ($3 IS NULL OR target_id = $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(q.before_id)
        .bind(&q.target_type)
        .bind(&q.target_id)
        .bind(i64::from(q.limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}
