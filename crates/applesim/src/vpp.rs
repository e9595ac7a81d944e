//! Apps and Books (formerly VPP): locations, their content tokens, assets (licences),
//! assignments and the asynchronous events of the App and Book Management API v2.
//!
//! This module holds the public value types and the in-memory model; the HTTP side is
//! served under `/mdm/v2` (see the crate documentation, "Apps and Books"). Tests drive the
//! administrator's side through the `*_vpp_*` methods of [`AppleSim`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::catalog::{Rng, os_random};
use crate::sim::{AppleSim, lock};
use crate::types::{OrgId, OrgKind, SimError};

/// Default number of records per page of `GET /assets` and `GET /assignments` (Apple's).
pub const DEFAULT_VPP_PAGE_SIZE: usize = 1000;
/// Default lifetime of a downloaded location token (sim time).
pub const VPP_TOKEN_LIFETIME: time::Duration = time::Duration::days(365);
/// Default real-time delay before an associate, disassociate or revoke event is carried out.
pub const DEFAULT_VPP_EVENT_DELAY: Duration = Duration::from_millis(50);

/// An Apps and Books location (ABM/ASM "Payments and Billing → Apps and Books" location).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VppLocationId(pub u32);

impl fmt::Display for VppLocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `productType` of an asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VppProductType {
    /// `App`.
    App,
    /// `Book`.
    Book,
}

impl VppProductType {
    /// The API string: `App` or `Book`.
    pub fn as_str(self) -> &'static str {
        match self {
            VppProductType::App => "App",
            VppProductType::Book => "Book",
        }
    }

    /// Parse `App` or `Book` (exactly, as the API does).
    pub fn parse(s: &str) -> Option<VppProductType> {
        match s {
            "App" => Some(VppProductType::App),
            "Book" => Some(VppProductType::Book),
            _ => None,
        }
    }
}

/// `pricingParam` of an asset: the product's quality in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VppPricing {
    /// `STDQ`: standard quality (the default).
    #[serde(rename = "STDQ")]
    Stdq,
    /// `PLUS`: high quality.
    #[serde(rename = "PLUS")]
    Plus,
}

impl VppPricing {
    /// The API string: `STDQ` or `PLUS`.
    pub fn as_str(self) -> &'static str {
        match self {
            VppPricing::Stdq => "STDQ",
            VppPricing::Plus => "PLUS",
        }
    }

    /// Parse `STDQ` or `PLUS` (exactly, as the API does).
    pub fn parse(s: &str) -> Option<VppPricing> {
        match s {
            "STDQ" => Some(VppPricing::Stdq),
            "PLUS" => Some(VppPricing::Plus),
            _ => None,
        }
    }
}

/// A value of `supportedPlatforms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VppPlatform {
    /// `iOS` (iPhone and iPad).
    #[serde(rename = "iOS")]
    Ios,
    /// `macOS`.
    #[serde(rename = "macOS")]
    MacOs,
    /// `tvOS`.
    #[serde(rename = "tvOS")]
    TvOs,
    /// `watchOS`.
    #[serde(rename = "watchOS")]
    WatchOs,
    /// `visionOS`.
    #[serde(rename = "visionOS")]
    VisionOs,
}

impl VppPlatform {
    /// The API string, e.g. `iOS`.
    pub fn as_str(self) -> &'static str {
        match self {
            VppPlatform::Ios => "iOS",
            VppPlatform::MacOs => "macOS",
            VppPlatform::TvOs => "tvOS",
            VppPlatform::WatchOs => "watchOS",
            VppPlatform::VisionOs => "visionOS",
        }
    }
}

/// Licences bought for a location ([`AppleSim::add_vpp_asset`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VppAssetSpec {
    /// The store's product id (`adamId`), decimal digits, e.g. `408709785`.
    pub adam_id: String,
    /// App or book.
    pub product_type: VppProductType,
    /// Quality bought.
    #[serde(default = "stdq")]
    pub pricing_param: VppPricing,
    /// Licences bought (added to those already owned for the same `adamId` and pricing).
    pub total: u32,
    /// `supportedPlatforms`.
    #[serde(default)]
    pub platforms: Vec<VppPlatform>,
    /// Whether licences can go to serial numbers (books cannot).
    #[serde(default = "yes")]
    pub device_assignable: bool,
    /// Whether assigned licences can be taken back (disassociate, revoke).
    #[serde(default = "yes")]
    pub revocable: bool,
}

fn stdq() -> VppPricing {
    VppPricing::Stdq
}

fn yes() -> bool {
    true
}

impl VppAssetSpec {
    /// `total` STDQ licences of an iOS and macOS app, device-assignable and revocable.
    pub fn app(adam_id: &str, total: u32) -> VppAssetSpec {
        VppAssetSpec {
            adam_id: adam_id.to_owned(),
            product_type: VppProductType::App,
            pricing_param: VppPricing::Stdq,
            total,
            platforms: vec![VppPlatform::Ios, VppPlatform::MacOs],
            device_assignable: true,
            revocable: true,
        }
    }

    /// `total` STDQ licences of a book: for users only, not revocable (as Apple's books).
    pub fn book(adam_id: &str, total: u32) -> VppAssetSpec {
        VppAssetSpec {
            adam_id: adam_id.to_owned(),
            product_type: VppProductType::Book,
            pricing_param: VppPricing::Stdq,
            total,
            platforms: vec![VppPlatform::Ios, VppPlatform::MacOs],
            device_assignable: false,
            revocable: false,
        }
    }
}

/// The `mdmInfo` of a location: which MDM server manages it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VppMdmInfo {
    /// `id`: the MDM server's unique identifier.
    pub id: String,
    /// `name`: the MDM server's name.
    pub name: String,
    /// `metadata`: free text (empty when the MDM sent none).
    #[serde(default)]
    pub metadata: String,
}

impl VppMdmInfo {
    /// An `mdmInfo` with these values.
    pub fn new(id: &str, name: &str, metadata: &str) -> VppMdmInfo {
        VppMdmInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            metadata: metadata.to_owned(),
        }
    }
}

/// Who holds a licence.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VppAssignee {
    /// A device (`serialNumber`).
    SerialNumber(String),
    /// A user of the organisation (`clientUserId`).
    ClientUserId(String),
}

/// One assignment of a licence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VppAssignment {
    /// `adamId`.
    pub adam_id: String,
    /// `pricingParam`.
    pub pricing_param: VppPricing,
    /// The device or user.
    pub assignee: VppAssignee,
    /// The location's `versionId` when it was made.
    pub version_id: u64,
}

/// An asset of a location with its counts, as `GET /assets` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VppAssetInfo {
    /// `adamId`.
    pub adam_id: String,
    /// `productType`.
    pub product_type: VppProductType,
    /// `pricingParam`.
    pub pricing_param: VppPricing,
    /// `totalCount`: licences bought.
    pub total_count: u32,
    /// `assignedCount`.
    pub assigned_count: u32,
    /// `availableCount` = total − retired − assigned.
    pub available_count: u32,
    /// `retiredCount` (always 0 in this simulator).
    pub retired_count: u32,
    /// `deviceAssignable`.
    pub device_assignable: bool,
    /// `revocable`.
    pub revocable: bool,
    /// `supportedPlatforms`.
    pub supported_platforms: Vec<VppPlatform>,
}

/// A snapshot of a location ([`AppleSim::vpp_location`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VppLocationInfo {
    /// The simulator's id of the location.
    pub location_id: VppLocationId,
    /// The organisation it belongs to.
    pub org_id: OrgId,
    /// `orgName` of its tokens.
    pub org_name: String,
    /// `uId`: Apple's unique id of the location (decimal digits).
    pub uid: String,
    /// `locationName`.
    pub name: String,
    /// `countryISO2ACode`.
    pub country: String,
    /// `mdmInfo`, if an MDM server claimed the location.
    pub mdm_info: Option<VppMdmInfo>,
    /// `notificationUrl` as last set by an MDM server.
    pub notification_url: Option<String>,
    /// `subscribedNotificationTypes`.
    pub notification_types: Vec<String>,
    /// Number of assets (distinct `adamId` and pricing).
    pub assets: usize,
    /// Licences bought, all assets together.
    pub total_licenses: u64,
    /// Licences assigned, all assets together (= `assignments`).
    pub assigned_licenses: u64,
    /// Number of assignments.
    pub assignments: usize,
    /// The current `versionId`.
    pub version_id: u64,
    /// Tokens downloaded so far.
    pub tokens_downloaded: usize,
    /// Tokens that work now (neither expired by the sim clock nor revoked).
    pub tokens_valid: usize,
    /// Events not yet carried out.
    pub pending_events: usize,
}

/// `eventType` of an asynchronous event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VppEventType {
    /// `POST /assets/associate`.
    Associate,
    /// `POST /assets/disassociate`.
    Disassociate,
    /// `POST /assets/revoke`.
    Revoke,
}

impl VppEventType {
    /// `ASSOCIATE`, `DISASSOCIATE` or `REVOKE`.
    pub fn as_str(self) -> &'static str {
        match self {
            VppEventType::Associate => "ASSOCIATE",
            VppEventType::Disassociate => "DISASSOCIATE",
            VppEventType::Revoke => "REVOKE",
        }
    }
}

/// `eventStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VppEventStatus {
    /// Not carried out yet.
    Pending,
    /// Carried out; every item completed.
    Complete,
    /// Carried out; at least one item failed (see the failures).
    Failed,
}

impl VppEventStatus {
    /// `PENDING`, `COMPLETE` or `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            VppEventStatus::Pending => "PENDING",
            VppEventStatus::Complete => "COMPLETE",
            VppEventStatus::Failed => "FAILED",
        }
    }
}

/// One failed item of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VppEventFailure {
    /// `adamId` (absent for a revoke of every asset of a device or user).
    pub adam_id: Option<String>,
    /// `pricingParam` (absent with `adam_id`).
    pub pricing_param: Option<VppPricing>,
    /// The device or user.
    pub assignee: VppAssignee,
    /// `errorNumber`, e.g. 9709.
    pub error_number: u32,
    /// `errorMessage`.
    pub error_message: String,
}

/// An asynchronous event as `GET /status` reports it ([`AppleSim::vpp_event`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VppEventInfo {
    /// `eventId`.
    pub event_id: String,
    /// The location it belongs to.
    pub location_id: VppLocationId,
    /// `eventType`.
    pub event_type: VppEventType,
    /// `eventStatus`.
    pub status: VppEventStatus,
    /// `numRequested`.
    pub num_requested: u64,
    /// `numCompleted`.
    pub num_completed: u64,
    /// `failures`.
    pub failures: Vec<VppEventFailure>,
}

/// Batch limits that `GET /service/config` announces and the manage endpoints enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VppLimits {
    /// `maxAssets` (Apple: 25); more → 9700.
    pub max_assets: usize,
    /// `maxClientUserIds` (Apple: 1000); more → 9701.
    pub max_client_user_ids: usize,
    /// `maxSerialNumbers` (Apple: 1000); more → 9702.
    pub max_serial_numbers: usize,
}

impl Default for VppLimits {
    fn default() -> Self {
        VppLimits {
            max_assets: 25,
            max_client_user_ids: 1000,
            max_serial_numbers: 1000,
        }
    }
}

/// An injected behaviour for the next `count` Apps and Books requests whose path matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VppFault {
    /// The path under `/mdm/v2` it applies to, e.g. `/assets` (exactly; `/assets` does not
    /// match `/assets/associate`); `None` for every path.
    pub path: Option<String>,
    /// Number of requests it applies to (0 is treated as 1).
    pub count: u32,
    /// What happens to them.
    pub kind: VppFaultKind,
}

impl VppFault {
    /// `count` requests to any path get `kind`.
    pub fn new(count: u32, kind: VppFaultKind) -> VppFault {
        VppFault {
            path: None,
            count,
            kind,
        }
    }

    /// `count` requests to `path` (under `/mdm/v2`, e.g. `/assets`) get `kind`.
    pub fn on(path: &str, count: u32, kind: VppFaultKind) -> VppFault {
        VppFault {
            path: Some(path.to_owned()),
            count,
            kind,
        }
    }
}

/// What an injected Apps and Books fault does (applied before authentication).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VppFaultKind {
    /// Normal processing (lets a list say "two good, then a failure").
    Pass,
    /// Answer `status` with the error body `{"errorNumber","errorMessage"}` (Apple's message
    /// for the number) and `Retry-After: <seconds>` when given. `status` 200 gives the
    /// "error inside an HTTP 200 body" Apple is known to send.
    Error {
        /// HTTP status, e.g. 429, 503, 500, 401 or 200.
        status: u16,
        /// `errorNumber`, e.g. 9646.
        error_number: u32,
        /// `Retry-After` in seconds, if any.
        retry_after_seconds: Option<u64>,
    },
    /// Answer normally after this real-time delay.
    Slow(Duration),
    /// Close the TCP connection without answering.
    DropConnection,
    /// For `/assets/associate`, `/assets/disassociate` and `/assets/revoke`: accept the
    /// request (200 with an `eventId`) but fail every item of the event with this error
    /// number (e.g. 9644 maintenance mode, 9603 internal error); nothing changes. On other
    /// paths it behaves like [`VppFaultKind::Pass`].
    FailEvent {
        /// The `errorNumber` of every failure.
        error_number: u32,
    },
}

impl VppFaultKind {
    /// 429 with 9646 and `Retry-After: seconds`.
    pub fn too_many_requests(retry_after_seconds: u64) -> VppFaultKind {
        VppFaultKind::Error {
            status: 429,
            error_number: 9646,
            retry_after_seconds: Some(retry_after_seconds),
        }
    }

    /// 503 with 9603 and `Retry-After: seconds`.
    pub fn service_unavailable(retry_after_seconds: u64) -> VppFaultKind {
        VppFaultKind::Error {
            status: 503,
            error_number: 9603,
            retry_after_seconds: Some(retry_after_seconds),
        }
    }

    /// 500 with 9603.
    pub fn internal_error() -> VppFaultKind {
        VppFaultKind::Error {
            status: 500,
            error_number: 9603,
            retry_after_seconds: None,
        }
    }

    /// 401 with 9625 (the token was revoked).
    pub fn token_revoked() -> VppFaultKind {
        VppFaultKind::Error {
            status: 401,
            error_number: 9625,
            retry_after_seconds: None,
        }
    }

    /// 401 with 9622 (invalid token).
    pub fn token_invalid() -> VppFaultKind {
        VppFaultKind::Error {
            status: 401,
            error_number: 9622,
            retry_after_seconds: None,
        }
    }

    /// HTTP 200 whose body is an error, e.g. `{"errorNumber":9603,…}`.
    pub fn error_in_ok_body(error_number: u32) -> VppFaultKind {
        VppFaultKind::Error {
            status: 200,
            error_number,
            retry_after_seconds: None,
        }
    }
}

/// Apple's message for an error number (the contract's texts; Apple's documentation for
/// the others).
pub fn vpp_error_message(number: u32) -> &'static str {
    match number {
        9601 => "Login required.",
        9602 => "Invalid argument.",
        9603 => "Internal error.",
        9609 => "Unable to find the registered user.",
        9616 => "The license is already assigned.",
        9621 => {
            "The token has expired. You need to generate a new token online using your organization's account at either school.apple.com or business.apple.com."
        }
        9622 => "Invalid authentication token.",
        9625 => "The server has revoked the sToken.",
        9641 => "An Apple Account is already associated with this user.",
        9644 => "The service is in maintenance mode. Try again later.",
        9646 => "Too many recent calls to manage licenses with identical requests.",
        9650 => "The provided page index must be greater than 0, and less than the total number of pages.",
        9700 => "This request exceeds the maximum assets limit. Change the request to stay within the specified limit.",
        9701 => {
            "This request exceeds the maximum clientUserIds limit. Change the request to stay within the specified limit."
        }
        9702 => {
            "This request exceeds the maximum serialNumbers limit. Change the request to stay within the specified limit."
        }
        9703 => "This request contains duplicate assets. Change the request to send unique assets.",
        9704 => "This request contains duplicate clientUserIds. Change the request to send unique client IDs.",
        9705 => "This request contains duplicate serialNumbers. Change the request to send unique serial numbers.",
        9706 => "The asset in the request isn't revocable. Change the request to send revocable assets.",
        9707 => {
            "The asset in the request isn't device-assignable. Change the request to send device-assignable assets."
        }
        9708 => "Unable to find eventId.",
        9709 => "Not enough licenses.",
        9710 => "Both the notification URL and the authentication token are necessary.",
        9712 => "The provided notification URL must be a valid URL and use HTTPS as the protocol.",
        9718 => {
            "This request doesn't contain an asset, which is a required argument. Change the request to provide an asset."
        }
        9719 => {
            "Either clientUserIds or serialNumbers are required arguments. Change the request to provide assignable users and devices."
        }
        9721 => {
            "This request contains an invalid version ID. Change the request to send the version ID from the read APIs."
        }
        9722 => "Authorization header is malformed.",
        9726 => "This request contains an unsupported HTTP method for the requested endpoint.",
        9727 => "This request contains an unsupported Content-Type for the requested endpoint.",
        _ => "Error.",
    }
}

/// Every error number `GET /service/config` lists, in order.
pub(crate) const ERROR_NUMBERS: &[u32] = &[
    9601, 9602, 9603, 9609, 9616, 9621, 9622, 9625, 9641, 9644, 9646, 9650, 9700, 9701, 9702, 9703, 9704, 9705, 9706,
    9707, 9708, 9709, 9710, 9712, 9718, 9719, 9721, 9722, 9726, 9727,
];

/// The notification types Apple offers.
pub(crate) const NOTIFICATION_TYPES: &[&str] =
    &["ASSET_COUNT", "ASSET_MANAGEMENT", "USER_MANAGEMENT", "USER_ASSOCIATED"];

/// The date format of `.vpptoken` files and `tokenExpirationDate`: `YYYY-MM-DDTHH:MM:SS+0000`.
pub fn vpp_date(t: OffsetDateTime) -> String {
    let s = crate::timefmt::stamp(t.unix_timestamp());
    let s = s.as_str();
    format!("{}+0000", s.strip_suffix('Z').unwrap_or(s))
}

// ---------------------------------------------------------------------------------------
// The model.

pub(crate) struct Asset {
    pub adam_id: String,
    pub product_type: VppProductType,
    pub pricing: VppPricing,
    pub total: u32,
    pub retired: u32,
    pub assigned: u32,
    pub platforms: Vec<VppPlatform>,
    pub device_assignable: bool,
    pub revocable: bool,
}

impl Asset {
    pub(crate) fn available(&self) -> u32 {
        self.total.saturating_sub(self.retired).saturating_sub(self.assigned)
    }

    pub(crate) fn info(&self) -> VppAssetInfo {
        VppAssetInfo {
            adam_id: self.adam_id.clone(),
            product_type: self.product_type,
            pricing_param: self.pricing,
            total_count: self.total,
            assigned_count: self.assigned,
            available_count: self.available(),
            retired_count: self.retired,
            device_assignable: self.device_assignable,
            revocable: self.revocable,
            supported_platforms: self.platforms.clone(),
        }
    }
}

pub(crate) struct Assign {
    pub asset: u32,
    pub who: VppAssignee,
    pub version: u64,
}

/// What an event was asked to do, checked when it was submitted.
pub(crate) struct Event {
    pub id: String,
    pub kind: VppEventType,
    pub due: Instant,
    /// Asset indexes; `None` for a revoke of every asset.
    pub assets: Option<Vec<u32>>,
    /// Serial numbers first, then users, each in request order.
    pub who: Vec<VppAssignee>,
    /// Fail every item with this error number (a `FailEvent` fault).
    pub forced: Option<u32>,
    pub status: VppEventStatus,
    pub num_requested: u64,
    pub num_completed: u64,
    pub failures: Vec<VppEventFailure>,
}

pub(crate) struct Location {
    pub org: OrgId,
    pub org_name: String,
    pub org_kind: OrgKind,
    pub uid: String,
    pub name: String,
    pub country: String,
    pub mdm_info: Option<VppMdmInfo>,
    pub notification_url: Option<String>,
    pub notification_auth_token: Option<String>,
    pub notification_types: Vec<String>,
    pub assets: Vec<Asset>,
    pub asset_index: HashMap<(String, VppPricing), u32>,
    /// Assignments in creation order (key: sequence number).
    pub assignments: BTreeMap<u64, Assign>,
    pub assign_index: HashMap<(u32, VppAssignee), u64>,
    pub next_seq: u64,
    pub version: u64,
    pub events: HashMap<String, Event>,
    /// Ids of events not carried out yet, in submission order.
    pub queue: VecDeque<String>,
    pub tokens_downloaded: usize,
}

pub(crate) struct TokenRec {
    pub location: u32,
    pub expires: OffsetDateTime,
    pub revoked: bool,
}

/// Why a bearer token is refused: the error number.
pub(crate) enum TokenProblem {
    Unknown,
    Revoked,
    Expired,
}

pub(crate) struct VppWorld {
    pub locations: Vec<Location>,
    pub uids: HashSet<String>,
    /// Every token ever downloaded, by its whole file content (the bearer credential).
    pub tokens: HashMap<String, TokenRec>,
    pub page_size: usize,
    pub limits: VppLimits,
    pub event_delay: Duration,
    pub hold_events: bool,
    pub rng: Rng,
}

impl VppWorld {
    pub(crate) fn new() -> VppWorld {
        VppWorld {
            locations: Vec::new(),
            uids: HashSet::new(),
            tokens: HashMap::new(),
            page_size: DEFAULT_VPP_PAGE_SIZE,
            limits: VppLimits::default(),
            event_delay: DEFAULT_VPP_EVENT_DELAY,
            hold_events: false,
            rng: Rng::from_os(),
        }
    }

    pub(crate) fn location(&self, id: VppLocationId) -> Result<&Location, SimError> {
        self.locations
            .get(id.0 as usize)
            .ok_or(SimError::UnknownVppLocation(id))
    }

    pub(crate) fn location_mut(&mut self, id: VppLocationId) -> Result<&mut Location, SimError> {
        self.locations
            .get_mut(id.0 as usize)
            .ok_or(SimError::UnknownVppLocation(id))
    }

    /// A new 16-digit `uId`, unique in this simulator.
    fn new_uid(&mut self) -> String {
        loop {
            let n = 1_000_000_000_000_000 + self.rng.below(9_000_000_000_000_000);
            let s = n.to_string();
            if self.uids.insert(s.clone()) {
                return s;
            }
        }
    }

    pub(crate) fn create_location(
        &mut self,
        org: OrgId,
        org_name: &str,
        org_kind: OrgKind,
        name: &str,
    ) -> VppLocationId {
        let id = VppLocationId(self.locations.len() as u32);
        let uid = self.new_uid();
        self.locations.push(Location {
            org,
            org_name: org_name.to_owned(),
            org_kind,
            uid,
            name: name.to_owned(),
            country: "US".to_owned(),
            mdm_info: None,
            notification_url: None,
            notification_auth_token: None,
            notification_types: Vec::new(),
            assets: Vec::new(),
            asset_index: HashMap::new(),
            assignments: BTreeMap::new(),
            assign_index: HashMap::new(),
            next_seq: 0,
            version: 1,
            events: HashMap::new(),
            queue: VecDeque::new(),
            tokens_downloaded: 0,
        });
        id
    }

    /// Check a bearer credential: the location and the token's expiry, or why not.
    pub(crate) fn authenticate(
        &self,
        bearer: &str,
        now: OffsetDateTime,
    ) -> Result<(u32, OffsetDateTime), TokenProblem> {
        let rec = self.tokens.get(bearer).ok_or(TokenProblem::Unknown)?;
        if rec.revoked {
            return Err(TokenProblem::Revoked);
        }
        if now >= rec.expires {
            return Err(TokenProblem::Expired);
        }
        Ok((rec.location, rec.expires))
    }

    pub(crate) fn settle(&mut self, loc: u32) {
        let hold = self.hold_events;
        if let Some(l) = self.locations.get_mut(loc as usize) {
            l.settle(Instant::now(), hold);
        }
    }

    fn info(&self, id: u32, now: OffsetDateTime) -> Option<VppLocationInfo> {
        let l = self.locations.get(id as usize)?;
        let (mut downloaded, mut valid) = (0, 0);
        for t in self.tokens.values().filter(|t| t.location == id) {
            downloaded += 1;
            if !t.revoked && now < t.expires {
                valid += 1;
            }
        }
        Some(VppLocationInfo {
            location_id: VppLocationId(id),
            org_id: l.org,
            org_name: l.org_name.clone(),
            uid: l.uid.clone(),
            name: l.name.clone(),
            country: l.country.clone(),
            mdm_info: l.mdm_info.clone(),
            notification_url: l.notification_url.clone(),
            notification_types: l.notification_types.clone(),
            assets: l.assets.len(),
            total_licenses: l.assets.iter().map(|a| a.total as u64).sum(),
            assigned_licenses: l.assets.iter().map(|a| a.assigned as u64).sum(),
            assignments: l.assignments.len(),
            version_id: l.version,
            tokens_downloaded: downloaded.max(l.tokens_downloaded),
            tokens_valid: valid,
            pending_events: l.queue.len(),
        })
    }
}

impl Location {
    pub(crate) fn find_asset(&self, adam_id: &str, pricing: VppPricing) -> Option<u32> {
        self.asset_index.get(&(adam_id.to_owned(), pricing)).copied()
    }

    pub(crate) fn website_url(&self) -> &'static str {
        match self.org_kind {
            OrgKind::Education => "https://school.apple.com",
            OrgKind::Business => "https://business.apple.com",
        }
    }

    pub(crate) fn insert_assignment(&mut self, asset: u32, who: VppAssignee, version: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.assignments.insert(
            seq,
            Assign {
                asset,
                who: who.clone(),
                version,
            },
        );
        self.assign_index.insert((asset, who), seq);
        if let Some(a) = self.assets.get_mut(asset as usize) {
            a.assigned += 1;
        }
    }

    pub(crate) fn remove_assignment(&mut self, asset: u32, who: &VppAssignee) -> bool {
        match self.assign_index.remove(&(asset, who.clone())) {
            Some(seq) => {
                self.assignments.remove(&seq);
                if let Some(a) = self.assets.get_mut(asset as usize) {
                    a.assigned = a.assigned.saturating_sub(1);
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn assignment(&self, a: &Assign) -> VppAssignment {
        let (adam_id, pricing) = match self.assets.get(a.asset as usize) {
            Some(x) => (x.adam_id.clone(), x.pricing),
            None => (String::new(), VppPricing::Stdq),
        };
        VppAssignment {
            adam_id,
            pricing_param: pricing,
            assignee: a.who.clone(),
            version_id: a.version,
        }
    }

    /// Carry out every event that is due, in submission order.
    pub(crate) fn settle(&mut self, now: Instant, hold: bool) {
        if hold {
            return;
        }
        while let Some(id) = self.queue.front() {
            let due = match self.events.get(id) {
                Some(e) => e.due,
                None => {
                    self.queue.pop_front();
                    continue;
                }
            };
            if due > now {
                break;
            }
            let Some(id) = self.queue.pop_front() else { break };
            if let Some(mut ev) = self.events.remove(&id) {
                self.apply(&mut ev);
                self.events.insert(id, ev);
            }
        }
    }

    fn failure(&self, asset: Option<u32>, who: &VppAssignee, number: u32) -> VppEventFailure {
        let a = asset.and_then(|i| self.assets.get(i as usize));
        VppEventFailure {
            adam_id: a.map(|a| a.adam_id.clone()),
            pricing_param: a.map(|a| a.pricing),
            assignee: who.clone(),
            error_number: number,
            error_message: vpp_error_message(number).to_owned(),
        }
    }

    fn apply(&mut self, ev: &mut Event) {
        let next = self.version + 1;
        let mut changed = false;
        let mut failures = Vec::new();
        let mut completed = 0u64;
        let pairs: Vec<(Option<u32>, VppAssignee)> = match &ev.assets {
            Some(assets) => assets
                .iter()
                .flat_map(|&a| ev.who.iter().map(move |w| (Some(a), w.clone())))
                .collect(),
            None => ev.who.iter().map(|w| (None, w.clone())).collect(),
        };
        for (asset, who) in pairs {
            if let Some(n) = ev.forced {
                failures.push(self.failure(asset, &who, n));
                continue;
            }
            match (ev.kind, asset) {
                (VppEventType::Associate, Some(a)) => {
                    if self.assign_index.contains_key(&(a, who.clone())) {
                        // Already assigned: nothing to do, and not a failure.
                        completed += 1;
                    } else if self.assets.get(a as usize).is_some_and(|x| x.available() > 0) {
                        self.insert_assignment(a, who, next);
                        changed = true;
                        completed += 1;
                    } else {
                        failures.push(self.failure(Some(a), &who, 9709));
                    }
                }
                (_, Some(a)) => {
                    changed |= self.remove_assignment(a, &who);
                    completed += 1;
                }
                (_, None) => {
                    // Revoke every revocable asset of this device or user.
                    let held: Vec<u32> = self
                        .assign_index
                        .keys()
                        .filter(|(a, w)| *w == who && self.assets.get(*a as usize).is_some_and(|x| x.revocable))
                        .map(|(a, _)| *a)
                        .collect();
                    for a in held {
                        changed |= self.remove_assignment(a, &who);
                    }
                    completed += 1;
                }
            }
        }
        if changed {
            self.version = next;
        }
        ev.num_completed = completed;
        ev.status = if failures.is_empty() {
            VppEventStatus::Complete
        } else {
            VppEventStatus::Failed
        };
        ev.failures = failures;
    }

    pub(crate) fn event_info(&self, loc: u32, ev: &Event) -> VppEventInfo {
        VppEventInfo {
            event_id: ev.id.clone(),
            location_id: VppLocationId(loc),
            event_type: ev.kind,
            status: ev.status,
            num_requested: ev.num_requested,
            num_completed: ev.num_completed,
            failures: ev.failures.clone(),
        }
    }
}

/// A new `.vpptoken` file: base64 of `{"token","expDate","orgName"}`.
fn token_file(org_name: &str, expires: OffsetDateTime) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut raw = [0u8; 48];
    os_random(&mut raw);
    let token = b64.encode(raw);
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    let json = format!(
        "{{\"token\":{},\"expDate\":{},\"orgName\":{}}}",
        q(&token),
        q(&vpp_date(expires)),
        q(org_name)
    );
    b64.encode(json.as_bytes())
}

fn valid_adam_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

impl AppleSim {
    pub(crate) fn vpp(&self) -> MutexGuard<'_, VppWorld> {
        lock(&self.inner.vpp)
    }

    /// Create an Apps and Books location in an organisation, with a new unique `uId` and
    /// country `US`. An unknown `org` logs a warning and returns an id that refers to
    /// nothing (see [`AppleSim::try_create_vpp_location`]).
    pub fn create_vpp_location(&self, org: OrgId, name: &str) -> VppLocationId {
        match self.try_create_vpp_location(org, name) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("create_vpp_location: {e}");
                VppLocationId(u32::MAX)
            }
        }
    }

    /// [`AppleSim::create_vpp_location`] with an error for an unknown organisation.
    pub fn try_create_vpp_location(&self, org: OrgId, name: &str) -> Result<VppLocationId, SimError> {
        let (org_name, kind) = {
            let st = self.read();
            let o = st.org(org)?;
            (o.name.clone(), o.kind)
        };
        Ok(self.vpp().create_location(org, &org_name, kind, name))
    }

    /// Set a location's country (`countryISO2ACode`): two ASCII letters, stored uppercase.
    pub fn set_vpp_country(&self, loc: VppLocationId, country: &str) -> Result<(), SimError> {
        let c = country.trim();
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(SimError::Invalid(format!(
                "the country must be two letters (ISO 3166-1 alpha-2, e.g. FR), not {country:?}"
            )));
        }
        self.vpp().location_mut(loc)?.country = c.to_ascii_uppercase();
        Ok(())
    }

    /// Rename a location (`locationName`); its `uId` and tokens stay.
    pub fn set_vpp_location_name(&self, loc: VppLocationId, name: &str) -> Result<(), SimError> {
        self.vpp().location_mut(loc)?.name = name.to_owned();
        Ok(())
    }

    /// Buy licences: a new asset, or more licences of an existing `adamId` and pricing (its
    /// other attributes then stay as first bought). Bumps the location's `versionId`.
    pub fn add_vpp_asset(&self, loc: VppLocationId, spec: VppAssetSpec) -> Result<(), SimError> {
        if !valid_adam_id(&spec.adam_id) {
            return Err(SimError::Invalid(format!(
                "the adamId must be decimal digits (e.g. 408709785), not {:?}",
                spec.adam_id
            )));
        }
        let mut w = self.vpp();
        let l = w.location_mut(loc)?;
        match l.find_asset(&spec.adam_id, spec.pricing_param) {
            Some(i) => {
                if let Some(a) = l.assets.get_mut(i as usize) {
                    a.total = a.total.saturating_add(spec.total);
                }
            }
            None => {
                let i = l.assets.len() as u32;
                l.asset_index.insert((spec.adam_id.clone(), spec.pricing_param), i);
                l.assets.push(Asset {
                    adam_id: spec.adam_id,
                    product_type: spec.product_type,
                    pricing: spec.pricing_param,
                    total: spec.total,
                    retired: 0,
                    assigned: 0,
                    platforms: spec.platforms,
                    device_assignable: spec.device_assignable,
                    revocable: spec.revocable,
                });
            }
        }
        l.version += 1;
        Ok(())
    }

    /// Assign licences directly, as if done earlier (for example by another MDM server).
    /// All or nothing: fails for an unknown asset, a serial number with a book (not
    /// device-assignable) or too few available licences. Existing assignments are kept.
    pub fn add_vpp_assignments(
        &self,
        loc: VppLocationId,
        adam_id: &str,
        pricing: VppPricing,
        assignees: &[VppAssignee],
    ) -> Result<(), SimError> {
        let mut w = self.vpp();
        w.settle(loc.0);
        let l = w.location_mut(loc)?;
        let i = l.find_asset(adam_id, pricing).ok_or_else(|| {
            SimError::Invalid(format!("location {loc} has no asset {adam_id} ({})", pricing.as_str()))
        })?;
        let mut new: Vec<VppAssignee> = Vec::new();
        for who in assignees {
            if !l.assign_index.contains_key(&(i, who.clone())) && !new.contains(who) {
                new.push(who.clone());
            }
        }
        let Some(a) = l.assets.get(i as usize) else {
            return Err(SimError::Invalid(format!("location {loc} has no asset {adam_id}")));
        };
        if !a.device_assignable && new.iter().any(|w| matches!(w, VppAssignee::SerialNumber(_))) {
            return Err(SimError::Invalid(format!(
                "asset {adam_id} is not device-assignable; give it to users"
            )));
        }
        if (a.available() as usize) < new.len() {
            return Err(SimError::Invalid(format!(
                "asset {adam_id} has {} licences available, {} are needed",
                a.available(),
                new.len()
            )));
        }
        if new.is_empty() {
            return Ok(());
        }
        let version = l.version + 1;
        for who in new {
            l.insert_assignment(i, who, version);
        }
        l.version = version;
        Ok(())
    }

    /// ABM's "Download" of the location token: a new `.vpptoken` file content (base64, no
    /// trailing newline) valid for [`VPP_TOKEN_LIFETIME`] from the sim clock. Earlier
    /// tokens of the location stay valid.
    pub fn download_vpp_token(&self, loc: VppLocationId) -> Result<String, SimError> {
        let at = self.clock().now() + VPP_TOKEN_LIFETIME;
        self.download_vpp_token_expiring(loc, at)
    }

    /// [`AppleSim::download_vpp_token`] with this expiry (whole seconds; it may be in the
    /// past, which makes an already expired token).
    pub fn download_vpp_token_expiring(&self, loc: VppLocationId, at: OffsetDateTime) -> Result<String, SimError> {
        let at = OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).unwrap_or(at);
        let mut w = self.vpp();
        let l = w.location_mut(loc)?;
        l.tokens_downloaded += 1;
        let file = token_file(&l.org_name, at);
        w.tokens.insert(
            file.clone(),
            TokenRec {
                location: loc.0,
                expires: at,
                revoked: false,
            },
        );
        Ok(file)
    }

    /// Revoke one token, given its file content (surrounding whitespace is ignored): it
    /// then gets 401 9625.
    pub fn revoke_vpp_token(&self, token_file: &str) -> Result<(), SimError> {
        match self.vpp().tokens.get_mut(token_file.trim()) {
            Some(t) => {
                t.revoked = true;
                Ok(())
            }
            None => Err(SimError::UnknownVppToken),
        }
    }

    /// Revoke every token of a location; returns how many were not revoked before.
    pub fn revoke_vpp_tokens(&self, loc: VppLocationId) -> Result<usize, SimError> {
        let mut w = self.vpp();
        w.location(loc)?;
        let mut n = 0;
        for t in w.tokens.values_mut().filter(|t| t.location == loc.0 && !t.revoked) {
            t.revoked = true;
            n += 1;
        }
        Ok(n)
    }

    /// Set or clear a location's `mdmInfo`, as another MDM server taking over would.
    pub fn set_vpp_mdm_info(&self, loc: VppLocationId, info: Option<VppMdmInfo>) -> Result<(), SimError> {
        self.vpp().location_mut(loc)?.mdm_info = info;
        Ok(())
    }

    /// A location's `mdmInfo` (`None` also for an unknown location).
    pub fn vpp_mdm_info(&self, loc: VppLocationId) -> Option<VppMdmInfo> {
        self.vpp().location(loc).ok()?.mdm_info.clone()
    }

    /// A snapshot of a location (due events carried out first).
    pub fn vpp_location(&self, loc: VppLocationId) -> Option<VppLocationInfo> {
        let now = self.clock().now();
        let mut w = self.vpp();
        w.settle(loc.0);
        w.info(loc.0, now)
    }

    /// Snapshots of every location, in creation order.
    pub fn vpp_locations(&self) -> Vec<VppLocationInfo> {
        let now = self.clock().now();
        let mut w = self.vpp();
        (0..w.locations.len() as u32)
            .filter_map(|i| {
                w.settle(i);
                w.info(i, now)
            })
            .collect()
    }

    /// A location's assets with their counts, in purchase order.
    pub fn vpp_assets(&self, loc: VppLocationId) -> Vec<VppAssetInfo> {
        let mut w = self.vpp();
        w.settle(loc.0);
        match w.location(loc) {
            Ok(l) => l.assets.iter().map(Asset::info).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// A location's assignments, oldest first.
    pub fn vpp_assignments(&self, loc: VppLocationId) -> Vec<VppAssignment> {
        let mut w = self.vpp();
        w.settle(loc.0);
        match w.location(loc) {
            Ok(l) => l.assignments.values().map(|a| l.assignment(a)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// An event by its `eventId` (carried out first if due).
    pub fn vpp_event(&self, event_id: &str) -> Option<VppEventInfo> {
        let mut w = self.vpp();
        let i = w.locations.iter().position(|l| l.events.contains_key(event_id))? as u32;
        w.settle(i);
        let l = w.locations.get(i as usize)?;
        l.events.get(event_id).map(|e| l.event_info(i, e))
    }

    /// Append faults. Each Apps and Books request takes the first entry whose path matches
    /// (or that has none) and uses up one of its `count`.
    pub fn push_vpp_faults(&self, faults: Vec<VppFault>) {
        lock(&self.inner.vpp_faults).extend(faults.into_iter().map(|mut f| {
            f.count = f.count.max(1);
            f
        }));
    }

    /// Remove every pending Apps and Books fault.
    pub fn clear_vpp_faults(&self) {
        lock(&self.inner.vpp_faults).clear();
    }

    /// Pending Apps and Books faults (remaining counts).
    pub fn pending_vpp_faults(&self) -> Vec<VppFault> {
        lock(&self.inner.vpp_faults).iter().cloned().collect()
    }

    pub(crate) fn take_vpp_fault(&self, path: &str) -> Option<VppFaultKind> {
        let mut q = lock(&self.inner.vpp_faults);
        let i = q.iter().position(|f| f.path.as_deref().is_none_or(|p| p == path))?;
        let f = q.get_mut(i)?;
        let kind = f.kind.clone();
        f.count = f.count.saturating_sub(1);
        if f.count == 0 {
            q.remove(i);
        }
        Some(kind)
    }

    /// Records per page of `GET /assets` and `GET /assignments` (default
    /// [`DEFAULT_VPP_PAGE_SIZE`]; 0 counts as 1).
    pub fn set_vpp_page_size(&self, n: usize) {
        self.vpp().page_size = n.max(1);
    }

    /// The batch limits of the manage endpoints (default [`VppLimits::default`]).
    pub fn set_vpp_limits(&self, limits: VppLimits) {
        self.vpp().limits = limits;
    }

    /// The current batch limits.
    pub fn vpp_limits(&self) -> VppLimits {
        self.vpp().limits
    }

    /// Real-time delay between accepting an associate, disassociate or revoke and carrying
    /// it out (default [`DEFAULT_VPP_EVENT_DELAY`]). Applies to events submitted afterwards.
    pub fn set_vpp_event_delay(&self, delay: Duration) {
        self.vpp().event_delay = delay;
    }

    /// While held, no event is carried out (they stay `PENDING`); releasing carries out
    /// those that are due at the next look.
    pub fn hold_vpp_events(&self, hold: bool) {
        self.vpp().hold_events = hold;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_format() {
        let t = OffsetDateTime::from_unix_timestamp(1_768_647_741).unwrap();
        assert_eq!(vpp_date(t), "2026-01-17T11:02:21+0000");
    }

    #[test]
    fn token_file_shape() {
        let t = OffsetDateTime::from_unix_timestamp(1_768_647_741).unwrap();
        let f = token_file("Org \"A\"", t);
        let raw = base64::engine::general_purpose::STANDARD.decode(&f).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["expDate"], "2026-01-17T11:02:21+0000");
        assert_eq!(v["orgName"], "Org \"A\"");
        assert_eq!(v["token"].as_str().unwrap().len(), 64);
        assert_ne!(token_file("x", t), token_file("x", t));
    }

    #[test]
    fn uids_are_unique_digits() {
        let mut w = VppWorld::new();
        let mut seen = HashSet::new();
        for i in 0..200 {
            let id = w.create_location(OrgId(0), "O", OrgKind::Business, &format!("L{i}"));
            let uid = w.locations[id.0 as usize].uid.clone();
            assert_eq!(uid.len(), 16);
            assert!(uid.bytes().all(|b| b.is_ascii_digit()));
            assert!(seen.insert(uid));
        }
    }
}
