//! Simulated Apple devices that enroll in an MDM server and answer its commands.
//!
//! A [`Fleet`] of iPhones, iPads and Macs, each of which, written from Apple's documents
//! (`mdm/checkin`, `mdm/commands`, `mdm/profiles` of Apple's device-management schemas):
//!
//! 1. downloads the enrollment profile behind a link (`application/x-apple-aspen-config`,
//!    plain or CMS-signed) and reads its `com.apple.security.scep` and `com.apple.mdm`
//!    payloads ([`profile`]);
//! 2. gets its identity by SCEP (RFC 8894, [`scep`]): GetCACaps, GetCACert (CAFingerprint
//!    checked), PKCSReq with the challenge, AES-256-CBC or DES3, SHA-256 or SHA-1, POST or
//!    GET as the CA's capabilities say;
//! 3. registers a push token for the profile's topic with the simulator's APNs
//!    ([`crate::AppleSim::register_push_token`]);
//! 4. checks in (Authenticate, TokenUpdate; `Mdm-Signature` when `SignMessage`);
//! 5. connects when pushed, answering each command ([`commands`]) — or `NotNow` with
//!    probability [`FleetOptions::not_now_rate`], connecting again by itself after
//!    [`FleetOptions::not_now_retry`];
//! 6. on request checks out ([`Fleet::checkout`]) or renews its identity ([`Fleet::renew`]).
//!
//! Instead of a link, devices of the simulator's Apple Business Manager can activate through
//! Automated Device Enrollment ([`Fleet::activate`], [`activation`]): signed MachineInfo,
//! the `configuration_web_url` sign-in page or the `url` POST, then steps 2 to 5, waiting in
//! Setup Assistant for DeviceConfigured when the ADE profile asks for it.
//!
//! ```no_run
//! # async fn demo(link: &str) -> Result<(), applesim::devices::FleetError> {
//! use applesim::AppleSim;
//! use applesim::devices::{DeviceKind, Fleet, FleetOptions};
//! let sim = AppleSim::new(); // the simulator that issued the MDM server's push certificate
//! let fleet = Fleet::new(sim, FleetOptions {
//!     mix: vec![(DeviceKind::IPhone, 2), (DeviceKind::IPad, 1), (DeviceKind::Mac, 1)],
//!     not_now_rate: 0.1,
//!     ..FleetOptions::default()
//! })?;
//! let report = fleet.enroll(link, 20).await;
//! println!("{} enrolled, {} failed", report.enrolled.len(), report.failed.len());
//! // Devices now answer pushes by themselves.
//! println!("{:?}", fleet.stats());
//! fleet.shutdown();
//! # Ok(()) }
//! ```
//!
//! **RSA keys.** Each device makes an RSA key of the payload's `Keysize` (2048 by default),
//! which takes ~50–100 ms of CPU: 10,000 devices take minutes on two cores. For benchmarks,
//! [`FleetOptions::key_pool`] makes that many keys once and lets devices share them (each
//! still gets its own certificate). Renewals always make a fresh key.
//!
//! **NotNow.** A device answers NotNow only to commands Apple allows it for
//! ([`commands::may_not_now`]; DeviceLock, EraseDevice, DeviceInformation, ProfileList, …
//! are always executed), and rolls the dice for each command. It still answers every
//! command the server sends on the same connection (as a device must), and when one or more
//! commands were NotNow'd it connects again by itself after `not_now_retry`, as an iOS device
//! does once unlocked.

pub mod activation;
pub mod commands;
pub mod der;
mod device;
pub mod model;
pub mod profile;
pub mod scep;
pub mod web;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::X509;
use tokio::sync::{Semaphore, watch};

pub use activation::{
    ActivationOptions, ActivationOutcome, ActivationReport, ActivationStep, Configured, Credentials, MachineInfo,
    SignIn, signed_machine_info,
};
pub use commands::{CommandRecord, DeviceState, Status};
pub use device::{
    CHECKIN_CONTENT_TYPE, CONNECT_CONTENT_TYPE, ConnectOutcome, Device, PROFILE_CONTENT_TYPE, mdm_signature,
};
pub use model::{DeviceInfo, DeviceKind};

use crate::AppleSim;

/// What went wrong for a device.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The request did not get an answer (connection refused, TLS, timeout).
    #[error("HTTP: {0}")]
    Http(String),
    /// The server answered something other than 200.
    #[error("{url} answered HTTP {status}: {body}")]
    Server {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The enrollment profile was refused.
    #[error("{0}")]
    Profile(String),
    /// SCEP failed.
    #[error(transparent)]
    Scep(#[from] scep::ScepError),
    /// Something else about the protocol (or a local crypto failure).
    #[error("{0}")]
    Protocol(String),
    /// The device is not enrolled (never was, checked out, or erased).
    #[error("device {0} is not enrolled")]
    NotEnrolled(String),
    /// No such device index.
    #[error("no device {0} in the fleet")]
    NoSuchDevice(usize),
    /// Bad options.
    #[error("fleet options: {0}")]
    Options(String),
}

/// How the fleet behaves.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Kinds and weights: device `i` takes its kind from the weighted round
    /// (`[(IPhone,2),(IPad,1),(Mac,1)]` gives iPhone, iPhone, iPad, Mac, iPhone, …).
    pub mix: Vec<(DeviceKind, u32)>,
    /// Probability (0–1) that a device answers NotNow to a command that allows it.
    pub not_now_rate: f64,
    /// How long after a connect with NotNow the device connects again by itself.
    pub not_now_retry: Duration,
    /// Share this many RSA keys (made once) instead of one key per device: see the module
    /// doc. `None`: a key per device.
    pub key_pool: Option<usize>,
    /// Enrollments and connects in flight at once, across the fleet.
    pub concurrency: usize,
    /// Extra CA certificates (PEM) to trust for `https://` MDM and SCEP URLs.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate (test servers with self-signed certificates).
    pub accept_invalid_certs: bool,
    /// Refuse `http://` URLs (real devices only speak HTTPS; tests usually allow HTTP).
    pub https_only: bool,
    /// Timeout of each HTTP request.
    pub request_timeout: Duration,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            mix: vec![(DeviceKind::IPhone, 2), (DeviceKind::IPad, 1), (DeviceKind::Mac, 1)],
            not_now_rate: 0.0,
            not_now_retry: Duration::from_secs(3),
            key_pool: None,
            concurrency: 32,
            extra_ca_pem: None,
            accept_invalid_certs: false,
            https_only: false,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Parse a mix such as `iphone=2,ipad=1,mac=1`.
pub fn parse_mix(s: &str) -> Result<Vec<(DeviceKind, u32)>, FleetError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, w) = part.split_once('=').unwrap_or((part, "1"));
        let kind = DeviceKind::parse(k)
            .ok_or_else(|| FleetError::Options(format!("unknown device kind {k:?} (iphone, ipad or mac)")))?;
        let w: u32 = w
            .trim()
            .parse()
            .map_err(|_| FleetError::Options(format!("weight {w:?} of {k} is not a number")))?;
        out.push((kind, w));
    }
    if out.iter().all(|(_, w)| *w == 0) {
        return Err(FleetError::Options(format!("the mix {s:?} has no device")));
    }
    Ok(out)
}

/// Counters of the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetStats {
    /// Devices enrolled now.
    pub enrolled: u64,
    /// Enrollments that failed.
    pub enroll_failures: u64,
    /// Connects made.
    pub connects: u64,
    /// Pushes that woke a device.
    pub wakes: u64,
    /// Commands answered, by status (`Acknowledged`, `Error`, `CommandFormatError`, `NotNow`).
    pub commands: BTreeMap<String, u64>,
    /// Failures of any kind (enrollment, connect, check-out, renewal).
    pub errors: u64,
    /// Check-outs done.
    pub checkouts: u64,
    /// Identity renewals done.
    pub renewals: u64,
    /// Devices wiped by EraseDevice.
    pub erased: u64,
    /// The last errors (at most 20), newest last.
    pub recent_errors: Vec<String>,
}

impl FleetStats {
    /// Commands answered with `status`.
    pub fn commands_with(&self, status: Status) -> u64 {
        self.commands.get(status.as_str()).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct Counters {
    enrolled: AtomicU64,
    enroll_failures: AtomicU64,
    connects: AtomicU64,
    wakes: AtomicU64,
    acknowledged: AtomicU64,
    error: AtomicU64,
    format_error: AtomicU64,
    not_now: AtomicU64,
    errors: AtomicU64,
    checkouts: AtomicU64,
    renewals: AtomicU64,
    erased: AtomicU64,
    recent: Mutex<VecDeque<String>>,
}

impl Counters {
    fn connect(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }
    fn command(&self, s: Status) {
        let c = match s {
            Status::Acknowledged => &self.acknowledged,
            Status::Error => &self.error,
            Status::CommandFormatError => &self.format_error,
            Status::NotNow => &self.not_now,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
    fn error(&self, what: String) {
        tracing::warn!("{what}");
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() == 20 {
            r.pop_front();
        }
        r.push_back(what);
    }
}

/// RSA keys: made per device, or taken from a pool made once.
struct Keys {
    pool_size: Option<usize>,
    pool: tokio::sync::OnceCell<Vec<PKey<Private>>>,
    next: AtomicU64,
}

async fn generate(bits: u32) -> Result<PKey<Private>, FleetError> {
    tokio::task::spawn_blocking(move || Rsa::generate(bits).and_then(PKey::from_rsa))
        .await
        .map_err(|e| FleetError::Protocol(format!("key generation task: {e}")))?
        .map_err(|e| FleetError::Protocol(format!("RSA key generation: {e}")))
}

impl Keys {
    /// A key for a new device: from the pool (2048-bit keys) when there is one.
    async fn key(&self, bits: u32) -> Result<PKey<Private>, FleetError> {
        match self.pool_size {
            Some(n) if n > 0 && bits == 2048 => {
                let pool = self
                    .pool
                    .get_or_try_init(|| async {
                        // Two generators at a time: the machines this runs on have few cores.
                        let mut keys = Vec::with_capacity(n);
                        while keys.len() < n {
                            let batch: Vec<_> = (0..(n - keys.len()).min(2))
                                .map(|_| tokio::task::spawn_blocking(|| Rsa::generate(2048).and_then(PKey::from_rsa)))
                                .collect();
                            for h in batch {
                                let k = h
                                    .await
                                    .map_err(|e| FleetError::Protocol(format!("key generation task: {e}")))?
                                    .map_err(|e| FleetError::Protocol(format!("RSA key generation: {e}")))?;
                                keys.push(k);
                            }
                        }
                        Ok::<_, FleetError>(keys)
                    })
                    .await?;
                let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % pool.len();
                Ok(pool[i].clone())
            }
            _ => generate(bits).await,
        }
    }

    /// Always a new key (renewals).
    async fn fresh(&self, bits: u32) -> Result<PKey<Private>, FleetError> {
        generate(bits).await
    }
}

pub(crate) struct FleetInner {
    sim: AppleSim,
    opts: FleetOptions,
    http: reqwest::Client,
    /// Setup Assistant's web view and enrollment requests: redirects are followed by hand
    /// (cookies kept across them).
    web: reqwest::Client,
    devices: RwLock<Vec<Device>>,
    /// ABM serial → index in `devices`, for devices that activated.
    by_serial: Mutex<HashMap<String, usize>>,
    stats: Counters,
    limit: Semaphore,
    keys: Keys,
    stop: watch::Sender<bool>,
    mix_cycle: Vec<DeviceKind>,
}

impl FleetInner {
    fn roll_not_now(&self) -> bool {
        if self.opts.not_now_rate <= 0.0 {
            return false;
        }
        let mut rng = crate::catalog::Rng::from_os();
        (rng.below(1_000_000) as f64) < self.opts.not_now_rate * 1_000_000.0
    }
}

/// An HTTP client with the fleet's TLS, timeout and pool settings.
fn http_client(opts: &FleetOptions, redirects: reqwest::redirect::Policy) -> Result<reqwest::Client, FleetError> {
    let mut b = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency.max(1))
        .timeout(opts.request_timeout)
        .https_only(opts.https_only)
        .danger_accept_invalid_certs(opts.accept_invalid_certs)
        .redirect(redirects);
    if let Some(pem) = &opts.extra_ca_pem {
        for c in X509::stack_from_pem(pem).map_err(|e| FleetError::Options(format!("extra CA PEM: {e}")))? {
            let der = c.to_der().map_err(|e| FleetError::Options(e.to_string()))?;
            let cert = reqwest::Certificate::from_der(&der).map_err(|e| FleetError::Options(e.to_string()))?;
            b = b.add_root_certificate(cert);
        }
    }
    b.build().map_err(|e| FleetError::Options(format!("HTTP client: {e}")))
}

/// A fleet of simulated devices. Dropping it (or [`Fleet::shutdown`]) stops the devices.
pub struct Fleet {
    inner: Arc<FleetInner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("devices", &self.len()).finish()
    }
}

/// What [`Fleet::enroll`] did.
#[derive(Debug, Default)]
pub struct EnrollReport {
    /// Indexes of the devices that enrolled.
    pub enrolled: Vec<usize>,
    /// The failures (device index, error text).
    pub failed: Vec<(usize, String)>,
}

impl Fleet {
    /// A fleet whose devices register their push tokens with `sim`'s APNs: the simulator
    /// that issued the MDM server's push certificate (APNs only accepts its own).
    pub fn new(sim: AppleSim, opts: FleetOptions) -> Result<Fleet, FleetError> {
        if !(0.0..=1.0).contains(&opts.not_now_rate) {
            return Err(FleetError::Options("not_now_rate is a probability, 0 to 1".into()));
        }
        let mut mix_cycle = Vec::new();
        for (k, w) in &opts.mix {
            for _ in 0..*w {
                mix_cycle.push(*k);
            }
        }
        if mix_cycle.is_empty() {
            return Err(FleetError::Options("the mix has no device".into()));
        }
        let http = http_client(&opts, reqwest::redirect::Policy::default())?;
        let web = http_client(&opts, reqwest::redirect::Policy::none())?;
        let (stop, _) = watch::channel(false);
        Ok(Fleet {
            inner: Arc::new(FleetInner {
                sim,
                limit: Semaphore::new(opts.concurrency.max(1)),
                keys: Keys {
                    pool_size: opts.key_pool,
                    pool: tokio::sync::OnceCell::new(),
                    next: AtomicU64::new(0),
                },
                opts,
                http,
                web,
                devices: RwLock::new(Vec::new()),
                by_serial: Mutex::new(HashMap::new()),
                stats: Counters::default(),
                stop,
                mix_cycle,
            }),
        })
    }

    fn devices_read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Device>> {
        self.inner.devices.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Devices in the fleet (enrolled or not).
    pub fn len(&self) -> usize {
        self.devices_read().len()
    }

    /// Whether the fleet has no device.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Device `i`.
    pub fn device(&self, i: usize) -> Option<Device> {
        self.devices_read().get(i).cloned()
    }

    /// Every device.
    pub fn devices(&self) -> Vec<Device> {
        self.devices_read().clone()
    }

    /// Add `n` devices (kinds from the mix) and enroll them through `link` (an enrollment
    /// link serving a `.mobileconfig`), at most [`FleetOptions::concurrency`] at a time. Each
    /// enrolled device then answers pushes by itself until [`Fleet::shutdown`]. Failed
    /// devices stay in the fleet, not enrolled.
    pub async fn enroll(&self, link: &str, n: usize) -> EnrollReport {
        let start = {
            let mut devs = self.inner.devices.write().unwrap_or_else(|p| p.into_inner());
            let start = devs.len();
            for i in start..start + n {
                let kind = self.inner.mix_cycle[i % self.inner.mix_cycle.len()];
                devs.push(Device::new(i, DeviceInfo::random(kind)));
            }
            start
        };
        let mut set = tokio::task::JoinSet::new();
        for i in start..start + n {
            let Some(dev) = self.device(i) else { continue };
            let inner = self.inner.clone();
            let link = link.to_owned();
            set.spawn(async move {
                let permit = inner.limit.acquire().await;
                let r = inner.enroll_device(&dev, &link).await;
                drop(permit);
                match r {
                    Ok(receiver) => {
                        inner.stats.enrolled.fetch_add(1, Ordering::Relaxed);
                        spawn_listener(inner.clone(), dev.clone(), receiver);
                        Ok(i)
                    }
                    Err(e) => {
                        inner.stats.enroll_failures.fetch_add(1, Ordering::Relaxed);
                        let text = format!("device {i} ({}): enrollment: {e}", dev.udid());
                        inner.stats.error(text.clone());
                        Err((i, text))
                    }
                }
            });
        }
        let mut report = EnrollReport::default();
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(i)) => report.enrolled.push(i),
                Ok(Err(f)) => report.failed.push(f),
                Err(e) => report.failed.push((usize::MAX, format!("task: {e}"))),
            }
        }
        report.enrolled.sort_unstable();
        report.failed.sort();
        report
    }

    /// Activate the Apple Business Manager devices `serials` as new devices in Setup
    /// Assistant (see [`activation`]), at most [`FleetOptions::concurrency`] at a time. A
    /// serial that Apple has not assigned to an MDM server with a profile is
    /// [`ActivationOutcome::NotAde`] and sends nothing. Each device joins the fleet on its
    /// first activation (its UDID and model follow from its serial) and, once enrolled,
    /// answers pushes by itself. A device enrolled already is refused at
    /// [`ActivationStep::Device`]: see [`Fleet::erase_and_activate`].
    pub async fn activate(&self, serials: &[String], opts: &ActivationOptions) -> ActivationReport {
        let mut set = tokio::task::JoinSet::new();
        // One copy for all the tasks (a per-serial credentials map can be large).
        let opts = Arc::new(opts.clone());
        for (n, serial) in serials.iter().enumerate() {
            let inner = self.inner.clone();
            let serial = serial.clone();
            let opts = opts.clone();
            set.spawn(async move { (n, inner.activate(&serial, &opts, false).await) });
        }
        let mut outcomes: Vec<Option<ActivationOutcome>> = vec![None; serials.len()];
        while let Some(r) = set.join_next().await {
            match r {
                Ok((n, o)) => outcomes[n] = Some(o),
                Err(e) => tracing::error!("activation task: {e}"),
            }
        }
        ActivationReport {
            outcomes: outcomes
                .into_iter()
                .zip(serials)
                .map(|(o, serial)| {
                    o.unwrap_or_else(|| ActivationOutcome::Refused {
                        serial: serial.clone(),
                        step: ActivationStep::Device,
                        status: None,
                        message: "the activation task failed".into(),
                        body: String::new(),
                    })
                })
                .collect(),
        }
    }

    /// Erase the device (as "Erase All Content and Settings" does: it forgets its MDM
    /// enrollment, push token, profiles, settings, command log and Setup Assistant state,
    /// but keeps its UDID, serial number and hardware identity), then activate it again.
    pub async fn erase_and_activate(&self, serial: &str, opts: &ActivationOptions) -> ActivationOutcome {
        self.inner.activate(serial, opts, true).await
    }

    /// The fleet's device with this serial number, if it has one.
    pub fn device_by_serial(&self, serial: &str) -> Option<Device> {
        let i = *self
            .inner
            .by_serial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(serial)?;
        self.device(i)
    }

    /// The signed MachineInfo (CMS DER) the ABM device `serial` sends, with its hardware
    /// identity (the device joins the fleet if new). For tests that replay or alter it.
    pub async fn machine_info(&self, serial: &str) -> Result<Vec<u8>, FleetError> {
        let abm = self
            .inner
            .sim
            .device(serial)
            .ok_or_else(|| FleetError::Options(format!("Apple Business Manager does not know {serial}")))?;
        let kind = activation::kind_of_family(&abm.device_family)
            .ok_or_else(|| FleetError::Options(format!("applesim plays no {} devices", abm.device_family)))?;
        let dev = self.inner.device_for_serial(serial, kind, &abm.model);
        self.inner.machine_info(&dev).await
    }

    /// Make device `i` connect now (as if pushed).
    pub async fn connect(&self, i: usize) -> Result<ConnectOutcome, FleetError> {
        let dev = self.device(i).ok_or(FleetError::NoSuchDevice(i))?;
        run_connect(&self.inner, &dev).await
    }

    /// Unenroll device `i`: CheckOut (when the profile sets `CheckOutWhenRemoved`), then
    /// its push token is unregistered and it forgets the enrollment.
    pub async fn checkout(&self, i: usize) -> Result<(), FleetError> {
        let dev = self.device(i).ok_or(FleetError::NoSuchDevice(i))?;
        let r = self.inner.checkout(&dev).await;
        match &r {
            Ok(()) => {
                self.inner.stats.checkouts.fetch_add(1, Ordering::Relaxed);
                self.inner.stats.enrolled.fetch_sub(1, Ordering::Relaxed);
            }
            Err(e) => self.inner.stats.error(format!("device {i}: checkout: {e}")),
        }
        r
    }

    /// Check out every enrolled device (what `--checkout-on-exit` does). Returns how many
    /// checked out.
    pub async fn checkout_all(&self) -> usize {
        let mut set = tokio::task::JoinSet::new();
        for d in self.devices().into_iter().filter(Device::is_enrolled) {
            let inner = self.inner.clone();
            set.spawn(async move {
                let _permit = inner.limit.acquire().await;
                let r = inner.checkout(&d).await;
                match &r {
                    Ok(()) => {
                        inner.stats.checkouts.fetch_add(1, Ordering::Relaxed);
                        inner.stats.enrolled.fetch_sub(1, Ordering::Relaxed);
                    }
                    Err(e) => inner.stats.error(format!("device {}: checkout: {e}", d.index())),
                }
                r.is_ok()
            });
        }
        let mut n = 0;
        while let Some(r) = set.join_next().await {
            if matches!(r, Ok(true)) {
                n += 1;
            }
        }
        n
    }

    /// Renew device `i`'s identity by SCEP (RenewalReq with a new key, signed by the current
    /// identity, no challenge). Returns the new certificate.
    pub async fn renew(&self, i: usize) -> Result<X509, FleetError> {
        let dev = self.device(i).ok_or(FleetError::NoSuchDevice(i))?;
        let r = self.inner.renew(&dev).await;
        match &r {
            Ok(_) => {
                self.inner.stats.renewals.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.inner.stats.error(format!("device {i}: renewal: {e}")),
        }
        r
    }

    /// The counters.
    pub fn stats(&self) -> FleetStats {
        let c = &self.inner.stats;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut commands = BTreeMap::new();
        for (s, a) in [
            (Status::Acknowledged, &c.acknowledged),
            (Status::Error, &c.error),
            (Status::CommandFormatError, &c.format_error),
            (Status::NotNow, &c.not_now),
        ] {
            commands.insert(s.as_str().to_owned(), l(a));
        }
        FleetStats {
            enrolled: l(&c.enrolled),
            enroll_failures: l(&c.enroll_failures),
            connects: l(&c.connects),
            wakes: l(&c.wakes),
            commands,
            errors: l(&c.errors),
            checkouts: l(&c.checkouts),
            renewals: l(&c.renewals),
            erased: l(&c.erased),
            recent_errors: c
                .recent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
        }
    }

    /// Stop every device's push listener (connects in progress finish).
    pub fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
    }

    /// The simulator the devices register with.
    pub fn sim(&self) -> &AppleSim {
        &self.inner.sim
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.inner.stop.send(true);
    }
}

async fn run_connect(inner: &Arc<FleetInner>, dev: &Device) -> Result<ConnectOutcome, FleetError> {
    let permit = inner.limit.acquire().await;
    let r = inner.connect(dev).await;
    drop(permit);
    match &r {
        Ok(o) if o.erased => {
            inner.forget(dev, true);
            inner.stats.erased.fetch_add(1, Ordering::Relaxed);
            inner.stats.enrolled.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(_) => {}
        Err(FleetError::NotEnrolled(_)) => {}
        Err(e) => inner
            .stats
            .error(format!("device {} ({}): connect: {e}", dev.index(), dev.udid())),
    }
    r
}

/// The device's life after enrollment: wait for a push (or a NotNow retry), connect.
fn spawn_listener(inner: Arc<FleetInner>, dev: Device, mut receiver: crate::apns::PushReceiver) {
    let mut stop = inner.stop.subscribe();
    tokio::spawn(async move {
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = stop.changed() => break,
                w = receiver.recv() => match w {
                    Some(_) => {
                        inner.stats.wakes.fetch_add(1, Ordering::Relaxed);
                    }
                    // Unregistered (checked out, erased) or the simulator is gone.
                    None => break,
                },
                _ = async {
                    match retry_at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
            retry_at = None;
            match run_connect(&inner, &dev).await {
                Ok(o) if o.erased => break,
                Ok(o) if o.not_now > 0 => {
                    retry_at = Some(tokio::time::Instant::now() + inner.opts.not_now_retry);
                }
                Ok(_) => {}
                Err(FleetError::NotEnrolled(_)) => break,
                // Like a device whose connect failed: it tries again a little later.
                Err(_) => {
                    retry_at = Some(tokio::time::Instant::now() + inner.opts.not_now_retry.max(Duration::from_secs(1)))
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes() {
        assert_eq!(
            parse_mix("iphone=2, ipad=1,mac").unwrap(),
            vec![(DeviceKind::IPhone, 2), (DeviceKind::IPad, 1), (DeviceKind::Mac, 1)]
        );
        assert!(parse_mix("watch=1").is_err());
        assert!(parse_mix("iphone=x").is_err());
        assert!(parse_mix("iphone=0").is_err());
    }
}
