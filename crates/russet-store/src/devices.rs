//! Devices that Apple Business Manager assigned to a token's MDM server, as device sync
//! records them, with the profile Russet wants each to have and how assigning it went.
//!
//! Writes come in batches: multi-row statements of [`ROWS_PER_STATEMENT`] rows keep a
//! 1000-device page to a handful of round trips on both databases.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::{Backend, Store, StoreError, from_millis, opt_from_millis, to_millis};

/// Rows per multi-row INSERT (20 columns each stays far below both databases' parameter limits).
pub const ROWS_PER_STATEMENT: usize = 200;
/// Values per `IN (…)` list.
pub const IN_LIST: usize = 500;

// SERIAL_KEYED: statements that name devices by serial number write their other conditions
// so that no other index can drive the lookup. `+token_id = …`: unary plus keeps SQLite's
// planner from using the token's index (every device of the token) instead of the serial
// number's (one row each) when it has no statistics, or before a connection has loaded
// them. `COALESCE(profile_id, 0) = …`: an equality on profile_id lets PostgreSQL's generic
// plan scan the partial profile index (every device with a profile) instead; a non-strict
// expression cannot imply that index's `profile_id IS NOT NULL`.

/// A device's record from Apple, as one sync page delivers it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceUpsert {
    pub serial_number: String,
    pub model: Option<String>,
    pub description: Option<String>,
    pub color: Option<String>,
    pub asset_tag: Option<String>,
    pub os: Option<String>,
    pub device_family: Option<String>,
    pub profile_uuid: Option<String>,
    pub profile_status: Option<String>,
    pub profile_assign_time: Option<OffsetDateTime>,
    pub profile_push_time: Option<OffsetDateTime>,
    pub device_assigned_date: Option<OffsetDateTime>,
    pub device_assigned_by: Option<String>,
    /// `added`, `modified` (from sync), or `fetched` (a full fetch carries no operation).
    pub op_type: String,
    pub op_date: Option<OffsetDateTime>,
}

/// A stored device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceRecord {
    pub serial_number: String,
    pub token_id: i64,
    pub model: Option<String>,
    pub description: Option<String>,
    pub color: Option<String>,
    pub asset_tag: Option<String>,
    pub os: Option<String>,
    pub device_family: Option<String>,
    pub abm_profile_uuid: Option<String>,
    pub abm_profile_status: Option<String>,
    pub abm_profile_assign_time: Option<OffsetDateTime>,
    pub abm_profile_push_time: Option<OffsetDateTime>,
    pub device_assigned_date: Option<OffsetDateTime>,
    pub device_assigned_by: Option<String>,
    pub op_type: Option<String>,
    pub op_date: Option<OffsetDateTime>,
    pub last_seen_at: Option<OffsetDateTime>,
    pub removed_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
    pub profile_id: Option<i64>,
    pub assign_state: Option<String>,
    pub assign_job_id: Option<i64>,
    pub assign_retry_at: Option<OffsetDateTime>,
    pub assign_attempts: i64,
    pub assign_updated_at: Option<OffsetDateTime>,
}

/// One assignment outcome in a device's history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AssignmentEvent {
    pub at: OffsetDateTime,
    pub profile_id: Option<i64>,
    pub profile_name: Option<String>,
    pub profile_uuid: Option<String>,
    pub result: String,
    pub retry_at: Option<OffsetDateTime>,
    pub job_id: Option<i64>,
}

/// Which devices to list.
#[derive(Clone, Debug, Default)]
pub struct DeviceFilter {
    pub token_id: Option<i64>,
    pub profile_id: Option<i64>,
    /// Devices with no profile chosen in Russet.
    pub unassigned: bool,
    /// Apple's profile status: `empty`, `assigned`, `pushed`, `removed`.
    pub abm_profile_status: Option<String>,
    /// Russet's assignment outcome: `pending`, `success`, `not_accessible`, `failed`, `throttled`.
    pub assign_state: Option<String>,
    /// Upper-case letters and digits only (checked by the caller).
    pub serial_prefix: Option<String>,
    pub model: Option<String>,
    pub device_family: Option<String>,
    pub os: Option<String>,
    pub added_since: Option<OffsetDateTime>,
    /// `false`: only devices still assigned in ABM; `true`: removed ones too.
    pub include_removed: bool,
}

const COLUMNS: &str = "serial_number, token_id, model, description, color, asset_tag, os, device_family, abm_profile_uuid, \
     abm_profile_status, abm_profile_assign_time, abm_profile_push_time, device_assigned_date, device_assigned_by, op_type, \
     op_date, last_seen_at, removed_at, created_at, updated_at, profile_id, assign_state, assign_job_id, assign_retry_at, \
     assign_attempts, assign_updated_at";

fn ms(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(to_millis)
}

pub(crate) fn from_row(row: &AnyRow) -> Result<DeviceRecord, StoreError> {
    Ok(DeviceRecord {
        serial_number: row.try_get("serial_number")?,
        token_id: row.try_get("token_id")?,
        model: row.try_get("model")?,
        description: row.try_get("description")?,
        color: row.try_get("color")?,
        asset_tag: row.try_get("asset_tag")?,
        os: row.try_get("os")?,
        device_family: row.try_get("device_family")?,
        abm_profile_uuid: row.try_get("abm_profile_uuid")?,
        abm_profile_status: row.try_get("abm_profile_status")?,
        abm_profile_assign_time: opt_from_millis(row.try_get("abm_profile_assign_time")?)?,
        abm_profile_push_time: opt_from_millis(row.try_get("abm_profile_push_time")?)?,
        device_assigned_date: opt_from_millis(row.try_get("device_assigned_date")?)?,
        device_assigned_by: row.try_get("device_assigned_by")?,
        op_type: row.try_get("op_type")?,
        op_date: opt_from_millis(row.try_get("op_date")?)?,
        last_seen_at: opt_from_millis(row.try_get("last_seen_at")?)?,
        removed_at: opt_from_millis(row.try_get("removed_at")?)?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: opt_from_millis(row.try_get("updated_at")?)?,
        profile_id: row.try_get("profile_id")?,
        assign_state: row.try_get("assign_state")?,
        assign_job_id: row.try_get("assign_job_id")?,
        assign_retry_at: opt_from_millis(row.try_get("assign_retry_at")?)?,
        assign_attempts: row.try_get("assign_attempts")?,
        assign_updated_at: opt_from_millis(row.try_get("assign_updated_at")?)?,
    })
}

/// `$from, $from+1, …` for `n` values.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// A bulk statement for `backend`. Its `$N` parameters must appear once each, in order
/// `$1, $2, …` (checked in debug builds). On SQLite they become anonymous `?`: SQLite looks
/// named and numbered parameters up by scanning a list, which makes binding thousands of
/// them quadratic (a 1000-row page took 100 ms instead of 6).
pub(crate) fn bulk(backend: Backend, sql: String) -> String {
    if backend != Backend::Sqlite {
        return sql;
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut expected = 1usize;
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = 0usize;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = n * 10 + d as usize;
                chars.next();
            }
            debug_assert_eq!(n, expected, "bulk statement parameters must be in order: {sql}");
            expected += 1;
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// The bulk statement `name` for `n` rows or values, from `build` (in `$N` form, see
/// [`bulk`]), built once per backend for the full sizes ([`ROWS_PER_STATEMENT`],
/// [`IN_LIST`]) and reused: a 200-row insert has 3,800 parameters, and formatting it for
/// every chunk cost 7 % of a sync. `name` must stand for everything in the text but `n`.
pub(crate) fn bulk_sql(
    backend: Backend,
    name: &'static str,
    n: usize,
    build: impl FnOnce() -> String,
) -> sqlx::AssertSqlSafe<std::sync::Arc<str>> {
    type Cache = std::collections::HashMap<(&'static str, Backend, usize), std::sync::Arc<str>>;
    static CACHE: std::sync::OnceLock<std::sync::Mutex<Cache>> = std::sync::OnceLock::new();
    if n != ROWS_PER_STATEMENT && n != IN_LIST {
        return sqlx::AssertSqlSafe(bulk(backend, build()).into());
    }
    let cache = CACHE.get_or_init(Default::default);
    let key = (name, backend, n);
    // A poisoned lock only means another thread panicked while inserting: the map is intact.
    if let Some(sql) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return sqlx::AssertSqlSafe(sql.clone());
    }
    let sql: std::sync::Arc<str> = bulk(backend, build()).into();
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, sql.clone());
    sqlx::AssertSqlSafe(sql)
}

/// Writes devices: new serials are inserted; known ones updated unless the stored record
/// is newer (`op_date`). A device arriving under another token moves to it and loses the
/// profile chosen under the old one. With `new_only`, known serials are left untouched.
/// A device that moves keeps the token it left in `previous_token_id` until the page has
/// counted it. Returns, on PostgreSQL, the serials this statement inserted and moved
/// (`RETURNING`, cheaper there than looking the page's serials up first; the marks are
/// cleared at once); on SQLite `None`: new rows are told apart by id and moves collected with
/// [`take_moved`] (see the sync's `write_devices`).
pub(crate) async fn upsert(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    token_id: i64,
    devices: &[DeviceUpsert],
    new_only: bool,
    seen_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Option<Written>, StoreError> {
    const COLS: usize = 19;
    // A moved device keeps the token it left until the page has counted it (see take_moved).
    let marker = "previous_token_id = CASE WHEN ade_devices.token_id = excluded.token_id THEN NULL ELSE ade_devices.token_id END, ";
    let conflict = if new_only {
        "ON CONFLICT (serial_number) DO NOTHING".to_string()
    } else {
        format!(
            "ON CONFLICT (serial_number) DO UPDATE SET {marker}\
           model = excluded.model, description = excluded.description, color = excluded.color, \
           asset_tag = excluded.asset_tag, os = excluded.os, device_family = excluded.device_family, \
           abm_profile_uuid = excluded.abm_profile_uuid, abm_profile_status = excluded.abm_profile_status, \
           abm_profile_assign_time = excluded.abm_profile_assign_time, abm_profile_push_time = excluded.abm_profile_push_time, \
           device_assigned_date = excluded.device_assigned_date, device_assigned_by = excluded.device_assigned_by, \
           op_type = excluded.op_type, op_date = COALESCE(excluded.op_date, ade_devices.op_date), \
           last_seen_at = excluded.last_seen_at, removed_at = NULL, updated_at = excluded.updated_at, \
           profile_id = CASE WHEN ade_devices.token_id = excluded.token_id THEN ade_devices.profile_id ELSE NULL END, \
           assign_state = CASE WHEN ade_devices.token_id = excluded.token_id THEN ade_devices.assign_state ELSE NULL END, \
           assign_job_id = CASE WHEN ade_devices.token_id = excluded.token_id THEN ade_devices.assign_job_id ELSE NULL END, \
           assign_retry_at = CASE WHEN ade_devices.token_id = excluded.token_id THEN ade_devices.assign_retry_at ELSE NULL END, \
           token_id = excluded.token_id \
         WHERE excluded.op_date IS NULL OR ade_devices.op_date IS NULL OR excluded.op_date >= ade_devices.op_date \
           OR ade_devices.token_id <> excluded.token_id"
        )
    };
    // In serial order, so that consecutive inserts walk the serial index's B-tree along
    // neighbouring pages instead of jumping across it.
    let mut sorted: Vec<&DeviceUpsert> = devices.iter().collect();
    sorted.sort_unstable_by(|a, b| a.serial_number.cmp(&b.serial_number));
    if backend == Backend::Postgres {
        return upsert_pg(conn, token_id, &sorted, &conflict, seen_at, now)
            .await
            .map(Some);
    }
    let name = if new_only { "upsert_new_only" } else { "upsert" };
    for chunk in sorted.chunks(ROWS_PER_STATEMENT) {
        let sql = bulk_sql(backend, name, chunk.len(), || {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", placeholders(1 + i * COLS, COLS)))
                .collect();
            format!(
                "INSERT INTO ade_devices (token_id, serial_number, model, description, color, asset_tag, os, device_family, \
                   abm_profile_uuid, abm_profile_status, abm_profile_assign_time, abm_profile_push_time, device_assigned_date, \
                   device_assigned_by, op_type, op_date, last_seen_at, created_at, updated_at) VALUES {} {conflict}",
                rows.join(", ")
            )
        });
        let mut q = sqlx::query(sql);
        for d in chunk {
            q = q
                .bind(token_id)
                .bind(&d.serial_number)
                .bind(&d.model)
                .bind(&d.description)
                .bind(&d.color)
                .bind(&d.asset_tag)
                .bind(&d.os)
                .bind(&d.device_family)
                .bind(&d.profile_uuid)
                .bind(&d.profile_status)
                .bind(ms(d.profile_assign_time))
                .bind(ms(d.profile_push_time))
                .bind(ms(d.device_assigned_date))
                .bind(&d.device_assigned_by)
                .bind(&d.op_type)
                .bind(ms(d.op_date))
                .bind(to_millis(seen_at))
                .bind(to_millis(now))
                .bind(to_millis(now));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(None)
}

/// [`upsert`] on PostgreSQL: the page travels as one JSON parameter that
/// `json_to_recordset` turns into rows. Planning a multi-row `VALUES` of thousands of
/// parameters cost PostgreSQL more than writing the rows; this statement plans once. Returns
/// the serials it inserted (`xmax = 0` marks a row version this statement created rather
/// than updated).
async fn upsert_pg(
    conn: &mut sqlx::AnyConnection,
    token_id: i64,
    devices: &[&DeviceUpsert],
    conflict: &str,
    seen_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Written, StoreError> {
    if devices.is_empty() {
        return Ok(Written::default());
    }
    let rows: Vec<serde_json::Value> = devices
        .iter()
        .map(|d| {
            serde_json::json!({
                "serial_number": d.serial_number,
                "model": d.model,
                "description": d.description,
                "color": d.color,
                "asset_tag": d.asset_tag,
                "os": d.os,
                "device_family": d.device_family,
                "abm_profile_uuid": d.profile_uuid,
                "abm_profile_status": d.profile_status,
                "abm_profile_assign_time": ms(d.profile_assign_time),
                "abm_profile_push_time": ms(d.profile_push_time),
                "device_assigned_date": ms(d.device_assigned_date),
                "device_assigned_by": d.device_assigned_by,
                "op_type": d.op_type,
                "op_date": ms(d.op_date),
            })
        })
        .collect();
    let json = serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sql = format!(
        "INSERT INTO ade_devices (token_id, serial_number, model, description, color, asset_tag, os, device_family, \
           abm_profile_uuid, abm_profile_status, abm_profile_assign_time, abm_profile_push_time, device_assigned_date, \
           device_assigned_by, op_type, op_date, last_seen_at, created_at, updated_at) \
         SELECT $1, serial_number, model, description, color, asset_tag, os, device_family, abm_profile_uuid, \
           abm_profile_status, abm_profile_assign_time, abm_profile_push_time, device_assigned_date, device_assigned_by, \
           op_type, op_date, $2, $3, $3 \
         FROM json_to_recordset($4::json) AS d(serial_number text, model text, description text, color text, \
           asset_tag text, os text, device_family text, abm_profile_uuid text, abm_profile_status text, \
           abm_profile_assign_time bigint, abm_profile_push_time bigint, device_assigned_date bigint, \
           device_assigned_by text, op_type text, op_date bigint) \
         {conflict} RETURNING serial_number, (xmax = 0) AS inserted, previous_token_id"
    );
    let rows: Vec<(String, bool, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(token_id)
        .bind(to_millis(seen_at))
        .bind(to_millis(now))
        .bind(json)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Written::default();
    for (serial, inserted, previous) in rows {
        if inserted {
            out.inserted.push(serial);
        } else if previous.is_some() {
            out.moved.push(serial);
        }
    }
    if !out.moved.is_empty() {
        // The marks have been read: clear them in this transaction, by serial.
        for chunk in out.moved.chunks(IN_LIST) {
            let sql = bulk_sql(Backend::Postgres, "clear_moved", chunk.len(), || {
                format!(
                    "UPDATE ade_devices SET previous_token_id = NULL WHERE serial_number IN ({})",
                    placeholders(1, chunk.len())
                )
            });
            let mut q = sqlx::query(sql);
            for serial in chunk {
                q = q.bind(serial);
            }
            q.execute(&mut *conn).await?;
        }
    }
    Ok(out)
}

/// What a PostgreSQL upsert wrote: the serials it inserted, and those it moved from another
/// token (their marks already cleared).
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub inserted: Vec<String>,
    pub moved: Vec<String>,
}

/// The devices that [`upsert`] just moved to `token_id` from another token; their
/// `previous_token_id` is cleared, so each move is taken once, in the transaction that made
/// it (other transactions never see a mark: it is set and cleared before commit).
pub(crate) async fn take_moved(conn: &mut sqlx::AnyConnection, token_id: i64) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE ade_devices SET previous_token_id = NULL WHERE previous_token_id IS NOT NULL AND +token_id = $1 \
         RETURNING serial_number",
    )
    .bind(token_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Marks devices of `token_id` removed (Apple's `deleted`), unless the stored record is
/// newer. Devices that moved to another token meanwhile are left alone. Returns how many.
pub(crate) async fn mark_removed(
    conn: &mut sqlx::AnyConnection,
    token_id: i64,
    removals: &[(String, Option<OffsetDateTime>)],
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for (serial, op_date) in removals {
        n += sqlx::query(
            "UPDATE ade_devices SET removed_at = $1, op_type = 'deleted', op_date = COALESCE($2, op_date), updated_at = $1 \
             WHERE serial_number = $3 AND +token_id = $4 AND removed_at IS NULL \
               AND ($2 IS NULL OR op_date IS NULL OR op_date <= $2)",
        )
        .bind(to_millis(now))
        .bind(ms(*op_date))
        .bind(serial)
        .bind(token_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(n)
}

fn filter_sql(f: &DeviceFilter, first: usize) -> (String, Vec<FilterValue>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let mut next = first;
    let mut push = |clause: &str, v: FilterValue| {
        clauses.push(clause.replace('?', &format!("${next}")));
        values.push(v);
        next += 1;
    };
    if let Some(t) = f.token_id {
        push("token_id = ?", FilterValue::Int(t));
    }
    if let Some(p) = f.profile_id {
        push("profile_id = ?", FilterValue::Int(p));
    }
    if let Some(s) = &f.abm_profile_status {
        push("abm_profile_status = ?", FilterValue::Text(s.clone()));
    }
    if let Some(s) = &f.assign_state {
        push("assign_state = ?", FilterValue::Text(s.clone()));
    }
    if let Some(p) = &f.serial_prefix {
        push("serial_number LIKE ?", FilterValue::Text(format!("{p}%")));
    }
    if let Some(m) = &f.model {
        push("model = ?", FilterValue::Text(m.clone()));
    }
    if let Some(d) = &f.device_family {
        push("device_family = ?", FilterValue::Text(d.clone()));
    }
    if let Some(o) = &f.os {
        push("os = ?", FilterValue::Text(o.clone()));
    }
    if let Some(t) = f.added_since {
        push("created_at >= ?", FilterValue::Int(to_millis(t)));
    }
    if f.unassigned {
        clauses.push("profile_id IS NULL".into());
    }
    if !f.include_removed {
        clauses.push("removed_at IS NULL".into());
    }
    let sql = if clauses.is_empty() {
        "1 = 1".to_string()
    } else {
        clauses.join(" AND ")
    };
    (sql, values)
}

enum FilterValue {
    Int(i64),
    Text(String),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    values: &'q [FilterValue],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for v in values {
        q = match v {
            FilterValue::Int(i) => q.bind(*i),
            FilterValue::Text(s) => q.bind(s.as_str()),
        };
    }
    q
}

impl Store {
    /// Devices matching `filter`, ordered by serial, after `after_serial`.
    pub async fn device_list(
        &self,
        filter: &DeviceFilter,
        after_serial: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let (cond, values) = filter_sql(filter, 3);
        let sql = format!(
            "SELECT {COLUMNS} FROM ade_devices WHERE ($1 IS NULL OR serial_number > $1) AND {cond} \
             ORDER BY serial_number LIMIT $2"
        );
        let q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after_serial)
            .bind(i64::from(limit));
        let rows = bind_all(q, &values).fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// How many devices match `filter`.
    pub async fn device_count(&self, filter: &DeviceFilter) -> Result<i64, StoreError> {
        let (cond, values) = filter_sql(filter, 1);
        let sql = format!("SELECT COUNT(*) FROM ade_devices WHERE {cond}");
        let q = sqlx::query(sqlx::AssertSqlSafe(sql));
        let row = bind_all(q, &values).fetch_one(self.pool()).await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    pub async fn device_get(&self, serial: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ade_devices WHERE serial_number = $1"
        )))
        .bind(serial)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A device's assignment history, newest first.
    pub async fn device_assignment_history(
        &self,
        serial: &str,
        limit: u32,
    ) -> Result<Vec<AssignmentEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, profile_id, profile_name, profile_uuid, result, retry_at, job_id FROM ade_assignment_events \
             WHERE serial_number = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(serial)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AssignmentEvent {
                    at: from_millis(r.try_get("at")?)?,
                    profile_id: r.try_get("profile_id")?,
                    profile_name: r.try_get("profile_name")?,
                    profile_uuid: r.try_get("profile_uuid")?,
                    result: r.try_get("result")?,
                    retry_at: opt_from_millis(r.try_get("retry_at")?)?,
                    job_id: r.try_get("job_id")?,
                })
            })
            .collect()
    }

    /// Deletes a device record and its history, with an audit entry.
    pub async fn device_delete(&self, serial: &str, audit: crate::audit::NewAuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM ade_devices WHERE serial_number = $1")
            .bind(serial)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM ade_assignment_events WHERE serial_number = $1")
            .bind(serial)
            .execute(&mut *tx)
            .await?;
        crate::audit::record(&mut tx, &audit.target(serial)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes devices removed from ABM before `before` (and their history); returns how many.
    pub async fn device_purge_removed(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM ade_assignment_events WHERE serial_number IN \
               (SELECT serial_number FROM ade_devices WHERE removed_at IS NOT NULL AND removed_at < $1)",
        )
        .bind(to_millis(before))
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query("DELETE FROM ade_devices WHERE removed_at IS NOT NULL AND removed_at < $1")
            .bind(to_millis(before))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
