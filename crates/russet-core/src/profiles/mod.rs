//! ADE enrollment profiles: created and edited in Russet, defined at Apple (again after
//! every edit: Apple's profiles cannot change), assigned to devices, one of them the
//! token's default for newly synced devices.

pub mod panes;
pub mod settings;

use russet_store::assignments::Selection;
use russet_store::audit::{Actor, NewAuditEntry};
use russet_store::jobs::{JobRecord, NewJob};
use russet_store::profiles::{ProfileRecord, ProfileWrite};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

pub use settings::{Pairing, ProfileSettings};

use crate::Core;
use crate::abm::apple_error;
use crate::error::{CoreError, ErrorKind};

/// Intune's limit of enrollment profiles per token.
pub const MAX_PROFILES_PER_TOKEN: usize = 1000;
/// The most serials one assignment request may name (larger sets: use a filter).
pub const MAX_SERIALS_PER_ACTION: usize = 1_000_000;

/// What administrators see of a profile.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AdeProfile {
    pub id: i64,
    pub token_id: i64,
    pub settings: ProfileSettings,
    /// The profile Apple holds for the current settings.
    pub apple_profile_uuid: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub defined_at: Option<OffsetDateTime>,
    /// Where devices in Setup Assistant send their machine information (`url` at Apple).
    pub enroll_url: String,
    /// The sign-in page shown during Setup Assistant (`configuration_web_url`), with user affinity.
    pub sign_in_url: Option<String>,
    /// Devices still in ABM that should have this profile.
    pub device_count: i64,
    /// New devices of the token get this profile.
    pub is_default: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<OffsetDateTime>,
}

/// The result of an edit.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ProfileEdit {
    pub profile: AdeProfile,
    /// Devices being assigned the new Apple profile.
    pub devices_reassigned: u64,
    /// The assignment job, when devices are reassigned.
    pub job_id: Option<i64>,
    /// What the edit means for devices.
    pub notice: String,
}

/// Which devices an assignment covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssignTarget {
    Serials(Vec<String>),
    /// Devices of the token without a profile.
    Unassigned,
    /// Every device of the token still in ABM.
    Any,
    /// Devices that have the named (or numbered) profile now.
    Profile(String),
}

fn not_found(id: i64) -> CoreError {
    CoreError::not_found(
        "profile_not_found",
        format!("there is no enrollment profile with id {id}"),
    )
}

fn field_errors(errors: settings::FieldErrors) -> CoreError {
    let summary = errors
        .iter()
        .map(|(f, m)| format!("{f}: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    CoreError::invalid("invalid_profile", format!("the profile is not valid: {summary}"))
        .with_details(json!({ "fields": errors }))
}

impl Core {
    fn enroll_urls(&self, enroll_key: &str) -> (String, String) {
        let base = format!("{}/enroll/ade/{enroll_key}", self.settings.public_url);
        (base.clone(), format!("{base}/sign-in"))
    }

    fn profile_view(&self, r: &ProfileRecord) -> Result<AdeProfile, CoreError> {
        let settings: ProfileSettings = serde_json::from_value(r.settings.clone()).map_err(|e| {
            CoreError::new(
                ErrorKind::Internal,
                "internal",
                format!("stored settings of profile {} unreadable: {e}", r.id),
            )
        })?;
        let (enroll_url, sign_in_url) = self.enroll_urls(&r.enroll_key);
        Ok(AdeProfile {
            id: r.id,
            token_id: r.token_id,
            sign_in_url: settings.user_affinity.then_some(sign_in_url),
            settings,
            apple_profile_uuid: r.apple_profile_uuid.clone(),
            defined_at: r.defined_at,
            enroll_url,
            device_count: r.device_count,
            is_default: r.is_default,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }

    async fn profile_record(&self, id: i64) -> Result<ProfileRecord, CoreError> {
        self.store.profile_get(id).await?.ok_or_else(|| not_found(id))
    }

    /// Defines the profile at Apple and returns its uuid; Apple's validation errors come back
    /// as field errors.
    async fn define_at_apple(&self, token_id: i64, s: &ProfileSettings, enroll_key: &str) -> Result<String, CoreError> {
        let (enroll_url, sign_in_url) = self.enroll_urls(enroll_key);
        if enroll_url.len() + 8 > settings::MAX_URL {
            return Err(CoreError::invalid(
                "invalid_profile",
                format!(
                    "the enrollment URL would be longer than Apple's {} characters: shorten public_url",
                    settings::MAX_URL
                ),
            ));
        }
        let client = self.dep_client(token_id).await?;
        let answer = client.define_profile(&s.to_apple(&enroll_url, &sign_in_url)).await;
        self.note_apple_answer(token_id, &answer).await;
        match answer {
            Ok(r) => Ok(r.profile_uuid),
            Err(e) => {
                if let Some(field) = e.code().and_then(settings::field_of_apple_code) {
                    let mut errors = settings::FieldErrors::new();
                    errors.insert(
                        field,
                        format!("Apple refused the profile: {}", e.code().unwrap_or_default()),
                    );
                    return Err(field_errors(errors));
                }
                Err(apple_error(&e, "defining the enrollment profile"))
            }
        }
    }

    async fn active_token(&self, token_id: i64) -> Result<russet_store::ade_tokens::AdeTokenRecord, CoreError> {
        let token = self.store.ade_token_get(token_id).await?.ok_or_else(|| {
            CoreError::not_found(
                "ade_token_not_found",
                format!("there is no enrollment program token with id {token_id}"),
            )
        })?;
        if !token.has_credentials {
            return Err(CoreError::conflict(
                "ade_token_pending",
                format!(
                    "token \"{}\" has no server token yet: profiles are defined at Apple with it, so upload it first",
                    token.name
                ),
            ));
        }
        Ok(token)
    }

    /// Creates a profile under a token and defines it at Apple.
    pub async fn profile_create(
        &self,
        actor: &Actor,
        token_id: i64,
        settings: &ProfileSettings,
    ) -> Result<AdeProfile, CoreError> {
        let token = self.active_token(token_id).await?;
        let s = settings.validated().map_err(field_errors)?;
        if let Some(existing) = self.store.profile_find_by_name(token_id, &s.name).await? {
            return Err(CoreError::conflict(
                "profile_name_taken",
                format!(
                    "token \"{}\" already has a profile named \"{}\" (id {})",
                    token.name, existing.name, existing.id
                ),
            ));
        }
        if token.profile_count as usize >= MAX_PROFILES_PER_TOKEN {
            return Err(CoreError::conflict(
                "too_many_profiles",
                format!(
                    "token \"{}\" has {MAX_PROFILES_PER_TOKEN} profiles, the most one token may have",
                    token.name
                ),
            ));
        }
        let mut key = [0u8; 12];
        russet_store::crypto::random_bytes(&mut key).map_err(russet_store::StoreError::from)?;
        let enroll_key = hex::encode(key);
        let uuid = self.define_at_apple(token_id, &s, &enroll_key).await?;
        let settings_json = serde_json::to_value(&s).unwrap_or_default();
        let now = self.clock.now();
        let audit = NewAuditEntry::new(
            now,
            actor,
            "ade_profile.create",
            "ade_profile",
            format!("created profile \"{}\"", s.name),
        )
        .details(json!({ "token_id": token_id, "apple_profile_uuid": uuid, "settings": settings_json }));
        let record = self
            .store
            .profile_create(
                token_id,
                &ProfileWrite {
                    name: &s.name,
                    description: s.description.as_deref(),
                    settings: &settings_json,
                    apple_profile_uuid: &uuid,
                },
                &enroll_key,
                now,
                audit,
            )
            .await
            .map_err(|e| match e {
                russet_store::StoreError::Constraint { .. } => CoreError::conflict(
                    "profile_name_taken",
                    format!("a profile named \"{}\" was created at the same moment", s.name),
                ),
                other => other.into(),
            })?;
        self.profile_view(&record)
    }

    pub async fn profile_get(&self, id: i64) -> Result<AdeProfile, CoreError> {
        self.profile_view(&self.profile_record(id).await?)
    }

    pub async fn profile_list(&self, token_id: Option<i64>) -> Result<Vec<AdeProfile>, CoreError> {
        self.store
            .profile_list(token_id)
            .await?
            .iter()
            .map(|r| self.profile_view(r))
            .collect()
    }

    /// Changes some settings (the keys of `changes` replace those of the current settings),
    /// defines the new profile at Apple and reassigns the profile's devices to it.
    pub async fn profile_edit(
        &self,
        actor: &Actor,
        id: i64,
        changes: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<ProfileEdit, CoreError> {
        let record = self.profile_record(id).await?;
        let token = self.active_token(record.token_id).await?;
        let mut merged = record.settings.as_object().cloned().unwrap_or_default();
        for (k, v) in changes {
            merged.insert(k.clone(), v.clone());
        }
        let s: ProfileSettings = serde_json::from_value(serde_json::Value::Object(merged))
            .map_err(|e| CoreError::invalid("invalid_profile", format!("the changes are not valid: {e}")))?;
        let s = s.validated().map_err(field_errors)?;
        if let Some(other) = self.store.profile_find_by_name(record.token_id, &s.name).await?
            && other.id != id
        {
            return Err(CoreError::conflict(
                "profile_name_taken",
                format!(
                    "token \"{}\" already has a profile named \"{}\" (id {})",
                    token.name, other.name, other.id
                ),
            ));
        }
        let uuid = self.define_at_apple(record.token_id, &s, &record.enroll_key).await?;
        let now = self.clock.now();
        let job = if record.device_count > 0 {
            Some(
                self.store
                    .job_create(
                        &NewJob {
                            kind: "assign",
                            token_id: record.token_id,
                            profile_id: Some(id),
                            origin: "profile_edit",
                            mode: None,
                            requested_by: &actor.label,
                            message: Some("devices get the profile defined for the new settings"),
                        },
                        now,
                        None,
                    )
                    .await?,
            )
        } else {
            None
        };
        let settings_json = serde_json::to_value(&s).unwrap_or_default();
        let audit = NewAuditEntry::new(
            now,
            actor,
            "ade_profile.edit",
            "ade_profile",
            format!("edited profile \"{}\"", s.name),
        )
        .details(json!({
            "changed": changes.keys().collect::<Vec<_>>(),
            "previous_apple_profile_uuid": record.apple_profile_uuid,
            "apple_profile_uuid": uuid,
        }));
        let (updated, marked) = self
            .store
            .profile_update(
                id,
                record.version,
                &ProfileWrite {
                    name: &s.name,
                    description: s.description.as_deref(),
                    settings: &settings_json,
                    apple_profile_uuid: &uuid,
                },
                job.as_ref().map(|j| j.id),
                now,
                audit,
            )
            .await?;
        if job.is_some() {
            let core = self.clone();
            let token_id = record.token_id;
            tokio::spawn(async move { core.run_assigner(token_id).await });
        }
        let notice = format!(
            "Apple keeps enrollment profiles unchanged, so Russet defined a new one ({uuid}) and is assigning it to the {marked} \
             device{} of this profile. Devices that already downloaded the previous profile (in Setup Assistant, or enrolled) keep \
             it until they are erased and set up again; only the device name template applies without that.",
            if marked == 1 { "" } else { "s" }
        );
        Ok(ProfileEdit {
            profile: self.profile_view(&updated)?,
            devices_reassigned: marked,
            job_id: job.map(|j| j.id),
            notice,
        })
    }

    /// Deletes a profile that is neither a default nor assigned to devices.
    pub async fn profile_delete(&self, actor: &Actor, id: i64) -> Result<(), CoreError> {
        let record = self.profile_record(id).await?;
        let blocked = |devices: i64, default: bool| {
            let mut why = Vec::new();
            if default {
                why.push("it is the token's default profile (choose another default or clear it)".to_string());
            }
            if devices > 0 {
                why.push(format!(
                    "{devices} device{} should have it (assign them another profile first)",
                    if devices == 1 { "" } else { "s" }
                ));
            }
            CoreError::conflict(
                "profile_in_use",
                format!("profile \"{}\" cannot be deleted: {}", record.name, why.join(", and ")),
            )
            .with_details(json!({ "devices": devices, "is_default": default }))
        };
        if record.is_default || record.device_count > 0 {
            return Err(blocked(record.device_count, record.is_default));
        }
        let audit = NewAuditEntry::new(
            self.clock.now(),
            actor,
            "ade_profile.delete",
            "ade_profile",
            format!("deleted profile \"{}\"", record.name),
        )
        .details(json!({ "token_id": record.token_id, "apple_profile_uuid": record.apple_profile_uuid }));
        self.store
            .profile_delete(id, record.version, audit)
            .await
            .map_err(|e| match e {
                russet_store::StoreError::Constraint { .. } => blocked(1, false),
                other => other.into(),
            })
    }

    /// Sets (or clears, with `None`) the profile newly synced devices of a token get.
    pub async fn profile_set_default(
        &self,
        actor: &Actor,
        token_id: i64,
        profile_id: Option<i64>,
    ) -> Result<(), CoreError> {
        let token = self.active_token(token_id).await?;
        let name = match profile_id {
            Some(pid) => {
                let p = self.profile_record(pid).await?;
                if p.token_id != token_id {
                    return Err(CoreError::invalid(
                        "profile_of_another_token",
                        format!(
                            "profile \"{}\" belongs to another token; a default profile must be one of token \"{}\"",
                            p.name, token.name
                        ),
                    ));
                }
                Some(p.name)
            }
            None => None,
        };
        let summary = match &name {
            Some(n) => format!("made \"{n}\" the default profile of token \"{}\"", token.name),
            None => format!("cleared the default profile of token \"{}\"", token.name),
        };
        let audit = NewAuditEntry::new(
            self.clock.now(),
            actor,
            "ade_token.set_default_profile",
            "ade_token",
            summary,
        )
        .details(json!({ "profile_id": profile_id, "previous_profile_id": token.default_profile_id }));
        Ok(self
            .store
            .token_set_default_profile(token_id, profile_id, audit)
            .await?)
    }

    /// Assigns a profile to devices of its token: marks them and starts the assigner.
    pub async fn profile_assign(
        &self,
        actor: &Actor,
        profile_id: i64,
        target: &AssignTarget,
    ) -> Result<JobRecord, CoreError> {
        let profile = self.profile_record(profile_id).await?;
        let token = self.active_token(profile.token_id).await?;
        let (selection, what) = match target {
            AssignTarget::Serials(list) => {
                let mut serials: Vec<String> = list
                    .iter()
                    .map(|s| s.trim().to_ascii_uppercase())
                    .filter(|s| !s.is_empty())
                    .collect();
                serials.sort();
                serials.dedup();
                if serials.is_empty() {
                    return Err(CoreError::invalid(
                        "no_devices",
                        "name at least one serial number, or use a filter",
                    ));
                }
                if serials.len() > MAX_SERIALS_PER_ACTION {
                    return Err(CoreError::invalid(
                        "too_many_serials",
                        format!(
                            "{} serials named; at most {MAX_SERIALS_PER_ACTION} per request (use a filter)",
                            serials.len()
                        ),
                    ));
                }
                let checking = std::time::Instant::now();
                let foreign = self.store.assign_foreign_serials(profile.token_id, &serials).await?;
                tracing::debug!(serials = serials.len(), elapsed = ?checking.elapsed(), "assignment serials checked");
                if !foreign.is_empty() {
                    return Err(CoreError::invalid(
                        "unknown_serials",
                        format!(
                            "{} of the serial numbers are not devices of token \"{}\" (or were released in ABM): {}{}; nothing \
                             was assigned",
                            foreign.len(),
                            token.name,
                            foreign.iter().take(20).cloned().collect::<Vec<_>>().join(", "),
                            if foreign.len() > 20 { ", …" } else { "" }
                        ),
                    )
                    .with_details(json!({ "unknown_serials": foreign.iter().take(1000).collect::<Vec<_>>() })));
                }
                let n = serials.len();
                (
                    Selection::Serials(serials),
                    format!("{n} device{}", if n == 1 { "" } else { "s" }),
                )
            }
            AssignTarget::Unassigned => (Selection::Unassigned, "devices without a profile".to_string()),
            AssignTarget::Any => (Selection::Any, "every device of the token".to_string()),
            AssignTarget::Profile(other) => {
                let other = match other.trim().parse::<i64>() {
                    Ok(id) => self.store.profile_get(id).await?,
                    Err(_) => self.store.profile_find_by_name(profile.token_id, other).await?,
                }
                .filter(|p| p.token_id == profile.token_id)
                .ok_or_else(|| {
                    CoreError::invalid(
                        "profile_not_found",
                        format!("token \"{}\" has no profile \"{other}\"", token.name),
                    )
                })?;
                (
                    Selection::Profile(other.id),
                    format!("the devices of profile \"{}\"", other.name),
                )
            }
        };
        let now = self.clock.now();
        let job = self
            .store
            .job_create(
                &NewJob {
                    kind: "assign",
                    token_id: profile.token_id,
                    profile_id: Some(profile_id),
                    origin: "manual",
                    mode: None,
                    requested_by: &actor.label,
                    message: Some(&format!("assigning \"{}\" to {what}", profile.name)),
                },
                now,
                Some(self.assign_audit(actor, profile_id, &what)),
            )
            .await?;
        let marking = std::time::Instant::now();
        let marked = self
            .store
            .assign_mark(profile.token_id, profile_id, &selection, Some(job.id), now)
            .await?;
        tracing::debug!(marked, elapsed = ?marking.elapsed(), "devices marked for assignment");
        let progress = json!({ "devices": marked, "pending": marked });
        if marked == 0 {
            self.store
                .job_finish(job.id, "succeeded", &progress, Some("no device matched"), None, now)
                .await?;
        } else {
            self.store.job_progress(job.id, &progress, now).await?;
            let core = self.clone();
            let token_id = profile.token_id;
            tokio::spawn(async move { core.run_assigner(token_id).await });
        }
        Ok(self.store.job_get(job.id).await?.unwrap_or(job))
    }
}
