//! Public value types of the simulator API.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An organisation (an Apple Business Manager or Apple School Manager account).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrgId(pub u32);

/// An MDM server defined in an organisation (ABM "Preferences → Your MDM Servers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServerId(pub u32);

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Kind of organisation; `/account` reports it as `org_type` `org` or `edu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// Apple Business Manager (`org_type` = `org`).
    #[default]
    Business,
    /// Apple School Manager (`org_type` = `edu`).
    Education,
}

/// Apple's `device_family` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceFamily {
    /// Macs (`os` = `OSX`).
    Mac,
    /// iPhones (`os` = `iOS`).
    #[serde(rename = "iPhone")]
    IPhone,
    /// iPads (`os` = `iPadOS`, or `iOS` for clients sending protocol version < 7).
    #[serde(rename = "iPad")]
    IPad,
    /// Apple TVs (`os` = `tvOS`).
    AppleTV,
    /// Apple Vision Pro (`os` = `visionOS`).
    Vision,
}

impl DeviceFamily {
    /// The `device_family` string Apple serves.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceFamily::Mac => "Mac",
            DeviceFamily::IPhone => "iPhone",
            DeviceFamily::IPad => "iPad",
            DeviceFamily::AppleTV => "AppleTV",
            DeviceFamily::Vision => "Vision",
        }
    }

    /// The `os` string Apple serves for this family (at the newest protocol version).
    pub fn os(self) -> &'static str {
        match self {
            DeviceFamily::Mac => "OSX",
            DeviceFamily::IPhone => "iOS",
            DeviceFamily::IPad => "iPadOS",
            DeviceFamily::AppleTV => "tvOS",
            DeviceFamily::Vision => "visionOS",
        }
    }

    pub(crate) fn from_u8(v: u8) -> DeviceFamily {
        match v {
            0 => DeviceFamily::Mac,
            1 => DeviceFamily::IPhone,
            2 => DeviceFamily::IPad,
            3 => DeviceFamily::AppleTV,
            _ => DeviceFamily::Vision,
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            DeviceFamily::Mac => 0,
            DeviceFamily::IPhone => 1,
            DeviceFamily::IPad => 2,
            DeviceFamily::AppleTV => 3,
            DeviceFamily::Vision => 4,
        }
    }

    /// Parse `Mac`, `iPhone`, `iPad`, `AppleTV`, `Vision` (case-insensitive).
    pub fn parse(s: &str) -> Option<DeviceFamily> {
        match s.to_ascii_lowercase().as_str() {
            "mac" => Some(DeviceFamily::Mac),
            "iphone" => Some(DeviceFamily::IPhone),
            "ipad" => Some(DeviceFamily::IPad),
            "appletv" | "apple_tv" | "tv" => Some(DeviceFamily::AppleTV),
            "vision" => Some(DeviceFamily::Vision),
            _ => None,
        }
    }
}

/// What kind of devices [`crate::AppleSim::add_devices`] creates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// One family only, or `None` for a realistic mix (about 45 % Macs, 30 % iPhones,
    /// 20 % iPads, 3 % Apple TVs, 2 % Vision Pro).
    pub family: Option<DeviceFamily>,
}

/// How a move of a device from one MDM server to another is reported to the new server's
/// sync. The old server always sees `deleted`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveStyle {
    /// `added` (the default).
    #[default]
    Added,
    /// `modified`, as Apple sometimes reports reassignments ("reassignment oddities").
    Modified,
}

/// An ABM-side change of device attributes (a `modified` event for the device's server).
/// `Some("")` for `asset_tag` removes the asset tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceChange {
    /// New asset tag (`Some("")` clears it).
    #[serde(default)]
    pub asset_tag: Option<String>,
    /// New colour, e.g. `SPACE GRAY`.
    #[serde(default)]
    pub color: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A device as Apple knows it: the fields the DEP API serves (at the newest protocol
/// version), plus where it belongs. Serialises to the API's JSON shape (without `org` /
/// `server`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimDevice {
    /// `serial_number`.
    pub serial_number: String,
    /// `model`, e.g. `MacBook Pro`.
    pub model: String,
    /// `description`, e.g. `MBP 14.2 SPACE GRAY/M3/16GB/512GB`.
    pub description: String,
    /// `color`.
    pub color: String,
    /// `asset_tag`, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset_tag: Option<String>,
    /// `os`: `OSX`, `iOS`, `iPadOS`, `tvOS`, `visionOS`.
    pub os: String,
    /// `device_family`: `Mac`, `iPhone`, `iPad`, `AppleTV`, `Vision`.
    pub device_family: String,
    /// `profile_status`: `empty`, `assigned`, `pushed` or `removed`.
    pub profile_status: String,
    /// `profile_uuid`, if a profile is assigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_uuid: Option<String>,
    /// `profile_assign_time`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::timefmt::ser_opt")]
    pub profile_assign_time: Option<OffsetDateTime>,
    /// `profile_push_time` (set by [`crate::AppleSim::simulate_profile_fetch`]).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::timefmt::ser_opt")]
    pub profile_push_time: Option<OffsetDateTime>,
    /// `device_assigned_date`: when it was assigned to its current MDM server.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::timefmt::ser_opt")]
    pub device_assigned_date: Option<OffsetDateTime>,
    /// `device_assigned_by`: the administrator's Apple ID (email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_assigned_by: Option<String>,
    /// The owning organisation (not an API field).
    #[serde(skip)]
    pub org: OrgId,
    /// The MDM server it is assigned to, if any (not an API field).
    #[serde(skip)]
    pub server: Option<ServerId>,
}

/// The four OAuth credentials of a server token plus its expiry: the JSON inside the .p7m.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCredentials {
    /// `consumer_key` (`CK_…`).
    pub consumer_key: String,
    /// `consumer_secret` (`CS_…`).
    pub consumer_secret: String,
    /// `access_token` (`AT_…`).
    pub access_token: String,
    /// `access_secret` (`AS_…`).
    pub access_secret: String,
    /// `access_token_expiry`, serialised as `YYYY-MM-DDTHH:MM:SSZ`.
    #[serde(with = "crate::timefmt::serde_secs")]
    pub access_token_expiry: OffsetDateTime,
}

impl fmt::Debug for SimCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCredentials")
            .field("consumer_key", &self.consumer_key)
            .field("access_token", &self.access_token)
            .field("access_token_expiry", &self.access_token_expiry)
            .finish_non_exhaustive()
    }
}

/// Per-device throttling of profile assignment for one MDM server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottlePolicy {
    /// Devices that may be assigned per window (per server); the rest are throttled.
    pub devices_per_window: u32,
    /// Window length in sim time (fixed windows, starting at the first assignment after
    /// the previous window ended).
    #[serde(with = "secs_duration")]
    pub window: time::Duration,
    /// `retry_after_seconds` sent with `THROTTLED` results to protocol version >= 10 clients.
    pub retry_after_seconds: u32,
}

mod secs_duration {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.whole_seconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<time::Duration, D::Error> {
        Ok(time::Duration::seconds(i64::deserialize(d)?))
    }
}

/// Body format of error responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStyle {
    /// `INVALID_CURSOR` as `text/plain` (Apple's production service; the default).
    #[default]
    Bare,
    /// `"INVALID_CURSOR"` as JSON (Apple's depsim simulator).
    Quoted,
    /// `{"code":"INVALID_CURSOR","message":"…"}` (what Fleet's tests mock).
    Json,
}

/// The endpoints faults can be injected into: the DEP endpoints (also used in request
/// records) and the APNs provider API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `GET /session`.
    Session,
    /// `GET /account`.
    Account,
    /// `POST /server/devices`.
    FetchDevices,
    /// `POST /devices/sync`.
    SyncDevices,
    /// `POST /devices`.
    DeviceDetails,
    /// `POST /devices/disown`.
    Disown,
    /// `POST /profile`.
    DefineProfile,
    /// `GET /profile`.
    GetProfile,
    /// `POST` or `PUT /profile/devices`.
    AssignProfile,
    /// `DELETE /profile/devices`.
    RemoveProfile,
    /// APNs: `POST /3/device/<token>` on the APNs listener.
    Apns,
}

impl Endpoint {
    /// All endpoints.
    pub const ALL: [Endpoint; 11] = [
        Endpoint::Session,
        Endpoint::Account,
        Endpoint::FetchDevices,
        Endpoint::SyncDevices,
        Endpoint::DeviceDetails,
        Endpoint::Disown,
        Endpoint::DefineProfile,
        Endpoint::GetProfile,
        Endpoint::AssignProfile,
        Endpoint::RemoveProfile,
        Endpoint::Apns,
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            Endpoint::Session => 0,
            Endpoint::Account => 1,
            Endpoint::FetchDevices => 2,
            Endpoint::SyncDevices => 3,
            Endpoint::DeviceDetails => 4,
            Endpoint::Disown => 5,
            Endpoint::DefineProfile => 6,
            Endpoint::GetProfile => 7,
            Endpoint::AssignProfile => 8,
            Endpoint::RemoveProfile => 9,
            Endpoint::Apns => 10,
        }
    }
}

/// `Retry-After` header value of an injected 429/503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `Retry-After: <HTTP-date>` that many (real) seconds after the response is sent.
    HttpDateIn(u64),
    /// `Retry-After: <HTTP-date>` of this instant.
    HttpDate(SystemTime),
}

/// One entry of a fault list: `kind` applies to the next `count` requests of the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Number of requests this entry applies to (0 is treated as 1).
    pub count: u32,
    /// What happens to them.
    pub kind: FaultKind,
}

impl Fault {
    /// `count` requests get `kind`.
    pub fn new(count: u32, kind: FaultKind) -> Fault {
        Fault { count, kind }
    }
}

/// Injected behaviour of one request (applied before any normal processing, even before
/// the `User-Agent` and session checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Normal processing (depsim's `success`): lets a list say "two good, then a failure".
    Pass,
    /// 401 `UNAUTHORIZED`.
    Unauthorized,
    /// 403 `FORBIDDEN` (depsim's answer to a session from before a restart).
    Forbidden,
    /// 403 `ACCESS_DENIED`.
    AccessDenied,
    /// 403 `T_C_NOT_SIGNED`.
    TermsNotSigned,
    /// 429 `TOO_MANY_REQUESTS`, optionally with `Retry-After`.
    TooManyRequests {
        /// The `Retry-After` header, if any.
        retry_after: Option<RetryAfter>,
    },
    /// 503 `SERVICE_UNAVAILABLE`, optionally with `Retry-After`.
    ServiceUnavailable {
        /// The `Retry-After` header, if any.
        retry_after: Option<RetryAfter>,
    },
    /// 500 `INTERNAL_SERVER_ERROR`.
    InternalError,
    /// 400 with this code, e.g. `MALFORMED_REQUEST_BODY`.
    BadRequest(String),
    /// Answer normally after this real-time delay.
    Slow(Duration),
    /// Close the TCP connection without sending any response.
    DropConnection,
    /// Answer 503 and close the connection in an orderly way. On APNs (HTTP/2) the answer
    /// is `{"reason":"Shutdown"}` followed by a GOAWAY frame: requests already in flight
    /// finish, new streams are refused and the connection then closes. On the DEP API
    /// (HTTP/1.1) the answer is `SERVICE_UNAVAILABLE` with `Connection: close`.
    GoAway,
}

/// One DEP or Apps and Books request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Request path (without query).
    pub path: String,
    /// The DEP endpoint, if the path and method matched one (`None` for Apps and Books
    /// requests: their `path` starts with `/mdm/v2/`).
    pub endpoint: Option<Endpoint>,
    /// `X-Server-Protocol-Version` as sent.
    pub protocol_version: Option<String>,
    /// `User-Agent` as sent.
    pub user_agent: Option<String>,
    /// Number of serials in the request body (the DEP's `devices` array, Apps and Books'
    /// `serialNumbers`), where applicable.
    pub serials: Option<usize>,
    /// HTTP status answered; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// The injected fault applied, if any (its debug form).
    pub fault: Option<String>,
    /// Sim time when the request arrived.
    #[serde(serialize_with = "crate::timefmt::ser")]
    pub time: OffsetDateTime,
}

/// Errors of the administrator-side API.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SimError {
    /// No such organisation.
    #[error("unknown organisation {0}")]
    UnknownOrg(OrgId),
    /// No such MDM server.
    #[error("unknown MDM server {0}")]
    UnknownServer(ServerId),
    /// No such device (or it was released from its organisation).
    #[error("unknown device {0}")]
    UnknownDevice(String),
    /// The device belongs to another organisation than the MDM server.
    #[error("device {0} does not belong to the MDM server's organisation")]
    WrongOrg(String),
    /// The upload is not a PEM certificate with an RSA public key.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// "Download Token" before a public key was uploaded.
    #[error("MDM server {0} has no public key; upload one first")]
    NoPublicKey(ServerId),
    /// OpenSSL failed while making the token.
    #[error("crypto failure: {0}")]
    Crypto(String),
    /// Invalid input to the admin API.
    #[error("{0}")]
    Invalid(String),
    /// The certificate signing request given for an MDM vendor certificate is unusable.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
    /// The Apple Push Certificates Portal refused an upload (the message says why and what to fix).
    #[error("{0}")]
    PushCertRequest(String),
    /// No push certificate has this topic.
    #[error("no push certificate has the topic {0}; create one first (renewal needs an existing topic)")]
    UnknownTopic(String),
    /// Renewal by another Apple ID than the one that created the certificate.
    #[error(
        "the push certificate with topic {0} belongs to another Apple ID; renew it with the Apple ID that created it (a new certificate would get a new topic, and every device would have to enroll again)"
    )]
    AppleIdMismatch(String),
    /// A device token that is not 1 to 100 bytes, or not hex.
    #[error("invalid device token: {0}")]
    InvalidPushToken(String),
    /// No device registered this push token.
    #[error("unknown device token {0}")]
    UnknownPushToken(String),
    /// No such Apps and Books location.
    #[error("unknown Apps and Books location {0}")]
    UnknownVppLocation(crate::vpp::VppLocationId),
    /// The text is not a location token this simulator made.
    #[error("unknown Apps and Books token: it is not the content of a .vpptoken file downloaded from this simulator")]
    UnknownVppToken,
}
