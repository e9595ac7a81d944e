//! Apps and Books (VPP) location tokens: upload, renew in place, take over from another MDM,
//! sync the location's apps and books, delete.
//!
//! The rules that spare administrators Intune's sharp edges:
//! - a token is keyed by Apple's location id, read from `/client/config` with the file, so a
//!   second file for a location Russet already has can only renew that token (same id,
//!   licences kept), whether or not the old file has expired; uploading it as a new token is
//!   refused with the existing token's id;
//! - a renewal must be for the same location;
//! - a location another MDM manages is refused unless the administrator says `take_over`,
//!   which writes Russet's `mdmInfo` at Apple; a later take-over by someone else is detected
//!   at the next sync and shown;
//! - an app appears once however many tokens hold licences for it;
//! - deleting a token with licences says what goes with it and needs `confirm`.

use russet_apple::vpp::{
    self as apple_vpp, ClientConfig, ClientConfigRequest, MdmInfo, VppClient, VppError, VppTokenFile, VppTokenFileError,
};
use russet_store::audit::{Actor, NewAuditEntry};
use russet_store::vpp::{AssetRecord, LicenceRow, NewVppToken, VppLocation, VppRenewal, VppSyncResult, VppTokenRecord};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::ade_tokens::check_apple_id;
use crate::error::{CoreError, ErrorKind};
use crate::{Core, days_left, fmt_time};

/// Largest `.vpptoken` file accepted.
pub const MAX_VPP_TOKEN_BYTES: usize = apple_vpp::MAX_VPP_TOKEN_FILE;
/// Longest accepted token name.
pub const MAX_NAME_LEN: usize = 100;
/// How long a sync holds its lease.
const SYNC_LEASE: Duration = Duration::minutes(10);
/// The wait before the next automatic sync after a failure Apple gave no delay for.
const FAILED_SYNC_RETRY: Duration = Duration::hours(1);
/// The longest wait Apple's Retry-After may impose on the next automatic sync.
const MAX_RETRY_AFTER: Duration = Duration::hours(24);
/// The settings key of this installation's MDM identity at Apple (`mdmInfo.id`).
const MDM_ID_SETTING: &str = "vpp_mdm_id";

/// Where a VPP token stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VppTokenStatus {
    Valid,
    /// Valid, expiring within the warning window.
    Expiring,
    Expired,
    /// Apple revoked the token (9625): a newer token was downloaded or it was revoked in ABM.
    Revoked,
    /// Apple does not accept the token (9622), e.g. after the account's password changed.
    Invalid,
    /// Another MDM manages the location: Russet must not manage its licences.
    OwnedByOtherMdm,
}

/// The MDM Apple says manages the location.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VppOwner {
    pub id: Option<String>,
    pub name: Option<String>,
    /// True when it is this Russet installation.
    pub is_russet: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub claimed_at: Option<OffsetDateTime>,
}

/// The last and next sync of a VPP token.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VppSyncSummary {
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
    pub next_sync_at: Option<OffsetDateTime>,
}

/// A VPP location token as administrators see it. Holds no secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VppToken {
    pub id: i64,
    /// The display name.
    pub name: String,
    /// The Managed Apple Account that downloaded the token (needed to renew it).
    pub apple_id: Option<String>,
    /// `business` or `education`.
    pub account_type: String,
    pub status: VppTokenStatus,
    /// What the status means and what to do.
    pub status_message: String,
    pub location_id: String,
    pub location_name: String,
    pub org_name: String,
    /// The App Store country (ISO 3166 alpha-2).
    pub country: Option<String>,
    pub default_platform: Option<String>,
    pub website_url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Whole days until expiry, negative once expired.
    pub days_left: i64,
    pub owner: VppOwner,
    pub app_count: i64,
    pub licences_total: i64,
    pub licences_assigned: i64,
    pub sync: VppSyncSummary,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub renewed_at: Option<OffsetDateTime>,
}

/// An uploaded `.vpptoken` and its options.
pub struct VppUpload<'a> {
    pub file: &'a [u8],
    /// The display name (a new token only; defaults to the location's name).
    pub name: Option<&'a str>,
    pub apple_id: Option<&'a str>,
    /// `business` or `education` (a new token only; defaults to `business`).
    pub account_type: Option<&'a str>,
    /// Take the location over from the MDM that manages it now.
    pub take_over: bool,
}

/// The result of an upload or renewal.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VppUploadOutcome {
    pub token: VppToken,
    /// `created`, `renewed` or `unchanged` (the same file again).
    pub result: String,
    /// The expiry before a renewal.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_expires_at: Option<OffsetDateTime>,
    /// The MDM Russet took the location over from.
    pub taken_over_from: Option<String>,
    pub warnings: Vec<String>,
}

/// One token's licences for an app or book.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VppLicences {
    pub token_id: i64,
    pub token_name: String,
    /// `STDQ` or `PLUS`.
    pub pricing: String,
    pub total: i64,
    pub assigned: i64,
    pub available: i64,
    pub retired: i64,
    pub device_assignable: bool,
    pub revocable: bool,
}

/// An app or book, once, with the licences of every token holding it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VppAsset {
    /// Apple's product id.
    pub adam_id: String,
    /// `App`, `Book` or what Apple said.
    pub product_type: String,
    pub platforms: Vec<String>,
    pub total: i64,
    pub assigned: i64,
    pub available: i64,
    pub licences: Vec<VppLicences>,
}

/// What a delete removed (or, refused, would remove).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VppDeleteImpact {
    /// Apps and books only this token holds: they disappear from Russet.
    pub apps_removed: Vec<String>,
    /// Apps and books other tokens also hold: they stay with those tokens' licences.
    pub apps_kept: i64,
    pub licences_total: i64,
    pub licences_assigned: i64,
    pub message: String,
}

fn not_found(id: i64) -> CoreError {
    CoreError::not_found(
        "vpp_token_not_found",
        format!("there is no Apps and Books token with id {id}"),
    )
}

/// The SHA-256 (hex) identifying a file's bearer text.
fn bearer_sha256(bearer: &SecretString) -> String {
    hex::encode(Sha256::digest(bearer.expose_secret().as_bytes()))
}

/// Turns a `.vpptoken` parse failure into the administrator's error.
pub fn file_error(e: VppTokenFileError) -> CoreError {
    let code = match &e {
        VppTokenFileError::TooLarge { .. } => {
            return CoreError::new(ErrorKind::TooLarge, "vpp_token_too_large", e.to_string());
        }
        VppTokenFileError::Empty => "vpp_token_empty",
        VppTokenFileError::NotBase64 => "vpp_token_not_base64",
        VppTokenFileError::NotJson { .. } => "vpp_token_not_json",
        VppTokenFileError::MissingToken | VppTokenFileError::MissingExpDate | VppTokenFileError::MissingOrgName => {
            "vpp_token_missing_fields"
        }
        VppTokenFileError::BadExpDate { .. } => "vpp_token_bad_expiry",
    };
    CoreError::invalid(code, e.to_string())
}

fn apple_error(e: &VppError) -> CoreError {
    let (kind, code) = if e.is_revoked() {
        (ErrorKind::Upstream, "vpp_token_revoked")
    } else if e.is_expired() {
        (ErrorKind::Upstream, "vpp_token_expired")
    } else if e.is_invalid() || e.is_unauthorized() {
        (ErrorKind::Upstream, "vpp_token_invalid")
    } else if e.is_transient() {
        (ErrorKind::Unavailable, "apple_unavailable")
    } else {
        (ErrorKind::Upstream, "apple_error")
    };
    let mut err = CoreError::new(kind, code, e.to_string());
    if let Some(after) = e.retry_after() {
        err.retry_after = Some(after.as_secs().max(1));
    }
    err
}

/// What Apple's answer says of the token itself, for the token's row.
fn apple_state_of(e: &VppError) -> Option<&'static str> {
    if e.is_revoked() {
        Some("revoked")
    } else if e.is_expired() {
        Some("expired")
    } else if e.is_invalid() || e.is_unauthorized() {
        Some("invalid")
    } else {
        None
    }
}

fn location_of(config: &ClientConfig, org_name: &str) -> VppLocation {
    VppLocation {
        location_uid: config.uid.clone(),
        location_name: if config.location_name.trim().is_empty() {
            "(unnamed location)".into()
        } else {
            config.location_name.clone()
        },
        org_name: org_name.to_string(),
        country: config.country.clone(),
        default_platform: config.default_platform.clone(),
        website_url: config.website_url.clone(),
        mdm_id: config.mdm_info.as_ref().map(|m| m.id.clone()),
        mdm_name: config.mdm_info.as_ref().map(|m| m.name.clone()),
    }
}

fn valid_name(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    let bad = |why: String| CoreError::invalid("invalid_name", why);
    if name.is_empty() {
        return Err(bad("the token needs a name, e.g. \"Apps – Paris office\"".into()));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(bad(format!(
            "the token name is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.chars().count()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("the token name must not contain control characters".into()));
    }
    Ok(name.to_string())
}

fn valid_account_type(t: Option<&str>) -> Result<&'static str, CoreError> {
    match t.map(|t| t.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("business") => Ok("business"),
        Some("education") | Some("school") => Ok("education"),
        Some(other) => Err(CoreError::invalid(
            "invalid_account_type",
            format!(
                "the account type \"{other}\" is not known: give business (Apple Business Manager) or education (Apple School Manager)"
            ),
        )),
    }
}

/// A licence count for a signed column (Apple's counts are far below `i64::MAX`).
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn licence_rows(assets: &[apple_vpp::Asset]) -> Vec<LicenceRow> {
    assets
        .iter()
        .map(|a| LicenceRow {
            adam_id: a.adam_id.clone(),
            product_type: a.product_type.to_string(),
            platforms: a.platforms.join(","),
            pricing_param: a.pricing_param.clone(),
            total: count(a.total),
            assigned: count(a.assigned),
            available: count(a.available),
            retired: count(a.retired),
            device_assignable: a.device_assignable,
            revocable: a.revocable,
        })
        .collect()
}

impl Core {
    /// This installation's identity at Apple (`mdmInfo`), the same for every process
    /// sharing the database.
    async fn vpp_mdm_info(&self) -> Result<MdmInfo, CoreError> {
        let id = self
            .vpp_mdm_id
            .get_or_try_init(|| async {
                let mut fresh = [0u8; 16];
                russet_store::crypto::random_bytes(&mut fresh).map_err(russet_store::StoreError::from)?;
                self.store
                    .setting_get_or_init(MDM_ID_SETTING, &format!("russet-{}", hex::encode(fresh)))
                    .await
            })
            .await?
            .clone();
        Ok(MdmInfo {
            id,
            name: format!("Russet ({})", self.settings.organization),
            metadata: Some(env!("CARGO_PKG_VERSION").to_string()),
        })
    }

    fn vpp_client(&self, bearer: SecretString) -> Result<VppClient, CoreError> {
        VppClient::new(self.settings.vpp.clone(), bearer)
            .map_err(|e| CoreError::new(ErrorKind::Internal, "vpp_client", e.to_string()))
    }

    fn vpp_view(&self, r: &VppTokenRecord, our_mdm_id: &str) -> VppToken {
        let now = self.clock.now();
        let ours = r.mdm_id.as_deref() == Some(our_mdm_id);
        let other = r.mdm_id.is_some() && !ours;
        let status = match r.apple_state.as_str() {
            "revoked" => VppTokenStatus::Revoked,
            "invalid" => VppTokenStatus::Invalid,
            _ if r.expires_at <= now || r.apple_state == "expired" => VppTokenStatus::Expired,
            _ if other => VppTokenStatus::OwnedByOtherMdm,
            _ if r.expires_at - now <= self.settings.expiry_warning => VppTokenStatus::Expiring,
            _ => VppTokenStatus::Valid,
        };
        let renew = format!(
            "in Apple Business Manager (Preferences › Payments and Billing › Apps and Books) sign in as {} and \
             download the token for location \"{}\", then `russet vpp-token renew {} --file <file>`",
            r.apple_id.as_deref().unwrap_or("the account that downloaded it"),
            r.location_name,
            r.id
        );
        let status_message = match status {
            VppTokenStatus::Valid => "the token is valid".to_string(),
            VppTokenStatus::Expiring => format!("the token expires on {}: {renew}", fmt_time(r.expires_at)),
            VppTokenStatus::Expired => format!(
                "the token expired on {}: apps cannot be assigned or updated until it is renewed; {renew} \
                 (renewing keeps the token's apps and assignments)",
                fmt_time(r.expires_at)
            ),
            VppTokenStatus::Revoked => {
                format!("Apple revoked the token (a newer one was downloaded, or it was revoked): {renew}")
            }
            VppTokenStatus::Invalid => format!(
                "Apple no longer accepts the token (the downloading account's password may have changed): {renew}"
            ),
            VppTokenStatus::OwnedByOtherMdm => format!(
                "another MDM ({}) took over this location: Russet no longer manages its licences; to manage them \
                 here again, take it back with `russet vpp-token renew {} --file <file> --take-over`",
                r.mdm_name.as_deref().unwrap_or("unnamed"),
                r.id
            ),
        };
        VppToken {
            id: r.id,
            name: r.name.clone(),
            apple_id: r.apple_id.clone(),
            account_type: r.account_type.clone(),
            status,
            status_message,
            location_id: r.location_uid.clone(),
            location_name: r.location_name.clone(),
            org_name: r.org_name.clone(),
            country: r.country.clone(),
            default_platform: r.default_platform.clone(),
            website_url: r.website_url.clone(),
            expires_at: r.expires_at,
            days_left: days_left(now, r.expires_at),
            owner: VppOwner {
                id: r.mdm_id.clone(),
                name: r.mdm_name.clone(),
                is_russet: ours,
                claimed_at: r.claimed_at,
            },
            app_count: r.asset_count,
            licences_total: r.licences_total,
            licences_assigned: r.licences_assigned,
            sync: VppSyncSummary {
                last_sync_at: r.last_sync_at,
                last_result: r.last_sync_status.clone(),
                last_error: r.last_sync_error.clone(),
                last_success_at: r.last_success_at,
                next_sync_at: r.next_sync_at,
            },
            created_at: r.created_at,
            renewed_at: r.renewed_at,
        }
    }

    async fn vpp_record(&self, id: i64) -> Result<VppTokenRecord, CoreError> {
        self.store.vpp_token_get(id).await?.ok_or_else(|| not_found(id))
    }

    pub async fn vpp_token_list(&self) -> Result<Vec<VppToken>, CoreError> {
        let ours = self.vpp_mdm_info().await?.id;
        Ok(self
            .store
            .vpp_token_list()
            .await?
            .iter()
            .map(|r| self.vpp_view(r, &ours))
            .collect())
    }

    pub async fn vpp_token_get(&self, id: i64) -> Result<VppToken, CoreError> {
        let ours = self.vpp_mdm_info().await?.id;
        Ok(self.vpp_view(&self.vpp_record(id).await?, &ours))
    }

    /// Reads a file and asks Apple what location it is for; refuses an expired file.
    async fn vpp_read_file(&self, file: &[u8]) -> Result<(VppTokenFile, VppClient, ClientConfig), CoreError> {
        let parsed = apple_vpp::parse_vpp_token(file).map_err(file_error)?;
        let now = self.clock.now();
        if parsed.is_expired_at(now) {
            return Err(CoreError::invalid(
                "vpp_token_expired",
                format!(
                    "this Apps and Books token expired on {}: download a new one in Apple Business Manager \
                     (Preferences › Payments and Billing › Apps and Books) and upload that",
                    fmt_time(parsed.expires_at)
                ),
            )
            .with_details(json!({ "expired_at": fmt_time(parsed.expires_at) })));
        }
        let client = self.vpp_client(parsed.bearer().clone())?;
        let config = client.client_config().await.map_err(|e| apple_error(&e))?;
        if config.uid.trim().is_empty() {
            return Err(CoreError::new(
                ErrorKind::Upstream,
                "apple_error",
                "Apple's answer about this token names no location (no uId): try again later",
            ));
        }
        Ok((parsed, client, config))
    }

    /// Decides on the owner: returns the MDM taken over from, after writing Russet's
    /// `mdmInfo` when the location is not Russet's yet.
    async fn vpp_claim(
        &self,
        client: &VppClient,
        config: &mut ClientConfig,
        take_over: bool,
    ) -> Result<(Option<String>, Option<OffsetDateTime>), CoreError> {
        let ours = self.vpp_mdm_info().await?;
        let current = config.mdm_info.clone();
        match &current {
            Some(m) if m.id == ours.id => return Ok((None, None)),
            Some(m) if !take_over => {
                return Err(CoreError::conflict(
                    "vpp_owned_by_other_mdm",
                    format!(
                        "the location \"{}\" is managed by another MDM ({}, id {}): managing it from two MDMs loses \
                         licence assignments. If that MDM is being retired, upload again with take_over \
                         (`--take-over`) to move the location to Russet",
                        config.location_name, m.name, m.id
                    ),
                )
                .with_details(json!({ "mdm_id": m.id, "mdm_name": m.name })));
            }
            _ => {}
        }
        let updated = client
            .set_client_config(&ClientConfigRequest {
                mdm_info: Some(ours.clone()),
                ..ClientConfigRequest::default()
            })
            .await
            .map_err(|e| apple_error(&e))?;
        *config = updated;
        if config.mdm_info.as_ref().map(|m| m.id.as_str()) != Some(ours.id.as_str()) {
            return Err(CoreError::new(
                ErrorKind::Upstream,
                "apple_error",
                "Apple did not record Russet as the location's MDM: try again later",
            ));
        }
        Ok((current.map(|m| m.name), Some(self.clock.now())))
    }

    /// Uploads a `.vpptoken` as a new token. A file for a location Russet already has is
    /// refused with the token to renew instead.
    pub async fn vpp_token_upload(&self, actor: &Actor, upload: VppUpload<'_>) -> Result<VppUploadOutcome, CoreError> {
        let account_type = valid_account_type(upload.account_type)?;
        let apple_id = upload
            .apple_id
            .map(|a| check_apple_id(a, "the Managed Apple Account that downloaded this token"))
            .transpose()?;
        let name = upload.name.map(valid_name).transpose()?;
        let (parsed, client, mut config) = self.vpp_read_file(upload.file).await?;
        if let Some(existing) = self.store.vpp_token_find_by_location(&config.uid).await? {
            return Err(CoreError::conflict(
                "vpp_location_exists",
                format!(
                    "this file is a token for the location \"{}\", which Russet already has as token {} (\"{}\"): \
                     renew that token instead (`russet vpp-token renew {} --file <file>`), so its apps and \
                     assignments are kept; a second token for one location would duplicate them",
                    config.location_name, existing.id, existing.name, existing.id
                ),
            )
            .with_details(json!({ "existing_token_id": existing.id })));
        }
        let name = match name {
            Some(n) => n,
            None if !config.location_name.trim().is_empty() => valid_name(&config.location_name)?,
            None => valid_name(&parsed.org_name)?,
        };
        if let Some(existing) = self.store.vpp_token_find_by_name(&name).await? {
            return Err(CoreError::conflict(
                "vpp_token_name_taken",
                format!(
                    "a token named \"{}\" already exists (id {}); choose another name",
                    existing.name, existing.id
                ),
            ));
        }
        let (taken_over_from, claimed_at) = self.vpp_claim(&client, &mut config, upload.take_over).await?;
        let now = self.clock.now();
        let location = location_of(&config, &parsed.org_name);
        let expires_at = config.token_expiration.unwrap_or(parsed.expires_at);
        let sha = bearer_sha256(parsed.bearer());
        let audit = NewAuditEntry::new(
            now,
            actor,
            "vpp_token.create",
            "vpp_token",
            format!(
                "added Apps and Books token \"{name}\" for location \"{}\"",
                location.location_name
            ),
        )
        .details(json!({
            "location_id": location.location_uid,
            "location_name": location.location_name,
            "expires_at": fmt_time(expires_at),
            "taken_over_from": taken_over_from,
        }));
        let record = self
            .store
            .vpp_token_create(
                &NewVppToken {
                    name: &name,
                    apple_id: apple_id.as_deref(),
                    account_type,
                    location: &location,
                    bearer: parsed.bearer(),
                    token_sha256: &sha,
                    expires_at,
                    claimed_at,
                    now,
                    next_sync_at: now,
                },
                audit,
            )
            .await
            .map_err(|e| match e {
                russet_store::StoreError::Constraint { .. } => CoreError::conflict(
                    "vpp_location_exists",
                    "another request added a token for this location or with this name at the same time; list the \
                     tokens and renew the existing one",
                ),
                other => other.into(),
            })?;
        tracing::info!(token_id = record.id, location = %record.location_name, "Apps and Books token added");
        let mut warnings = Vec::new();
        if let Some(from) = &taken_over_from {
            warnings.push(format!(
                "the location was taken over from {from}: remove it from that MDM so both do not manage its licences"
            ));
        }
        self.vpp_sync_after_upload(record.id);
        Ok(VppUploadOutcome {
            token: self.vpp_token_get(record.id).await?,
            result: "created".into(),
            previous_expires_at: None,
            taken_over_from,
            warnings,
        })
    }

    /// Renews a token in place with a new file for the same location, expired or not.
    pub async fn vpp_token_renew(
        &self,
        actor: &Actor,
        id: i64,
        upload: VppUpload<'_>,
    ) -> Result<VppUploadOutcome, CoreError> {
        let record = self.vpp_record(id).await?;
        let apple_id = upload
            .apple_id
            .map(|a| check_apple_id(a, "the Managed Apple Account that downloaded this token"))
            .transpose()?;
        let (parsed, client, mut config) = self.vpp_read_file(upload.file).await?;
        if config.uid != record.location_uid {
            let holder = self.store.vpp_token_find_by_location(&config.uid).await?;
            let hint = match holder {
                Some(h) => format!("it belongs to token {} (\"{}\"): renew that one instead", h.id, h.name),
                None => "to add that location, upload the file as a new token (`russet vpp-token upload`)".to_string(),
            };
            return Err(CoreError::conflict(
                "vpp_location_mismatch",
                format!(
                    "this file is for the location \"{}\" but token {} is for \"{}\": a renewal must be for the same \
                     location; {hint}",
                    config.location_name, record.id, record.location_name
                ),
            )
            .with_details(json!({ "file_location_id": config.uid, "token_location_id": record.location_uid })));
        }
        let sha = bearer_sha256(parsed.bearer());
        let now = self.clock.now();
        let ours = self.vpp_mdm_info().await?.id;
        if sha == record.token_sha256
            && record.apple_state == "ok"
            && apple_id.is_none()
            && config.mdm_info.as_ref().map(|m| &m.id) == Some(&ours)
        {
            return Ok(VppUploadOutcome {
                token: self.vpp_view(&record, &ours),
                result: "unchanged".into(),
                previous_expires_at: Some(record.expires_at),
                taken_over_from: None,
                warnings: vec!["this is the file already in place; nothing changed".into()],
            });
        }
        let (taken_over_from, claimed_at) = self.vpp_claim(&client, &mut config, upload.take_over).await?;
        let location = location_of(&config, &parsed.org_name);
        let expires_at = config.token_expiration.unwrap_or(parsed.expires_at);
        let audit = NewAuditEntry::new(
            now,
            actor,
            "vpp_token.renew",
            "vpp_token",
            format!("renewed Apps and Books token \"{}\"", record.name),
        )
        .details(json!({
            "previous_expires_at": fmt_time(record.expires_at),
            "expires_at": fmt_time(expires_at),
            "taken_over_from": taken_over_from,
        }));
        let renewed = self
            .store
            .vpp_token_renew(
                id,
                record.version,
                &VppRenewal {
                    apple_id: apple_id.as_deref(),
                    location: &location,
                    bearer: parsed.bearer(),
                    token_sha256: &sha,
                    expires_at,
                    claimed_at,
                    now,
                    next_sync_at: now,
                },
                audit,
            )
            .await?;
        tracing::info!(token_id = id, expires_at = %fmt_time(expires_at), "Apps and Books token renewed");
        self.vpp_sync_after_upload(id);
        let mut warnings = Vec::new();
        if let Some(from) = &taken_over_from {
            warnings.push(format!(
                "the location was taken over from {from}: remove it from that MDM so both do not manage its licences"
            ));
        }
        Ok(VppUploadOutcome {
            token: self.vpp_view(&renewed, &ours),
            result: "renewed".into(),
            previous_expires_at: Some(record.expires_at),
            taken_over_from,
            warnings,
        })
    }

    fn vpp_sync_after_upload(&self, id: i64) {
        if !self.settings.sync_on_upload {
            return;
        }
        let core = self.clone();
        tokio::spawn(async move {
            if let Err(e) = core.vpp_token_sync(id).await {
                tracing::warn!(token_id = id, error = %e, "sync after upload failed");
            }
        });
    }

    /// Syncs a token now: what Apple says of the token and its location, then every asset
    /// with its licence counts. A failure is recorded on the token (and returned).
    pub async fn vpp_token_sync(&self, id: i64) -> Result<VppToken, CoreError> {
        let record = self.vpp_record(id).await?;
        let lease = format!("vpp:sync:{id}");
        let owner = self.instance.to_string();
        let now = self.clock.now();
        if !self.store.lease_acquire(&lease, &owner, now, SYNC_LEASE).await? {
            return Err(CoreError::conflict(
                "sync_running",
                format!("token {id} is being synced right now; wait for it to finish"),
            ));
        }
        let result = self.vpp_sync_locked(&record).await;
        let _ = self.store.lease_release(&lease, &owner).await;
        result
    }

    async fn vpp_sync_locked(&self, record: &VppTokenRecord) -> Result<VppToken, CoreError> {
        let id = record.id;
        let ours = self.vpp_mdm_info().await?.id;
        let bearer = self.store.vpp_token_bearer(id).await?.ok_or_else(|| not_found(id))?;
        let client = self.vpp_client(bearer)?;
        let outcome = async {
            let config = client.client_config().await?;
            let assets = client.all_assets(&apple_vpp::AssetsQuery::default()).await?.items;
            Ok::<_, VppError>((config, assets))
        }
        .await;
        let now = self.clock.now();
        match outcome {
            Ok((config, assets)) => {
                let location = location_of(&config, &record.org_name);
                let rows = licence_rows(&assets);
                let r = self
                    .store
                    .vpp_token_record_sync(
                        id,
                        &VppSyncResult {
                            now,
                            next_sync_at: now + self.settings.vpp_sync_interval,
                            error: None,
                            apple_state: Some(("ok", None)),
                            location: Some(&location),
                            expires_at: config.token_expiration,
                            licences: Some(&rows),
                        },
                    )
                    .await?;
                if record.mdm_id.as_deref() == Some(ours.as_str()) && location.mdm_id.as_deref() != Some(ours.as_str())
                {
                    tracing::warn!(
                        token_id = id,
                        other_mdm = location.mdm_name.as_deref().unwrap_or("unnamed"),
                        "another MDM took over an Apps and Books location"
                    );
                    let _ = self
                        .store
                        .audit_record(
                            &NewAuditEntry::new(
                                now,
                                &Actor::system(),
                                "vpp_token.taken_over_by_other_mdm",
                                "vpp_token",
                                format!(
                                    "Apple reports that {} now manages location \"{}\"",
                                    location.mdm_name.as_deref().unwrap_or("another MDM"),
                                    location.location_name
                                ),
                            )
                            .target(id)
                            .details(json!({ "mdm_id": location.mdm_id, "mdm_name": location.mdm_name })),
                        )
                        .await;
                }
                tracing::info!(token_id = id, assets = rows.len(), "Apps and Books token synced");
                Ok(self.vpp_view(&r, &ours))
            }
            Err(e) => {
                let state = apple_state_of(&e);
                let wait = e
                    .retry_after()
                    .and_then(|d| Duration::try_from(d).ok())
                    .map(|d| d.clamp(Duration::minutes(1), MAX_RETRY_AFTER))
                    .unwrap_or(FAILED_SYNC_RETRY);
                let message = e.to_string();
                self.store
                    .vpp_token_record_sync(
                        id,
                        &VppSyncResult {
                            now,
                            next_sync_at: now + wait,
                            error: Some(&message),
                            apple_state: state.map(|s| (s, Some(message.as_str()))),
                            location: None,
                            expires_at: None,
                            licences: None,
                        },
                    )
                    .await?;
                tracing::warn!(token_id = id, error = %message, "Apps and Books sync failed");
                Err(apple_error(&e))
            }
        }
    }

    /// Deletes a token. With licences, it is refused unless `confirm`, saying what would go.
    pub async fn vpp_token_delete(&self, actor: &Actor, id: i64, confirm: bool) -> Result<VppDeleteImpact, CoreError> {
        let record = self.vpp_record(id).await?;
        let impact = self.store.vpp_token_delete_impact(id).await?;
        let message = format!(
            "deleting token \"{}\" removes its {} licences ({} assigned) from Russet; {} apps or books only this token \
             holds disappear ({}), {} others stay with their other tokens. Licences already assigned stay assigned at \
             Apple, but Russet can no longer revoke them",
            record.name,
            impact.licences_total,
            impact.licences_assigned,
            impact.assets_only_here.len(),
            impact
                .assets_only_here
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            impact.assets_shared
        );
        let view = VppDeleteImpact {
            apps_removed: impact.assets_only_here.clone(),
            apps_kept: impact.assets_shared,
            licences_total: impact.licences_total,
            licences_assigned: impact.licences_assigned,
            message: message.clone(),
        };
        let has_something = impact.licences_total > 0 || !impact.assets_only_here.is_empty();
        if has_something && !confirm {
            return Err(CoreError::conflict(
                "vpp_delete_needs_confirmation",
                format!("{message}. To delete anyway, confirm (`russet vpp-token delete {id} --confirm`); to replace an expired or revoked file, renew the token instead"),
            )
            .with_details(serde_json::to_value(&view).unwrap_or_default()));
        }
        let audit = NewAuditEntry::new(
            self.clock.now(),
            actor,
            "vpp_token.delete",
            "vpp_token",
            format!("deleted Apps and Books token \"{}\"", record.name),
        )
        .details(json!({
            "location_id": record.location_uid,
            "apps_removed": impact.assets_only_here,
            "licences_total": impact.licences_total,
        }));
        self.store.vpp_token_delete(id, record.version, audit).await?;
        tracing::info!(token_id = id, "Apps and Books token deleted");
        Ok(view)
    }

    /// Apps and books, each once, with every token's licences; `token_id` keeps those of one token.
    pub async fn vpp_assets(&self, token_id: Option<i64>) -> Result<Vec<VppAsset>, CoreError> {
        if let Some(id) = token_id {
            self.vpp_record(id).await?;
        }
        Ok(self
            .store
            .vpp_assets(token_id)
            .await?
            .into_iter()
            .map(|a: AssetRecord| VppAsset {
                total: a.licences.iter().map(|l| l.total).sum(),
                assigned: a.licences.iter().map(|l| l.assigned).sum(),
                available: a.licences.iter().map(|l| l.available).sum(),
                adam_id: a.adam_id,
                product_type: a.product_type,
                platforms: a
                    .platforms
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
                licences: a
                    .licences
                    .into_iter()
                    .map(|l| VppLicences {
                        token_id: l.token_id,
                        token_name: l.token_name,
                        pricing: l.pricing_param,
                        total: l.total,
                        assigned: l.assigned,
                        available: l.available,
                        retired: l.retired,
                        device_assignable: l.device_assignable,
                        revocable: l.revocable,
                    })
                    .collect(),
            })
            .collect())
    }

    /// Syncs the tokens whose automatic sync is due (scheduler).
    pub(crate) async fn vpp_sync_due(&self) {
        let now = self.clock.now();
        let tokens = match self.store.vpp_token_list().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler cannot list Apps and Books tokens");
                return;
            }
        };
        for t in tokens {
            // A revoked or invalid token stays as it is until it is renewed (which syncs it).
            if matches!(t.apple_state.as_str(), "revoked" | "invalid") || t.expires_at <= now {
                continue;
            }
            if t.next_sync_at.is_none_or(|n| n <= now)
                && let Err(e) = self.vpp_token_sync(t.id).await
                && e.code != "sync_running"
            {
                tracing::debug!(token_id = t.id, error = %e, "scheduled Apps and Books sync failed");
            }
        }
    }
}
