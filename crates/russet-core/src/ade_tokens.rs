//! The enrollment program (ADE) token lifecycle: create a pending token with its key pair,
//! hand out the public certificate for Apple Business Manager, accept the server token ABM
//! returns, renew it in place, and delete it when nothing depends on it.
//!
//! Rules that protect administrators from Apple's sharp edges live here:
//! - the key pair stays with a pending token until a server token arrives (Intune's vanishes
//!   with a browser tab);
//! - a server token made for another token's key names that token;
//! - a renewal whose consumer key differs (another ABM MDM server) is refused without `force`,
//!   because that token's devices would be lost;
//! - a file older than the credentials in place, or already expired, is refused;
//! - one ABM MDM server cannot be connected twice (its devices would appear twice);
//! - every failed upload leaves the token exactly as it was.

use russet_apple::dep::DepError;
use russet_apple::server_token::{self, EncryptedServerToken, ServerToken, ServerTokenError};
use russet_store::ade_tokens::{AdeTokenRecord, NewCredentials};
use russet_store::audit::{Actor, NewAuditEntry};
use russet_store::sync::SyncState;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::{CoreError, ErrorKind};
use crate::{Core, days_left, fmt_time};

/// Longest accepted token name.
pub const MAX_NAME_LEN: usize = 100;
/// Validity of the self-signed certificate given to ABM. Apple does not check it, but a
/// long one never gets in the administrator's way when the public key is uploaded again.
pub const CERTIFICATE_VALIDITY_DAYS: u32 = 3650;

/// Where a token stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Created; waiting for the server token from ABM.
    Pending,
    Active,
    /// Active, and expiring within the warning window (30 days by default).
    Expiring,
    Expired,
    /// Apple refuses every call until an administrator accepts new terms in ABM.
    TermsNotSigned,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Pending => "pending",
            TokenStatus::Active => "active",
            TokenStatus::Expiring => "expiring",
            TokenStatus::Expired => "expired",
            TokenStatus::TermsNotSigned => "terms_not_signed",
        }
    }
}

/// An enrollment program token as administrators see it. Holds no secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AdeToken {
    pub id: i64,
    pub name: String,
    /// The Apple ID (Managed Apple Account) used in ABM to download the server token.
    pub apple_id: Option<String>,
    pub status: TokenStatus,
    /// When the server token expires (`access_token_expiry`).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// Whole days until expiry, negative once expired; absent while pending.
    pub days_left: Option<i64>,
    /// First 16 hex digits of SHA-256 of the OAuth consumer key: which ABM MDM server the
    /// credentials belong to (`russet ade-token inspect` prints the same for a file).
    pub consumer_key_fingerprint: Option<String>,
    /// Serial number of the certificate to upload to ABM (uppercase hex).
    pub certificate_serial: String,
    /// Devices ABM assigns to this token's MDM server.
    pub device_count: i64,
    /// Devices ABM released or moved away, kept until the retention period ends.
    pub removed_device_count: i64,
    pub profile_count: i64,
    pub default_profile_id: Option<i64>,
    /// What Apple says about the MDM server and organisation (from `/account`).
    pub abm: AbmInfo,
    /// What to do when the status is `terms_not_signed`.
    pub status_message: Option<String>,
    pub sync: SyncSummary,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When the first server token was uploaded.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub activated_at: Option<OffsetDateTime>,
    /// When the server token was last renewed in place.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub renewed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// The ABM side of a token.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct AbmInfo {
    pub server_name: Option<String>,
    pub server_uuid: Option<String>,
    /// The Apple ID of the ABM administrator (`admin_id`).
    pub admin_id: Option<String>,
    pub org_name: Option<String>,
    pub org_email: Option<String>,
    pub org_phone: Option<String>,
    /// `org` (Business) or `edu` (School).
    pub org_type: Option<String>,
    pub org_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub checked_at: Option<OffsetDateTime>,
}

/// The last and next device sync of a token.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct SyncSummary {
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sync_at: Option<OffsetDateTime>,
    /// `succeeded` or `failed`.
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_success_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_full_sync_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_sync_at: Option<OffsetDateTime>,
}

/// What an upload is meant to be; a mismatch is refused so that an accidental renewal
/// (or a "renewal" of a token that never had credentials) is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadIntent {
    /// Either: the first upload or a renewal.
    Any,
    /// The first server token of a pending token.
    Initial,
    /// A renewal of an active (or expired) token.
    Renewal,
}

/// An uploaded server token file and its options.
pub struct ServerTokenUpload<'a> {
    pub file: &'a [u8],
    pub apple_id: &'a str,
    /// Accept credentials of another ABM MDM server, or an older file.
    pub force: bool,
    pub intent: UploadIntent,
}

/// The result of an upload.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UploadOutcome {
    pub token: AdeToken,
    /// `activated` (first server token), `renewed`, `apple_id_updated` (the file in place,
    /// uploaded again with another Apple ID) or `unchanged` (the same file and Apple ID).
    pub result: String,
    /// The expiry before this upload, for a renewal.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_expires_at: Option<OffsetDateTime>,
    pub apple_id_changed: bool,
    /// True when `force` overrode a safety check.
    pub forced: bool,
    /// Things the administrator should know (e.g. Apple could not be reached to check the token).
    pub warnings: Vec<String>,
}

/// What the certificate for ABM looks like, for download.
pub struct PublicKey {
    pub pem: String,
    pub file_name: String,
}

fn fingerprint(consumer_key_hash: &str) -> String {
    consumer_key_hash.chars().take(16).collect()
}

/// SHA-256 (hex) of an OAuth consumer key.
pub fn consumer_key_hash(consumer_key: &str) -> String {
    hex::encode(Sha256::digest(consumer_key.as_bytes()))
}

/// The fingerprint shown for a consumer key (matches [`AdeToken::consumer_key_fingerprint`]).
pub fn consumer_key_fingerprint(consumer_key: &str) -> String {
    fingerprint(&consumer_key_hash(consumer_key))
}

/// "1 device", "2 devices".
fn count(n: i64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn not_found(id: i64) -> CoreError {
    CoreError::not_found(
        "ade_token_not_found",
        format!("there is no enrollment program token with id {id}"),
    )
}

/// Checks a token name and returns it trimmed.
fn valid_name(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CoreError::invalid(
            "invalid_name",
            "the token needs a name, e.g. \"ABM – Head office\"",
        ));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(CoreError::invalid(
            "invalid_name",
            format!(
                "the token name is {} characters long; at most {MAX_NAME_LEN} are allowed",
                name.chars().count()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            "invalid_name",
            "the token name must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

/// Checks the Apple ID given with an upload and returns it trimmed.
fn valid_apple_id(apple_id: &str) -> Result<String, CoreError> {
    check_apple_id(
        apple_id,
        "the Apple ID (Managed Apple Account, an email address) you signed in to Apple Business Manager with to \
         download this server token; you will need it to renew the token next year",
    )
}

/// Checks an Apple ID (an email address) and returns it trimmed; `what_to_give` completes
/// the message "give …" of the error.
pub(crate) fn check_apple_id(apple_id: &str, what_to_give: &str) -> Result<String, CoreError> {
    let id = apple_id.trim();
    let explain = |what: &str| CoreError::invalid("invalid_apple_id", format!("{what}: give {what_to_give}"));
    if id.is_empty() {
        return Err(explain("the Apple ID is missing"));
    }
    let well_formed = id.len() <= 254
        && !id.chars().any(|c| c.is_whitespace() || c.is_control())
        && id.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if !well_formed {
        return Err(explain(&format!("\"{id}\" is not an Apple ID")));
    }
    Ok(id.to_string())
}

/// Turns a parse or decrypt failure of the server token file into the administrator's error.
pub fn file_error(e: ServerTokenError) -> CoreError {
    let code = match &e {
        ServerTokenError::TooLarge { .. } => {
            return CoreError::new(ErrorKind::TooLarge, "server_token_too_large", e.to_string());
        }
        ServerTokenError::Empty => "server_token_empty",
        ServerTokenError::NotCms { .. } => "server_token_not_cms",
        ServerTokenError::BadBase64 { .. } => "server_token_bad_base64",
        ServerTokenError::NotEnvelopedData { .. } => "server_token_not_encrypted",
        ServerTokenError::Malformed { .. } => "server_token_malformed",
        ServerTokenError::UnsupportedCipher { .. } => "server_token_unsupported_cipher",
        ServerTokenError::WrongRecipient { .. } => "server_token_wrong_key",
        ServerTokenError::DecryptFailed { .. } => "server_token_decrypt_failed",
        ServerTokenError::NotUtf8 | ServerTokenError::NotJson { .. } => "server_token_not_json",
        ServerTokenError::MissingFields { .. } => "server_token_missing_fields",
        ServerTokenError::BadExpiry { .. } => "server_token_bad_expiry",
        ServerTokenError::Key { .. } => {
            tracing::error!(error = %e, "token key pair unusable");
            return CoreError::new(ErrorKind::Internal, "token_key_unusable", e.to_string());
        }
    };
    let mut err = CoreError::invalid(code, e.to_string());
    if let ServerTokenError::MissingFields { fields } = &e {
        err = err.with_details(json!({ "missing_fields": fields }));
    }
    err
}

impl Core {
    fn view_with(&self, r: &AdeTokenRecord, state: &SyncState) -> AdeToken {
        let now = self.clock.now();
        let status = match (r.has_credentials, r.expires_at) {
            (false, _) | (true, None) => TokenStatus::Pending,
            (true, Some(exp)) if exp <= now => TokenStatus::Expired,
            _ if r.terms_not_signed_at.is_some() => TokenStatus::TermsNotSigned,
            (true, Some(exp)) if exp - now <= self.settings.expiry_warning => TokenStatus::Expiring,
            (true, Some(_)) => TokenStatus::Active,
        };
        let a = &r.account;
        AdeToken {
            id: r.id,
            name: r.name.clone(),
            apple_id: r.apple_id.clone(),
            status,
            expires_at: r.expires_at,
            days_left: r
                .expires_at
                .filter(|_| r.has_credentials)
                .map(|exp| days_left(now, exp)),
            consumer_key_fingerprint: r.consumer_key_hash.as_deref().map(fingerprint),
            certificate_serial: certificate_serial(&r.certificate_pem),
            device_count: r.device_count,
            removed_device_count: r.removed_device_count,
            profile_count: r.profile_count,
            default_profile_id: r.default_profile_id,
            abm: AbmInfo {
                server_name: a.server_name.clone(),
                server_uuid: a.server_uuid.clone(),
                admin_id: a.admin_id.clone(),
                org_name: a.org_name.clone(),
                org_email: a.org_email.clone(),
                org_phone: a.org_phone.clone(),
                org_type: a.org_type.clone(),
                org_id: a.org_id.clone(),
                checked_at: a.checked_at,
            },
            status_message: (status == TokenStatus::TermsNotSigned).then(|| crate::abm::TERMS_MESSAGE.to_string()),
            sync: SyncSummary {
                last_sync_at: state.last_sync_at,
                last_result: state.last_sync_status.clone(),
                last_error: state.last_sync_error.clone(),
                last_success_at: state.last_success_at,
                last_full_sync_at: state.last_full_sync_at,
                next_sync_at: if r.has_credentials { state.next_sync_at } else { None },
            },
            created_at: r.created_at,
            activated_at: r.activated_at,
            renewed_at: r.renewed_at,
            updated_at: r.updated_at,
        }
    }

    async fn view(&self, r: &AdeTokenRecord) -> Result<AdeToken, CoreError> {
        let state = self.store.sync_state(r.id).await?;
        Ok(self.view_with(r, &state))
    }

    async fn record(&self, id: i64) -> Result<AdeTokenRecord, CoreError> {
        self.store.ade_token_get(id).await?.ok_or_else(|| not_found(id))
    }

    /// Creates a pending token with a fresh RSA-2048 key pair and self-signed certificate.
    pub async fn ade_token_create(&self, actor: &Actor, name: &str) -> Result<AdeToken, CoreError> {
        let name = valid_name(name)?;
        if let Some(existing) = self.store.ade_token_find_by_name(&name).await? {
            return Err(CoreError::conflict(
                "ade_token_name_taken",
                format!(
                    "a token named \"{}\" already exists (id {}); choose another name",
                    existing.name, existing.id
                ),
            ));
        }
        let now = self.clock.now();
        let common_name: String = format!("Russet ADE {name}").chars().take(64).collect();
        // RSA key generation takes tens of milliseconds: keep it off the async workers.
        let pair = tokio::task::spawn_blocking(move || {
            server_token::generate_key_pair(&common_name, now, CERTIFICATE_VALIDITY_DAYS)
        })
        .await
        .map_err(|e| {
            CoreError::new(
                ErrorKind::Internal,
                "internal",
                format!("key generation was interrupted: {e}"),
            )
        })?
        .map_err(file_error)?;
        let audit = NewAuditEntry::new(
            now,
            actor,
            "ade_token.create",
            "ade_token",
            format!("created pending token \"{name}\""),
        )
        .details(json!({ "name": name }));
        let record = self
            .store
            .ade_token_create(&name, &pair.private_key_pem, &pair.certificate_pem, now, audit)
            .await
            .map_err(|e| match e {
                // Lost a race with another request creating the same name.
                russet_store::StoreError::Constraint { .. } => CoreError::conflict(
                    "ade_token_name_taken",
                    format!("a token named \"{name}\" already exists; choose another name"),
                ),
                other => other.into(),
            })?;
        tracing::info!(token_id = record.id, name = %record.name, "ADE token created");
        self.view(&record).await
    }

    pub async fn ade_token_list(&self) -> Result<Vec<AdeToken>, CoreError> {
        let mut out = Vec::new();
        for r in self.store.ade_token_list().await? {
            out.push(self.view(&r).await?);
        }
        Ok(out)
    }

    pub async fn ade_token_get(&self, id: i64) -> Result<AdeToken, CoreError> {
        self.view(&self.record(id).await?).await
    }

    /// The PEM certificate the administrator uploads to ABM for this token's MDM server.
    pub async fn ade_token_public_key(&self, id: i64) -> Result<PublicKey, CoreError> {
        let r = self.record(id).await?;
        let slug: String = r
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let slug = if slug.is_empty() {
            format!("token-{}", r.id)
        } else {
            slug
        };
        Ok(PublicKey {
            pem: r.certificate_pem,
            file_name: format!("russet-ade-{slug}-public-key.pem"),
        })
    }

    /// Accepts a server token (.p7m) for a token: the first one, or a renewal in place.
    pub async fn ade_token_upload(
        &self,
        actor: &Actor,
        id: i64,
        upload: ServerTokenUpload<'_>,
    ) -> Result<UploadOutcome, CoreError> {
        let record = self.record(id).await?;
        let apple_id = valid_apple_id(upload.apple_id)?;
        let renewal = record.has_credentials;
        match (upload.intent, renewal) {
            (UploadIntent::Initial, true) => {
                return Err(CoreError::conflict(
                    "ade_token_already_active",
                    format!(
                        "token \"{}\" already has a server token (expires {}); to replace it, renew the token \
                         (`russet ade-token renew {}`)",
                        record.name,
                        record.expires_at.map(fmt_time).unwrap_or_default(),
                        record.id
                    ),
                ));
            }
            (UploadIntent::Renewal, false) => {
                return Err(CoreError::conflict(
                    "ade_token_pending",
                    format!(
                        "token \"{}\" has no server token yet, so there is nothing to renew; upload its first server \
                         token instead (`russet ade-token upload {}`)",
                        record.name, record.id
                    ),
                ));
            }
            _ => {}
        }

        let envelope = EncryptedServerToken::parse(upload.file).map_err(file_error)?;
        let key_pem = self
            .store
            .ade_token_private_key(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let (key, cert) =
            server_token::load_key_pair(key_pem.expose_secret(), &record.certificate_pem).map_err(file_error)?;
        if !envelope.is_for(&cert) {
            return Err(self.wrong_key_error(&record, &envelope).await?);
        }
        let token = envelope.decrypt(&key, &cert).map_err(file_error)?;
        let now = self.clock.now();
        if token.access_token_expiry <= now {
            return Err(CoreError::invalid(
                "server_token_expired",
                format!(
                    "this server token expired on {} ({} days ago); ABM issues a new one: in Apple Business Manager open \
                     Preferences › your MDM server › Download Token, then upload that file",
                    fmt_time(token.access_token_expiry),
                    (now - token.access_token_expiry).whole_days()
                ),
            )
            .with_details(json!({ "expired_at": fmt_time(token.access_token_expiry) })));
        }

        let ck_hash = consumer_key_hash(&token.consumer_key);
        if let Some(other) = self.store.ade_token_find_by_consumer_key_hash(&ck_hash).await?
            && other.id != record.id
        {
            return Err(CoreError::conflict(
                "abm_server_already_connected",
                format!(
                    "this server token belongs to the ABM MDM server already connected as token \"{}\" (id {}); \
                     connecting it twice would list its devices twice. Renew token \"{}\" instead",
                    other.name, other.id, other.name
                ),
            ));
        }

        let mut forced = false;
        let mut previous_expiry = None;
        let mut same_file = false;
        if renewal {
            let stored = self
                .store
                .ade_token_credentials(id)
                .await?
                .ok_or_else(|| not_found(id))?;
            let current = ServerToken::from_message(stored.expose_secret().as_bytes()).map_err(|e| {
                tracing::error!(token_id = id, error = %e, "stored credentials unreadable");
                CoreError::new(
                    ErrorKind::Internal,
                    "secret_unreadable",
                    "the stored server token could not be read",
                )
            })?;
            previous_expiry = Some(current.access_token_expiry);
            same_file = current.access_token.expose_secret() == token.access_token.expose_secret()
                && current.consumer_key == token.consumer_key;
            if same_file && record.apple_id.as_deref() == Some(apple_id.as_str()) {
                // The very file already in place, with the same Apple ID: nothing to do.
                return Ok(UploadOutcome {
                    token: self.view(&record).await?,
                    result: "unchanged".into(),
                    previous_expires_at: previous_expiry,
                    apple_id_changed: false,
                    forced: false,
                    warnings: Vec::new(),
                });
            }
            if current.consumer_key != token.consumer_key {
                if !upload.force {
                    return Err(CoreError::conflict(
                        "consumer_key_mismatch",
                        format!(
                            "this server token comes from a different MDM server in Apple Business Manager than the one \
                             token \"{}\" is connected to (consumer key {} instead of {}). Renewing with it would lose \
                             the {} and {} of this token. Download the token of the same MDM server \
                             in ABM; if you really moved to another MDM server, repeat with force",
                            record.name,
                            consumer_key_fingerprint(&token.consumer_key),
                            record.consumer_key_hash.as_deref().map(fingerprint).unwrap_or_default(),
                            count(record.device_count, "device"),
                            count(record.profile_count, "enrollment profile")
                        ),
                    ));
                }
                forced = true;
            } else if token.access_token_expiry < current.access_token_expiry {
                if !upload.force {
                    return Err(CoreError::conflict(
                        "older_server_token",
                        format!(
                            "this server token expires on {}, before the one token \"{}\" already has ({}): it is an \
                             older download, and ABM invalidated it when the newer one was made. Upload the most \
                             recently downloaded token, or download a new one",
                            fmt_time(token.access_token_expiry),
                            record.name,
                            fmt_time(current.access_token_expiry)
                        ),
                    ));
                }
                forced = true;
            }
        }

        // Ask Apple whether the token works, and about its MDM server (not needed when the
        // credentials in place are this file's).
        let mut warnings = Vec::new();
        let mut account = None;
        let mut terms_pending = false;
        if !same_file {
            let client = self.new_dep_client(&token)?;
            match client.account().await {
                Ok(a) => account = Some(crate::abm::account_from(&a, now)),
                Err(e) if e.is_terms_not_signed() => {
                    terms_pending = true;
                    warnings.push(format!("the token works, but {}", crate::abm::TERMS_MESSAGE.to_lowercase()));
                }
                Err(e @ (DepError::AccessDenied | DepError::Unauthorized { .. })) => {
                    return Err(CoreError::invalid(
                        "server_token_rejected_by_apple",
                        format!(
                            "Apple does not accept this server token ({e}). It was probably replaced by a newer download of \
                             the same MDM server in ABM, which invalidates earlier ones: download the token again and upload \
                             the newest file. Nothing was changed"
                        ),
                    ));
                }
                Err(e) => warnings.push(format!(
                    "Apple could not be reached to check the token ({e}); it was stored anyway and Russet checks it at the \
                     next sync"
                )),
            }
        }
        let apple_id_changed = renewal && record.apple_id.as_deref() != Some(apple_id.as_str());
        let expiry = fmt_time(token.access_token_expiry);
        let (action, result, summary) = if same_file {
            (
                "ade_token.update_apple_id",
                "apple_id_updated",
                format!("recorded Apple ID {apple_id} for token \"{}\"", record.name),
            )
        } else if renewal {
            (
                "ade_token.renew",
                "renewed",
                format!("renewed token \"{}\" until {expiry}", record.name),
            )
        } else {
            (
                "ade_token.upload",
                "activated",
                format!("uploaded the server token of \"{}\" (expires {expiry})", record.name),
            )
        };
        let audit = NewAuditEntry::new(now, actor, action, "ade_token", summary).details(json!({
            "apple_id": apple_id,
            "previous_apple_id": if apple_id_changed { record.apple_id.clone() } else { None },
            "expires_at": fmt_time(token.access_token_expiry),
            "previous_expires_at": previous_expiry.map(fmt_time),
            "consumer_key_fingerprint": fingerprint(&ck_hash),
            "forced": forced,
            "file_format": envelope.format().as_str(),
            "cipher": envelope.content_cipher().name(),
        }));
        let stored = if same_file {
            // The credentials in place are this file's: only the Apple ID changes.
            self.store
                .ade_token_set_apple_id(id, record.version, &apple_id, now, audit)
                .await?
        } else {
            let json = token.to_json();
            let creds = NewCredentials {
                json: &json,
                consumer_key_hash: &ck_hash,
                expires_at: token.access_token_expiry,
                apple_id: &apple_id,
            };
            self.store
                .ade_token_store_credentials(id, record.version, &creds, now, audit)
                .await
                .map_err(|e| match e {
                    russet_store::StoreError::Constraint { .. } => CoreError::conflict(
                        "abm_server_already_connected",
                        "this server token's ABM MDM server was connected to another token at the same moment; nothing \
                     was changed",
                    ),
                    other => other.into(),
                })?
        };
        if let Some(account) = &account {
            self.store.ade_token_set_account(id, account).await?;
        }
        self.store.ade_token_set_terms(id, terms_pending.then_some(now)).await?;
        if forced && record.consumer_key_hash.as_deref() != Some(ck_hash.as_str()) {
            // Another MDM server's credentials: its cursor means nothing here; fetch everything.
            let mut state = self.store.sync_state(id).await?;
            state.cursor = None;
            state.phase = None;
            self.store.sync_state_save(&state).await?;
        }
        tracing::info!(token_id = id, result, forced, expires_at = %fmt_time(token.access_token_expiry), "ADE server token stored");
        if self.settings.sync_on_upload && !same_file && !terms_pending {
            let core = self.clone();
            tokio::spawn(async move {
                if let Err(e) = core.ade_sync_now(id, crate::sync::SyncOrigin::Upload, false).await {
                    tracing::info!(token_id = id, error = %e, "sync after upload not started");
                }
            });
        }
        let stored = self.record(id).await.unwrap_or(stored);
        Ok(UploadOutcome {
            token: self.view(&stored).await?,
            result: result.into(),
            previous_expires_at: previous_expiry,
            apple_id_changed,
            forced,
            warnings,
        })
    }

    /// The error for a server token encrypted to another key, naming the token it was made
    /// for when that token is one of ours.
    async fn wrong_key_error(
        &self,
        record: &AdeTokenRecord,
        envelope: &EncryptedServerToken,
    ) -> Result<CoreError, CoreError> {
        for other in self.store.ade_token_list().await? {
            if other.id == record.id {
                continue;
            }
            let Ok(cert) = openssl_cert(&other.certificate_pem) else {
                continue;
            };
            if envelope.is_for(&cert) {
                return Ok(CoreError::invalid(
                    "server_token_wrong_key",
                    format!(
                        "this server token was made for the public key of token \"{}\" (id {}), not \"{}\": upload it \
                         to token \"{}\", or upload the public key of token \"{}\" to ABM and download the token again",
                        other.name, other.id, record.name, other.name, record.name
                    ),
                ));
            }
        }
        let recipients: Vec<String> = envelope
            .recipients()
            .iter()
            .map(|r| format!("{} serial {}", r.issuer, r.serial))
            .collect();
        Ok(CoreError::invalid(
            "server_token_wrong_key",
            format!(
                "this server token was made for a different public key ({}): upload the public key of token \"{}\" \
                 (`russet ade-token public-key {}`) to the MDM server in ABM and download the token again",
                recipients.join("; "),
                record.name,
                record.id
            ),
        )
        .with_details(json!({ "encrypted_for": recipients })))
    }

    /// Deletes a token with its key material: a pending one always, an active one only when
    /// no devices and no enrollment profiles remain (Intune's rule).
    pub async fn ade_token_delete(&self, actor: &Actor, id: i64) -> Result<(), CoreError> {
        let record = self.record(id).await?;
        let blocked = || {
            let mut what = Vec::new();
            if record.device_count > 0 {
                what.push(count(record.device_count, "device"));
            }
            if record.profile_count > 0 {
                what.push(count(record.profile_count, "enrollment profile"));
            }
            CoreError::conflict(
                "ade_token_in_use",
                format!(
                    "token \"{}\" still has {}: release its devices from this MDM server in Apple Business Manager and \
                     sync, delete its enrollment profiles, then delete the token",
                    record.name,
                    what.join(" and ")
                ),
            )
            .with_details(json!({ "devices": record.device_count, "profiles": record.profile_count }))
        };
        if record.device_count > 0 || record.profile_count > 0 {
            return Err(blocked());
        }
        let now = self.clock.now();
        let audit = NewAuditEntry::new(
            now,
            actor,
            "ade_token.delete",
            "ade_token",
            format!("deleted token \"{}\"", record.name),
        )
        .details(json!({ "name": record.name, "was_pending": !record.has_credentials }));
        self.store
            .ade_token_delete(id, record.version, audit)
            .await
            .map_err(|e| match e {
                // A device or profile arrived between the check and the delete.
                russet_store::StoreError::Constraint { .. } => blocked(),
                other => other.into(),
            })?;
        tracing::info!(token_id = id, name = %record.name, "ADE token deleted");
        Ok(())
    }
}

fn openssl_cert(pem: &str) -> Result<openssl::x509::X509, openssl::error::ErrorStack> {
    openssl::x509::X509::from_pem(pem.as_bytes())
}

fn certificate_serial(pem: &str) -> String {
    openssl_cert(pem)
        .ok()
        .and_then(|c| c.serial_number().to_bn().ok())
        .and_then(|bn| bn.to_hex_str().ok().map(|s| s.to_string()))
        .unwrap_or_default()
}
