//! End users: the people who sign in during Automated Device Enrollment. Local accounts for
//! now (`source` = `local`), with an Argon2id password hash made by the domain; the store
//! never sees a password. The hash is kept out of [`UserRecord`] and only handed out, as a
//! secret, to the sign-in check.
//!
//! Failed sign-ins are counted by one `UPDATE … RETURNING` (no increment is lost when
//! attempts race); the lock is then set by a conditional update in the same transaction, so
//! exactly one failing attempt locks the account and writes the audit entry.

use secrecy::SecretString;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::audit::{NewAuditEntry, record};
use crate::{Store, StoreError, WriteTx, from_millis, opt_from_millis, to_millis};

/// Where an account comes from.
pub const SOURCE_LOCAL: &str = "local";

/// A stored user, without the password hash.
#[derive(Clone, Debug, PartialEq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// `local` (later also an identity provider).
    pub source: String,
    /// True when the account has a password (local accounts always do).
    pub has_password: bool,
    /// Consecutive failed sign-ins since the last success, unlock or password change.
    pub failed_attempts: i64,
    pub locked_until: Option<OffsetDateTime>,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_sign_in_at: Option<OffsetDateTime>,
    /// Incremented on every administrator's change; writers pass the version they read.
    pub version: i64,
}

/// A user with the hash to check a password against (for sign-in only).
pub struct UserCredentials {
    pub user: UserRecord,
    /// The PHC string; `None` for an account without a password.
    pub password_hash: Option<SecretString>,
}

/// A new local account.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub email: Option<&'a str>,
    pub password_hash: &'a SecretString,
}

/// What an administrator changes on a user.
pub struct UserChanges<'a> {
    pub display_name: &'a str,
    pub email: Option<&'a str>,
    pub disabled: bool,
}

/// The outcome of counting a failed sign-in.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedSignIn {
    pub failed_attempts: i64,
    pub locked_until: Option<OffsetDateTime>,
    /// This attempt locked the account (and wrote the audit entry).
    pub locked_now: bool,
}

/// The key of case-insensitive username uniqueness.
pub fn username_key(username: &str) -> String {
    username.trim().to_lowercase()
}

/// The columns of a [`UserRecord`] (never the hash).
macro_rules! user_columns {
    () => {
        "SELECT id, username, display_name, email, source, \
         CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS has_password, failed_attempts, locked_until, \
         disabled, created_at, updated_at, last_sign_in_at, version"
    };
}

const SELECT: &str = concat!(user_columns!(), " FROM users");
const SELECT_WITH_HASH: &str = concat!(user_columns!(), ", password_hash FROM users");

fn from_row(r: &AnyRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        email: r.try_get("email")?,
        source: r.try_get("source")?,
        has_password: r.try_get::<i64, _>("has_password")? != 0,
        failed_attempts: r.try_get("failed_attempts")?,
        locked_until: opt_from_millis(r.try_get("locked_until")?)?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at: from_millis(r.try_get("created_at")?)?,
        updated_at: from_millis(r.try_get("updated_at")?)?,
        last_sign_in_at: opt_from_millis(r.try_get("last_sign_in_at")?)?,
        version: r.try_get("version")?,
    })
}

/// Ends a change of user `id`: its audit entry, the user as it now is, and the commit.
async fn commit_audited(mut tx: WriteTx, id: i64, audit: NewAuditEntry) -> Result<UserRecord, StoreError> {
    record(&mut tx, &audit.target(id)).await?;
    let user = fetch_in(&mut tx, id).await?;
    tx.commit().await?;
    Ok(user)
}

async fn fetch_in(conn: &mut sqlx::AnyConnection, id: i64) -> Result<UserRecord, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
        .bind(id)
        .fetch_one(conn)
        .await?;
    from_row(&row)
}

impl Store {
    /// Stores a new local user. A username taken (ignoring case) is refused as
    /// [`StoreError::Constraint`].
    pub async fn user_create(
        &self,
        new: &NewUser<'_>,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<UserRecord, StoreError> {
        use secrecy::ExposeSecret;
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, username_key, display_name, email, source, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(new.username)
        .bind(username_key(new.username))
        .bind(new.display_name)
        .bind(new.email)
        .bind(SOURCE_LOCAL)
        .bind(new.password_hash.expose_secret())
        .bind(to_millis(now))
        .fetch_one(&mut *tx)
        .await?;
        commit_audited(tx, id, audit).await
    }

    /// Every user, by username.
    pub async fn user_list(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY username_key")))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn user_get(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The user whose username equals `username` ignoring case and surrounding spaces.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE username_key = $1")))
            .bind(username_key(username))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The user and their password hash, for checking a sign-in.
    pub async fn user_credentials(&self, username: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_WITH_HASH} WHERE username_key = $1"
        )))
        .bind(username_key(username))
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            let hash: Option<String> = r.try_get("password_hash")?;
            Ok(UserCredentials {
                user: from_row(&r)?,
                password_hash: hash.map(SecretString::from),
            })
        })
        .transpose()
    }

    /// Changes a user read at `expected_version`; [`StoreError::Concurrent`] if it changed
    /// (or went) meanwhile.
    pub async fn user_update(
        &self,
        id: i64,
        expected_version: i64,
        changes: &UserChanges<'_>,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<UserRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE users SET display_name = $1, email = $2, disabled = $3, updated_at = $4, version = version + 1 \
             WHERE id = $5 AND version = $6",
        )
        .bind(changes.display_name)
        .bind(changes.email)
        .bind(i64::from(changes.disabled))
        .bind(to_millis(now))
        .bind(id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(StoreError::Concurrent);
        }
        commit_audited(tx, id, audit).await
    }

    /// Replaces a user's password hash, clearing failed attempts and any lock. `None` when
    /// there is no such user.
    pub async fn user_set_password(
        &self,
        id: i64,
        password_hash: &SecretString,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<Option<UserRecord>, StoreError> {
        use secrecy::ExposeSecret;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE users SET password_hash = $1, failed_attempts = 0, locked_until = NULL, updated_at = $2, \
               version = version + 1 WHERE id = $3",
        )
        .bind(password_hash.expose_secret())
        .bind(to_millis(now))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(None);
        }
        Ok(Some(commit_audited(tx, id, audit).await?))
    }

    /// Clears failed attempts and the lock. `None` when there is no such user.
    pub async fn user_unlock(
        &self,
        id: i64,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<Option<UserRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE users SET failed_attempts = 0, locked_until = NULL, updated_at = $1, version = version + 1 \
             WHERE id = $2",
        )
        .bind(to_millis(now))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(None);
        }
        Ok(Some(commit_audited(tx, id, audit).await?))
    }

    /// Deletes a user read at `expected_version`.
    pub async fn user_delete(&self, id: i64, expected_version: i64, audit: NewAuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        crate::delete_versioned(&mut tx, "users", id, expected_version, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts a failed sign-in. A lock that has run out is cleared and the count starts
    /// again at one. When the count reaches `limit` and the account is not locked, it is
    /// locked until `lock_until` and `lockout` is written to the audit log, in the same
    /// transaction. `None` when the user no longer exists.
    pub async fn user_sign_in_failed(
        &self,
        id: i64,
        limit: i64,
        now: OffsetDateTime,
        lock_until: OffsetDateTime,
        lockout: NewAuditEntry,
    ) -> Result<Option<FailedSignIn>, StoreError> {
        let now_ms = to_millis(now);
        let mut tx = self.begin_write().await?;
        // One statement, so that racing attempts each count: PostgreSQL evaluates the SET
        // on the latest row version after waiting for the row lock; SQLite has one writer.
        let row = sqlx::query(
            "UPDATE users SET \
               failed_attempts = CASE WHEN locked_until IS NOT NULL AND locked_until <= $1 THEN 1 \
                                      ELSE failed_attempts + 1 END, \
               locked_until = CASE WHEN locked_until IS NOT NULL AND locked_until <= $1 THEN NULL \
                                   ELSE locked_until END \
             WHERE id = $2 RETURNING failed_attempts, locked_until",
        )
        .bind(now_ms)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let failed_attempts: i64 = row.try_get("failed_attempts")?;
        let mut locked_until = opt_from_millis(row.try_get("locked_until")?)?;
        let mut locked_now = false;
        if failed_attempts >= limit && locked_until.is_none() {
            // The row stays locked by this transaction since the update above: exactly one
            // attempt finds it unlocked here.
            let n = sqlx::query("UPDATE users SET locked_until = $1 WHERE id = $2 AND locked_until IS NULL")
                .bind(to_millis(lock_until))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                locked_now = true;
                locked_until = Some(lock_until);
                record(&mut tx, &lockout.target(id)).await?;
            }
        }
        tx.commit().await?;
        Ok(Some(FailedSignIn {
            failed_attempts,
            locked_until,
            locked_now,
        }))
    }

    /// Records a successful sign-in: clears the failed attempts and sets `last_sign_in_at`,
    /// unless the account was locked or disabled meanwhile (then `None`, and nothing changes).
    pub async fn user_sign_in_succeeded(&self, id: i64, now: OffsetDateTime) -> Result<Option<UserRecord>, StoreError> {
        let now_ms = to_millis(now);
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE users SET failed_attempts = 0, locked_until = NULL, last_sign_in_at = $1 \
             WHERE id = $2 AND disabled = 0 AND (locked_until IS NULL OR locked_until <= $1)",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(None);
        }
        let user = fetch_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}
