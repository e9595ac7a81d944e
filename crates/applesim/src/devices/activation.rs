//! Automated Device Enrollment as a new device lives it in Setup Assistant.
//!
//! A device of the simulator's Apple Business Manager that is assigned to an MDM server
//! with an ADE profile ([`crate::AppleSim::device`], [`crate::AppleSim::profile`]):
//!
//! 1. fetches its profile from Apple ([`crate::AppleSim::simulate_profile_fetch`]: ABM now
//!    says `pushed`);
//! 2. signs its MachineInfo ([`MachineInfo`], Apple's `other/machineinfo.yaml`) with its
//!    hardware identity from the simulated "Apple iPhone Device CA"
//!    ([`crate::AppleSim::device_ca_root_pem`]): a CMS SignedData, SHA-256, the plist
//!    attached, the signer's certificate included;
//! 3. gets the enrollment profile:
//!    * with a `configuration_web_url`: `GET` it with `x-apple-aspen-deviceinfo:` (standard
//!      base64 of the CMS DER). An `application/x-apple-aspen-config` answer is the
//!      profile. An HTML answer is a sign-in page: the first `<form>` is filled in as a user
//!      would ([`web::Form::fill`]) and `POST`ed (`application/x-www-form-urlencoded`) to its
//!      `action` resolved against the page's URL. Redirects (301, 302, 303: then `GET`; 307,
//!      308: same method) are followed and cookies kept, as in a web view. A 200 with the
//!      profile's content type is the profile; HTML again is a refused sign-in, reported
//!      with the text of the page's element of class `error`;
//!    * otherwise: `POST` the CMS DER to `url` with `Content-Type:
//!      application/pkcs7-signature`; a 200 with the profile's content type is the profile,
//!      anything else a refusal (status and body kept as they came);
//! 4. installs it with the fleet's enrollment code (SCEP, Authenticate, TokenUpdate with
//!    `AwaitingConfiguration` when the ADE profile has `await_device_configured`);
//! 5. then, with `await_device_configured`, stays in Setup Assistant until it has
//!    acknowledged a `DeviceConfigured` command.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::x509::{X509, X509Ref};
use plist::{Dictionary, Value};
use time::OffsetDateTime;

use super::device::{AdeSetup, Device};
use super::model::{DeviceInfo, DeviceKind};
use super::{FleetError, FleetInner, PROFILE_CONTENT_TYPE, scep, web};
use crate::AppleSim;

/// Header carrying the signed MachineInfo on the `configuration_web_url` request.
pub const DEVICE_INFO_HEADER: &str = "x-apple-aspen-deviceinfo";
/// Content type of the signed MachineInfo posted to the ADE profile's `url`.
pub const MACHINE_INFO_CONTENT_TYPE: &str = "application/pkcs7-signature";
/// At most this much of a refusal's body is kept.
const BODY_KEPT: usize = 64 * 1024;
/// Redirects followed per request.
const MAX_REDIRECTS: usize = 10;

/// What a device sends to identify itself when it asks for its enrollment profile
/// (Apple's `MachineInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInfo {
    /// `UDID`.
    pub udid: String,
    /// `SERIAL`.
    pub serial: String,
    /// `PRODUCT`: the model identifier (`iPhone15,2`, `Mac14,2`).
    pub product: String,
    /// `VERSION`: the build (`22B83`).
    pub version: String,
    /// `OS_VERSION` (`18.1`).
    pub os_version: String,
    /// `LANGUAGE` (`en`).
    pub language: String,
    /// `MDM_CAN_REQUEST_SOFTWARE_UPDATE`.
    pub can_request_software_update: bool,
    /// `IMEI` (iPhones).
    pub imei: Option<String>,
    /// `MEID` (iPhones).
    pub meid: Option<String>,
}

impl MachineInfo {
    /// The MachineInfo of a device (every simulated OS is iOS 17 / macOS 14 or later, so
    /// `OS_VERSION` is sent and the MDM server may request software updates).
    pub fn of(info: &DeviceInfo) -> MachineInfo {
        MachineInfo {
            udid: info.udid.clone(),
            serial: info.serial_number.clone(),
            product: info.product_name.clone(),
            version: info.build_version.clone(),
            os_version: info.os_version.clone(),
            language: "en".to_owned(),
            can_request_software_update: true,
            imei: info.imei.clone(),
            meid: info.meid.clone(),
        }
    }

    /// The plist dictionary.
    pub fn to_dictionary(&self) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("UDID".into(), self.udid.clone().into());
        d.insert("SERIAL".into(), self.serial.clone().into());
        d.insert("PRODUCT".into(), self.product.clone().into());
        d.insert("VERSION".into(), self.version.clone().into());
        d.insert("OS_VERSION".into(), self.os_version.clone().into());
        d.insert("LANGUAGE".into(), self.language.clone().into());
        d.insert(
            "MDM_CAN_REQUEST_SOFTWARE_UPDATE".into(),
            self.can_request_software_update.into(),
        );
        if let Some(v) = &self.imei {
            d.insert("IMEI".into(), v.clone().into());
        }
        if let Some(v) = &self.meid {
            d.insert("MEID".into(), v.clone().into());
        }
        d
    }

    /// The XML plist.
    pub fn to_xml(&self) -> Result<Vec<u8>, FleetError> {
        let mut out = Vec::new();
        Value::Dictionary(self.to_dictionary())
            .to_writer_xml(&mut out)
            .map_err(|e| FleetError::Protocol(format!("writing MachineInfo: {e}")))?;
        Ok(out)
    }

    /// The CMS SignedData (DER) a device sends: the XML plist attached, signed with SHA-256
    /// by `cert`/`key`, `cert` included.
    pub fn sign(&self, cert: &X509Ref, key: &PKeyRef<Private>) -> Result<Vec<u8>, FleetError> {
        scep::signed_data(&self.to_xml()?, &[], cert, key, scep::Digest::Sha256)
            .map_err(|e| FleetError::Protocol(format!("signing MachineInfo: {e}")))
    }
}

/// The signed MachineInfo (CMS DER) of `info`, with a hardware identity issued for it on
/// the spot by `sim`'s device CA (a new RSA 2048 key: tens of milliseconds). For tests that
/// talk to an enrollment endpoint themselves; fleet devices keep their identity.
pub fn signed_machine_info(sim: &AppleSim, info: &DeviceInfo) -> Result<Vec<u8>, FleetError> {
    let key = crate::pushcert::rsa_key(2048).map_err(|e| FleetError::Protocol(e.to_string()))?;
    let cert = sim
        .issue_device_identity(&info.udid, &info.serial_number, unit(info.kind), &key)
        .map_err(|e| FleetError::Protocol(e.to_string()))?;
    MachineInfo::of(info).sign(&cert, &key)
}

/// The simulated kind of an ABM `device_family` (`None` for Apple TV and Vision Pro).
pub(crate) fn kind_of_family(family: &str) -> Option<DeviceKind> {
    match family {
        "iPhone" => Some(DeviceKind::IPhone),
        "iPad" => Some(DeviceKind::IPad),
        "Mac" => Some(DeviceKind::Mac),
        _ => None,
    }
}

/// The `OU` of a device identity.
fn unit(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::IPhone => "iPhone",
        DeviceKind::IPad => "iPad",
        DeviceKind::Mac => "Mac",
    }
}

/// A user's sign-in on the `configuration_web_url` page.
#[derive(Clone, PartialEq, Eq)]
pub struct SignIn {
    /// Typed into the first text or email field.
    pub username: String,
    /// Typed into the password field.
    pub password: String,
}

impl SignIn {
    /// A username and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> SignIn {
        SignIn {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for SignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignIn")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Who signs in on the devices' sign-in pages.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// Nobody: a device shown a sign-in page gives up (refused at [`ActivationStep::SignIn`]).
    #[default]
    None,
    /// The same user on every device.
    All(SignIn),
    /// A user per serial number (devices not in the map are treated as [`Credentials::None`]).
    PerSerial(HashMap<String, SignIn>),
}

impl Credentials {
    /// The sign-in for `serial`.
    pub fn for_serial(&self, serial: &str) -> Option<&SignIn> {
        match self {
            Credentials::None => None,
            Credentials::All(s) => Some(s),
            Credentials::PerSerial(m) => m.get(serial),
        }
    }
}

/// How devices activate.
#[derive(Clone, Debug, Default)]
pub struct ActivationOptions {
    /// The users who sign in when a profile has a `configuration_web_url`.
    pub credentials: Credentials,
    /// With `await_device_configured`: how long [`super::Fleet::activate`] waits for the
    /// device to acknowledge DeviceConfigured before reporting it as still waiting
    /// ([`Configured::Waiting`]). `None`: report as soon as TokenUpdate is accepted. The
    /// device keeps waiting in Setup Assistant either way.
    pub wait_configured: Option<Duration>,
}

/// Where an activation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivationStep {
    /// The device itself: not a kind the simulator plays (Apple TV, Vision Pro), or
    /// already enrolled (erase it first).
    Device,
    /// Making or signing MachineInfo (a local failure).
    MachineInfo,
    /// The `GET` of `configuration_web_url`.
    ConfigurationWebUrl,
    /// The sign-in form: no credentials, or the server refused them.
    SignIn,
    /// The `POST` of MachineInfo to the profile's `url` (or a profile without `url`).
    EnrollmentUrl,
    /// Installing the enrollment profile: reading it, SCEP, Authenticate, TokenUpdate.
    Install,
}

impl ActivationStep {
    /// A short name (`sign-in`, `install`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationStep::Device => "device",
            ActivationStep::MachineInfo => "machine-info",
            ActivationStep::ConfigurationWebUrl => "configuration-web-url",
            ActivationStep::SignIn => "sign-in",
            ActivationStep::EnrollmentUrl => "enrollment-url",
            ActivationStep::Install => "install",
        }
    }
}

/// DeviceConfigured, for a device that enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Configured {
    /// The ADE profile does not ask for it (`await_device_configured` false): the device
    /// left Setup Assistant once TokenUpdate was accepted.
    NotRequested,
    /// Still waiting in Setup Assistant when the outcome was made.
    Waiting,
    /// Acknowledged at this time (simulated clock).
    At(OffsetDateTime),
}

/// What one device's activation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationOutcome {
    /// Enrolled in the MDM server.
    Enrolled {
        /// The serial number.
        serial: String,
        /// The UDID it enrolled with (MachineInfo, Authenticate, TokenUpdate).
        udid: String,
        /// Its index in the fleet ([`super::Fleet::device`]).
        device: usize,
        /// When TokenUpdate was accepted (simulated clock).
        enrolled_at: OffsetDateTime,
        /// DeviceConfigured.
        configured: Configured,
    },
    /// Setup Assistant stopped with an error.
    Refused {
        /// The serial number.
        serial: String,
        /// Where.
        step: ActivationStep,
        /// The HTTP status of the refusing answer, when there was one.
        status: Option<u16>,
        /// What the device would show: the refused sign-in page's `class="error"` text, the
        /// body of a refusing answer as it came (Apple's servers send JSON such as
        /// `{"code":"…","message":"…"}` or plain text), or the local error.
        message: String,
        /// The refusing answer's body (lossy UTF-8, at most 64 KiB; empty without one).
        body: String,
    },
    /// Not enrolled in Automated Device Enrollment: Apple has no MDM server or no profile
    /// for it, so Setup Assistant goes on without MDM (no request was sent).
    NotAde {
        /// The serial number.
        serial: String,
        /// Why (unknown serial, not assigned, no profile).
        reason: String,
    },
}

impl ActivationOutcome {
    /// The serial number.
    pub fn serial(&self) -> &str {
        match self {
            ActivationOutcome::Enrolled { serial, .. }
            | ActivationOutcome::Refused { serial, .. }
            | ActivationOutcome::NotAde { serial, .. } => serial,
        }
    }

    /// Whether the device enrolled.
    pub fn is_enrolled(&self) -> bool {
        matches!(self, ActivationOutcome::Enrolled { .. })
    }

    /// When it acknowledged DeviceConfigured, if it did.
    pub fn configured_at(&self) -> Option<OffsetDateTime> {
        match self {
            ActivationOutcome::Enrolled {
                configured: Configured::At(t),
                ..
            } => Some(*t),
            _ => None,
        }
    }
}

impl fmt::Display for ActivationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ts = |t: &OffsetDateTime| crate::timefmt::format(*t);
        match self {
            ActivationOutcome::Enrolled {
                serial,
                udid,
                device,
                enrolled_at,
                configured,
            } => {
                write!(
                    f,
                    "{serial}: enrolled at {} as {udid} (device {device})",
                    ts(enrolled_at)
                )?;
                match configured {
                    Configured::NotRequested => Ok(()),
                    Configured::Waiting => write!(f, ", waiting for DeviceConfigured"),
                    Configured::At(t) => write!(f, ", configured at {}", ts(t)),
                }
            }
            ActivationOutcome::Refused {
                serial,
                step,
                status,
                message,
                ..
            } => {
                write!(f, "{serial}: refused at {}", step.as_str())?;
                if let Some(s) = status {
                    write!(f, " (HTTP {s})")?;
                }
                let short: String = message.chars().take(300).collect();
                write!(f, ": {short}")
            }
            ActivationOutcome::NotAde { serial, reason } => write!(f, "{serial}: not enrolled in ADE ({reason})"),
        }
    }
}

/// What [`super::Fleet::activate`] did: one outcome per serial, in the order given.
#[derive(Debug, Clone, Default)]
pub struct ActivationReport {
    /// The outcomes.
    pub outcomes: Vec<ActivationOutcome>,
}

impl ActivationReport {
    /// The outcome for `serial`.
    pub fn get(&self, serial: &str) -> Option<&ActivationOutcome> {
        self.outcomes.iter().find(|o| o.serial() == serial)
    }

    /// Devices that enrolled.
    pub fn enrolled(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_enrolled()).count()
    }

    /// Devices that acknowledged DeviceConfigured within the wait.
    pub fn configured(&self) -> usize {
        self.outcomes.iter().filter(|o| o.configured_at().is_some()).count()
    }

    /// The refusals.
    pub fn refused(&self) -> Vec<&ActivationOutcome> {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, ActivationOutcome::Refused { .. }))
            .collect()
    }

    /// The devices that are not in ADE.
    pub fn not_ade(&self) -> Vec<&ActivationOutcome> {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, ActivationOutcome::NotAde { .. }))
            .collect()
    }
}

/// A refusal, before it knows its serial.
struct Refusal {
    step: ActivationStep,
    status: Option<u16>,
    message: String,
    body: String,
}

fn refusal(step: ActivationStep, status: Option<u16>, message: impl Into<String>, body: &[u8]) -> Refusal {
    let kept = &body[..body.len().min(BODY_KEPT)];
    Refusal {
        step,
        status,
        message: message.into(),
        body: String::from_utf8_lossy(kept).into_owned(),
    }
}

/// An answer of the web view's loader, redirects followed.
struct WebAnswer {
    url: url::Url,
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl WebAnswer {
    fn is_profile(&self) -> bool {
        self.status == 200 && self.content_type.starts_with(PROFILE_CONTENT_TYPE)
    }

    fn is_html(&self) -> bool {
        self.content_type.starts_with("text/html") || self.content_type.starts_with("application/xhtml+xml")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn content_type(h: &reqwest::header::HeaderMap) -> String {
    h.get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The ADE profile's flags and where to get the enrollment profile.
struct AdeProfile {
    url: Option<String>,
    configuration_web_url: Option<String>,
    setup: AdeSetup,
}

impl AdeProfile {
    fn read(p: &serde_json::Value) -> AdeProfile {
        let s = |k: &str| {
            p.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let b = |k: &str, default: bool| p.get(k).and_then(serde_json::Value::as_bool).unwrap_or(default);
        AdeProfile {
            url: s("url"),
            configuration_web_url: s("configuration_web_url"),
            setup: AdeSetup {
                await_configured: b("await_device_configured", false),
                supervised: b("is_supervised", false),
                removable: b("is_mdm_removable", true),
            },
        }
    }
}

fn web_user_agent(info: &DeviceInfo) -> String {
    let v = info.os_version.replace('.', "_");
    match info.kind {
        DeviceKind::Mac => {
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)".to_owned()
        }
        DeviceKind::IPhone => format!(
            "Mozilla/5.0 (iPhone; CPU iPhone OS {v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
        ),
        DeviceKind::IPad => {
            format!(
                "Mozilla/5.0 (iPad; CPU OS {v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
            )
        }
    }
}

impl FleetInner {
    /// The fleet's device for an ABM serial, added (with the ABM model) when new.
    pub(crate) fn device_for_serial(&self, serial: &str, kind: DeviceKind, model: &str) -> Device {
        let mut devs = self.devices.write().unwrap_or_else(|p| p.into_inner());
        let mut by_serial = self.by_serial.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = by_serial.get(serial).and_then(|&i| devs.get(i)) {
            return d.clone();
        }
        let i = devs.len();
        let d = Device::new(i, DeviceInfo::for_serial(kind, serial, model));
        devs.push(d.clone());
        by_serial.insert(serial.to_owned(), i);
        d
    }

    /// The device's hardware identity, issued by the simulator's device CA on first use.
    async fn hardware_identity(&self, dev: &Device) -> Result<(X509, PKey<Private>), FleetError> {
        if let Some(h) = dev.lock().hardware.clone() {
            return Ok(h);
        }
        let key = self.keys.key(2048).await?;
        let sim = self.sim.clone();
        let info = dev.info.clone();
        let k = key.clone();
        // The first identity makes the CA's key: off the async threads.
        let cert = tokio::task::spawn_blocking(move || {
            sim.issue_device_identity(&info.udid, &info.serial_number, unit(info.kind), &k)
        })
        .await
        .map_err(|e| FleetError::Protocol(format!("device identity task: {e}")))?
        .map_err(|e| FleetError::Protocol(format!("device identity: {e}")))?;
        let mut g = dev.lock();
        Ok(g.hardware.get_or_insert((cert, key)).clone())
    }

    /// The signed MachineInfo of `dev` (CMS DER).
    pub(crate) async fn machine_info(&self, dev: &Device) -> Result<Vec<u8>, FleetError> {
        let (cert, key) = self.hardware_identity(dev).await?;
        MachineInfo::of(&dev.info).sign(&cert, &key)
    }

    /// Erase: the device forgets its MDM enrollment, installed profiles, settings, command
    /// log and Setup Assistant state (not its hardware identity). The caller holds `busy`.
    pub(crate) fn wipe(&self, dev: &Device) {
        let was_enrolled = dev.is_enrolled();
        self.forget(dev, false);
        {
            let mut g = dev.lock();
            g.state = super::commands::DeviceState::new((*dev.info).clone());
            g.erased = false;
        }
        dev.configured.send_replace(None);
        if was_enrolled {
            self.stats.enrolled.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Activate one ABM device (erasing it first when `erase`), at most `concurrency` at a
    /// time across the fleet.
    pub(crate) async fn activate(
        self: &Arc<Self>,
        serial: &str,
        opts: &ActivationOptions,
        erase: bool,
    ) -> ActivationOutcome {
        let not_ade = |reason: &str| ActivationOutcome::NotAde {
            serial: serial.to_owned(),
            reason: reason.to_owned(),
        };
        let refused = |r: Refusal| ActivationOutcome::Refused {
            serial: serial.to_owned(),
            step: r.step,
            status: r.status,
            message: r.message,
            body: r.body,
        };
        let Some(abm) = self.sim.device(serial) else {
            return not_ade("Apple Business Manager does not know this serial number");
        };
        if abm.server.is_none() {
            return not_ade("not assigned to an MDM server in Apple Business Manager");
        }
        let Some(ade) = abm
            .profile_uuid
            .as_deref()
            .and_then(|u| self.sim.profile(u))
            .map(|p| AdeProfile::read(&p))
        else {
            return not_ade("no ADE profile is assigned to it");
        };
        let Some(kind) = kind_of_family(&abm.device_family) else {
            return refused(refusal(
                ActivationStep::Device,
                None,
                format!(
                    "applesim plays iPhones, iPads and Macs, not {} devices",
                    abm.device_family
                ),
                b"",
            ));
        };
        let dev = self.device_for_serial(serial, kind, &abm.model);
        let permit = self.limit.acquire().await;
        let busy = dev.busy.lock().await;
        if erase || dev.is_erased() {
            // Asked to, or wiped by EraseDevice since: a clean slate either way.
            self.wipe(&dev);
        } else if dev.is_enrolled() {
            return refused(refusal(
                ActivationStep::Device,
                None,
                "the device is enrolled already: erase it to activate it again",
                b"",
            ));
        } else {
            dev.configured.send_replace(None);
        }
        // Setup Assistant fetched the ADE profile from Apple.
        if let Err(e) = self.sim.simulate_profile_fetch(&[serial.to_owned()]) {
            tracing::warn!("{serial}: marking the profile pushed: {e}");
        }
        let result = async {
            let der = self
                .machine_info(&dev)
                .await
                .map_err(|e| refusal(ActivationStep::MachineInfo, None, e.to_string(), b""))?;
            let body = match (&ade.configuration_web_url, &ade.url) {
                (Some(page), _) => {
                    self.web_enrollment(&dev, page, &der, opts.credentials.for_serial(serial))
                        .await?
                }
                (None, Some(url)) => self.post_machine_info(&dev, url, der).await?,
                (None, None) => {
                    return Err(refusal(
                        ActivationStep::EnrollmentUrl,
                        None,
                        "the ADE profile has no url",
                        b"",
                    ));
                }
            };
            self.install_profile(&dev, &body, Some(ade.setup))
                .await
                .map_err(|e| match e {
                    FleetError::Server { status, body, .. } => {
                        refusal(ActivationStep::Install, Some(status), body.clone(), body.as_bytes())
                    }
                    other => refusal(ActivationStep::Install, None, other.to_string(), b""),
                })
        }
        .await;
        drop(busy);
        drop(permit);
        let receiver = match result {
            Ok(r) => r,
            Err(r) => {
                if r.step == ActivationStep::Install {
                    self.stats
                        .enroll_failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.stats
                        .error(format!("device {} ({serial}): activation: {}", dev.index, r.message));
                }
                return refused(r);
            }
        };
        let enrolled_at = self.sim.clock().now();
        self.stats.enrolled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        super::spawn_listener(self.clone(), dev.clone(), receiver);
        let configured = if !ade.setup.await_configured {
            Configured::NotRequested
        } else {
            let mut rx = dev.configured.subscribe();
            let waited = match opts.wait_configured {
                Some(t) => tokio::time::timeout(t, rx.wait_for(Option::is_some))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|v| *v),
                None => *rx.borrow(),
            };
            waited.map_or(Configured::Waiting, Configured::At)
        };
        ActivationOutcome::Enrolled {
            serial: serial.to_owned(),
            udid: dev.info.udid.clone(),
            device: dev.index,
            enrolled_at,
            configured,
        }
    }

    /// `POST` MachineInfo to the ADE profile's `url`.
    async fn post_machine_info(&self, dev: &Device, url: &str, der: Vec<u8>) -> Result<Vec<u8>, Refusal> {
        let step = ActivationStep::EnrollmentUrl;
        let resp = self
            .web
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, MACHINE_INFO_CONTENT_TYPE)
            .header(
                reqwest::header::USER_AGENT,
                super::device::checkin_user_agent(dev.info.kind),
            )
            .body(der)
            .send()
            .await
            .map_err(|e| refusal(step, None, format!("POST {url}: {e}"), b""))?;
        let status = resp.status().as_u16();
        let ctype = content_type(resp.headers());
        let body = resp
            .bytes()
            .await
            .map_err(|e| refusal(step, Some(status), format!("POST {url}: reading the answer: {e}"), b""))?;
        if status == 200 && ctype.starts_with(PROFILE_CONTENT_TYPE) {
            return Ok(body.to_vec());
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(BODY_KEPT)])
            .trim()
            .to_owned();
        let message = if text.is_empty() {
            format!("HTTP {status} without a body")
        } else {
            text
        };
        Err(refusal(step, Some(status), message, &body))
    }

    /// The `configuration_web_url` page, and its sign-in form when it shows one.
    async fn web_enrollment(
        &self,
        dev: &Device,
        page: &str,
        der: &[u8],
        user: Option<&SignIn>,
    ) -> Result<Vec<u8>, Refusal> {
        let step = ActivationStep::ConfigurationWebUrl;
        let start = url::Url::parse(page).map_err(|e| refusal(step, None, format!("{page}: {e}"), b""))?;
        let ua = web_user_agent(&dev.info);
        let info = base64::engine::general_purpose::STANDARD.encode(der);
        let mut jar = web::Cookies::default();
        let first = self
            .load(&mut jar, &ua, start, None, Some(&info))
            .await
            .map_err(|e| refusal(step, None, e, b""))?;
        if first.is_profile() {
            return Ok(first.body);
        }
        if !(first.status == 200 && first.is_html()) {
            let text = first.text();
            let message = if text.trim().is_empty() {
                format!("HTTP {} ({})", first.status, first.content_type)
            } else {
                text.trim().to_owned()
            };
            return Err(refusal(step, Some(first.status), message, &first.body));
        }
        let html = first.text();
        let Some(form) = web::first_form(&html) else {
            let text = web::plain_text(&html);
            return Err(refusal(
                step,
                Some(200),
                format!(
                    "the page has no form and no profile: {}",
                    text.chars().take(300).collect::<String>()
                ),
                &first.body,
            ));
        };
        let Some(user) = user else {
            return Err(refusal(
                ActivationStep::SignIn,
                None,
                "the page asks to sign in and no credentials were given for this device",
                &first.body,
            ));
        };
        let step = ActivationStep::SignIn;
        let action = match form.action.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            Some(a) => first
                .url
                .join(a)
                .map_err(|e| refusal(step, None, format!("form action {a:?}: {e}"), b""))?,
            None => first.url.clone(),
        };
        let fields = form.fill(&user.username, &user.password);
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish();
        let answer = self
            .load(&mut jar, &ua, action, Some(encoded), None)
            .await
            .map_err(|e| refusal(step, None, e, b""))?;
        if answer.is_profile() {
            return Ok(answer.body);
        }
        let text = answer.text();
        let message = if answer.is_html() {
            web::error_text(&text)
                .unwrap_or_else(|| "the sign-in page came back (no element of class \"error\")".into())
        } else if text.trim().is_empty() {
            format!("HTTP {} ({})", answer.status, answer.content_type)
        } else {
            text.trim().to_owned()
        };
        Err(refusal(step, Some(answer.status), message, &answer.body))
    }

    /// One load of the web view: `GET` (or `POST` of a form), redirects followed, cookies
    /// kept. `device_info` goes on the first request and the redirects it leads to.
    async fn load(
        &self,
        jar: &mut web::Cookies,
        ua: &str,
        mut url: url::Url,
        mut form: Option<String>,
        device_info: Option<&str>,
    ) -> Result<WebAnswer, String> {
        for _ in 0..=MAX_REDIRECTS {
            let host = url.host_str().unwrap_or("").to_owned();
            let mut req = match &form {
                Some(f) => self
                    .web
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(f.clone()),
                None => self.web.get(url.clone()),
            }
            .header(reqwest::header::USER_AGENT, ua)
            .header(
                reqwest::header::ACCEPT,
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            )
            .header(reqwest::header::ACCEPT_LANGUAGE, "en-US,en;q=0.9");
            if let Some(c) = jar.header(&host) {
                req = req.header(reqwest::header::COOKIE, c);
            }
            if let Some(i) = device_info {
                req = req.header(DEVICE_INFO_HEADER, i);
            }
            let method = if form.is_some() { "POST" } else { "GET" };
            let resp = req.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
            jar.store(&host, resp.headers());
            let status = resp.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| format!("{method} {url}: HTTP {status} without a usable Location"))?;
                url = url
                    .join(location.trim())
                    .map_err(|e| format!("{method} {url}: Location {location:?}: {e}"))?;
                if !matches!(status, 307 | 308) {
                    form = None;
                }
                continue;
            }
            let content_type = content_type(resp.headers());
            let body = resp
                .bytes()
                .await
                .map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
            return Ok(WebAnswer {
                url,
                status,
                content_type,
                body: body.to_vec(),
            });
        }
        Err(format!("more than {MAX_REDIRECTS} redirects"))
    }
}
