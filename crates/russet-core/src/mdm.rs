//! The MDM protocol's rules: who a device is, what its check-ins change, and which command
//! it gets next.
//!
//! Identity, on every request: the certificate (from `Mdm-Signature`, TLS or a trusted
//! proxy header) must chain to Russet's CA with clientAuth and be valid now; at
//! `Authenticate` it is pinned to the device channel, and afterwards every request of that
//! device (or its user channels) must come with the pinned certificate or one renewed from
//! it. A device presenting another device's certificate, or its own for another UDID, is
//! refused. Refusals are `Invalid` (HTTP 400): an enrolled device is never sent 401, which
//! would make it unenroll.

use std::collections::HashMap;
use std::sync::Arc;

use russet_apple::mdm::checkin::{self, CheckinMessage};
use russet_apple::mdm::{CommandRequest, DeviceCertificate, decode_checkin, decode_report, validate_raw_command};
use russet_store::audit::{Actor, NewAuditEntry};
use russet_store::mdm::{
    AuthenticateRecord, CommandRecord, EnrollmentRecord, InventoryFields, NewCommand, ReportRecord, TokenUpdateRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::{CoreError, ErrorKind};
use crate::{Core, fmt_time};

/// Largest check-in body accepted.
pub const MAX_CHECKIN_BODY: usize = 1024 * 1024;
/// Largest command report accepted (an InstalledApplicationList of a Mac can be large).
pub const MAX_REPORT_BODY: usize = 16 * 1024 * 1024;
/// Most targets of one command request.
pub const MAX_TARGETS: usize = 100_000;

/// What a check-in is answered with.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckinReply {
    /// 200 with an empty body.
    Empty,
    /// 200 with a plist body.
    Plist(Vec<u8>),
    /// 410: Russet declines (UserAuthenticate until user channels are supported).
    Gone,
}

/// Certificates this process already checked: SHA-256 → (the device channel it is pinned
/// to, its expiry). A pin never moves to another device and the CA does not change, so only
/// the expiry needs checking again; the chain verification is skipped for a known
/// certificate.
#[derive(Default)]
pub(crate) struct PinCache(std::sync::Mutex<HashMap<String, (String, OffsetDateTime)>>);

pub(crate) type SharedPinCache = Arc<PinCache>;

fn refused(message: impl Into<String>) -> CoreError {
    CoreError::invalid("mdm_identity_refused", message)
}

impl Core {
    /// Checks the request's certificate and that it belongs to `device_id`; at Authenticate,
    /// pins it. Returns the certificate's SHA-256.
    async fn check_identity(
        &self,
        cert: Option<&DeviceCertificate>,
        device_id: &str,
        authenticate: bool,
    ) -> Result<String, CoreError> {
        let cert = cert.ok_or_else(|| {
            refused(
                "the request carries no device identity: the enrollment profile sets SignMessage, so every request \
                 needs an Mdm-Signature header (or a client certificate)",
            )
        })?;
        let now = self.clock.now();
        let sha = cert.sha256_hex().to_owned();
        let cached = self.pins.0.lock().ok().and_then(|c| c.get(&sha).cloned());
        if let Some((pinned, not_after)) = cached
            && not_after > now
        {
            if pinned == device_id {
                return Ok(sha);
            }
            if !authenticate {
                return Err(self.impersonation(&sha, &pinned, device_id));
            }
        }
        let ca = self.device_ca().await?;
        let x509 = cert
            .certificate()
            .map_err(|e| refused(format!("the device identity cannot be read: {e}")))?;
        let info = russet_apple::mdm::verify_device_identity(&x509, std::slice::from_ref(&ca.cert), now)
            .map_err(|e| refused(format!("the device identity is not accepted: {e}")))?;
        let record = self
            .store
            .mdm_certificate_get(&sha)
            .await?
            .ok_or_else(|| refused("this identity certificate was not issued by Russet's SCEP service"))?;
        let pinned_to = match record.enrollment_id.clone() {
            Some(p) => Some(p),
            None if authenticate => self.store.mdm_certificate_pin(&sha, device_id, now).await?,
            None => {
                // A renewed certificate: it inherits the pin of the one it renewed.
                let mut from = record.renewed_from.clone();
                let mut inherited = None;
                for _ in 0..16 {
                    let Some(prev) = from else { break };
                    match self.store.mdm_certificate_get(&prev).await? {
                        Some(p) if p.enrollment_id.is_some() => {
                            inherited = p.enrollment_id;
                            break;
                        }
                        Some(p) => from = p.renewed_from,
                        None => break,
                    }
                }
                match inherited {
                    Some(owner) if owner == device_id => self.store.mdm_certificate_pin(&sha, device_id, now).await?,
                    Some(owner) => Some(owner),
                    None => {
                        return Err(refused(
                            "this identity certificate was never used to Authenticate: the device must enroll again",
                        ));
                    }
                }
            }
        };
        match pinned_to {
            Some(p) if p == device_id => {
                if let Ok(mut cache) = self.pins.0.lock() {
                    cache.insert(sha.clone(), (p, info.not_after));
                }
                Ok(sha)
            }
            Some(other) => Err(self.impersonation(&sha, &other, device_id)),
            None => Err(refused("the identity certificate is unknown")),
        }
    }

    /// A device must enroll for the push certificate's topic.
    async fn check_topic(&self, topic: &str) -> Result<(), CoreError> {
        match self.store.push_cert_get().await?.and_then(|p| p.topic) {
            Some(current) if current != topic => Err(CoreError::invalid(
                "mdm_wrong_topic",
                format!(
                    "the device's push topic {topic} is not this server's ({current}); it must be enrolled with a \
                     current profile"
                ),
            )),
            _ => Ok(()),
        }
    }

    fn impersonation(&self, sha: &str, owner: &str, claimed: &str) -> CoreError {
        tracing::warn!(
            certificate = %sha,
            owner = %owner,
            claimed = %claimed,
            "refused a device request: the identity certificate belongs to another device"
        );
        refused(format!(
            "the identity certificate belongs to another enrollment ({owner}), not to {claimed}"
        ))
    }

    /// Handles a check-in (`PUT` to the check-in URL).
    pub async fn mdm_checkin(&self, body: &[u8], cert: Option<&DeviceCertificate>) -> Result<CheckinReply, CoreError> {
        if body.len() > MAX_CHECKIN_BODY {
            return Err(CoreError::new(
                ErrorKind::TooLarge,
                "mdm_body_too_large",
                format!("a check-in is at most {MAX_CHECKIN_BODY} bytes"),
            ));
        }
        let msg = decode_checkin(body).map_err(|e| CoreError::invalid(e.code(), e.to_string()))?;
        let authenticate = matches!(msg.message, CheckinMessage::Authenticate { .. });
        let e = &msg.enrollment;
        // An identity issued through ADE is for the device it was served to: checked before
        // the certificate is pinned, so another device cannot take it.
        let ade = match (authenticate, cert) {
            (true, Some(c)) => self.ade_binding_for(c.sha256_hex(), msg.ids.udid.as_deref()).await?,
            _ => None,
        };
        self.check_identity(cert, &e.device_id, authenticate).await?;
        let now = self.clock.now();
        match &msg.message {
            CheckinMessage::Authenticate {
                topic,
                serial_number,
                device_name,
                model,
                model_name,
                product_name,
                os_version,
                build_version,
                imei,
                meid,
            } => {
                if e.id != e.device_id {
                    return Err(CoreError::invalid(
                        "mdm_authenticate_user",
                        "Authenticate comes from the device channel only",
                    ));
                }
                self.check_topic(topic).await?;
                let cancelled = self
                    .store
                    .mdm_authenticate(
                        &AuthenticateRecord {
                            id: e.id.clone(),
                            kind: e.kind.as_str().to_string(),
                            udid: msg.ids.udid.clone(),
                            enrollment_id: msg.ids.enrollment_id.clone(),
                            serial_number: serial_number.clone(),
                            device_name: device_name.clone(),
                            model: model.clone(),
                            model_name: model_name.clone(),
                            product_name: product_name.clone(),
                            os_version: os_version.clone(),
                            build_version: build_version.clone(),
                            imei: imei.clone(),
                            meid: meid.clone(),
                            topic: topic.clone(),
                            ade: ade.clone(),
                        },
                        now,
                    )
                    .await?;
                tracing::info!(enrollment = %e.id, serial = ?serial_number, ade = ade.is_some(), cancelled, "device authenticated");
                Ok(CheckinReply::Empty)
            }
            CheckinMessage::TokenUpdate {
                topic,
                token,
                push_magic,
                unlock_token,
                awaiting_configuration,
                ..
            } => {
                self.check_topic(topic).await?;
                let first = self
                    .store
                    .mdm_token_update(
                        &TokenUpdateRecord {
                            id: e.id.clone(),
                            device_id: e.device_id.clone(),
                            kind: e.kind.as_str().to_string(),
                            udid: msg.ids.udid.clone(),
                            enrollment_id: msg.ids.enrollment_id.clone(),
                            user_id: msg.ids.user_id.clone(),
                            user_short_name: msg.ids.user_short_name.clone(),
                            user_long_name: msg.ids.user_long_name.clone(),
                            topic: topic.clone(),
                            push_token: hex::encode(token),
                            push_magic: push_magic.clone(),
                            unlock_token: unlock_token.clone(),
                            awaiting_configuration: *awaiting_configuration,
                        },
                        now,
                    )
                    .await
                    .map_err(|err| match err {
                        russet_store::StoreError::Constraint { .. } => CoreError::invalid(
                            "mdm_not_authenticated",
                            "TokenUpdate before Authenticate: the device must enroll again",
                        ),
                        other => other.into(),
                    })?;
                if first && e.id == e.device_id {
                    tracing::info!(enrollment = %e.id, "device enrolled");
                    self.queue_initial_commands(&e.id, *awaiting_configuration).await?;
                }
                Ok(CheckinReply::Empty)
            }
            CheckinMessage::CheckOut { .. } => {
                self.store.mdm_checkout(&e.device_id, now).await?;
                tracing::info!(enrollment = %e.device_id, "device checked out (MDM profile removed)");
                Ok(CheckinReply::Empty)
            }
            CheckinMessage::SetBootstrapToken { token, .. } => {
                self.store
                    .mdm_set_bootstrap_token(&e.device_id, token.as_deref(), now)
                    .await?;
                Ok(CheckinReply::Empty)
            }
            CheckinMessage::GetBootstrapToken { .. } => {
                let token = self.store.mdm_bootstrap_token(&e.device_id).await?;
                Ok(match token {
                    Some(t) => CheckinReply::Plist(checkin::bootstrap_token_response(Some(&t))),
                    None => CheckinReply::Empty,
                })
            }
            CheckinMessage::UserAuthenticate { .. } => Ok(CheckinReply::Gone),
            CheckinMessage::GetToken { .. } => Err(CoreError::invalid(
                "mdm_unsupported",
                "GetToken is not supported by Russet yet (the profile does not announce com.apple.mdm.token)",
            )),
            CheckinMessage::DeclarativeManagement { .. } => Err(CoreError::invalid(
                "mdm_unsupported",
                "Declarative Management is not supported by Russet yet",
            )),
        }
    }

    /// Queues `commands` (typed JSON) for one enrollment, in order, on behalf of `actor`
    /// with one audit entry each (`action`, `why`), and pushes it once.
    async fn queue_commands_for(
        &self,
        actor: &Actor,
        id: &str,
        commands: &[serde_json::Value],
        action: &str,
        why: &str,
    ) -> Result<(), CoreError> {
        let now = self.clock.now();
        for c in commands {
            let req: CommandRequest = serde_json::from_value(c.clone())
                .map_err(|e| CoreError::new(ErrorKind::Internal, "internal", format!("system command {c}: {e}")))?;
            let cmd = req.build(&new_uuid()?).map_err(|e| mdm_invalid(&e))?;
            self.store
                .mdm_enqueue(
                    &NewCommand {
                        uuid: &cmd.command_uuid,
                        request_type: &cmd.request_type,
                        body: &cmd.plist,
                        created_by: &actor.label,
                    },
                    &[id.to_string()],
                    now,
                    NewAuditEntry::new(
                        now,
                        actor,
                        action,
                        "enrollment",
                        format!("{} for {id}: {why}", cmd.request_type),
                    )
                    .target(id)
                    .details(json!({ "command_uuid": cmd.command_uuid })),
                )
                .await?;
        }
        self.push_in_background(vec![id.to_string()]);
        Ok(())
    }

    /// What a device gets when it has just enrolled: for an Automated Device Enrollment, its
    /// name from the profile's template (first, so that the inventory shows it); its first
    /// inventory; and, when it waits in Setup Assistant and its profile asks for it,
    /// DeviceConfigured after the rest.
    async fn queue_initial_commands(&self, id: &str, awaiting_configuration: bool) -> Result<(), CoreError> {
        let mut commands = Vec::new();
        let mut why = "newly enrolled".to_string();
        let enrollment = self.store.mdm_enrollment_get(id).await?;
        let ade = enrollment
            .as_ref()
            .and_then(|r| Some((r.ade_serial.clone()?, r.ade_profile_id?)));
        if let Some((serial, profile_id)) = ade {
            why = format!("enrolled through ADE ({serial})");
            let settings = match self.store.profile_get(profile_id).await? {
                Some(p) => serde_json::from_value::<crate::profiles::settings::ProfileSettings>(p.settings).ok(),
                None => None,
            };
            if let Some(template) = settings.as_ref().and_then(|s| s.device_name_template.clone()) {
                let family = self
                    .store
                    .device_get(&serial)
                    .await?
                    .and_then(|d| d.device_family)
                    .unwrap_or_else(|| "Device".to_string());
                let name = device_name_from_template(&template, &serial, &family);
                commands.push(json!({ "request_type": "Settings",
                    "settings": [{ "item": "DeviceName", "device_name": name }] }));
            }
            commands.push(json!({ "request_type": "DeviceInformation" }));
            if awaiting_configuration {
                for payload in settings.iter().flat_map(|s| s.install_profiles.iter()) {
                    commands.push(json!({ "request_type": "InstallProfile", "payload": payload }));
                }
            }
            if awaiting_configuration && settings.as_ref().is_none_or(|s| s.await_device_configured) {
                commands.push(json!({ "request_type": "DeviceConfigured" }));
            }
        }
        if commands.is_empty() {
            commands.push(json!({ "request_type": "DeviceInformation" }));
        }
        self.queue_commands_for(&Actor::system(), id, &commands, "command.enqueue", &why)
            .await
    }

    /// Releases a device held in Setup Assistant (awaiting configuration): queues
    /// DeviceConfigured now, for an administrator who does not want to wait.
    pub async fn enrollment_release(&self, actor: &Actor, id: &str) -> Result<Enrollment, CoreError> {
        let r = self
            .store
            .mdm_enrollment_get(id)
            .await?
            .ok_or_else(|| CoreError::not_found("enrollment_not_found", format!("no enrollment {id}")))?;
        if !r.awaiting_configuration {
            return Err(CoreError::conflict(
                "not_awaiting_configuration",
                format!("{id} is not waiting in Setup Assistant: there is nothing to release"),
            ));
        }
        self.queue_commands_for(
            actor,
            id,
            &[json!({ "request_type": "DeviceConfigured" })],
            "enrollment.release",
            "released from Setup Assistant",
        )
        .await?;
        self.enrollment_get(id).await
    }

    /// Handles a command report (`PUT` to the server URL); returns the next command's plist,
    /// or `None` (an empty body) when nothing is queued.
    pub async fn mdm_connect(
        &self,
        body: &[u8],
        cert: Option<&DeviceCertificate>,
    ) -> Result<Option<Vec<u8>>, CoreError> {
        if body.len() > MAX_REPORT_BODY {
            return Err(CoreError::new(
                ErrorKind::TooLarge,
                "mdm_body_too_large",
                format!("a command report is at most {MAX_REPORT_BODY} bytes"),
            ));
        }
        let report = decode_report(body).map_err(|e| CoreError::invalid(e.code(), e.to_string()))?;
        let e = &report.enrollment;
        self.check_identity(cert, &e.device_id, false).await?;
        let now = self.clock.now();
        let error_chain = if report.error_chain.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&report.error_chain)
                    .map_err(|err| CoreError::new(ErrorKind::Internal, "internal", err.to_string()))?,
            )
        };
        // A DeviceInformation answer fills the inventory, in the same transaction that closes
        // the command (the store checks that the command answered was a DeviceInformation).
        let inventory = match report.status.as_str() {
            "Acknowledged" => report.inventory(),
            _ => None,
        };
        let inventory = match &inventory {
            Some(inv) => Some((
                serde_json::to_string(inv)
                    .map_err(|err| CoreError::new(ErrorKind::Internal, "internal", err.to_string()))?,
                InventoryFields {
                    device_name: inv.device_name.clone(),
                    os_version: inv.os_version.clone(),
                    build_version: inv.build_version.clone(),
                    model: inv.model.clone(),
                    model_name: inv.model_name.clone(),
                    product_name: inv.product_name.clone(),
                    serial_number: inv.serial_number.clone(),
                },
            )),
            None => None,
        };
        let outcome = self
            .store
            .mdm_connect(
                &ReportRecord {
                    enrollment_id: &e.id,
                    status: report.status.as_str(),
                    command_uuid: report.command_uuid.as_deref(),
                    raw: &report.raw,
                    error_chain: error_chain.as_deref(),
                    inventory: inventory.as_ref().map(|(json, fields)| (json.as_str(), fields)),
                },
                now,
            )
            .await?;
        if outcome.unknown_command {
            tracing::debug!(enrollment = %e.id, uuid = ?report.command_uuid, "report for a command not queued (or already closed)");
        }
        Ok(outcome.next.map(|(_, body)| body))
    }
}

fn new_uuid() -> Result<String, CoreError> {
    russet_apple::mdm::new_command_uuid().map_err(|e| CoreError::new(ErrorKind::Internal, "internal", e.to_string()))
}

// ---------------------------------------------------------------------------------------
// Commands through the admin API

/// Who a command goes to: any mix of serial numbers, UDIDs and enrollment ids.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandTargets {
    #[serde(default)]
    pub serials: Vec<String>,
    #[serde(default)]
    pub udids: Vec<String>,
    #[serde(default)]
    pub enrollment_ids: Vec<String>,
}

/// A command to queue: typed (`command`, e.g. `{"request_type":"DeviceLock","pin":"123456"}`)
/// or a raw plist (`raw_plist`, the XML text with `CommandUUID` and `Command`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCommandRequest {
    pub targets: CommandTargets,
    #[schema(value_type = Option<Object>)]
    pub command: Option<serde_json::Value>,
    pub raw_plist: Option<String>,
}

/// What queuing did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct QueuedCommand {
    pub command_uuid: String,
    pub request_type: String,
    /// Enrollments it was queued for.
    pub queued: usize,
    /// Targets that are not enrolled devices (nothing was queued for them).
    pub not_enrolled: Vec<String>,
}

/// A command and each device's state.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CommandStatus {
    pub command_uuid: String,
    pub request_type: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    /// Counts per status (`Queued`, `Sent`, `NotNow`, `Acknowledged`, `Error`, `CommandFormatError`, `Cancelled`).
    #[schema(value_type = Object)]
    pub counts: serde_json::Value,
    pub devices: Vec<CommandDeviceStatus>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CommandDeviceStatus {
    pub enrollment_id: String,
    pub status: String,
    pub sent_at: Option<String>,
    pub answered_at: Option<String>,
    pub not_now_count: i64,
    /// Apple's ErrorChain, for `Error`.
    #[schema(value_type = Option<Object>)]
    pub error_chain: Option<serde_json::Value>,
    /// The device's answer as a plist (XML text), when it answered.
    pub result: Option<String>,
}

/// An enrollment as administrators see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Enrollment {
    pub id: String,
    pub device_id: String,
    pub kind: String,
    pub udid: Option<String>,
    pub serial_number: Option<String>,
    pub device_name: Option<String>,
    pub model: Option<String>,
    pub product_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub enabled: bool,
    pub awaiting_configuration: bool,
    pub pending_commands: i64,
    pub push_error: Option<String>,
    pub enrolled_at: Option<String>,
    pub last_seen_at: Option<String>,
    pub last_push_at: Option<String>,
    pub checked_out_at: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub inventory: Option<serde_json::Value>,
    /// Automated Device Enrollment: where this enrollment came from.
    pub ade: Option<AdeEnrollment>,
    /// When Setup Assistant was released (DeviceConfigured acknowledged) and by whom.
    pub configured_at: Option<String>,
    pub configured_by: Option<String>,
    /// Still awaiting configuration longer than `configuration_stuck_after` after enrolling:
    /// look at its pending commands, or release it.
    pub setup_stuck: bool,
}

/// The ABM side of an enrollment made through Automated Device Enrollment.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AdeEnrollment {
    pub serial_number: String,
    pub token_id: Option<i64>,
    pub profile_id: Option<i64>,
    /// The user who signed in during Setup Assistant (profiles with user affinity).
    pub user: Option<String>,
    pub supervised: bool,
    pub locked_enrollment: bool,
}

fn enrollment_view(r: EnrollmentRecord, now: OffsetDateTime, stuck_after: time::Duration) -> Enrollment {
    let t = |x: Option<OffsetDateTime>| x.map(fmt_time);
    let setup_stuck = r.awaiting_configuration
        && r.configured_at.is_none()
        && r.enrolled_at
            .or(r.authenticated_at)
            .is_some_and(|at| at + stuck_after <= now);
    Enrollment {
        ade: r.ade_serial.clone().map(|serial_number| AdeEnrollment {
            serial_number,
            token_id: r.ade_token_id,
            profile_id: r.ade_profile_id,
            user: r.ade_user.clone(),
            supervised: r.supervised,
            locked_enrollment: r.locked_enrollment,
        }),
        configured_at: t(r.configured_at),
        configured_by: r.configured_by.clone(),
        setup_stuck,
        inventory: r.inventory.as_deref().and_then(|i| serde_json::from_str(i).ok()),
        id: r.id,
        device_id: r.device_id,
        kind: r.kind,
        udid: r.udid,
        serial_number: r.serial_number,
        device_name: r.device_name,
        model: r.model,
        product_name: r.product_name,
        os_version: r.os_version,
        build_version: r.build_version,
        enabled: r.enabled,
        awaiting_configuration: r.awaiting_configuration,
        pending_commands: r.pending_commands,
        push_error: r.push_error,
        enrolled_at: t(r.enrolled_at),
        last_seen_at: t(r.last_seen_at),
        last_push_at: t(r.last_push_at),
        checked_out_at: t(r.checked_out_at),
    }
}

impl Core {
    /// Validates a command against Apple's schema, queues it for the enrolled targets and
    /// pushes them.
    pub async fn command_enqueue(&self, actor: &Actor, req: &NewCommandRequest) -> Result<QueuedCommand, CoreError> {
        let raw = match (&req.command, &req.raw_plist) {
            (Some(typed), None) => {
                let bytes =
                    serde_json::to_vec(typed).map_err(|e| CoreError::invalid("invalid_command", e.to_string()))?;
                let typed = CommandRequest::from_json(&bytes).map_err(|e| mdm_invalid(&e))?;
                typed.validate().map_err(|e| mdm_invalid(&e))?;
                typed.build(&new_uuid()?).map_err(|e| mdm_invalid(&e))?
            }
            (None, Some(plist)) => validate_raw_command(plist.as_bytes()).map_err(|e| mdm_invalid(&e))?,
            _ => {
                return Err(CoreError::invalid(
                    "invalid_command",
                    "give exactly one of command (typed JSON, e.g. {\"request_type\":\"DeviceInformation\"}) or \
                     raw_plist (a command plist)",
                ));
            }
        };
        let t = &req.targets;
        let clean = |v: &mut dyn Iterator<Item = &String>| -> Vec<String> {
            v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
        };
        let ids = clean(&mut t.udids.iter().chain(&t.enrollment_ids));
        let serials = clean(&mut t.serials.iter());
        let total = ids.len() + serials.len();
        if total == 0 {
            return Err(CoreError::invalid(
                "no_targets",
                "name the devices: targets.serials, targets.udids or targets.enrollment_ids",
            ));
        }
        if total > MAX_TARGETS {
            return Err(CoreError::invalid(
                "too_many_targets",
                format!("at most {MAX_TARGETS} targets per command"),
            ));
        }
        let (ids, missing) = self.store.mdm_resolve_targets(&ids, &serials).await?;
        if ids.is_empty() {
            return Err(
                CoreError::not_found("no_enrolled_targets", "none of the targets is an enrolled device")
                    .with_details(json!({ "not_enrolled": missing })),
            );
        }
        let now = self.clock.now();
        let audit = NewAuditEntry::new(
            now,
            actor,
            "command.enqueue",
            "command",
            format!("queued {} for {} device(s)", raw.request_type, ids.len()),
        )
        .details(json!({ "request_type": raw.request_type, "devices": ids.len() }));
        self.store
            .mdm_enqueue(
                &NewCommand {
                    uuid: &raw.command_uuid,
                    request_type: &raw.request_type,
                    body: &raw.plist,
                    created_by: &actor.label,
                },
                &ids,
                now,
                audit,
            )
            .await
            .map_err(|e| match e {
                russet_store::StoreError::Constraint { .. } => CoreError::conflict(
                    "command_uuid_taken",
                    format!(
                        "a command with CommandUUID {} already exists; use a new UUID",
                        raw.command_uuid
                    ),
                ),
                other => other.into(),
            })?;
        let queued = ids.len();
        self.push_in_background(ids);
        Ok(QueuedCommand {
            command_uuid: raw.command_uuid,
            request_type: raw.request_type,
            queued,
            not_enrolled: missing,
        })
    }

    pub async fn command_status(&self, uuid: &str) -> Result<CommandStatus, CoreError> {
        let CommandRecord {
            uuid,
            request_type,
            created_at,
            created_by,
            entries,
            ..
        } = self
            .store
            .mdm_command_get(uuid)
            .await?
            .ok_or_else(|| CoreError::not_found("command_not_found", format!("no command {uuid}")))?;
        let mut counts: HashMap<String, u64> = HashMap::new();
        let devices = entries
            .into_iter()
            .map(|e| {
                *counts.entry(e.status.clone()).or_default() += 1;
                CommandDeviceStatus {
                    enrollment_id: e.enrollment_id,
                    status: e.status,
                    sent_at: e.sent_at.map(fmt_time),
                    answered_at: e.answered_at.map(fmt_time),
                    not_now_count: e.not_now_count,
                    error_chain: e.error_chain.as_deref().and_then(|c| serde_json::from_str(c).ok()),
                    result: e.result.map(|r| String::from_utf8_lossy(&r).into_owned()),
                }
            })
            .collect();
        Ok(CommandStatus {
            command_uuid: uuid,
            request_type,
            created_at,
            created_by,
            counts: json!(counts),
            devices,
        })
    }

    pub async fn enrollment_get(&self, id: &str) -> Result<Enrollment, CoreError> {
        self.store
            .mdm_enrollment_get(id)
            .await?
            .map(|r| enrollment_view(r, self.clock.now(), self.settings.configuration_stuck_after))
            .ok_or_else(|| CoreError::not_found("enrollment_not_found", format!("no enrollment {id}")))
    }

    pub async fn enrollment_list(
        &self,
        after: Option<&str>,
        limit: i64,
        serial: Option<&str>,
    ) -> Result<Vec<Enrollment>, CoreError> {
        Ok(self
            .store
            .mdm_enrollment_list(after, limit.clamp(1, 1000), serial)
            .await?
            .into_iter()
            .map(|r| enrollment_view(r, self.clock.now(), self.settings.configuration_stuck_after))
            .collect())
    }
}

/// A device name from a profile's template: `{{SERIAL}}` and `{{DEVICETYPE}}` replaced.
pub fn device_name_from_template(template: &str, serial: &str, device_type: &str) -> String {
    template
        .replace("{{SERIAL}}", serial)
        .replace("{{DEVICETYPE}}", device_type)
}

fn mdm_invalid(e: &russet_apple::mdm::MdmError) -> CoreError {
    let err = CoreError::invalid(e.code(), e.to_string());
    match e.field_errors() {
        Some(fields) => err.with_details(json!({ "fields": fields })),
        None => err,
    }
}
