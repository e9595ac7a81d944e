//! [`AppleSim`]: the simulator handle and its administrator-side API.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use time::OffsetDateTime;

use crate::apns::ApnsState;
use crate::clock::SimClock;
use crate::cursor::CursorKey;
use crate::pushcert::{PortalPki, PushCerts};
use crate::state::{NONE, State};
use crate::types::{
    DeviceChange, DeviceSpec, Endpoint, ErrorStyle, Fault, MoveStyle, OrgId, OrgKind, RequestRecord, ServerId,
    SimCredentials, SimDevice, SimError, ThrottlePolicy,
};

/// Capacity of the request log ring buffer.
pub const REQUEST_LOG_CAPACITY: usize = 100_000;
/// Nonces remembered for replay detection.
const NONCE_CAPACITY: usize = 200_000;

pub(crate) struct Config {
    pub error_style: ErrorStyle,
    pub session_lifetime: time::Duration,
    pub rotate_every: Option<u32>,
}

pub(crate) struct Session {
    pub server: u32,
    pub access_token: String,
    pub expires: OffsetDateTime,
    pub responses: u32,
}

#[derive(Default)]
pub(crate) struct Sessions {
    pub map: HashMap<String, Session>,
    pub nonces: HashSet<(String, String)>,
    pub nonce_order: VecDeque<(String, String)>,
    pub created: u64,
}

impl Sessions {
    /// Remember a nonce for this token; false if it was seen before.
    pub(crate) fn use_nonce(&mut self, token: &str, nonce: &str) -> bool {
        let key = (token.to_owned(), nonce.to_owned());
        if self.nonces.contains(&key) {
            return false;
        }
        self.nonces.insert(key.clone());
        self.nonce_order.push_back(key);
        while self.nonce_order.len() > NONCE_CAPACITY {
            if let Some(old) = self.nonce_order.pop_front() {
                self.nonces.remove(&old);
            }
        }
        true
    }
}

pub(crate) struct Inner {
    pub clock: SimClock,
    pub state: RwLock<State>,
    pub sessions: Mutex<Sessions>,
    pub config: Mutex<Config>,
    pub faults: Mutex<Vec<VecDeque<Fault>>>,
    pub requests: Mutex<VecDeque<RequestRecord>>,
    pub cursor_key: CursorKey,
    /// The simulated Apple PKI of the push certificate portal (made on first use).
    pub portal: Mutex<Option<Arc<PortalPki>>>,
    /// Push certificates the portal issued.
    pub push_certs: RwLock<PushCerts>,
    /// APNs: device tokens, push log, counters, TLS setup.
    pub apns: ApnsState,
    /// The simulated "Apple iPhone Device CA" that issues device identities (made on first use).
    pub device_ca: Mutex<Option<Arc<crate::pushcert::Ca>>>,
    /// Apps and Books: locations, tokens, assets, assignments, events.
    pub vpp: Mutex<crate::vpp::VppWorld>,
    /// Injected Apps and Books faults, in order.
    pub vpp_faults: Mutex<VecDeque<crate::vpp::VppFault>>,
}

/// The simulator: Apple Business Manager's administrator side (in-process methods and an
/// HTTP admin API) and the DEP web API that MDM servers talk to. Cheap to clone; clones
/// share one simulated world. All state is in memory.
#[derive(Clone)]
pub struct AppleSim {
    pub(crate) inner: Arc<Inner>,
}

impl Default for AppleSim {
    fn default() -> Self {
        AppleSim::new()
    }
}

impl std::fmt::Debug for AppleSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppleSim")
            .field("now", &self.inner.clock.now())
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppleSim {
    /// An empty world whose clock starts at the real current time (UTC).
    pub fn new() -> AppleSim {
        AppleSim {
            inner: Arc::new(Inner {
                clock: SimClock::new(),
                state: RwLock::new(State::new()),
                sessions: Mutex::new(Sessions::default()),
                config: Mutex::new(Config {
                    error_style: ErrorStyle::Bare,
                    session_lifetime: time::Duration::minutes(30),
                    rotate_every: None,
                }),
                faults: Mutex::new(vec![VecDeque::new(); Endpoint::ALL.len()]),
                requests: Mutex::new(VecDeque::new()),
                cursor_key: CursorKey::random(),
                portal: Mutex::new(None),
                push_certs: RwLock::new(PushCerts::default()),
                apns: ApnsState::new(),
                device_ca: Mutex::new(None),
                vpp: Mutex::new(crate::vpp::VppWorld::new()),
                vpp_faults: Mutex::new(VecDeque::new()),
            }),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The simulated clock (shared; setting it affects this simulator).
    pub fn clock(&self) -> SimClock {
        self.inner.clock.clone()
    }

    fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Create an organisation (an ABM or ASM account).
    pub fn create_org(&self, name: &str, kind: OrgKind) -> OrgId {
        self.write().create_org(name, kind)
    }

    /// Add an MDM server to an organisation.
    ///
    /// # Panics
    /// Never; an unknown `org` is reported by [`AppleSim::try_create_mdm_server`]. This
    /// method logs a warning and still returns an id, which then refers to nothing.
    pub fn create_mdm_server(&self, org: OrgId, name: &str) -> ServerId {
        match self.try_create_mdm_server(org, name) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("create_mdm_server: {e}");
                ServerId(u32::MAX)
            }
        }
    }

    /// Add an MDM server to an organisation; errors for an unknown organisation.
    pub fn try_create_mdm_server(&self, org: OrgId, name: &str) -> Result<ServerId, SimError> {
        self.write().create_server(org, name)
    }

    /// Upload the PEM certificate the MDM vendor gave the administrator (ABM's "Upload
    /// Public Key"). Refuses anything that is not a PEM X.509 certificate with an RSA key.
    /// The current token stays valid until the next download.
    pub fn upload_public_key(&self, server: ServerId, certificate_pem: &str) -> Result<(), SimError> {
        let cert = crate::token::parse_certificate(certificate_pem)?;
        self.write().server_mut(server)?.cert = Some(cert);
        Ok(())
    }

    /// ABM's "Download Token": new credentials, encrypted to the server's current public
    /// key as an S/MIME `.p7m` like Apple's. Every earlier token of the server stops working
    /// (its sessions too). Fails if no public key has been uploaded.
    pub fn download_token(&self, server: ServerId) -> Result<Vec<u8>, SimError> {
        let cert = self
            .read()
            .server(server)?
            .cert
            .clone()
            .ok_or(SimError::NoPublicKey(server))?;
        let creds = crate::token::new_credentials(self.now());
        let p7m = crate::token::make_p7m(&cert, &creds)?;
        self.write().install_token(server, creds)?;
        Ok(p7m)
    }

    /// The plaintext credentials of the server's current token.
    pub fn current_credentials(&self, server: ServerId) -> Option<SimCredentials> {
        let st = self.read();
        let at = st.server(server).ok()?.token.as_ref()?;
        st.tokens.get(at).map(|t| t.creds.clone())
    }

    /// Accept externally made credentials as the valid token of this server (like depsim's
    /// fixed credentials); invalidates the server's earlier token. Unknown servers are
    /// ignored with a warning (see [`AppleSim::try_register_credentials`]).
    pub fn register_credentials(&self, server: ServerId, creds: SimCredentials) {
        if let Err(e) = self.try_register_credentials(server, creds) {
            tracing::warn!("register_credentials: {e}");
        }
    }

    /// [`AppleSim::register_credentials`] with an error for an unknown server.
    pub fn try_register_credentials(&self, server: ServerId, creds: SimCredentials) -> Result<(), SimError> {
        self.write().install_token(server, creds)
    }

    /// New terms and conditions: while pending, every DEP call of the organisation's servers
    /// (including `/session`) answers 403 `T_C_NOT_SIGNED`.
    pub fn set_terms_pending(&self, org: OrgId, pending: bool) {
        if let Some(o) = self.write().orgs.get_mut(org.0 as usize) {
            o.terms_pending = pending;
        }
    }

    /// Devices purchased by the organisation, not yet assigned to an MDM server. Returns
    /// their serial numbers (unique within the simulator). Unknown `org`: none.
    pub fn add_devices(&self, org: OrgId, count: usize, spec: DeviceSpec) -> Vec<String> {
        self.write().add_devices(org, count, spec.family)
    }

    /// ABM's "Assign to server": an `added` event for `server`. A device already assigned
    /// elsewhere moves: `deleted` for the old server and `added` (or `modified`, see
    /// [`AppleSim::set_move_style`]) for the new one; its profile assignment is cleared.
    /// Assigning a device to the server it is on already changes nothing. All-or-nothing:
    /// an unknown serial or one of another organisation fails the whole call.
    pub fn assign_devices(&self, server: ServerId, serials: &[String]) -> Result<(), SimError> {
        let now = self.now();
        self.write().assign(server, serials, now)
    }

    /// How moves between MDM servers show up on the new server's sync (default `added`).
    pub fn set_move_style(&self, style: MoveStyle) {
        self.write().move_style = style;
    }

    /// Release devices from the organisation: a `deleted` event for their server; the
    /// devices are then unknown (`device()` is `None`, details say `NOT_FOUND`).
    pub fn release_devices(&self, serials: &[String]) -> Result<(), SimError> {
        let now = self.now();
        self.write().release(serials, now)
    }

    /// Change device attributes ABM-side: a `modified` event for each device's server.
    pub fn modify_devices(&self, serials: &[String], change: DeviceChange) -> Result<(), SimError> {
        let now = self.now();
        self.write().modify(serials, &change, now)
    }

    /// A device downloaded its assigned profile during Setup Assistant: `profile_status`
    /// becomes `pushed`, `profile_push_time` is set and the server gets a `modified` event.
    /// Devices without a profile are left alone.
    pub fn simulate_profile_fetch(&self, serials: &[String]) -> Result<(), SimError> {
        let now = self.now();
        self.write().profile_fetched(serials, now)
    }

    /// A device as Apple knows it; `None` if unknown or released.
    pub fn device(&self, serial: &str) -> Option<SimDevice> {
        let st = self.read();
        let id = st.lookup(serial)?;
        st.sim_device(id)
    }

    /// All devices assigned to the server, in fetch order.
    pub fn server_devices(&self, server: ServerId) -> Vec<SimDevice> {
        let st = self.read();
        match st.server(server) {
            Ok(s) => s.members.iter().filter_map(|&id| st.sim_device(id)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Number of devices assigned to the server.
    pub fn server_device_count(&self, server: ServerId) -> usize {
        self.read().server(server).map(|s| s.members.len()).unwrap_or(0)
    }

    /// Number of entries in the server's change log (sync events so far).
    pub fn server_change_count(&self, server: ServerId) -> usize {
        self.read().server(server).map(|s| s.log.len()).unwrap_or(0)
    }

    /// A profile as defined (without `devices`), with `profile_uuid`.
    pub fn profile(&self, profile_uuid: &str) -> Option<serde_json::Value> {
        let st = self.read();
        let i = *st.profile_by_uuid.get(profile_uuid)?;
        st.profiles.get(i as usize).map(|p| p.body.clone())
    }

    /// Server name, UUID and organisation of an MDM server.
    pub fn server_info(&self, server: ServerId) -> Option<(String, String, OrgId)> {
        let st = self.read();
        let s = st.server(server).ok()?;
        Some((s.name.clone(), s.uuid.clone(), OrgId(s.org)))
    }

    /// Append faults to the endpoint's list. Each request to the endpoint takes the first
    /// entry and uses up one of its `count`; exhausted entries are dropped; an empty list
    /// means normal processing.
    pub fn push_faults(&self, endpoint: Endpoint, faults: Vec<Fault>) {
        let mut f = lock(&self.inner.faults);
        if let Some(q) = f.get_mut(endpoint.index()) {
            q.extend(faults.into_iter().map(|mut x| {
                x.count = x.count.max(1);
                x
            }));
            if endpoint == Endpoint::Apns && !q.is_empty() {
                self.inner
                    .apns
                    .faults_pending
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Remove all pending faults of all endpoints.
    pub fn clear_faults(&self) {
        for q in lock(&self.inner.faults).iter_mut() {
            q.clear();
        }
    }

    /// Pending fault entries of an endpoint (remaining counts).
    pub fn pending_faults(&self, endpoint: Endpoint) -> Vec<Fault> {
        lock(&self.inner.faults)
            .get(endpoint.index())
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn take_fault(&self, endpoint: Endpoint) -> Option<crate::types::FaultKind> {
        let mut f = lock(&self.inner.faults);
        let q = f.get_mut(endpoint.index())?;
        let first = q.front_mut()?;
        let kind = first.kind.clone();
        first.count = first.count.saturating_sub(1);
        if first.count == 0 {
            q.pop_front();
        }
        Some(kind)
    }

    /// Per-device throttling of profile assignment for a server (`None` = unlimited).
    /// Resets the current window.
    pub fn set_assign_throttle(&self, server: ServerId, policy: Option<ThrottlePolicy>) {
        if let Ok(s) = self.write().server_mut(server) {
            s.throttle = policy;
            s.window_start = None;
            s.window_count = 0;
        }
    }

    /// Body format of all error responses (default [`ErrorStyle::Bare`]).
    pub fn set_error_style(&self, style: ErrorStyle) {
        lock(&self.inner.config).error_style = style;
    }

    pub(crate) fn error_style(&self) -> ErrorStyle {
        lock(&self.inner.config).error_style
    }

    /// Lifetime of new sessions (sim time; default 30 minutes, fixed from creation) and
    /// optional rotation: every `rotate_every`-th response to a session carries a new token
    /// in `X-ADM-Auth-Session`, and the old token stops working at once.
    pub fn set_session_policy(&self, lifetime: time::Duration, rotate_every: Option<u32>) {
        let mut c = lock(&self.inner.config);
        c.session_lifetime = lifetime;
        c.rotate_every = rotate_every.filter(|&n| n > 0);
    }

    /// Every DEP and Apps and Books (`/mdm/v2/…`) request received (the newest last, at most
    /// [`REQUEST_LOG_CAPACITY`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.inner.requests).iter().cloned().collect()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.inner.requests).clear();
    }

    pub(crate) fn record(&self, r: RequestRecord) {
        let mut q = lock(&self.inner.requests);
        if q.len() >= REQUEST_LOG_CAPACITY {
            q.pop_front();
        }
        q.push_back(r);
    }

    /// Serials of the org's devices not assigned to any server (in purchase order).
    pub fn unassigned_devices(&self, org: OrgId) -> Vec<String> {
        let st = self.read();
        st.devices
            .iter()
            .filter(|d| d.org == org.0 && !d.released && d.server == NONE)
            .map(|d| d.serial.as_str().to_owned())
            .collect()
    }
}
