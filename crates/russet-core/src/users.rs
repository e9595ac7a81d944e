//! End users: the people who sign in during Automated Device Enrollment (user affinity).
//! Local accounts for now, with a `source` that leaves room for an identity provider later.
//!
//! Passwords are hashed with Argon2id (OWASP's parameters: 19 MiB, two passes, one lane) on
//! a blocking thread, and only the PHC string is stored. Sign-in answers an unknown user and
//! a wrong password with the same code and message, and spends the same hashing time on both
//! (an unknown user is checked against a fixed dummy hash). After
//! `settings.user_lockout_attempts` consecutive failures the account is locked for
//! `settings.user_lockout_duration`; the lock is written to the audit log with the sign-in as
//! its actor. Passwords and hashes are never logged and never part of [`User`].

use std::collections::BTreeMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use russet_store::audit::{Actor, NewAuditEntry};
use russet_store::users::{NewUser, UserChanges, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::{CoreError, ErrorKind};
use crate::{Core, fmt_time};

/// Longest username, in characters.
pub const MAX_USERNAME: usize = 64;
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password, in bytes (hashing work stays bounded).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 128;
/// Longest email address, in characters (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// Argon2id memory cost in KiB, passes and lanes: OWASP's recommended minimum.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
pub const ARGON2_PASSES: u32 = 2;
pub const ARGON2_LANES: u32 = 1;

/// Checked instead of a real hash when the username is unknown, so that the answer takes
/// as long as for a wrong password. A well-formed hash with the same parameters that no
/// password produces (its salt and output are fixed bytes, not the result of hashing).
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$cnVzc2V0IGR1bW15IHVzcg$LViZ7OYaYkFWhh+2eZOtWlwvEoOocstUF38nRxnTsz0";

/// The one answer for an unknown user and a wrong password.
pub const SIGN_IN_FAILED_MESSAGE: &str = "the username or password is incorrect";

/// An end user as administrators (and the sign-in page) see it. Never holds the password
/// or its hash.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct User {
    pub id: i64,
    /// As created (sign-in ignores case).
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// Where the account comes from: `local`.
    pub source: String,
    /// `active`, `locked` (too many failed sign-ins, until `locked_until`) or `disabled`.
    pub status: String,
    pub disabled: bool,
    /// Consecutive failed sign-ins since the last success, unlock or password change.
    pub failed_attempts: i64,
    /// While locked: when the account unlocks by itself.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub locked_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sign_in_at: Option<OffsetDateTime>,
}

/// A new local user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    /// 1-64 letters, digits, `.`, `_`, `-` or `@` (e.g. `jane.doe` or `jane@example.com`);
    /// unique ignoring case.
    pub username: String,
    /// The person's name (defaults to the username).
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// At least 10 characters, at most 1024 bytes.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

impl std::fmt::Debug for NewUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUserRequest")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Changes to a user; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    /// A new address, or `null` (or `""`) to remove it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// A disabled user cannot sign in.
    pub disabled: Option<bool>,
}

impl UserUpdate {
    pub fn is_empty(&self) -> bool {
        self.display_name.is_none() && self.email.is_none() && self.disabled.is_none()
    }
}

/// A field given as `null` is `Some(None)`; an absent one `None` (with `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// At least 10 characters, at most 1024 bytes.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

impl std::fmt::Debug for PasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordRequest { .. }")
    }
}

type FieldErrors = BTreeMap<&'static str, String>;

fn field_errors(code: &'static str, what: &str, errors: FieldErrors) -> CoreError {
    let summary = errors
        .iter()
        .map(|(f, m)| format!("{f}: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    CoreError::invalid(code, format!("{what} is not valid: {summary}")).with_details(json!({ "fields": errors }))
}

fn not_found(id: i64) -> CoreError {
    CoreError::not_found(
        "user_not_found",
        format!("there is no user with id {id} (`russet user list` shows them)"),
    )
}

fn internal(what: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::new(ErrorKind::Internal, "internal", format!("{what}: {e}"))
}

/// Checks a username; the trimmed name, or the problem.
pub fn check_username(username: &str) -> Result<&str, String> {
    let name = username.trim();
    let len = name.chars().count();
    if len == 0 || len > MAX_USERNAME {
        return Err(format!("a username has 1 to {MAX_USERNAME} characters (got {len})"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        return Err(format!(
            "a username may only contain letters (a-z, A-Z), digits, '.', '_', '-' and '@' (found {bad:?}), \
             e.g. jane.doe or jane@example.com"
        ));
    }
    Ok(name)
}

/// Checks a new password; the problem, if any.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "a password has at most {MAX_PASSWORD_BYTES} bytes (got {})",
            password.len()
        ));
    }
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters (got {chars}); a few unrelated words make a good one"
        ));
    }
    Ok(())
}

fn check_display_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 || len > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "a display name has 1 to {MAX_DISPLAY_NAME} printable characters, e.g. \"Jane Doe\""
        ));
    }
    Ok(name)
}

/// An address or none (empty means none).
fn check_email(email: Option<&str>) -> Result<Option<&str>, String> {
    let Some(email) = email.map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    let shape_ok = email.chars().count() <= MAX_EMAIL
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if !shape_ok {
        return Err(format!(
            "an email address looks like name@example.com, at most {MAX_EMAIL} characters (got \"{email}\")"
        ));
    }
    Ok(Some(email))
}

fn argon2() -> Result<Argon2<'static>, CoreError> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
        .map_err(|e| internal("Argon2 parameters", e))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with Argon2id and a random salt, on a blocking thread.
async fn hash_password(password: &SecretString) -> Result<SecretString, CoreError> {
    let mut salt = [0u8; 16];
    russet_store::crypto::random_bytes(&mut salt).map_err(|e| internal("randomness", e))?;
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| internal("password salt", e))?;
        let hash = argon2()?
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map_err(|e| internal("hashing the password", e))?;
        Ok(SecretString::from(hash.to_string()))
    })
    .await
    .map_err(|e| internal("hashing the password was interrupted", e))?
}

/// True when `password` matches the PHC string `hash`, checked on a blocking thread.
async fn verify_password(hash: SecretString, password: &SecretString) -> Result<bool, CoreError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        // The hash's own parameters are used, so older hashes keep working.
        let parsed = PasswordHash::new(hash.expose_secret()).map_err(|e| {
            CoreError::new(
                ErrorKind::Internal,
                "password_hash_unreadable",
                format!("the stored password hash cannot be read ({e}): set a new password for this user"),
            )
        })?;
        Ok(argon2()?
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| internal("checking the password was interrupted", e))?
}

fn sign_in_failed() -> CoreError {
    CoreError::new(ErrorKind::Forbidden, "sign_in_failed", SIGN_IN_FAILED_MESSAGE)
}

fn account_locked(now: OffsetDateTime, until: OffsetDateTime) -> CoreError {
    let secs = (until - now).whole_seconds().max(1);
    let minutes = (secs + 59) / 60;
    let mut e = CoreError::new(
        ErrorKind::Forbidden,
        "account_locked",
        format!(
            "this account is locked after too many failed sign-ins; it unlocks at {} (in {minutes} minute{}). \
             Try again then, or ask your IT administrator to unlock it",
            fmt_time(until),
            if minutes == 1 { "" } else { "s" }
        ),
    )
    .with_details(json!({ "locked_until": fmt_time(until) }));
    e.retry_after = Some(secs as u64);
    e
}

fn account_disabled() -> CoreError {
    CoreError::new(
        ErrorKind::Forbidden,
        "account_disabled",
        "this account is disabled: ask your IT administrator to enable it",
    )
}

impl Core {
    fn user_view(&self, r: UserRecord) -> User {
        let now = self.clock.now();
        let locked_until = r.locked_until.filter(|t| *t > now);
        let status = if r.disabled {
            "disabled"
        } else if locked_until.is_some() {
            "locked"
        } else {
            "active"
        };
        User {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            email: r.email,
            source: r.source,
            status: status.into(),
            disabled: r.disabled,
            failed_attempts: r.failed_attempts,
            locked_until,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_sign_in_at: r.last_sign_in_at,
        }
    }

    async fn user_record(&self, id: i64) -> Result<UserRecord, CoreError> {
        self.store.user_get(id).await?.ok_or_else(|| not_found(id))
    }

    /// Creates a local user. Every problem with the request is reported at once, by field.
    pub async fn user_create(&self, actor: &Actor, req: &NewUserRequest) -> Result<User, CoreError> {
        let mut errors = FieldErrors::new();
        let username = check_username(&req.username)
            .map_err(|m| errors.insert("username", m))
            .ok();
        let display_name = match req.display_name.as_deref() {
            None => username,
            Some(d) => check_display_name(d).map_err(|m| errors.insert("display_name", m)).ok(),
        };
        let email = check_email(req.email.as_deref())
            .map_err(|m| errors.insert("email", m))
            .ok();
        if let Err(m) = check_password(req.password.expose_secret()) {
            errors.insert("password", m);
        }
        let (Some(username), Some(display_name), Some(email), true) =
            (username, display_name, email, errors.is_empty())
        else {
            return Err(field_errors("invalid_user", "the user", errors));
        };
        let taken = || {
            CoreError::conflict(
                "username_taken",
                format!(
                    "a user named \"{username}\" already exists (usernames are unique ignoring case): choose another \
                     username, or change the existing user"
                ),
            )
        };
        if self.store.user_by_username(username).await?.is_some() {
            return Err(taken());
        }
        let password_hash = hash_password(&req.password).await?;
        let now = self.clock.now();
        let audit = NewAuditEntry::new(
            now,
            actor,
            "user.create",
            "user",
            format!("created user \"{username}\""),
        )
        .details(json!({ "username": username, "display_name": display_name, "email": email, "source": "local" }));
        let new = NewUser {
            username,
            display_name,
            email,
            password_hash: &password_hash,
        };
        match self.store.user_create(&new, now, audit).await {
            Ok(r) => Ok(self.user_view(r)),
            // Created by another request since the check above.
            Err(russet_store::StoreError::Constraint { .. }) => Err(taken()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every user, by username.
    pub async fn user_list(&self) -> Result<Vec<User>, CoreError> {
        Ok(self
            .store
            .user_list()
            .await?
            .into_iter()
            .map(|r| self.user_view(r))
            .collect())
    }

    pub async fn user_get(&self, id: i64) -> Result<User, CoreError> {
        Ok(self.user_view(self.user_record(id).await?))
    }

    /// The user with this username, ignoring case.
    pub async fn user_get_by_username(&self, username: &str) -> Result<User, CoreError> {
        self.store
            .user_by_username(username)
            .await?
            .map(|r| self.user_view(r))
            .ok_or_else(|| {
                CoreError::not_found(
                    "user_not_found",
                    format!(
                        "there is no user named \"{}\" (`russet user list` shows them)",
                        username.trim()
                    ),
                )
            })
    }

    /// Changes a user's display name, email or disabled flag.
    pub async fn user_update(&self, actor: &Actor, id: i64, changes: &UserUpdate) -> Result<User, CoreError> {
        let r = self.user_record(id).await?;
        let mut errors = FieldErrors::new();
        let display_name = match changes.display_name.as_deref() {
            None => Some(r.display_name.as_str()),
            Some(d) => check_display_name(d).map_err(|m| errors.insert("display_name", m)).ok(),
        };
        let email = match &changes.email {
            None => Some(r.email.as_deref()),
            Some(e) => check_email(e.as_deref()).map_err(|m| errors.insert("email", m)).ok(),
        };
        let (Some(display_name), Some(email), true) = (display_name, email, errors.is_empty()) else {
            return Err(field_errors("invalid_user", "the change", errors));
        };
        let disabled = changes.disabled.unwrap_or(r.disabled);
        let mut changed = serde_json::Map::new();
        if display_name != r.display_name {
            changed.insert("display_name".into(), json!(display_name));
        }
        if email != r.email.as_deref() {
            changed.insert("email".into(), json!(email));
        }
        if disabled != r.disabled {
            changed.insert("disabled".into(), json!(disabled));
        }
        if changed.is_empty() {
            return Ok(self.user_view(r));
        }
        let now = self.clock.now();
        let summary = match (changed.len(), changed.get("disabled").and_then(|d| d.as_bool())) {
            (1, Some(true)) => format!("disabled user \"{}\"", r.username),
            (1, Some(false)) => format!("enabled user \"{}\"", r.username),
            _ => format!("changed user \"{}\"", r.username),
        };
        let audit =
            NewAuditEntry::new(now, actor, "user.update", "user", summary).details(serde_json::Value::Object(changed));
        let updated = self
            .store
            .user_update(
                id,
                r.version,
                &UserChanges {
                    display_name,
                    email,
                    disabled,
                },
                now,
                audit,
            )
            .await?;
        Ok(self.user_view(updated))
    }

    /// Sets a new password; failed attempts and any lock are cleared.
    pub async fn user_set_password(&self, actor: &Actor, id: i64, password: &SecretString) -> Result<User, CoreError> {
        if let Err(m) = check_password(password.expose_secret()) {
            return Err(field_errors(
                "invalid_password",
                "the password",
                FieldErrors::from([("password", m)]),
            ));
        }
        let r = self.user_record(id).await?;
        let hash = hash_password(password).await?;
        let now = self.clock.now();
        let was_locked = r.locked_until.is_some_and(|t| t > now);
        let audit = NewAuditEntry::new(
            now,
            actor,
            "user.set_password",
            "user",
            format!("set a new password for user \"{}\"", r.username),
        )
        .details(json!({ "was_locked": was_locked, "failed_attempts_cleared": r.failed_attempts }));
        let updated = self
            .store
            .user_set_password(id, &hash, now, audit)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(self.user_view(updated))
    }

    /// Unlocks a user locked by failed sign-ins (and clears the count).
    pub async fn user_unlock(&self, actor: &Actor, id: i64) -> Result<User, CoreError> {
        let r = self.user_record(id).await?;
        if r.failed_attempts == 0 && r.locked_until.is_none() {
            return Ok(self.user_view(r));
        }
        let now = self.clock.now();
        let was_locked = r.locked_until.is_some_and(|t| t > now);
        let audit = NewAuditEntry::new(
            now,
            actor,
            "user.unlock",
            "user",
            format!("unlocked user \"{}\"", r.username),
        )
        .details(json!({ "was_locked": was_locked, "failed_attempts_cleared": r.failed_attempts }));
        let updated = self
            .store
            .user_unlock(id, now, audit)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(self.user_view(updated))
    }

    /// Deletes a user.
    pub async fn user_delete(&self, actor: &Actor, id: i64) -> Result<(), CoreError> {
        let r = self.user_record(id).await?;
        let audit = NewAuditEntry::new(
            self.clock.now(),
            actor,
            "user.delete",
            "user",
            format!("deleted user \"{}\"", r.username),
        )
        .details(json!({ "username": r.username }));
        self.store.user_delete(id, r.version, audit).await?;
        Ok(())
    }

    /// Checks a sign-in (the ADE sign-in page). The user, or an error with the code
    /// `sign_in_failed` (unknown user or wrong password: one message, about the same time),
    /// `account_locked` (too many failures; says when it unlocks) or `account_disabled`
    /// (told only to someone who gave the right password).
    pub async fn user_sign_in(&self, username: &str, password: &str) -> Result<User, CoreError> {
        let password = SecretString::from(password);
        let creds = match check_username(username) {
            Ok(name) => self.store.user_credentials(name).await?,
            Err(_) => None,
        };
        let Some(creds) = creds else {
            let _ = verify_password(SecretString::from(DUMMY_HASH), &password).await?;
            return Err(sign_in_failed());
        };
        let user = creds.user;
        let now = self.clock.now();
        if let Some(until) = user.locked_until.filter(|t| *t > now) {
            return Err(account_locked(now, until));
        }
        let right = match creds.password_hash {
            Some(hash) if password.expose_secret().len() <= MAX_PASSWORD_BYTES => {
                verify_password(hash, &password).await?
            }
            // No password to check (or one no valid password can be): the same work, refused.
            _ => {
                let _ = verify_password(SecretString::from(DUMMY_HASH), &SecretString::from("")).await?;
                false
            }
        };
        if !right {
            let limit = i64::from(self.settings.user_lockout_attempts.max(1));
            let lock_until = now + self.settings.user_lockout_duration;
            let lockout = NewAuditEntry::new(
                now,
                &Actor::sign_in(&user.username),
                "user.lock",
                "user",
                format!(
                    "locked user \"{}\" until {} after {limit} failed sign-ins",
                    user.username,
                    fmt_time(lock_until)
                ),
            )
            .details(json!({ "failed_attempts": limit, "locked_until": fmt_time(lock_until) }));
            let failed = self
                .store
                .user_sign_in_failed(user.id, limit, now, lock_until, lockout)
                .await?;
            if let Some(f) = failed
                && f.locked_now
            {
                tracing::warn!(user_id = user.id, "user account locked after repeated failed sign-ins");
                return Err(account_locked(now, lock_until));
            }
            return Err(sign_in_failed());
        }
        if user.disabled {
            return Err(account_disabled());
        }
        match self.store.user_sign_in_succeeded(user.id, now).await? {
            Some(r) => Ok(self.user_view(r)),
            // Locked, disabled or deleted since it was read.
            None => match self.store.user_get(user.id).await? {
                Some(r) if r.disabled => Err(account_disabled()),
                Some(UserRecord {
                    locked_until: Some(until),
                    ..
                }) if until > now => Err(account_locked(now, until)),
                _ => Err(sign_in_failed()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(check_username("  jane.doe@example.com "), Ok("jane.doe@example.com"));
        assert_eq!(check_username("A_b-9"), Ok("A_b-9"));
        assert!(check_username("").unwrap_err().contains("1 to 64"));
        assert!(check_username("   ").is_err());
        assert!(check_username(&"a".repeat(65)).is_err());
        assert!(check_username(&"a".repeat(64)).is_ok());
        assert!(check_username("jane doe").unwrap_err().contains("' '"));
        assert!(check_username("jané").is_err());
        assert!(check_username("a/b").is_err());
    }

    #[test]
    fn passwords() {
        assert!(check_password("short").unwrap_err().contains("at least 10"));
        assert!(check_password("0123456789").is_ok());
        // Characters, not bytes: ten accented letters are enough.
        assert!(check_password("éééééééééé").is_ok());
        assert!(check_password(&"x".repeat(1024)).is_ok());
        assert!(check_password(&"x".repeat(1025)).unwrap_err().contains("1024 bytes"));
    }

    #[test]
    fn emails() {
        assert_eq!(check_email(None), Ok(None));
        assert_eq!(check_email(Some("  ")), Ok(None));
        assert_eq!(check_email(Some(" j@example.com ")), Ok(Some("j@example.com")));
        assert!(check_email(Some("nope")).is_err());
        assert!(check_email(Some("a@b@c")).is_err());
        assert!(check_email(Some("a b@c")).is_err());
    }

    #[test]
    fn the_dummy_hash_has_the_current_parameters() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES)
        );
        assert_eq!(parsed.hash.unwrap().len(), 32);
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let password = SecretString::from("correct horse battery");
        let hash = hash_password(&password).await.unwrap();
        assert!(
            hash.expose_secret().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.expose_secret()
        );
        assert!(verify_password(hash.clone(), &password).await.unwrap());
        assert!(
            !verify_password(hash.clone(), &SecretString::from("wrong horse battery"))
                .await
                .unwrap()
        );
        // A fresh salt every time.
        assert_ne!(
            hash.expose_secret(),
            hash_password(&password).await.unwrap().expose_secret()
        );
        assert!(
            !verify_password(SecretString::from(DUMMY_HASH), &password)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_dummy_check_costs_what_a_real_one_does() {
        let password = SecretString::from("correct horse battery");
        let hash = hash_password(&password).await.unwrap();
        let wrong = SecretString::from("wrong horse battery");
        let (mut real, mut dummy) = (std::time::Duration::MAX, std::time::Duration::MAX);
        for _ in 0..3 {
            let t = std::time::Instant::now();
            verify_password(hash.clone(), &wrong).await.unwrap();
            real = real.min(t.elapsed());
            let t = std::time::Instant::now();
            verify_password(SecretString::from(DUMMY_HASH), &wrong).await.unwrap();
            dummy = dummy.min(t.elapsed());
        }
        assert!(dummy * 2 >= real && real * 2 >= dummy, "dummy {dummy:?}, real {real:?}");
    }
}
