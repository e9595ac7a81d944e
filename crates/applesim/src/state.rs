//! The in-memory model: organisations, MDM servers, devices, change logs, profiles, tokens.
//!
//! Sized for millions of devices: a device is a 56-byte record of integers (strings are
//! interned, serials are fixed 12-byte arrays, times are `u32` Unix seconds), each MDM
//! server keeps an ordered set of its device ids (for fetch paging) and an append-only
//! change log of 12-byte entries (for sync).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use openssl::x509::X509;
use time::OffsetDateTime;

use crate::catalog::Rng;
use crate::types::{
    DeviceFamily, MoveStyle, OrgId, OrgKind, ServerId, SimCredentials, SimDevice, SimError, ThrottlePolicy,
};

/// "No index" marker for `u32` references.
pub(crate) const NONE: u32 = u32::MAX;

pub(crate) const STATUS_EMPTY: u8 = 0;
pub(crate) const STATUS_ASSIGNED: u8 = 1;
pub(crate) const STATUS_PUSHED: u8 = 2;
pub(crate) const STATUS_REMOVED: u8 = 3;

pub(crate) fn status_str(s: u8) -> &'static str {
    match s {
        STATUS_ASSIGNED => "assigned",
        STATUS_PUSHED => "pushed",
        STATUS_REMOVED => "removed",
        _ => "empty",
    }
}

pub(crate) const OP_ADDED: u8 = 0;
pub(crate) const OP_MODIFIED: u8 = 1;
pub(crate) const OP_DELETED: u8 = 2;

pub(crate) fn op_str(op: u8) -> &'static str {
    match op {
        OP_ADDED => "added",
        OP_MODIFIED => "modified",
        _ => "deleted",
    }
}

/// Sim time as stored: Unix seconds in a `u32` (0 = unset).
pub(crate) fn secs(t: OffsetDateTime) -> u32 {
    t.unix_timestamp().clamp(1, u32::MAX as i64) as u32
}

pub(crate) fn from_secs(s: u32) -> Option<OffsetDateTime> {
    if s == 0 {
        None
    } else {
        OffsetDateTime::from_unix_timestamp(s as i64).ok()
    }
}

/// A serial number of up to 12 ASCII characters, zero-padded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Serial(pub [u8; 12]);

impl Serial {
    pub(crate) fn parse(s: &str) -> Option<Serial> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > 12 || !b.iter().all(|c| c.is_ascii_graphic()) {
            return None;
        }
        let mut a = [0u8; 12];
        a[..b.len()].copy_from_slice(b);
        Some(Serial(a))
    }

    pub(crate) fn as_str(&self) -> &str {
        let n = self.0.iter().position(|&c| c == 0).unwrap_or(12);
        std::str::from_utf8(&self.0[..n]).unwrap_or("")
    }
}

/// String interner; index 0 is the empty string.
pub(crate) struct Interner {
    strings: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Interner {
    fn new() -> Interner {
        let empty: Arc<str> = Arc::from("");
        let mut index = HashMap::new();
        index.insert(empty.clone(), 0);
        Interner {
            strings: vec![empty],
            index,
        }
    }

    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let a: Arc<str> = Arc::from(s);
        let i = self.strings.len() as u32;
        self.strings.push(a.clone());
        self.index.insert(a, i);
        i
    }

    pub(crate) fn get(&self, i: u32) -> &Arc<str> {
        self.strings.get(i as usize).unwrap_or(&self.strings[0])
    }
}

/// One device: 56 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Device {
    pub serial: Serial,
    pub family: u8,
    pub profile_status: u8,
    pub released: bool,
    pub model: u32,
    pub description: u32,
    pub color: u32,
    /// 0 = no asset tag.
    pub asset_tag: u32,
    pub org: u32,
    pub server: u32,
    pub profile: u32,
    pub assigned_date: u32,
    pub profile_assign_time: u32,
    pub profile_push_time: u32,
}

/// One change-log entry: 12 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Change {
    pub device: u32,
    pub time: u32,
    pub op: u8,
}

pub(crate) struct Org {
    pub name: String,
    pub kind: OrgKind,
    pub terms_pending: bool,
    pub admin_email: u32,
    pub org_id: String,
    pub org_id_hash: String,
    pub email: String,
    pub phone: String,
    pub address: String,
}

pub(crate) struct Server {
    pub org: u32,
    pub name: String,
    pub uuid: String,
    pub cert: Option<X509>,
    /// `access_token` of the current token.
    pub token: Option<String>,
    /// Device ids assigned here, in id order (fetch pages through this).
    pub members: BTreeSet<u32>,
    /// Append-only change log (sync reads it from a cursor's position).
    pub log: Vec<Change>,
    pub throttle: Option<ThrottlePolicy>,
    pub window_start: Option<OffsetDateTime>,
    pub window_count: u32,
}

pub(crate) struct Profile {
    pub server: u32,
    pub uuid: Arc<str>,
    pub body: serde_json::Value,
}

pub(crate) struct TokenRec {
    pub server: u32,
    pub creds: SimCredentials,
}

pub(crate) struct State {
    pub strings: Interner,
    pub orgs: Vec<Org>,
    pub servers: Vec<Server>,
    pub devices: Vec<Device>,
    pub by_serial: HashMap<Serial, u32>,
    pub profiles: Vec<Profile>,
    pub profile_by_uuid: HashMap<Arc<str>, u32>,
    /// Current tokens by `access_token`.
    pub tokens: HashMap<String, TokenRec>,
    /// `access_token`s replaced by a newer download.
    pub revoked: HashSet<String>,
    pub rng: Rng,
    pub move_style: MoveStyle,
    /// (catalogue model, colour) → interned (model, description, colour).
    model_cache: HashMap<(usize, usize), (u32, u32, u32)>,
}

/// A device copied out of the state for serialisation outside the lock.
#[derive(Clone, Debug)]
pub(crate) struct Snap {
    pub serial: Serial,
    pub family: u8,
    pub profile_status: u8,
    pub model: Arc<str>,
    pub description: Arc<str>,
    pub color: Arc<str>,
    pub asset_tag: Option<Arc<str>>,
    pub profile_uuid: Option<Arc<str>>,
    pub profile_assign_time: u32,
    pub profile_push_time: u32,
    pub assigned_date: u32,
    pub assigned_by: Option<Arc<str>>,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            strings: Interner::new(),
            orgs: Vec::new(),
            servers: Vec::new(),
            devices: Vec::new(),
            by_serial: HashMap::new(),
            profiles: Vec::new(),
            profile_by_uuid: HashMap::new(),
            tokens: HashMap::new(),
            revoked: HashSet::new(),
            rng: Rng::from_os(),
            move_style: MoveStyle::Added,
            model_cache: HashMap::new(),
        }
    }

    pub(crate) fn org(&self, id: OrgId) -> Result<&Org, SimError> {
        self.orgs.get(id.0 as usize).ok_or(SimError::UnknownOrg(id))
    }

    pub(crate) fn server(&self, id: ServerId) -> Result<&Server, SimError> {
        self.servers.get(id.0 as usize).ok_or(SimError::UnknownServer(id))
    }

    pub(crate) fn server_mut(&mut self, id: ServerId) -> Result<&mut Server, SimError> {
        self.servers.get_mut(id.0 as usize).ok_or(SimError::UnknownServer(id))
    }

    pub(crate) fn create_org(&mut self, name: &str, kind: OrgKind) -> OrgId {
        let id = OrgId(self.orgs.len() as u32);
        let slug: String = name
            .chars()
            .filter_map(|c| {
                if c.is_ascii_alphanumeric() {
                    Some(c.to_ascii_lowercase())
                } else if c == ' ' || c == '-' {
                    Some('-')
                } else {
                    None
                }
            })
            .collect();
        let slug = if slug.is_empty() { format!("org{}", id.0) } else { slug };
        let admin_email = self.strings.intern(&format!("abm-admin@{slug}.example"));
        let org_id = format!("{}", 1_000_000 + self.rng.below(8_000_000));
        let mut h = [0u8; 20];
        crate::catalog::os_random(&mut h);
        self.orgs.push(Org {
            name: name.to_owned(),
            kind,
            terms_pending: false,
            admin_email,
            org_id,
            org_id_hash: crate::catalog::hex(&h, false),
            email: format!("it@{slug}.example"),
            phone: format!("+1 408 555 {:04}", self.rng.below(10_000)),
            address: "1 Infinite Loop, Cupertino CA 95014, US".to_owned(),
        });
        id
    }

    pub(crate) fn create_server(&mut self, org: OrgId, name: &str) -> Result<ServerId, SimError> {
        self.org(org)?;
        let id = ServerId(self.servers.len() as u32);
        let h = crate::catalog::random_hex(16, true);
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        );
        self.servers.push(Server {
            org: org.0,
            name: name.to_owned(),
            uuid,
            cert: None,
            token: None,
            members: BTreeSet::new(),
            log: Vec::new(),
            throttle: None,
            window_start: None,
            window_count: 0,
        });
        Ok(id)
    }

    /// Make `creds` the one valid token of `server`, revoking the previous one.
    pub(crate) fn install_token(&mut self, server: ServerId, creds: SimCredentials) -> Result<(), SimError> {
        let old = self.server_mut(server)?.token.take();
        if let Some(old) = old {
            self.tokens.remove(&old);
            self.revoked.insert(old);
        }
        // A token registered before for another server moves here.
        let prev = self.tokens.get(&creds.access_token).map(|p| p.server);
        if let Some(p) = prev.filter(|&p| p != server.0) {
            if let Some(s) = self.servers.get_mut(p as usize) {
                s.token = None;
            }
        }
        self.revoked.remove(&creds.access_token);
        let at = creds.access_token.clone();
        self.tokens.insert(
            at.clone(),
            TokenRec {
                server: server.0,
                creds,
            },
        );
        self.server_mut(server)?.token = Some(at);
        Ok(())
    }

    pub(crate) fn add_devices(&mut self, org: OrgId, count: usize, family: Option<DeviceFamily>) -> Vec<String> {
        if self.org(org).is_err() {
            tracing::warn!(org = org.0, "add_devices: unknown organisation");
            return Vec::new();
        }
        let mut out = Vec::with_capacity(count);
        self.devices.reserve(count);
        self.by_serial.reserve(count);
        for _ in 0..count {
            let mi = crate::catalog::pick_model(&mut self.rng, family);
            let m = &crate::catalog::MODELS[mi];
            let ci = self.rng.below(m.colors.len() as u64) as usize;
            let (model, description, color) = match self.model_cache.get(&(mi, ci)) {
                Some(v) => *v,
                None => {
                    let c = m.colors.get(ci).copied().unwrap_or("SILVER");
                    let v = (
                        self.strings.intern(m.model),
                        self.strings.intern(&m.description.replace("{C}", c)),
                        self.strings.intern(c),
                    );
                    self.model_cache.insert((mi, ci), v);
                    v
                }
            };
            let serial = loop {
                let s = Serial(crate::catalog::serial_for(&mut self.rng, m));
                if !self.by_serial.contains_key(&s) {
                    break s;
                }
            };
            let id = self.devices.len() as u32;
            self.devices.push(Device {
                serial,
                family: m.family.to_u8(),
                profile_status: STATUS_EMPTY,
                released: false,
                model,
                description,
                color,
                asset_tag: 0,
                org: org.0,
                server: NONE,
                profile: NONE,
                assigned_date: 0,
                profile_assign_time: 0,
                profile_push_time: 0,
            });
            self.by_serial.insert(serial, id);
            out.push(serial.as_str().to_owned());
        }
        out
    }

    /// Device id of a known, not released device.
    pub(crate) fn lookup(&self, serial: &str) -> Option<u32> {
        let id = *self.by_serial.get(&Serial::parse(serial)?)?;
        let d = self.devices.get(id as usize)?;
        if d.released { None } else { Some(id) }
    }

    fn lookup_all(&self, serials: &[String]) -> Result<Vec<u32>, SimError> {
        serials
            .iter()
            .map(|s| self.lookup(s).ok_or_else(|| SimError::UnknownDevice(s.clone())))
            .collect()
    }

    pub(crate) fn log(&mut self, server: u32, device: u32, op: u8, now: u32) {
        if let Some(s) = self.servers.get_mut(server as usize) {
            s.log.push(Change { device, time: now, op });
        }
    }

    fn clear_profile(d: &mut Device) {
        d.profile = NONE;
        d.profile_status = STATUS_EMPTY;
        d.profile_assign_time = 0;
        d.profile_push_time = 0;
    }

    /// Take a device away from its server (a `deleted` event there).
    pub(crate) fn detach(&mut self, id: u32, now: u32) {
        let Some(d) = self.devices.get_mut(id as usize) else {
            return;
        };
        let old = d.server;
        if old == NONE {
            return;
        }
        d.server = NONE;
        d.assigned_date = 0;
        Self::clear_profile(d);
        if let Some(s) = self.servers.get_mut(old as usize) {
            s.members.remove(&id);
        }
        self.log(old, id, OP_DELETED, now);
    }

    pub(crate) fn assign(&mut self, server: ServerId, serials: &[String], now: OffsetDateTime) -> Result<(), SimError> {
        let org = self.server(server)?.org;
        let ids = self.lookup_all(serials)?;
        for (&id, s) in ids.iter().zip(serials) {
            if self.devices[id as usize].org != org {
                return Err(SimError::WrongOrg(s.clone()));
            }
        }
        let t = secs(now);
        for id in ids {
            let cur = self.devices[id as usize].server;
            if cur == server.0 {
                continue;
            }
            let moved = cur != NONE;
            self.detach(id, t);
            let d = &mut self.devices[id as usize];
            d.server = server.0;
            d.assigned_date = t;
            Self::clear_profile(d);
            let op = if moved && self.move_style == MoveStyle::Modified {
                OP_MODIFIED
            } else {
                OP_ADDED
            };
            let s = &mut self.servers[server.0 as usize];
            s.members.insert(id);
            s.log.push(Change {
                device: id,
                time: t,
                op,
            });
        }
        Ok(())
    }

    pub(crate) fn release(&mut self, serials: &[String], now: OffsetDateTime) -> Result<(), SimError> {
        let ids = self.lookup_all(serials)?;
        let t = secs(now);
        for id in ids {
            self.release_one(id, t);
        }
        Ok(())
    }

    pub(crate) fn release_one(&mut self, id: u32, t: u32) {
        self.detach(id, t);
        if let Some(d) = self.devices.get_mut(id as usize) {
            d.released = true;
        }
    }

    pub(crate) fn modify(
        &mut self,
        serials: &[String],
        change: &crate::types::DeviceChange,
        now: OffsetDateTime,
    ) -> Result<(), SimError> {
        let ids = self.lookup_all(serials)?;
        let tag = change.asset_tag.as_deref().map(|s| self.strings.intern(s));
        let color = change.color.as_deref().map(|s| self.strings.intern(s));
        let desc = change.description.as_deref().map(|s| self.strings.intern(s));
        let t = secs(now);
        for id in ids {
            let d = &mut self.devices[id as usize];
            if let Some(v) = tag {
                d.asset_tag = v;
            }
            if let Some(v) = color {
                d.color = v;
            }
            if let Some(v) = desc {
                d.description = v;
            }
            let server = d.server;
            if server != NONE {
                self.log(server, id, OP_MODIFIED, t);
            }
        }
        Ok(())
    }

    pub(crate) fn profile_fetched(&mut self, serials: &[String], now: OffsetDateTime) -> Result<(), SimError> {
        let ids = self.lookup_all(serials)?;
        let t = secs(now);
        for id in ids {
            let d = &mut self.devices[id as usize];
            if d.profile == NONE || d.server == NONE {
                continue;
            }
            d.profile_status = STATUS_PUSHED;
            d.profile_push_time = t;
            let server = d.server;
            self.log(server, id, OP_MODIFIED, t);
        }
        Ok(())
    }

    pub(crate) fn snap(&self, id: u32) -> Option<Snap> {
        let d = self.devices.get(id as usize)?;
        let opt = |i: u32| {
            if i == 0 {
                None
            } else {
                Some(self.strings.get(i).clone())
            }
        };
        let profile_uuid = if d.profile == NONE {
            None
        } else {
            self.profiles.get(d.profile as usize).map(|p| p.uuid.clone())
        };
        let assigned_by = if d.server == NONE {
            None
        } else {
            self.orgs
                .get(d.org as usize)
                .map(|o| self.strings.get(o.admin_email).clone())
        };
        Some(Snap {
            serial: d.serial,
            family: d.family,
            profile_status: d.profile_status,
            model: self.strings.get(d.model).clone(),
            description: self.strings.get(d.description).clone(),
            color: self.strings.get(d.color).clone(),
            asset_tag: opt(d.asset_tag),
            profile_uuid,
            profile_assign_time: d.profile_assign_time,
            profile_push_time: d.profile_push_time,
            assigned_date: d.assigned_date,
            assigned_by,
        })
    }

    pub(crate) fn sim_device(&self, id: u32) -> Option<SimDevice> {
        let d = self.devices.get(id as usize)?;
        let s = self.snap(id)?;
        let fam = DeviceFamily::from_u8(s.family);
        Some(SimDevice {
            serial_number: s.serial.as_str().to_owned(),
            model: s.model.to_string(),
            description: s.description.to_string(),
            color: s.color.to_string(),
            asset_tag: s.asset_tag.map(|a| a.to_string()),
            os: fam.os().to_owned(),
            device_family: fam.as_str().to_owned(),
            profile_status: status_str(s.profile_status).to_owned(),
            profile_uuid: s.profile_uuid.map(|p| p.to_string()),
            profile_assign_time: from_secs(s.profile_assign_time),
            profile_push_time: from_secs(s.profile_push_time),
            device_assigned_date: from_secs(s.assigned_date),
            device_assigned_by: s.assigned_by.map(|a| a.to_string()),
            org: OrgId(d.org),
            server: if d.server == NONE {
                None
            } else {
                Some(ServerId(d.server))
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes() {
        assert_eq!(std::mem::size_of::<Device>(), 56);
        assert_eq!(std::mem::size_of::<Change>(), 12);
    }

    #[test]
    fn serial_parse() {
        assert_eq!(Serial::parse("C02XK1JHJGH5").unwrap().as_str(), "C02XK1JHJGH5");
        assert_eq!(Serial::parse("H4TKQ2X9LP").unwrap().as_str(), "H4TKQ2X9LP");
        assert!(Serial::parse("").is_none());
        assert!(Serial::parse("C02XK1JHJGH55").is_none());
        assert!(Serial::parse("A B").is_none());
    }
}
