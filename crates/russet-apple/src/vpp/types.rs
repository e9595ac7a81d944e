//! The JSON objects of the Apps and Books API v2, requests and answers.
//!
//! Reading is tolerant, as for the device assignment API: unknown keys are ignored, values
//! Apple may omit are `Option`s (or empty), a number sent as a string is read as a number, and
//! a value of an unexpected shape becomes `None` (or the documented default) instead of
//! failing the whole answer — one odd asset never fails a page. Times
//! (`tokenExpirationDate`) are read by [`parse_vpp_time`].

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::dep::lenient;

/// Reads Apple's Apps and Books times: `2027-11-24T10:00:00+0000` (numeric offset without a
/// colon, Apple's format), and everything [`dep::parse_time`](crate::dep::parse_time) reads
/// (RFC 3339 with `Z` or `+00:00`, other ISO 8601 forms, no offset meaning UTC). `None` when
/// unreadable.
pub fn parse_vpp_time(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    OffsetDateTime::parse(
        text,
        format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][offset_minute]"
        ),
    )
    .ok()
    .or_else(|| crate::dep::parse_time(text))
}

/// A string-valued enumeration with a catch-all for values this client does not know.
macro_rules! apple_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this client does not know, as Apple sent it (a non-string value as its
            /// JSON text; empty when Apple sent none).
            Other(String),
        }

        impl $name {
            /// Apple's spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            /// Case-insensitive; surrounding whitespace is ignored.
            fn from(s: &str) -> $name {
                let trimmed = s.trim();
                $(if trimmed.eq_ignore_ascii_case($text) {
                    return $name::$variant;
                })+
                $name::Other(s.to_owned())
            }
        }

        impl Default for $name {
            /// [`Other`]($name::Other) with an empty string: Apple sent no value.
            fn default() -> $name {
                $name::Other(String::new())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            /// Any JSON value: strings are matched, `null` is the default, anything else is kept
            /// as `Other` with its JSON text.
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(match Value::deserialize(deserializer)? {
                    Value::String(s) => $name::from(s.as_str()),
                    Value::Null => $name::default(),
                    other => $name::Other(other.to_string()),
                })
            }
        }
    };
}

apple_enum! {
    /// What an asset is (`productType`).
    ProductType {
        /// An app.
        App => "App",
        /// A book.
        Book => "Book",
    }
}

apple_enum! {
    /// Where an asynchronous event stands (`eventStatus`).
    EventStatus {
        /// Apple is still working on it: ask again later.
        Pending => "PENDING",
        /// Done; individual items may still be listed in the failures.
        Complete => "COMPLETE",
        /// Done, and failed.
        Failed => "FAILED",
    }
}

apple_enum! {
    /// What an asynchronous event does (`eventType`).
    EventType {
        /// `POST /assets/associate`.
        Associate => "ASSOCIATE",
        /// `POST /assets/disassociate`.
        Disassociate => "DISASSOCIATE",
        /// `POST /assets/revoke`.
        Revoke => "REVOKE",
    }
}

/// The MDM that claimed a location (`mdmInfo`): Apple keeps what the last MDM wrote with
/// `POST /client/config`, so comparing `id` tells whether another MDM took the location over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdmInfo {
    /// The claiming MDM's identifier (required when writing).
    #[serde(default, deserialize_with = "text")]
    pub id: String,
    /// Its name, for people (required when writing).
    #[serde(default, deserialize_with = "text")]
    pub name: String,
    /// Free text for the claiming MDM.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<String>,
}

/// `GET /client/config` (and the answer to `POST /client/config`): the location the token
/// belongs to.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// The location's name in Apple Business Manager (empty if Apple omitted it).
    #[serde(default, deserialize_with = "text")]
    pub location_name: String,
    /// `countryISO2ACode`: e.g. `US`.
    #[serde(rename = "countryISO2ACode", default, deserialize_with = "lenient::string")]
    pub country: Option<String>,
    /// e.g. `volumestore`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub default_platform: Option<String>,
    /// The MDM that claimed the location; `None` when no MDM has (Apple omits the key).
    #[serde(default, deserialize_with = "mdm_info")]
    pub mdm_info: Option<MdmInfo>,
    /// `tokenExpirationDate`: when this token expires.
    #[serde(rename = "tokenExpirationDate", default, deserialize_with = "time")]
    pub token_expiration: Option<OffsetDateTime>,
    /// `uId`: the location's unique identifier, the same for every token ever downloaded for
    /// it. Never empty: [`VppClient::client_config`](super::VppClient::client_config) refuses an
    /// answer without one.
    #[serde(rename = "uId", default, deserialize_with = "text")]
    pub uid: String,
    /// `websiteURL`: `https://business.apple.com` or `https://school.apple.com`.
    #[serde(rename = "websiteURL", default, deserialize_with = "lenient::string")]
    pub website_url: Option<String>,
    /// Where Apple sends notifications for this location.
    #[serde(default, deserialize_with = "lenient::string")]
    pub notification_url: Option<String>,
    /// The token Apple sends with notifications (Russet's own secret).
    #[serde(default, deserialize_with = "secret")]
    pub notification_auth_token: Option<SecretString>,
    /// `ASSET_COUNT`, `ASSET_MANAGEMENT`, `USER_MANAGEMENT`, `USER_ASSOCIATED`.
    #[serde(default, deserialize_with = "lenient::string_list")]
    pub subscribed_notification_types: Vec<String>,
}

impl ClientConfig {
    /// Whether the location is claimed by an MDM whose id is not `our_id`.
    pub fn is_claimed_by_another_mdm(&self, our_id: &str) -> bool {
        self.mdm_info.as_ref().is_some_and(|info| info.id != our_id)
    }
}

/// The body of `POST /client/config`: keys left `None` are not sent (Apple leaves them as
/// they are). `Debug` does not show the notification token.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfigRequest {
    /// Claims the location for this MDM (`id` and `name` must not be empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mdm_info: Option<MdmInfo>,
    /// Where Apple should send notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_url: Option<String>,
    /// The secret Apple sends back with each notification.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_secret")]
    pub notification_auth_token: Option<SecretString>,
    /// Which notifications to receive (`ASSET_MANAGEMENT`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_types: Option<Vec<String>>,
}

/// `GET /service/config`: Apple's limits, notification types, endpoints and error codes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConfig {
    /// Apple's error numbers with their messages.
    #[serde(default, deserialize_with = "tolerant_list")]
    pub error_codes: Vec<ServiceErrorCode>,
    /// The batch limits of associate, disassociate and revoke.
    #[serde(default, deserialize_with = "lenient_struct")]
    pub limits: ServiceLimits,
    /// The notification types a location can subscribe to.
    #[serde(default, deserialize_with = "lenient::string_list")]
    pub notification_types: Vec<String>,
    /// Endpoint name (`getAssets`, …) → URL. Values that are not strings are left out.
    #[serde(default, deserialize_with = "string_map")]
    pub urls: BTreeMap<String, String>,
}

/// One entry of [`ServiceConfig::error_codes`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceErrorCode {
    /// e.g. 9601.
    #[serde(default, deserialize_with = "number")]
    pub error_number: Option<i64>,
    /// e.g. "Login required."
    #[serde(default, deserialize_with = "lenient::string")]
    pub error_message: Option<String>,
}

/// Apple's batch limits (`limits`); `None` when not advertised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLimits {
    /// Assets per associate / disassociate / revoke request (Apple: 25).
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub max_assets: Option<u32>,
    /// Apple Account users per request (Apple: 1000).
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub max_client_user_ids: Option<u32>,
    /// Devices per request (Apple: 1000).
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub max_serial_numbers: Option<u32>,
}

/// An app or book the location holds licences for, at one price (`pricingParam`).
///
/// Counts Apple omits or sends unreadably are 0; a count sent as a string is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    /// The App Store identifier (empty only if Apple omitted it).
    #[serde(default, deserialize_with = "text")]
    pub adam_id: String,
    /// App or book (a value this client does not know is kept).
    #[serde(default)]
    pub product_type: ProductType,
    /// `STDQ` (standard) or `PLUS` (high quality, books).
    #[serde(default, deserialize_with = "text")]
    pub pricing_param: String,
    /// `assignedCount`.
    #[serde(rename = "assignedCount", default, deserialize_with = "count")]
    pub assigned: u64,
    /// `availableCount`.
    #[serde(rename = "availableCount", default, deserialize_with = "count")]
    pub available: u64,
    /// `retiredCount`.
    #[serde(rename = "retiredCount", default, deserialize_with = "count")]
    pub retired: u64,
    /// `totalCount`.
    #[serde(rename = "totalCount", default, deserialize_with = "count")]
    pub total: u64,
    /// Licences can be assigned to devices (not only to users). False when Apple omits it.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub device_assignable: bool,
    /// Licences can be revoked. False when Apple omits it.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub revocable: bool,
    /// `supportedPlatforms`: `iOS`, `macOS`, `tvOS`, `watchOS`, `visionOS`.
    #[serde(rename = "supportedPlatforms", default, deserialize_with = "lenient::string_list")]
    pub platforms: Vec<String>,
}

/// One page of `GET /assets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetsPage {
    /// May be empty. An element that is not a JSON object fails the page (dropping assets
    /// silently would be worse); odd values inside an asset do not.
    #[serde(default, deserialize_with = "lenient::list")]
    pub assets: Vec<Asset>,
    /// The page returned (0-based; 0 if Apple omitted it).
    #[serde(default, deserialize_with = "index")]
    pub current_page_index: u32,
    /// The page to ask for next; `None` on the last page.
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub next_page_index: Option<u32>,
    /// `size`: how many assets match the query in all pages.
    #[serde(rename = "size", default, deserialize_with = "lenient::unsigned")]
    pub total_size: Option<u64>,
    /// How many pages there are.
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub total_pages: Option<u32>,
    /// `tokenExpirationDate`.
    #[serde(rename = "tokenExpirationDate", default, deserialize_with = "time")]
    pub token_expiration: Option<OffsetDateTime>,
    /// `uId`: the location.
    #[serde(rename = "uId", default, deserialize_with = "lenient::string")]
    pub uid: Option<String>,
    /// The location's assignment version when the page was made.
    #[serde(default, deserialize_with = "lenient::string")]
    pub version_id: Option<String>,
}

/// The filters and page of `GET /assets`; `None` filters are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetsQuery {
    /// `pageIndex` (0-based). [`VppClient::all_assets`](super::VppClient::all_assets) starts
    /// there.
    pub page_index: u32,
    /// `adamId`.
    pub adam_id: Option<String>,
    /// `pricingParam`: `STDQ` or `PLUS`.
    pub pricing_param: Option<String>,
    /// `productType`.
    pub product_type: Option<ProductType>,
    /// `revocable`.
    pub revocable: Option<bool>,
    /// `deviceAssignable`.
    pub device_assignable: Option<bool>,
    /// `maxAvailableCount`.
    pub max_available_count: Option<u64>,
    /// `minAvailableCount`.
    pub min_available_count: Option<u64>,
    /// `maxAssignedCount`.
    pub max_assigned_count: Option<u64>,
    /// `minAssignedCount`.
    pub min_assigned_count: Option<u64>,
}

impl AssetsQuery {
    /// The query parameters, in a fixed order.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("pageIndex", self.page_index.to_string())];
        let mut push = |name: &'static str, value: Option<String>| {
            if let Some(value) = value {
                pairs.push((name, value));
            }
        };
        push("adamId", self.adam_id.clone());
        push("pricingParam", self.pricing_param.clone());
        push("productType", self.product_type.as_ref().map(|p| p.as_str().to_owned()));
        push("revocable", self.revocable.map(|b| b.to_string()));
        push("deviceAssignable", self.device_assignable.map(|b| b.to_string()));
        push("maxAvailableCount", self.max_available_count.map(|n| n.to_string()));
        push("minAvailableCount", self.min_available_count.map(|n| n.to_string()));
        push("maxAssignedCount", self.max_assigned_count.map(|n| n.to_string()));
        push("minAssignedCount", self.min_assigned_count.map(|n| n.to_string()));
        pairs
    }
}

/// One licence assignment: an asset to a device (`serial_number`) or to an Apple Account user
/// (`client_user_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// The App Store identifier (empty only if Apple omitted it).
    #[serde(default, deserialize_with = "text")]
    pub adam_id: String,
    /// `STDQ` or `PLUS`.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub pricing_param: Option<String>,
    /// The device, for a device assignment.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub serial_number: Option<String>,
    /// The user, for a user assignment.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_user_id: Option<String>,
}

/// One page of `GET /assignments`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentsPage {
    /// May be empty. An element that is not a JSON object fails the page.
    #[serde(default, deserialize_with = "lenient::list")]
    pub assignments: Vec<Assignment>,
    /// The page returned (0-based; 0 if Apple omitted it).
    #[serde(default, deserialize_with = "index")]
    pub current_page_index: u32,
    /// The page to ask for next; `None` on the last page.
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub next_page_index: Option<u32>,
    /// `size`: how many assignments match the query in all pages.
    #[serde(rename = "size", default, deserialize_with = "lenient::unsigned")]
    pub total_size: Option<u64>,
    /// How many pages there are.
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub total_pages: Option<u32>,
    /// `tokenExpirationDate`.
    #[serde(rename = "tokenExpirationDate", default, deserialize_with = "time")]
    pub token_expiration: Option<OffsetDateTime>,
    /// `uId`: the location.
    #[serde(rename = "uId", default, deserialize_with = "lenient::string")]
    pub uid: Option<String>,
    /// The assignment version of this answer: pass it as
    /// [`AssignmentsQuery::since_version_id`] to get only later changes.
    #[serde(default, deserialize_with = "lenient::string")]
    pub version_id: Option<String>,
}

/// The filters and page of `GET /assignments`; `None` filters are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentsQuery {
    /// `pageIndex` (0-based).
    pub page_index: u32,
    /// `adamId`.
    pub adam_id: Option<String>,
    /// `clientUserId`.
    pub client_user_id: Option<String>,
    /// `serialNumber`.
    pub serial_number: Option<String>,
    /// `sinceVersionId`: only assignments changed after this version.
    pub since_version_id: Option<String>,
}

impl AssignmentsQuery {
    /// The query parameters, in a fixed order.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("pageIndex", self.page_index.to_string())];
        for (name, value) in [
            ("adamId", &self.adam_id),
            ("clientUserId", &self.client_user_id),
            ("serialNumber", &self.serial_number),
            ("sinceVersionId", &self.since_version_id),
        ] {
            if let Some(value) = value {
                pairs.push((name, value.clone()));
            }
        }
        pairs
    }
}

/// Everything of a paged list: the items of every page in order, with what the last page said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllPages<T> {
    /// The items of all pages.
    pub items: Vec<T>,
    /// How many pages were fetched.
    pub pages: u32,
    /// `size` of the last page: how many items Apple counted (it may differ from
    /// `items.len()` if the location changed while paging).
    pub total_size: Option<u64>,
    /// `versionId` of the last page.
    pub version_id: Option<String>,
    /// `tokenExpirationDate` of the last page.
    pub token_expiration: Option<OffsetDateTime>,
    /// `uId` of the last page.
    pub uid: Option<String>,
}

/// An asset in an associate, disassociate or revoke request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetRef {
    /// The App Store identifier.
    pub adam_id: String,
    /// `STDQ` or `PLUS`; not sent when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pricing_param: String,
}

/// The body of `POST /assets/associate` and `POST /assets/disassociate`: every asset to every
/// device and user named. Empty lists are not sent. Apple's batch limits
/// ([`ServiceLimits`]) are checked by Apple, not here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociateRequest {
    /// At least one.
    pub assets: Vec<AssetRef>,
    /// Devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub serial_numbers: Vec<String>,
    /// Apple Account users.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_user_ids: Vec<String>,
}

/// The body of `POST /assets/revoke`: revokes the licences of the devices and users named,
/// of the given assets or, with no assets, of all of them. Empty lists are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeRequest {
    /// Empty: every asset.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<AssetRef>,
    /// Devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub serial_numbers: Vec<String>,
    /// Apple Account users.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_user_ids: Vec<String>,
}

/// The answer to associate, disassociate and revoke: the work goes on asynchronously; follow
/// it with [`VppClient::status`](super::VppClient::status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventResponse {
    /// The event to ask about. Never empty: the client refuses an answer without one.
    #[serde(default, deserialize_with = "text")]
    pub event_id: String,
    /// `tokenExpirationDate`.
    #[serde(rename = "tokenExpirationDate", default, deserialize_with = "time")]
    pub token_expiration: Option<OffsetDateTime>,
    /// `uId`: the location.
    #[serde(rename = "uId", default, deserialize_with = "lenient::string")]
    pub uid: Option<String>,
}

/// `GET /status`: how an asynchronous event is going.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    /// The event.
    #[serde(default, deserialize_with = "text")]
    pub event_id: String,
    /// `eventStatus`.
    #[serde(rename = "eventStatus", default)]
    pub status: EventStatus,
    /// `eventType`.
    #[serde(default)]
    pub event_type: EventType,
    /// Items done so far.
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub num_completed: Option<u64>,
    /// Items asked for.
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub num_requested: Option<u64>,
    /// Items that failed (an entry that is not an object is left out).
    #[serde(default, deserialize_with = "tolerant_list")]
    pub failures: Vec<EventFailure>,
    /// `tokenExpirationDate`.
    #[serde(rename = "tokenExpirationDate", default, deserialize_with = "time")]
    pub token_expiration: Option<OffsetDateTime>,
    /// `uId`: the location.
    #[serde(rename = "uId", default, deserialize_with = "lenient::string")]
    pub uid: Option<String>,
}

impl StatusResponse {
    /// Apple has finished (`COMPLETE` or `FAILED`).
    pub fn is_finished(&self) -> bool {
        matches!(self.status, EventStatus::Complete | EventStatus::Failed)
    }

    /// The failures that are real: without "already assigned" (9616), which means the wanted
    /// state holds.
    pub fn real_failures(&self) -> impl Iterator<Item = &EventFailure> {
        self.failures.iter().filter(|f| !f.is_already_assigned())
    }
}

/// One item of [`StatusResponse::failures`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFailure {
    /// The asset.
    #[serde(default, deserialize_with = "lenient::string")]
    pub adam_id: Option<String>,
    /// `STDQ` or `PLUS`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub pricing_param: Option<String>,
    /// The device, for a device item.
    #[serde(default, deserialize_with = "lenient::string")]
    pub serial_number: Option<String>,
    /// The user, for a user item.
    #[serde(default, deserialize_with = "lenient::string")]
    pub client_user_id: Option<String>,
    /// e.g. 9709 (not enough licences).
    #[serde(default, deserialize_with = "number")]
    pub error_number: Option<i64>,
    /// Apple's text.
    #[serde(default, deserialize_with = "lenient::string")]
    pub error_message: Option<String>,
}

impl EventFailure {
    /// 9616: the licence was already assigned; nothing to retry.
    pub fn is_already_assigned(&self) -> bool {
        self.error_number == Some(super::ALREADY_ASSIGNED)
    }

    /// 9709: the location has no licence left for this asset; buy more in Apple Business
    /// Manager or free some.
    pub fn is_not_enough_licenses(&self) -> bool {
        self.error_number == Some(super::NOT_ENOUGH_LICENSES)
    }
}

// ---------------------------------------------------------------------------------------------
// Tolerant readers specific to this API (the general ones are in `dep::lenient`).
// ---------------------------------------------------------------------------------------------

/// A string, or the JSON text of a number or boolean; empty otherwise.
fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(lenient::string(deserializer)?.unwrap_or_default())
}

/// A non-negative count; 0 when missing or unreadable.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Ok(lenient::unsigned(deserializer)?.unwrap_or(0))
}

/// A page index; 0 when missing or unreadable.
fn index<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    Ok(lenient::unsigned(deserializer)?.unwrap_or(0))
}

/// A signed integer, also as a numeric string.
pub(crate) fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(number_value(&Value::deserialize(deserializer)?))
}

/// The integer in a JSON number or numeric string.
pub(crate) fn number_value(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A time read by [`parse_vpp_time`]; `None` when missing or unreadable.
fn time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<OffsetDateTime>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => parse_vpp_time(&s),
        _ => None,
    })
}

/// `mdmInfo`: `None` when missing, not an object, or without both id and name.
fn mdm_info<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<MdmInfo>, D::Error> {
    let info: Option<MdmInfo> = lenient::any(deserializer)?;
    Ok(info.filter(|i| !(i.id.trim().is_empty() && i.name.trim().is_empty())))
}

/// A secret string; `None` when missing or not a string.
fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SecretString>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => Some(SecretString::from(s)),
        _ => None,
    })
}

fn serialize_secret<S: Serializer>(value: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(secret) => serializer.serialize_str(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

/// A list whose elements that are not a `T` are left out.
fn tolerant_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// A struct, or its default when missing or of another shape.
fn lenient_struct<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    Ok(lenient::any(deserializer)?.unwrap_or_default())
}

/// An object's string values.
fn string_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Object(map) => map
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn vpp_times() {
        let expected = datetime!(2027-11-24 10:00 UTC);
        for text in [
            "2027-11-24T10:00:00+0000",
            "2027-11-24T10:00:00Z",
            "2027-11-24T10:00:00+00:00",
            "2027-11-24T11:30:00+0130",
            "2027-11-24T10:00:00.000+0000",
        ] {
            assert_eq!(parse_vpp_time(text), Some(expected), "{text}");
        }
        for bad in ["", "2027-11-24T10:00:00+000", "2027-11-31T10:00:00+0000", "tomorrow"] {
            assert_eq!(parse_vpp_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn contract_asset_page() {
        let page: AssetsPage = serde_json::from_value(json!({
            "assets":[{"adamId":"408709785","assignedCount":5,"availableCount":95,"deviceAssignable":true,
                        "pricingParam":"STDQ","productType":"App","retiredCount":0,"revocable":true,
                        "supportedPlatforms":["iOS","macOS"],"totalCount":100}],
            "currentPageIndex":0,"nextPageIndex":1,"size":1234,"totalPages":2,
            "tokenExpirationDate":"2027-11-24T10:00:00+0000","uId":"2049025000431439","versionId":"42"
        }))
        .unwrap();
        assert_eq!(
            page.assets,
            vec![Asset {
                adam_id: "408709785".to_owned(),
                product_type: ProductType::App,
                pricing_param: "STDQ".to_owned(),
                assigned: 5,
                available: 95,
                retired: 0,
                total: 100,
                device_assignable: true,
                revocable: true,
                platforms: vec!["iOS".to_owned(), "macOS".to_owned()],
            }]
        );
        assert_eq!(page.current_page_index, 0);
        assert_eq!(page.next_page_index, Some(1));
        assert_eq!(page.total_size, Some(1234));
        assert_eq!(page.total_pages, Some(2));
        assert_eq!(page.token_expiration, Some(datetime!(2027-11-24 10:00 UTC)));
        assert_eq!(page.uid.as_deref(), Some("2049025000431439"));
        assert_eq!(page.version_id.as_deref(), Some("42"));
    }

    #[test]
    fn odd_assets_do_not_fail_a_page() {
        let page: AssetsPage = serde_json::from_value(json!({
            "assets":[
                {"adamId":361309726,"productType":"Podcast","pricingParam":"PLUS","assignedCount":"7",
                 "availableCount":-3,"totalCount":"many","retiredCount":null,"deviceAssignable":"true",
                 "revocable":1,"supportedPlatforms":"iOS","newKey":{"x":1}},
                {"adamId":"1","productType":"book"},
                {"adamId":"2","productType":7},
                {}
            ],
            "currentPageIndex":"3","nextPageIndex":null,"size":"4","versionId":43,"tokenExpirationDate":"soon"
        }))
        .unwrap();
        let a = &page.assets[0];
        assert_eq!(a.adam_id, "361309726");
        assert_eq!(a.product_type, ProductType::Other("Podcast".to_owned()));
        assert_eq!(a.pricing_param, "PLUS");
        assert_eq!((a.assigned, a.available, a.total, a.retired), (7, 0, 0, 0));
        assert!(a.device_assignable && a.revocable);
        assert_eq!(a.platforms, vec!["iOS".to_owned()]);
        assert_eq!(page.assets[1].product_type, ProductType::Book);
        assert_eq!(page.assets[2].product_type, ProductType::Other("7".to_owned()));
        assert_eq!(page.assets[3], Asset::default());
        assert_eq!(page.assets[3].product_type, ProductType::Other(String::new()));
        assert_eq!(page.current_page_index, 3);
        assert_eq!(page.next_page_index, None);
        assert_eq!(page.total_size, Some(4));
        assert_eq!(page.version_id.as_deref(), Some("43"));
        assert_eq!(page.token_expiration, None);
        // An element that is not an object is not an asset: the page fails rather than drop it.
        assert!(serde_json::from_value::<AssetsPage>(json!({"assets":["408709785"]})).is_err());
        // Null or missing lists are empty.
        let empty: AssetsPage = serde_json::from_value(json!({"assets":null})).unwrap();
        assert!(empty.assets.is_empty() && empty.next_page_index.is_none());
    }

    #[test]
    fn asset_round_trip_uses_apples_keys() {
        let asset = Asset {
            adam_id: "1".to_owned(),
            product_type: ProductType::Book,
            pricing_param: "PLUS".to_owned(),
            assigned: 1,
            available: 2,
            retired: 3,
            total: 6,
            device_assignable: false,
            revocable: true,
            platforms: vec!["iOS".to_owned()],
        };
        let value = serde_json::to_value(&asset).unwrap();
        assert_eq!(value["productType"], "Book");
        assert_eq!(value["assignedCount"], 1);
        assert_eq!(value["supportedPlatforms"], json!(["iOS"]));
        assert_eq!(serde_json::from_value::<Asset>(value).unwrap(), asset);
    }

    #[test]
    fn client_config_with_and_without_mdm_info() {
        let config: ClientConfig = serde_json::from_value(json!({
            "countryISO2ACode":"US","defaultPlatform":"volumestore","locationName":"Paris Office",
            "mdmInfo":{"id":"russet-1","name":"Russet","metadata":"m"},
            "notificationAuthToken":"hush","notificationUrl":"https://mdm.example/vpp",
            "subscribedNotificationTypes":["ASSET_MANAGEMENT"],
            "tokenExpirationDate":"2027-11-24T10:00:00+0000","uId":2049025000431439u64,
            "websiteURL":"https://business.apple.com"
        }))
        .unwrap();
        assert_eq!(config.location_name, "Paris Office");
        assert_eq!(config.country.as_deref(), Some("US"));
        assert_eq!(config.default_platform.as_deref(), Some("volumestore"));
        assert_eq!(
            config.mdm_info,
            Some(MdmInfo {
                id: "russet-1".to_owned(),
                name: "Russet".to_owned(),
                metadata: Some("m".to_owned())
            })
        );
        assert!(!config.is_claimed_by_another_mdm("russet-1"));
        assert!(config.is_claimed_by_another_mdm("russet-2"));
        assert_eq!(config.uid, "2049025000431439");
        assert_eq!(config.token_expiration, Some(datetime!(2027-11-24 10:00 UTC)));
        assert_eq!(config.website_url.as_deref(), Some("https://business.apple.com"));
        assert_eq!(config.notification_url.as_deref(), Some("https://mdm.example/vpp"));
        assert_eq!(
            config
                .notification_auth_token
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            Some("hush".to_owned())
        );
        assert_eq!(
            config.subscribed_notification_types,
            vec!["ASSET_MANAGEMENT".to_owned()]
        );
        assert!(!format!("{config:?}").contains("hush"));

        for mdm_info in [json!(null), json!("x"), json!({}), json!({"id":"","name":" "})] {
            let config: ClientConfig =
                serde_json::from_value(json!({"locationName":"L","uId":"1","mdmInfo":mdm_info})).unwrap();
            assert_eq!(config.mdm_info, None, "{mdm_info}");
            assert!(!config.is_claimed_by_another_mdm("russet-1"));
        }
        let config: ClientConfig = serde_json::from_value(json!({"uId":"1"})).unwrap();
        assert_eq!(config.mdm_info, None);
        assert!(config.subscribed_notification_types.is_empty());
    }

    #[test]
    fn requests_serialize_to_the_contract() {
        let request = ClientConfigRequest {
            mdm_info: Some(MdmInfo {
                id: "russet-1".to_owned(),
                name: "Russet".to_owned(),
                metadata: None,
            }),
            notification_url: Some("https://mdm.example/vpp".to_owned()),
            notification_auth_token: Some(SecretString::from("hush")),
            notification_types: Some(vec!["ASSET_MANAGEMENT".to_owned()]),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"mdmInfo":{"id":"russet-1","name":"Russet"},"notificationUrl":"https://mdm.example/vpp",
                   "notificationAuthToken":"hush","notificationTypes":["ASSET_MANAGEMENT"]})
        );
        assert!(!format!("{request:?}").contains("hush"));
        assert_eq!(serde_json::to_value(ClientConfigRequest::default()).unwrap(), json!({}));
        let associate = AssociateRequest {
            assets: vec![AssetRef {
                adam_id: "1".to_owned(),
                pricing_param: "STDQ".to_owned(),
            }],
            serial_numbers: vec!["C02".to_owned()],
            client_user_ids: Vec::new(),
        };
        assert_eq!(
            serde_json::to_value(&associate).unwrap(),
            json!({"assets":[{"adamId":"1","pricingParam":"STDQ"}],"serialNumbers":["C02"]})
        );
        let revoke = RevokeRequest {
            client_user_ids: vec!["u1".to_owned()],
            ..RevokeRequest::default()
        };
        assert_eq!(serde_json::to_value(&revoke).unwrap(), json!({"clientUserIds":["u1"]}));
    }

    #[test]
    fn queries() {
        assert_eq!(AssetsQuery::default().pairs(), vec![("pageIndex", "0".to_owned())]);
        let query = AssetsQuery {
            page_index: 2,
            adam_id: Some("1".to_owned()),
            pricing_param: Some("PLUS".to_owned()),
            product_type: Some(ProductType::Book),
            revocable: Some(false),
            device_assignable: Some(true),
            max_available_count: Some(9),
            min_available_count: Some(1),
            max_assigned_count: Some(8),
            min_assigned_count: Some(0),
        };
        let names: Vec<_> = query.pairs().into_iter().map(|(n, v)| format!("{n}={v}")).collect();
        assert_eq!(
            names.join("&"),
            "pageIndex=2&adamId=1&pricingParam=PLUS&productType=Book&revocable=false&deviceAssignable=true&\
             maxAvailableCount=9&minAvailableCount=1&maxAssignedCount=8&minAssignedCount=0"
        );
        let query = AssignmentsQuery {
            page_index: 1,
            serial_number: Some("C02".to_owned()),
            since_version_id: Some("42".to_owned()),
            ..AssignmentsQuery::default()
        };
        assert_eq!(
            query.pairs(),
            vec![
                ("pageIndex", "1".to_owned()),
                ("serialNumber", "C02".to_owned()),
                ("sinceVersionId", "42".to_owned())
            ]
        );
    }

    #[test]
    fn status_and_service_config() {
        let status: StatusResponse = serde_json::from_value(json!({
            "eventId":"e1","eventStatus":"COMPLETE","eventType":"ASSOCIATE","numCompleted":"3","numRequested":4,
            "failures":[{"adamId":"1","pricingParam":"STDQ","serialNumber":"S1","errorNumber":9709,"errorMessage":"Not enough licenses."},
                        {"adamId":"1","serialNumber":"S2","errorNumber":"9616"},
                        "garbage"],
            "uId":"7"
        }))
        .unwrap();
        assert_eq!(status.status, EventStatus::Complete);
        assert_eq!(status.event_type, EventType::Associate);
        assert!(status.is_finished());
        assert_eq!((status.num_completed, status.num_requested), (Some(3), Some(4)));
        assert_eq!(status.failures.len(), 2);
        assert!(status.failures[0].is_not_enough_licenses());
        assert!(status.failures[1].is_already_assigned());
        let real: Vec<_> = status.real_failures().collect();
        assert_eq!(real.len(), 1);
        assert_eq!(real[0].serial_number.as_deref(), Some("S1"));

        let pending: StatusResponse =
            serde_json::from_value(json!({"eventId":"e2","eventStatus":"pending","eventType":"SOMETHING"})).unwrap();
        assert_eq!(pending.status, EventStatus::Pending);
        assert!(!pending.is_finished());
        assert_eq!(pending.event_type, EventType::Other("SOMETHING".to_owned()));

        let service: ServiceConfig = serde_json::from_value(json!({
            "errorCodes":[{"errorNumber":9601,"errorMessage":"Login required."},7],
            "limits":{"maxAssets":25,"maxClientUserIds":"1000","maxSerialNumbers":1000},
            "notificationTypes":["ASSET_COUNT","ASSET_MANAGEMENT"],
            "urls":{"getAssets":"https://x/mdm/v2/assets","odd":3}
        }))
        .unwrap();
        assert_eq!(
            service.error_codes,
            vec![ServiceErrorCode {
                error_number: Some(9601),
                error_message: Some("Login required.".to_owned())
            }]
        );
        assert_eq!(
            service.limits,
            ServiceLimits {
                max_assets: Some(25),
                max_client_user_ids: Some(1000),
                max_serial_numbers: Some(1000)
            }
        );
        assert_eq!(service.notification_types.len(), 2);
        assert_eq!(service.urls.len(), 1);
        let odd: ServiceConfig = serde_json::from_value(json!({"limits":"none","urls":[]})).unwrap();
        assert_eq!(odd, ServiceConfig::default());
    }
}
