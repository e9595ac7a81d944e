//! One simulated device's conversations with the MDM server: enrollment (profile, SCEP,
//! Authenticate, TokenUpdate), connects (command loop), CheckOut and identity renewal.

use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::X509;
use plist::{Dictionary, Value};

use super::commands::{self, CommandRecord, DeviceState, Status};
use super::model::{DeviceInfo, DeviceKind};
use super::profile::{EnrollmentProfile, InstalledProfile};
use super::{FleetError, FleetInner, scep};

/// Content type of check-in messages.
pub const CHECKIN_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm-checkin";
/// Content type of command reports (connects).
pub const CONNECT_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm";
/// Content type of configuration profiles.
pub const PROFILE_CONTENT_TYPE: &str = "application/x-apple-aspen-config";

/// What a device holds once enrolled.
#[derive(Clone)]
pub(crate) struct Enrollment {
    pub profile: EnrollmentProfile,
    pub cert: X509,
    pub key: PKey<Private>,
    pub token_hex: String,
    pub push_magic: String,
}

pub(crate) struct Inner {
    pub state: DeviceState,
    pub enrollment: Option<Enrollment>,
    pub erased: bool,
    /// The hardware identity from the Apple device CA (made at the first activation and
    /// kept through erasure, as a real device keeps it).
    pub hardware: Option<(X509, PKey<Private>)>,
}

/// How Setup Assistant installs an enrollment profile it got through Automated Device
/// Enrollment (from the ADE profile's flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AdeSetup {
    /// `await_device_configured`: stay in Setup Assistant until DeviceConfigured.
    pub await_configured: bool,
    /// `is_supervised`.
    pub supervised: bool,
    /// `is_mdm_removable`: when false the user cannot remove the enrollment profile.
    pub removable: bool,
}

/// A simulated device of a [`super::Fleet`]. Cheap to clone (shared).
#[derive(Clone)]
pub struct Device {
    pub(crate) index: usize,
    pub(crate) info: Arc<DeviceInfo>,
    pub(crate) inner: Arc<Mutex<Inner>>,
    /// One connect (or check-in sequence) at a time per device, as on a real device.
    pub(crate) busy: Arc<tokio::sync::Mutex<()>>,
    /// When the device, waiting in Setup Assistant, acknowledged DeviceConfigured (simulated
    /// clock); `None` until then (and again after an erase).
    pub(crate) configured: Arc<tokio::sync::watch::Sender<Option<time::OffsetDateTime>>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("index", &self.index)
            .field("udid", &self.info.udid)
            .field("kind", &self.info.kind)
            .finish()
    }
}

/// What a connect did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOutcome {
    /// Commands received and answered.
    pub commands: usize,
    /// Commands answered NotNow.
    pub not_now: usize,
    /// The device was erased (it stops answering).
    pub erased: bool,
}

impl Device {
    pub(crate) fn new(index: usize, info: DeviceInfo) -> Device {
        Device {
            index,
            inner: Arc::new(Mutex::new(Inner {
                state: DeviceState::new(info.clone()),
                enrollment: None,
                erased: false,
                hardware: None,
            })),
            info: Arc::new(info),
            busy: Arc::new(tokio::sync::Mutex::new(())),
            configured: Arc::new(tokio::sync::watch::channel(None).0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Its position in the fleet.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Fixed facts (UDID, serial number, model, OS…).
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The UDID.
    pub fn udid(&self) -> &str {
        &self.info.udid
    }

    /// The serial number.
    pub fn serial_number(&self) -> &str {
        &self.info.serial_number
    }

    /// iPhone, iPad or Mac.
    pub fn kind(&self) -> DeviceKind {
        self.info.kind
    }

    /// The current device name (Settings/DeviceName changes it).
    pub fn name(&self) -> String {
        self.lock().state.name.clone()
    }

    /// Installed profiles, the enrollment profile first (empty once unenrolled or erased).
    pub fn profiles(&self) -> Vec<InstalledProfile> {
        self.lock().state.profiles.clone()
    }

    /// Every command received, with what the device answered, in order.
    pub fn commands(&self) -> Vec<CommandRecord> {
        self.lock().state.log.clone()
    }

    /// The identity certificate from SCEP (None before enrollment and after unenrollment).
    pub fn identity_certificate(&self) -> Option<X509> {
        self.lock().enrollment.as_ref().map(|e| e.cert.clone())
    }

    /// Whether it is enrolled (and not erased).
    pub fn is_enrolled(&self) -> bool {
        let g = self.lock();
        g.enrollment.is_some() && !g.erased
    }

    /// Whether EraseDevice wiped it.
    pub fn is_erased(&self) -> bool {
        self.lock().erased
    }

    /// Its push token as hex (what TokenUpdate sent), when enrolled.
    pub fn push_token_hex(&self) -> Option<String> {
        self.lock().enrollment.as_ref().map(|e| e.token_hex.clone())
    }

    /// The APNs topic it is enrolled for.
    pub fn topic(&self) -> Option<String> {
        self.lock().enrollment.as_ref().map(|e| e.profile.mdm.topic.clone())
    }

    /// A copy of its whole mutable state (name, profiles, log, settings).
    pub fn state(&self) -> DeviceState {
        self.lock().state.clone()
    }

    /// Whether it waits in Setup Assistant for DeviceConfigured (enrolled through ADE with
    /// `await_device_configured`, not yet released).
    pub fn is_awaiting_configuration(&self) -> bool {
        self.lock().state.awaiting_configuration
    }

    /// When it acknowledged DeviceConfigured while waiting in Setup Assistant (simulated
    /// clock), if it did since its last activation.
    pub fn configured_at(&self) -> Option<time::OffsetDateTime> {
        *self.configured.borrow()
    }

    /// Its hardware identity certificate from the simulated Apple device CA (made at its
    /// first activation).
    pub fn hardware_certificate(&self) -> Option<X509> {
        self.lock().hardware.as_ref().map(|(c, _)| c.clone())
    }
}

fn plist_xml(d: Dictionary) -> Result<Vec<u8>, FleetError> {
    let mut out = Vec::new();
    Value::Dictionary(d)
        .to_writer_xml(&mut out)
        .map_err(|e| FleetError::Protocol(format!("writing a plist: {e}")))?;
    Ok(out)
}

/// `Mdm-Signature`: base64 of a detached PKCS#7 signature (SHA-256) over the body.
pub fn mdm_signature(cert: &X509, key: &PKey<Private>, body: &[u8]) -> Result<String, FleetError> {
    let certs = Stack::new().map_err(crypto)?;
    let p7 = Pkcs7::sign(cert, key, &certs, body, Pkcs7Flags::DETACHED | Pkcs7Flags::BINARY).map_err(crypto)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(p7.to_der().map_err(crypto)?))
}

/// The `User-Agent` of the device's MDM client.
pub(crate) fn checkin_user_agent(kind: DeviceKind) -> &'static str {
    if kind == DeviceKind::Mac {
        "MDM-OSX/1.0 mdmclient/1"
    } else {
        "MDM/1.0"
    }
}

fn crypto(e: openssl::error::ErrorStack) -> FleetError {
    FleetError::Protocol(format!("openssl: {e}"))
}

impl FleetInner {
    /// PUT a plist to the MDM server as `dev` (signed when the profile says so).
    async fn put(
        &self,
        dev: &Device,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        sign: Option<(&X509, &PKey<Private>)>,
    ) -> Result<Vec<u8>, FleetError> {
        let mut req = self
            .http
            .put(url)
            .header("content-type", content_type)
            .header("user-agent", checkin_user_agent(dev.info.kind));
        if let Some((cert, key)) = sign {
            req = req.header("mdm-signature", mdm_signature(cert, key, &body)?);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| FleetError::Http(format!("PUT {url}: {e}")))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| FleetError::Http(format!("PUT {url}: reading the answer: {e}")))?;
        if status != reqwest::StatusCode::OK {
            return Err(FleetError::Server {
                url: url.to_owned(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned(),
            });
        }
        Ok(bytes.to_vec())
    }

    async fn checkin(&self, dev: &Device, e: &Enrollment, mut msg: Dictionary) -> Result<(), FleetError> {
        msg.insert("UDID".into(), dev.info.udid.clone().into());
        let body = plist_xml(msg)?;
        let sign = e.profile.mdm.sign_message.then_some((&e.cert, &e.key));
        self.put(dev, &e.profile.mdm.check_in_url, CHECKIN_CONTENT_TYPE, body, sign)
            .await
            .map(|_| ())
    }

    /// Download the profile behind `link`, get an identity by SCEP, register for pushes,
    /// then Authenticate and TokenUpdate. Returns the push receiver.
    pub(crate) async fn enroll_device(
        self: &Arc<Self>,
        dev: &Device,
        link: &str,
    ) -> Result<crate::apns::PushReceiver, FleetError> {
        let _busy = dev.busy.lock().await;
        let resp = self
            .http
            .get(link)
            .header("user-agent", "Profile/1.0")
            .send()
            .await
            .map_err(|e| FleetError::Http(format!("GET {link}: {e}")))?;
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp
            .bytes()
            .await
            .map_err(|e| FleetError::Http(format!("GET {link}: {e}")))?;
        if status != reqwest::StatusCode::OK {
            return Err(FleetError::Server {
                url: link.to_owned(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            });
        }
        if !ctype.starts_with(PROFILE_CONTENT_TYPE) {
            return Err(FleetError::Protocol(format!(
                "GET {link}: content type {ctype:?}, not {PROFILE_CONTENT_TYPE}: a device would not install it"
            )));
        }
        self.install_profile(dev, &body, None).await
    }

    /// Install an enrollment profile (plain or signed): get an identity by SCEP, register
    /// for pushes, then Authenticate and TokenUpdate (`AwaitingConfiguration` as `ade`
    /// says). Returns the push receiver. The caller holds `dev.busy`.
    pub(crate) async fn install_profile(
        self: &Arc<Self>,
        dev: &Device,
        body: &[u8],
        ade: Option<AdeSetup>,
    ) -> Result<crate::apns::PushReceiver, FleetError> {
        let awaiting = ade.is_some_and(|a| a.await_configured);
        let mut profile = super::profile::parse_enrollment_profile(body).map_err(|e| FleetError::Profile(e.0))?;
        if ade.is_some_and(|a| !a.removable) {
            profile.summary.removal_disallowed = true;
        }
        // SCEP: the device key, the subject of the payload.
        let key = self.keys.key(profile.scep.keysize).await?;
        let subject_pairs = if profile.scep.subject.is_empty() {
            vec![("CN".to_owned(), dev.info.initial_name.clone())]
        } else {
            profile.scep.subject.clone()
        };
        let subject = scep::subject_name(&subject_pairs)?;
        let issued = scep::enroll(
            &self.http,
            scep::ScepRequest {
                url: &profile.scep.url,
                subject: &subject,
                challenge: profile.scep.challenge.as_deref(),
                ca_fingerprint: profile.scep.ca_fingerprint.as_deref(),
                new_key: key,
                renew: None,
            },
        )
        .await?;
        let reg = self.sim.register_push_token(&profile.mdm.topic);
        let enrollment = Enrollment {
            profile: profile.clone(),
            cert: issued.cert,
            key: issued.key,
            token_hex: reg.token_hex.clone(),
            push_magic: crate::pushcert::uuid_v4(true),
        };
        let result = async {
            let info = &dev.info;
            let mut auth = Dictionary::new();
            auth.insert("MessageType".into(), "Authenticate".into());
            auth.insert("Topic".into(), profile.mdm.topic.clone().into());
            auth.insert("SerialNumber".into(), info.serial_number.clone().into());
            // Apple's authenticate.yaml: DeviceName, Model and ModelName are "n/a" on iOS and
            // iPadOS (the MDM server learns them from DeviceInformation); macOS sends them.
            if info.kind == DeviceKind::Mac {
                auth.insert("Model".into(), info.model.clone().into());
                auth.insert("ModelName".into(), info.model_name.clone().into());
                auth.insert("DeviceName".into(), dev.name().into());
            }
            auth.insert("ProductName".into(), info.product_name.clone().into());
            auth.insert("OSVersion".into(), info.os_version.clone().into());
            auth.insert("BuildVersion".into(), info.build_version.clone().into());
            if let Some(v) = &info.imei {
                auth.insert("IMEI".into(), v.clone().into());
            }
            if let Some(v) = &info.meid {
                auth.insert("MEID".into(), v.clone().into());
            }
            self.checkin(dev, &enrollment, auth).await?;
            let mut tu = Dictionary::new();
            tu.insert("MessageType".into(), "TokenUpdate".into());
            tu.insert("Topic".into(), profile.mdm.topic.clone().into());
            tu.insert("Token".into(), Value::Data(reg.token.clone()));
            tu.insert("PushMagic".into(), enrollment.push_magic.clone().into());
            if info.kind.is_ios() {
                let mut unlock = vec![0u8; 32];
                crate::catalog::os_random(&mut unlock);
                tu.insert("UnlockToken".into(), Value::Data(unlock));
            }
            tu.insert("AwaitingConfiguration".into(), awaiting.into());
            self.checkin(dev, &enrollment, tu).await
        }
        .await;
        if let Err(e) = result {
            let _ = self.sim.unregister_push_token(&reg.token_hex);
            return Err(e);
        }
        {
            let mut g = dev.lock();
            g.state.profiles.insert(0, profile.summary.clone());
            g.state.push_token = reg.token.clone();
            g.state.awaiting_configuration = awaiting;
            if let Some(a) = ade {
                g.state.supervised = a.supervised;
            }
            g.enrollment = Some(enrollment);
            g.erased = false;
        }
        Ok(reg.receiver)
    }

    /// One connect: Idle, then answer commands until the server answers an empty body.
    pub(crate) async fn connect(self: &Arc<Self>, dev: &Device) -> Result<ConnectOutcome, FleetError> {
        let _busy = dev.busy.lock().await;
        let Some(e) = ({
            let g = dev.lock();
            if g.erased { None } else { g.enrollment.clone() }
        }) else {
            return Err(FleetError::NotEnrolled(dev.info.udid.clone()));
        };
        self.stats.connect();
        let sign = e.profile.mdm.sign_message.then_some((&e.cert, &e.key));
        let mut report = Dictionary::new();
        report.insert("Status".into(), "Idle".into());
        let mut out = ConnectOutcome::default();
        // DeviceConfigured answered while waiting in Setup Assistant: the device leaves it
        // once the server has taken the Acknowledged.
        let mut configured_answered = false;
        // A real device answers every command it is given on one connection; the bound only
        // guards against a server that never stops.
        for _ in 0..10_000 {
            report.insert("UDID".into(), dev.info.udid.clone().into());
            let body = plist_xml(std::mem::take(&mut report))?;
            let answer = self
                .put(dev, &e.profile.mdm.server_url, CONNECT_CONTENT_TYPE, body, sign)
                .await?;
            if std::mem::take(&mut configured_answered) {
                dev.configured.send_replace(Some(self.sim.clock().now()));
            }
            if out.erased {
                // The Acknowledged for EraseDevice is out: the device wipes itself.
                return Ok(out);
            }
            if answer.is_empty() {
                return Ok(out);
            }
            let command = Value::from_reader(std::io::Cursor::new(&answer[..]))
                .unwrap_or_else(|_| Value::String("unreadable".into()));
            out.commands += 1;
            let rt = command
                .as_dictionary()
                .and_then(|t| t.get("Command"))
                .and_then(Value::as_dictionary)
                .and_then(|c| c.get("RequestType"))
                .and_then(Value::as_string)
                .map(str::to_owned);
            // In Setup Assistant nobody has locked the device: no NotNow.
            let in_setup = dev.lock().state.awaiting_configuration;
            let not_now = !in_setup && rt.as_deref().is_some_and(commands::may_not_now) && self.roll_not_now();
            let a = if not_now {
                commands::Answer {
                    status: Status::NotNow,
                    command_uuid: command
                        .as_dictionary()
                        .and_then(|t| t.get("CommandUUID"))
                        .and_then(Value::as_string)
                        .map(str::to_owned),
                    request_type: rt.clone(),
                    keys: Dictionary::new(),
                    erase: false,
                }
            } else {
                let mut g = dev.lock();
                let a = commands::answer(&mut g.state, &command);
                if in_setup && a.status == Status::Acknowledged && rt.as_deref() == Some("DeviceConfigured") {
                    configured_answered = true;
                }
                a
            };
            {
                let mut g = dev.lock();
                g.state.log.push(CommandRecord {
                    command_uuid: a.command_uuid.clone().unwrap_or_default(),
                    request_type: a.request_type.clone().unwrap_or_default(),
                    status: a.status,
                });
            }
            self.stats.command(a.status);
            if a.status == Status::NotNow {
                out.not_now += 1;
            }
            report = a.keys;
            report.insert("Status".into(), a.status.as_str().into());
            if let Some(u) = a.command_uuid {
                report.insert("CommandUUID".into(), u.into());
            }
            if a.erase {
                out.erased = true;
            }
        }
        Err(FleetError::Protocol(
            "the server sent 10 000 commands on one connection".into(),
        ))
    }

    /// Forget everything after EraseDevice (or CheckOut): no identity, no profiles, no pushes.
    pub(crate) fn forget(&self, dev: &Device, erased: bool) {
        let e = {
            let mut g = dev.lock();
            g.erased = erased;
            g.state.profiles.clear();
            g.state.push_token.clear();
            g.enrollment.take()
        };
        if let Some(e) = e {
            let _ = self.sim.unregister_push_token(&e.token_hex);
        }
    }

    /// CheckOut (when the profile asks for it), then forget the enrollment and unregister.
    pub(crate) async fn checkout(self: &Arc<Self>, dev: &Device) -> Result<(), FleetError> {
        let _busy = dev.busy.lock().await;
        let Some(e) = dev.lock().enrollment.clone() else {
            return Err(FleetError::NotEnrolled(dev.info.udid.clone()));
        };
        let result = if e.profile.mdm.check_out_when_removed {
            let mut m = Dictionary::new();
            m.insert("MessageType".into(), "CheckOut".into());
            m.insert("Topic".into(), e.profile.mdm.topic.clone().into());
            self.checkin(dev, &e, m).await
        } else {
            Ok(())
        };
        self.forget(dev, false);
        result
    }

    /// Renew the identity by SCEP (RenewalReq signed by the current identity).
    pub(crate) async fn renew(self: &Arc<Self>, dev: &Device) -> Result<X509, FleetError> {
        let _busy = dev.busy.lock().await;
        let Some(e) = dev.lock().enrollment.clone() else {
            return Err(FleetError::NotEnrolled(dev.info.udid.clone()));
        };
        let key = self.keys.fresh(e.profile.scep.keysize).await?;
        let subject = e.cert.subject_name().to_owned().map_err(crypto)?;
        let issued = scep::enroll(
            &self.http,
            scep::ScepRequest {
                url: &e.profile.scep.url,
                subject: &subject,
                challenge: None,
                ca_fingerprint: e.profile.scep.ca_fingerprint.as_deref(),
                new_key: key,
                renew: Some((&e.cert, &e.key)),
            },
        )
        .await?;
        let cert = issued.cert.clone();
        if let Some(en) = dev.lock().enrollment.as_mut() {
            en.cert = issued.cert;
            en.key = issued.key;
        }
        Ok(cert)
    }
}
