//! Automated Device Enrollment: the enrollment endpoints Russet puts into its ADE profiles.
//!
//! A device in Setup Assistant sends its signed MachineInfo either to the profile's `url`
//! (no user affinity) or, in the `x-apple-aspen-deviceinfo` header, to its
//! `configuration_web_url`, where a user signs in first. Russet checks the signature, finds
//! the serial among the synced devices of the profile's token and checks that this profile
//! is the one the device is assigned; then it serves the enrollment profile with a fresh
//! SCEP challenge whose reference binds it to that device (serial, UDID), profile and user.
//! At Authenticate, the certificate issued for that challenge ties the MDM enrollment to
//! its ABM record; a device whose UDID differs from the one the challenge was made for is
//! refused. Every refusal is written to the audit log.

use serde::{Deserialize, Serialize};
use serde_json::json;

use russet_apple::mdm::machine_info::{MachineInfo, verify_machine_info};
use russet_store::ade_enroll::AdeBinding;
use russet_store::audit::NewAuditEntry;
use russet_store::devices::DeviceRecord;
use russet_store::profiles::ProfileRecord;

use crate::enroll::{ServedProfile, random_secret, sha256_hex};
use crate::error::{CoreError, ErrorKind};
use crate::profiles::settings::ProfileSettings;
use crate::{Actor, Core};

/// Purpose of the SCEP challenges in profiles served through ADE.
pub const PURPOSE_ADE: &str = "ade";
/// Sign-in attempts accepted on one page before the device must start again.
pub const MAX_SIGN_IN_ATTEMPTS: i64 = 10;

/// What the challenge of an ADE profile was made for (stored as its reference).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AdeReference {
    pub serial: String,
    pub udid: String,
    pub token_id: i64,
    pub profile_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default)]
    pub supervised: bool,
    #[serde(default)]
    pub locked_enrollment: bool,
}

impl AdeReference {
    pub(crate) fn binding(&self) -> AdeBinding {
        AdeBinding {
            serial: self.serial.clone(),
            token_id: self.token_id,
            profile_id: self.profile_id,
            user: self.user.clone(),
            supervised: self.supervised,
            locked_enrollment: self.locked_enrollment,
        }
    }
}

/// What the `configuration_web_url` answers.
pub enum AdeWebAnswer {
    /// The enrollment profile (after a sign-in, or when the profile no longer asks for one).
    Profile(ServedProfile),
    /// The sign-in page: the form's session secret, what to tell the user.
    SignIn(SignInPage),
}

/// The sign-in page's content; the server renders it.
#[derive(Clone, Debug)]
pub struct SignInPage {
    pub session: String,
    pub organization: String,
    pub profile_name: String,
    pub username: Option<String>,
    pub error: Option<String>,
}

/// A device Russet served a sign-in page or profile to.
struct Checked {
    profile: ProfileRecord,
    settings: ProfileSettings,
    info: MachineInfo,
}

impl Core {
    fn ade_refused(code: &'static str, message: impl Into<String>) -> CoreError {
        CoreError::new(ErrorKind::Forbidden, code, message)
    }

    /// Records a refused ADE request in the audit log (the device's serial when known).
    async fn ade_audit_refusal(&self, serial: Option<&str>, e: &CoreError) {
        let entry = NewAuditEntry::new(
            self.clock.now(),
            &Actor::system(),
            "ade.enrollment_refused",
            "device",
            format!(
                "ADE enrollment refused{}: {}",
                serial.map(|s| format!(" for {s}")).unwrap_or_default(),
                e.message
            ),
        )
        .details(json!({ "code": e.code, "serial": serial }));
        let entry = match serial {
            Some(s) => entry.target(s),
            None => entry,
        };
        if let Err(err) = self.store.audit_record(&entry).await {
            tracing::warn!(error = %err, "could not write the audit entry of a refused ADE enrollment");
        }
    }

    /// Checks the MachineInfo against the profile with `enroll_key` and the synced devices.
    async fn ade_check(&self, enroll_key: &str, machine_info: &[u8]) -> Result<Checked, CoreError> {
        let profile = self.store.profile_by_enroll_key(enroll_key).await?.ok_or_else(|| {
            CoreError::not_found(
                "ade_profile_unknown",
                "this enrollment URL belongs to no profile: the profile was deleted. Assign the device another \
                     profile in Russet and try again",
            )
        })?;
        let settings: ProfileSettings = serde_json::from_value(profile.settings.clone())
            .map_err(|e| CoreError::new(ErrorKind::Internal, "internal", format!("stored profile settings: {e}")))?;
        let info = match verify_machine_info(machine_info, &self.settings.device_ca_roots, self.clock.now()) {
            Ok(info) => info,
            Err(e) => {
                let err = Self::ade_refused(
                    "ade_machine_info_invalid",
                    format!("the device's identity could not be verified ({e}); the device cannot enroll"),
                );
                self.ade_audit_refusal(None, &err).await;
                return Err(err);
            }
        };
        let device = self.store.device_get(&info.serial).await?;
        if let Err(err) = check_device(&profile, device.as_ref(), &info) {
            self.ade_audit_refusal(Some(&info.serial), &err).await;
            return Err(err);
        }
        Ok(Checked {
            profile,
            settings,
            info,
        })
    }

    /// The profile for a checked device, with a challenge bound to it (and its user).
    async fn ade_profile(&self, c: &Checked, user: Option<String>) -> Result<ServedProfile, CoreError> {
        let reference = AdeReference {
            serial: c.info.serial.clone(),
            udid: c.info.udid.clone(),
            token_id: c.profile.token_id,
            profile_id: c.profile.id,
            user,
            supervised: c.settings.supervised,
            locked_enrollment: c.settings.locked_enrollment,
        };
        let reference = serde_json::to_string(&reference)
            .map_err(|e| CoreError::new(ErrorKind::Internal, "internal", format!("ADE reference: {e}")))?;
        let challenge = self.new_scep_challenge(PURPOSE_ADE, Some(&reference)).await?;
        let profile = self.enrollment_profile(&challenge).await?;
        tracing::info!(serial = %c.info.serial, udid = %c.info.udid, profile = c.profile.id, "ADE enrollment profile served");
        Ok(profile)
    }

    /// The profile's `url`: the device `POST`ed its MachineInfo.
    pub async fn ade_enroll(&self, enroll_key: &str, machine_info: &[u8]) -> Result<ServedProfile, CoreError> {
        let c = self.ade_check(enroll_key, machine_info).await?;
        if c.settings.user_affinity {
            let err = Self::ade_refused(
                "ade_sign_in_required",
                "this profile asks the user to sign in: the device must go through the sign-in page",
            );
            self.ade_audit_refusal(Some(&c.info.serial), &err).await;
            return Err(err);
        }
        self.ade_profile(&c, None).await
    }

    /// The profile's `configuration_web_url`, first request: the device sent its MachineInfo
    /// in a header. Answers the sign-in page (or the profile when sign-in is no longer asked).
    pub async fn ade_sign_in_page(&self, enroll_key: &str, machine_info: &[u8]) -> Result<AdeWebAnswer, CoreError> {
        let c = self.ade_check(enroll_key, machine_info).await?;
        if !c.settings.user_affinity {
            return Ok(AdeWebAnswer::Profile(self.ade_profile(&c, None).await?));
        }
        let session = random_secret()?;
        let now = self.clock.now();
        self.store
            .ade_sign_in_create(
                &sha256_hex(&session),
                c.profile.id,
                &c.info.serial,
                &c.info.udid,
                now,
                now + self.settings.ade_sign_in_ttl,
            )
            .await?;
        Ok(AdeWebAnswer::SignIn(SignInPage {
            session,
            organization: self.settings.organization.clone(),
            profile_name: c.settings.name.clone(),
            username: None,
            error: None,
        }))
    }

    /// The sign-in form posted back: the user's credentials checked, then the profile,
    /// bound to the device the page was served to and to the user.
    pub async fn ade_sign_in_submit(
        &self,
        enroll_key: &str,
        session: &str,
        username: &str,
        password: &str,
    ) -> Result<AdeWebAnswer, CoreError> {
        let expired = || {
            Self::ade_refused(
                "ade_sign_in_expired",
                "this sign-in page has expired or was already used: go back and start the enrollment again",
            )
        };
        let now = self.clock.now();
        let s = self
            .store
            .ade_sign_in_get(&sha256_hex(session))
            .await?
            .ok_or_else(expired)?;
        if s.expires_at <= now || s.signed_in_at.is_some() {
            return Err(expired());
        }
        let profile = self.store.profile_by_enroll_key(enroll_key).await?;
        let Some(profile) = profile.filter(|p| p.id == s.profile_id) else {
            return Err(expired());
        };
        let settings: ProfileSettings = serde_json::from_value(profile.settings.clone())
            .map_err(|e| CoreError::new(ErrorKind::Internal, "internal", format!("stored profile settings: {e}")))?;
        let attempts = self.store.ade_sign_in_attempt(s.id).await?.ok_or_else(expired)?;
        let page = |error: String| SignInPage {
            session: session.to_string(),
            organization: self.settings.organization.clone(),
            profile_name: settings.name.clone(),
            username: Some(username.to_string()),
            error: Some(error),
        };
        if attempts > MAX_SIGN_IN_ATTEMPTS {
            let err = Self::ade_refused(
                "ade_sign_in_attempts",
                format!("{MAX_SIGN_IN_ATTEMPTS} failed sign-ins on this page: start the enrollment again"),
            );
            self.ade_audit_refusal(Some(&s.serial), &err).await;
            return Err(err);
        }
        let user = match self.user_sign_in(username, password).await {
            Ok(user) => user,
            Err(e) if e.kind == ErrorKind::Forbidden => return Ok(AdeWebAnswer::SignIn(page(e.message))),
            Err(e) => return Err(e),
        };
        // The device and its assignment are checked again: they may have changed meanwhile.
        let device = self.store.device_get(&s.serial).await?;
        let info = MachineInfo {
            udid: s.udid.clone(),
            serial: s.serial.clone(),
            product: None,
            version: None,
            os_version: None,
            language: None,
            imei: None,
            meid: None,
            can_request_software_update: false,
            chain_verified: true,
        };
        if let Err(err) = check_device(&profile, device.as_ref(), &info) {
            self.ade_audit_refusal(Some(&s.serial), &err).await;
            return Err(err);
        }
        if !self.store.ade_sign_in_done(s.id, &user.username, now).await? {
            return Err(expired());
        }
        let c = Checked {
            profile,
            settings,
            info,
        };
        Ok(AdeWebAnswer::Profile(self.ade_profile(&c, Some(user.username)).await?))
    }

    /// At Authenticate: the ADE binding of the certificate's challenge, checked against the
    /// UDID the device announces. `None` for certificates not issued through ADE.
    pub(crate) async fn ade_binding_for(
        &self,
        cert_sha256: &str,
        udid: Option<&str>,
    ) -> Result<Option<AdeBinding>, CoreError> {
        let Some(challenge) = self.store.scep_challenge_of_certificate(cert_sha256).await? else {
            return Ok(None);
        };
        if challenge.purpose != PURPOSE_ADE {
            return Ok(None);
        }
        let reference: AdeReference = challenge
            .reference
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .ok_or_else(|| CoreError::new(ErrorKind::Internal, "internal", "unreadable ADE challenge reference"))?;
        if udid != Some(reference.udid.as_str()) {
            return Err(CoreError::invalid(
                "ade_other_device",
                format!(
                    "this identity was issued to the device {} ({}) during its Automated Device Enrollment, not to {}",
                    reference.serial,
                    reference.udid,
                    udid.unwrap_or("a device without a UDID")
                ),
            ));
        }
        Ok(Some(reference.binding()))
    }
}

/// The device must be synced, still in ABM, of the profile's token, and assigned this profile.
fn check_device(profile: &ProfileRecord, device: Option<&DeviceRecord>, info: &MachineInfo) -> Result<(), CoreError> {
    let Some(d) = device else {
        return Err(Core::ade_refused(
            "ade_device_unknown",
            format!(
                "the device {} is not among the devices Russet synced from Apple Business Manager: assign it to \
                 Russet's MDM server in ABM and sync",
                info.serial
            ),
        ));
    };
    if d.removed_at.is_some() {
        return Err(Core::ade_refused(
            "ade_device_removed",
            format!(
                "the device {} was removed from Russet's MDM server in Apple Business Manager",
                info.serial
            ),
        ));
    }
    if d.token_id != profile.token_id {
        return Err(Core::ade_refused(
            "ade_device_other_token",
            format!(
                "the device {} belongs to another enrollment program token than this profile",
                info.serial
            ),
        ));
    }
    let same_uuid = profile.apple_profile_uuid.is_some() && d.abm_profile_uuid == profile.apple_profile_uuid;
    if d.profile_id != Some(profile.id) && !same_uuid {
        return Err(Core::ade_refused(
            "ade_profile_mismatch",
            format!(
                "the device {} is no longer assigned this enrollment profile: it must fetch its current profile \
                 (erase it, or restart Setup Assistant)",
                info.serial
            ),
        ));
    }
    Ok(())
}
