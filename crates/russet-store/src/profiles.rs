//! ADE enrollment profiles: their settings (JSON chosen by the domain), the profile Apple
//! holds for them, and the devices that should have them.

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::audit::{NewAuditEntry, record};
use crate::{Store, StoreError, from_millis, opt_from_millis, to_millis};

/// A stored profile with its device count.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRecord {
    pub id: i64,
    pub token_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub settings: serde_json::Value,
    /// Random, stable: names this profile in its enrollment URLs.
    pub enroll_key: String,
    pub apple_profile_uuid: Option<String>,
    pub defined_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
    pub version: i64,
    /// Devices (still in ABM) that should have this profile.
    pub device_count: i64,
    pub is_default: bool,
}

/// A profile to store.
pub struct ProfileWrite<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub settings: &'a serde_json::Value,
    pub apple_profile_uuid: &'a str,
}

const SELECT: &str = "SELECT p.id, p.token_id, p.name, p.description, p.settings, p.enroll_key, p.apple_profile_uuid, \
     p.defined_at, p.created_at, p.updated_at, p.version, \
     (SELECT COUNT(*) FROM ade_devices d WHERE d.profile_id = p.id AND d.removed_at IS NULL) AS device_count, \
     CASE WHEN EXISTS (SELECT 1 FROM ade_tokens t WHERE t.id = p.token_id AND t.default_profile_id = p.id) THEN 1 ELSE 0 END \
       AS is_default \
     FROM ade_profiles p";

fn from_row(row: &AnyRow) -> Result<ProfileRecord, StoreError> {
    let settings: Option<String> = row.try_get("settings")?;
    Ok(ProfileRecord {
        id: row.try_get("id")?,
        token_id: row.try_get("token_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        settings: match settings {
            Some(s) => serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("profile settings: {e}")))?,
            None => serde_json::Value::Null,
        },
        enroll_key: row.try_get::<Option<String>, _>("enroll_key")?.unwrap_or_default(),
        apple_profile_uuid: row.try_get("apple_profile_uuid")?,
        defined_at: opt_from_millis(row.try_get("defined_at")?)?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: opt_from_millis(row.try_get("updated_at")?)?,
        version: row.try_get("version")?,
        device_count: row.try_get("device_count")?,
        is_default: row.try_get::<i64, _>("is_default")? != 0,
    })
}

/// The key for case-insensitive profile name uniqueness within a token.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

impl Store {
    pub async fn profile_create(
        &self,
        token_id: i64,
        p: &ProfileWrite<'_>,
        enroll_key: &str,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<ProfileRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO ade_profiles (token_id, name, name_key, description, settings, enroll_key, apple_profile_uuid, \
               defined_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8) RETURNING id",
        )
        .bind(token_id)
        .bind(p.name)
        .bind(name_key(p.name))
        .bind(p.description)
        .bind(p.settings.to_string())
        .bind(enroll_key)
        .bind(p.apple_profile_uuid)
        .bind(to_millis(now))
        .fetch_one(&mut *tx)
        .await?;
        record(&mut tx, &audit.target(id)).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE p.id = $1")))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let out = from_row(&row)?;
        tx.commit().await?;
        Ok(out)
    }

    pub async fn profile_get(&self, id: i64) -> Result<Option<ProfileRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE p.id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The profile whose enrollment URLs carry `enroll_key`.
    pub async fn profile_by_enroll_key(&self, enroll_key: &str) -> Result<Option<ProfileRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE p.enroll_key = $1")))
            .bind(enroll_key)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A profile's name and Apple profile uuid, without counting its devices.
    pub async fn profile_apple(&self, id: i64) -> Result<Option<(String, Option<String>)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT name, apple_profile_uuid FROM ade_profiles WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn profile_find_by_name(&self, token_id: i64, name: &str) -> Result<Option<ProfileRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE p.token_id = $1 AND p.name_key = $2"
        )))
        .bind(token_id)
        .bind(name_key(name))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Profiles of one token, or of all tokens.
    pub async fn profile_list(&self, token_id: Option<i64>) -> Result<Vec<ProfileRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE ($1 IS NULL OR p.token_id = $1) ORDER BY p.id"
        )))
        .bind(token_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Replaces a profile's settings and Apple profile read at `expected_version`, and marks
    /// its devices for assignment of the new Apple profile under `job_id`. Returns the
    /// profile and how many devices were marked.
    pub async fn profile_update(
        &self,
        id: i64,
        expected_version: i64,
        p: &ProfileWrite<'_>,
        job_id: Option<i64>,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<(ProfileRecord, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE ade_profiles SET name = $1, name_key = $2, description = $3, settings = $4, apple_profile_uuid = $5, \
               defined_at = $6, updated_at = $6, version = version + 1 WHERE id = $7 AND version = $8",
        )
        .bind(p.name)
        .bind(name_key(p.name))
        .bind(p.description)
        .bind(p.settings.to_string())
        .bind(p.apple_profile_uuid)
        .bind(to_millis(now))
        .bind(id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(StoreError::Concurrent);
        }
        let marked = sqlx::query(
            "UPDATE ade_devices SET assign_state = 'pending', assign_job_id = $1, assign_retry_at = NULL, \
               assign_updated_at = $2 WHERE profile_id = $3 AND removed_at IS NULL",
        )
        .bind(job_id)
        .bind(to_millis(now))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        record(&mut tx, &audit.target(id)).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE p.id = $1")))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let out = from_row(&row)?;
        tx.commit().await?;
        Ok((out, marked))
    }

    /// Deletes a profile read at `expected_version`. The schema refuses while devices refer
    /// to it; devices removed from ABM lose the reference first.
    pub async fn profile_delete(&self, id: i64, expected_version: i64, audit: NewAuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE ade_devices SET profile_id = NULL WHERE profile_id = $1 AND removed_at IS NOT NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        crate::delete_versioned(&mut tx, "ade_profiles", id, expected_version, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets (or clears) the default profile of a token.
    pub async fn token_set_default_profile(
        &self,
        token_id: i64,
        profile_id: Option<i64>,
        audit: NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE ade_tokens SET default_profile_id = $1 WHERE id = $2")
            .bind(profile_id)
            .bind(token_id)
            .execute(&mut *tx)
            .await?;
        record(&mut tx, &audit.target(token_id)).await?;
        tx.commit().await?;
        Ok(())
    }
}
