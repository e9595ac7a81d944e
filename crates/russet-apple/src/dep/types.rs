//! The JSON objects of the device assignment API (research §2.5).
//!
//! Reading is tolerant: unknown keys are ignored (on [`Device`] they are kept in
//! [`Device::extra`]), everything Apple may omit is an `Option`, and a value of an unexpected
//! shape becomes `None` rather than failing the whole response. Times are
//! `Option<OffsetDateTime>`, parsed leniently from ISO 8601 / RFC 3339 by [`parse_time`]
//! (an unparsable time is `None`) and written back as RFC 3339.
//!
//! [`parse_time`]: super::parse_time

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use super::lenient;

/// `GET /account`: the MDM server and organisation the token belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The MDM server's name in Apple Business Manager.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_uuid: Option<String>,
    /// The Apple ID of the administrator who downloaded the token.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub admin_id: Option<String>,
    /// Deprecated predecessor of `admin_id`.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub facilitator_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_email: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_phone: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_address: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_id_hash: Option<String>,
    /// `edu`, `org` or `tvprovider`.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_type: Option<String>,
    /// `v1` (Apple Deployment Programs) or `v2` (Apple Business / School Manager).
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_version: Option<String>,
    /// The endpoints available to this token with their methods and page limits.
    #[serde(default, deserialize_with = "lenient::list", skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<AccountUrl>,
}

impl Account {
    /// The largest page `limit` Apple advertises for `uri` (`/server/devices`, `/devices/sync`):
    /// `limit.maximum`, else `limit.default`; `None` when the endpoint is not listed or has no
    /// limit. A leading or trailing `/` does not matter.
    ///
    /// Note that [`DepClient`](super::DepClient) still clamps page limits to 1000, Apple's
    /// documented maximum, even if a larger value is advertised here.
    pub fn page_limit(&self, uri: &str) -> Option<u32> {
        let wanted = uri.trim_matches('/');
        let url = self.urls.iter().find(|u| u.uri.trim_matches('/') == wanted)?;
        let limit = url.limit.as_ref()?;
        limit.maximum.or(limit.default)
    }

    /// The administrator's Apple ID: `admin_id`, else the deprecated `facilitator_id`.
    pub fn admin_apple_id(&self) -> Option<&str> {
        self.admin_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.facilitator_id.as_deref().filter(|s| !s.is_empty()))
    }
}

/// One entry of [`Account::urls`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUrl {
    #[serde(default)]
    pub uri: String,
    #[serde(default, deserialize_with = "lenient::string_list")]
    pub http_method: Vec<String>,
    #[serde(default, deserialize_with = "lenient::any", skip_serializing_if = "Option::is_none")]
    pub limit: Option<AccountUrlLimit>,
}

/// The page size limits of an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUrlLimit {
    #[serde(
        default,
        deserialize_with = "lenient::unsigned",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<u32>,
    #[serde(
        default,
        deserialize_with = "lenient::unsigned",
        skip_serializing_if = "Option::is_none"
    )]
    pub maximum: Option<u32>,
}

/// What happened to a device, on `POST /devices/sync` answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpType {
    /// Assigned to this MDM server.
    Added,
    /// Changed (also seen when a device is moved from another MDM server).
    Modified,
    /// Unassigned from this MDM server.
    Deleted,
    /// A value this client does not know, as Apple sent it.
    Other(String),
}

impl OpType {
    pub fn as_str(&self) -> &str {
        match self {
            OpType::Added => "added",
            OpType::Modified => "modified",
            OpType::Deleted => "deleted",
            OpType::Other(s) => s,
        }
    }
}

impl From<&str> for OpType {
    /// Case-insensitive.
    fn from(s: &str) -> OpType {
        match s.trim().to_ascii_lowercase().as_str() {
            "added" => OpType::Added,
            "modified" => OpType::Modified,
            "deleted" => OpType::Deleted,
            _ => OpType::Other(s.to_owned()),
        }
    }
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for OpType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OpType {
    /// Any JSON value: strings are matched, anything else is kept as [`OpType::Other`] with its
    /// JSON text.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => OpType::from(s.as_str()),
            other => OpType::Other(other.to_string()),
        })
    }
}

/// A per-device result: of profile assignment and removal, disowning, profile definition with
/// devices, and device details (`response_status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceStatus {
    /// `SUCCESS`
    Success,
    /// `NOT_ACCESSIBLE`: the device is not assigned to this MDM server (or does not exist).
    NotAccessible,
    /// `FAILED`: Apple could not process this device; try again later.
    Failed,
    /// `THROTTLED` (protocol 9+): too many requests for this device; wait at least
    /// [`AssignProfileResponse::retry_after_seconds`] before trying it again.
    Throttled,
    /// `NOT_FOUND` (device details).
    NotFound,
    /// A value this client does not know, as Apple sent it.
    Other(String),
}

impl DeviceStatus {
    /// Apple's spelling: `SUCCESS`, `NOT_ACCESSIBLE`, …
    pub fn as_str(&self) -> &str {
        match self {
            DeviceStatus::Success => "SUCCESS",
            DeviceStatus::NotAccessible => "NOT_ACCESSIBLE",
            DeviceStatus::Failed => "FAILED",
            DeviceStatus::Throttled => "THROTTLED",
            DeviceStatus::NotFound => "NOT_FOUND",
            DeviceStatus::Other(s) => s,
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(self, DeviceStatus::Success)
    }
}

impl From<&str> for DeviceStatus {
    /// Case-insensitive.
    fn from(s: &str) -> DeviceStatus {
        match s.trim().to_ascii_uppercase().as_str() {
            "SUCCESS" => DeviceStatus::Success,
            "NOT_ACCESSIBLE" => DeviceStatus::NotAccessible,
            "FAILED" => DeviceStatus::Failed,
            "THROTTLED" => DeviceStatus::Throttled,
            "NOT_FOUND" => DeviceStatus::NotFound,
            _ => DeviceStatus::Other(s.to_owned()),
        }
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DeviceStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DeviceStatus {
    /// Any JSON value: strings are matched, anything else is kept as [`DeviceStatus::Other`]
    /// with its JSON text.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => DeviceStatus::from(s.as_str()),
            other => DeviceStatus::Other(other.to_string()),
        })
    }
}

/// Serial number → result.
pub type DeviceStatuses = BTreeMap<String, DeviceStatus>;

/// Serial number → device, from `POST /devices`; each device carries its
/// [`Device::response_status`] (`SUCCESS`, `NOT_FOUND`, …).
pub type DeviceDetails = BTreeMap<String, Device>;

/// A device record from fetch, sync or device details.
///
/// Every field but the serial number is optional; a field with an unexpected shape reads as
/// `None`. Keys this type does not know are kept in [`extra`](Device::extra).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// The serial number (empty only if Apple omitted it, which it documents as required).
    #[serde(default, deserialize_with = "serial")]
    pub serial_number: String,
    /// e.g. "MacBook Pro".
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub model: Option<String>,
    /// e.g. "MBP 13.3 SPACE GRAY/2.0GHZ/8GB/256GB-USA".
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub color: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub asset_tag: Option<String>,
    /// `iOS`, `iPadOS`, `OSX`, `tvOS`, `visionOS`.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub os: Option<String>,
    /// `iPad`, `iPhone`, `iPod`, `Mac`, `AppleTV`, `Vision`.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub device_family: Option<String>,
    /// `empty`, `assigned`, `pushed`, `removed`.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub profile_status: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub profile_uuid: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::time",
        serialize_with = "lenient::serialize_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub profile_assign_time: Option<OffsetDateTime>,
    #[serde(
        default,
        deserialize_with = "lenient::time",
        serialize_with = "lenient::serialize_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub profile_push_time: Option<OffsetDateTime>,
    /// When the device was assigned to this MDM server.
    #[serde(
        default,
        deserialize_with = "lenient::time",
        serialize_with = "lenient::serialize_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub device_assigned_date: Option<OffsetDateTime>,
    /// The e-mail address of whoever assigned it.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub device_assigned_by: Option<String>,
    /// Protocol 8+.
    #[serde(
        default,
        deserialize_with = "lenient::time",
        serialize_with = "lenient::serialize_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub mdm_migration_deadline: Option<OffsetDateTime>,
    /// Sync answers only; fetch answers carry none (treat as added).
    #[serde(default, deserialize_with = "lenient::any", skip_serializing_if = "Option::is_none")]
    pub op_type: Option<OpType>,
    /// Sync answers only. The record with the latest `op_date` is a serial's current state.
    #[serde(
        default,
        deserialize_with = "lenient::time",
        serialize_with = "lenient::serialize_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub op_date: Option<OffsetDateTime>,
    /// Device details only: `SUCCESS`, `NOT_FOUND`, …
    #[serde(default, deserialize_with = "lenient::any", skip_serializing_if = "Option::is_none")]
    pub response_status: Option<DeviceStatus>,
    /// Protocol 10+: the eSIM's EID.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub eid: Option<String>,
    /// Protocol 10+: IMEI numbers (a list; a single string is read as a one-element list).
    #[serde(
        default,
        deserialize_with = "lenient::strings",
        skip_serializing_if = "Option::is_none"
    )]
    pub imei: Option<Vec<String>>,
    /// Protocol 10+: MEID numbers (a list; a single string is read as a one-element list).
    #[serde(
        default,
        deserialize_with = "lenient::strings",
        skip_serializing_if = "Option::is_none"
    )]
    pub meid: Option<Vec<String>>,
    /// Protocol 10+. Several addresses, if Apple ever sends a list, are joined with `,`.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub ethernet_mac_address: Option<String>,
    /// Protocol 10+.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub wifi_mac_address: Option<String>,
    /// Protocol 10+.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub bluetooth_mac_address: Option<String>,
    /// Protocol 10+: the device replaces another one.
    #[serde(
        default,
        deserialize_with = "lenient::boolean",
        skip_serializing_if = "Option::is_none"
    )]
    pub is_replacement_device: Option<bool>,
    /// Protocol 10+, sync `deleted` records: released because a replacement took its place.
    #[serde(
        default,
        deserialize_with = "lenient::boolean",
        skip_serializing_if = "Option::is_none"
    )]
    pub released_by_replacement: Option<bool>,
    /// Keys this type does not know, as Apple sent them.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn serial<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(lenient::string(deserializer)?.unwrap_or_default())
}

/// One page of `POST /server/devices` (fetch) or `POST /devices/sync`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DevicePage {
    /// The cursor to store and pass to the next call. Opaque.
    pub cursor: String,
    /// May be empty.
    #[serde(default, deserialize_with = "lenient::list")]
    pub devices: Vec<Device>,
    /// True: call again at once with [`cursor`](DevicePage::cursor).
    #[serde(default, deserialize_with = "lenient::flag")]
    pub more_to_follow: bool,
    /// Up to when the page reports changes (`None` when absent, unparsable, or the zero time).
    #[serde(
        default,
        deserialize_with = "lenient::time",
        serialize_with = "lenient::serialize_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub fetched_until: Option<OffsetDateTime>,
}

/// An enrollment (DEP) profile, for `POST /profile` and from `GET /profile`.
///
/// Every key of Apple's Profile object; `None` keys are not sent, so Apple's defaults apply.
/// Apple's constraints (checked by Apple, not here): `profile_name` (≤ 125 characters) and
/// `url` are required; `department` ≤ 125, `support_phone_number` ≤ 50,
/// `support_email_address` ≤ 250, `org_magic` ≤ 256 characters; `is_mdm_removable` may be
/// false only if `is_supervised` is true.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_name: Option<String>,
    /// The MDM enrollment URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A web page shown during Setup Assistant that hands out the enrollment profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_web_url: Option<String>,
    /// Deprecated since iOS 13; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_pairing: Option<bool>,
    /// Ignored since iOS 13 (always supervised); default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_supervised: Option<bool>,
    /// Ignored since iOS 13 (always mandatory); default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mandatory: Option<bool>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mdm_removable: Option<bool>,
    /// Wait for the `DeviceConfigured` command before leaving Setup Assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub await_device_configured: Option<bool>,
    /// tvOS, macOS 11+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_advance_setup: Option<bool>,
    /// Shared iPad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_multi_user: Option<bool>,
    /// iOS / visionOS 26.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_return_to_service: Option<bool>,
    /// iOS / visionOS 26.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_use_profile_from_backup: Option<bool>,
    /// Base64 DER certificates trusted for the MDM URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_certs: Option<Vec<String>>,
    /// Base64 DER certificates of hosts allowed to pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervising_host_certs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_email_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_magic: Option<String>,
    /// ISO 639-1 or -2 code (tvOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// ISO 3166-1 alpha-2 code (tvOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Setup Assistant panes to skip (Apple's "SkipKeys").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_setup_items: Option<Vec<String>>,
    /// Serial numbers to assign the profile to when defining it (at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
    /// Set by Apple; returned by `GET /profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_uuid: Option<String>,
}

/// The answer to `POST /profile`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefineProfileResponse {
    /// The new profile's identifier, to assign it with.
    pub profile_uuid: String,
    /// Results for [`Profile::devices`], if any were given.
    #[serde(default, deserialize_with = "lenient::map")]
    pub devices: DeviceStatuses,
}

/// The answer to `POST /profile/devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignProfileResponse {
    /// The profile assigned (empty if Apple omitted it).
    #[serde(default, deserialize_with = "serial")]
    pub profile_uuid: String,
    /// Serial number → result. Fleet treats a serial missing here as failed.
    #[serde(default, deserialize_with = "lenient::map")]
    pub devices: DeviceStatuses,
    /// Protocol 10+: present when at least one device is [`DeviceStatus::Throttled`]; wait at
    /// least this long before trying those devices again.
    #[serde(
        default,
        deserialize_with = "lenient::unsigned",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after_seconds: Option<u64>,
}

impl AssignProfileResponse {
    /// [`retry_after_seconds`](AssignProfileResponse::retry_after_seconds) as a duration.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_seconds.map(Duration::from_secs)
    }

    /// The serial numbers Apple throttled.
    pub fn throttled(&self) -> impl Iterator<Item = &str> {
        self.devices
            .iter()
            .filter(|(_, status)| **status == DeviceStatus::Throttled)
            .map(|(serial, _)| serial.as_str())
    }
}

/// `{"devices": {serial: status}}` (disown, remove profile).
#[derive(Deserialize)]
pub(crate) struct DeviceStatusesWire {
    #[serde(default, deserialize_with = "lenient::map")]
    pub devices: DeviceStatuses,
}

/// `{"devices": {serial: device}}` (device details).
#[derive(Deserialize)]
pub(crate) struct DeviceDetailsWire {
    #[serde(default, deserialize_with = "lenient::map")]
    pub devices: DeviceDetails,
}

/// `{"auth_session_token": "…"}`.
#[derive(Deserialize)]
pub(crate) struct SessionWire {
    #[serde(default)]
    pub auth_session_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn micromdm_device_example() {
        let json = r#"{"serial_number":"C02T0HL0GGC0","description":"MBP 13.3 SPACE GRAY/2.0GHZ/8GB/256GB-USA","model":"MacBook Pro","os":"OSX","device_family":"Mac","color":"SPACE GRAY","profile_uuid":"C1F123098EB5074580041E69883004C3","profile_assign_time":"2018-09-08T16:49:09Z","profile_status":"assigned","device_assigned_by":"apple-dep@acme.co","device_assigned_date":"2017-10-16T01:55:30Z"}"#;
        let d: Device = serde_json::from_str(json).unwrap();
        assert_eq!(d.serial_number, "C02T0HL0GGC0");
        assert_eq!(d.model.as_deref(), Some("MacBook Pro"));
        assert_eq!(d.device_family.as_deref(), Some("Mac"));
        assert_eq!(d.profile_assign_time, Some(datetime!(2018-09-08 16:49:09 UTC)));
        assert_eq!(d.device_assigned_date, Some(datetime!(2017-10-16 01:55:30 UTC)));
        assert_eq!(d.op_type, None);
        assert!(d.extra.is_empty());
        // Round trip.
        let back: Device = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn odd_values_do_not_fail_a_device() {
        let json = r#"{"serial_number":"S1","model":17,"profile_assign_time":"soon","op_type":"ADDED",
            "op_date":12345,"imei":"3569","meid":["A1","B2"],"wifi_mac_address":["aa:bb","cc:dd"],
            "is_replacement_device":"true","response_status":"not_found","new_key":{"x":1},"color":null}"#;
        let d: Device = serde_json::from_str(json).unwrap();
        assert_eq!(d.model.as_deref(), Some("17"));
        assert_eq!(d.profile_assign_time, None);
        assert_eq!(d.op_type, Some(OpType::Added));
        assert_eq!(d.op_date, None);
        assert_eq!(d.imei, Some(vec!["3569".to_owned()]));
        assert_eq!(d.meid, Some(vec!["A1".to_owned(), "B2".to_owned()]));
        assert_eq!(d.wifi_mac_address.as_deref(), Some("aa:bb,cc:dd"));
        assert_eq!(d.is_replacement_device, Some(true));
        assert_eq!(d.response_status, Some(DeviceStatus::NotFound));
        assert_eq!(d.color, None);
        assert_eq!(d.extra.get("new_key"), Some(&serde_json::json!({"x": 1})));
    }

    #[test]
    fn statuses_and_op_types() {
        let m: DeviceStatuses = serde_json::from_str(
            r#"{"a":"SUCCESS","b":"NOT_ACCESSIBLE","c":"FAILED","d":"THROTTLED","e":"NOT_FOUND","f":"MAYBE","g":3}"#,
        )
        .unwrap();
        assert_eq!(m["a"], DeviceStatus::Success);
        assert_eq!(m["b"], DeviceStatus::NotAccessible);
        assert_eq!(m["c"], DeviceStatus::Failed);
        assert_eq!(m["d"], DeviceStatus::Throttled);
        assert_eq!(m["e"], DeviceStatus::NotFound);
        assert_eq!(m["f"], DeviceStatus::Other("MAYBE".to_owned()));
        assert_eq!(m["g"], DeviceStatus::Other("3".to_owned()));
        assert_eq!(
            serde_json::to_string(&DeviceStatus::NotAccessible).unwrap(),
            "\"NOT_ACCESSIBLE\""
        );
        assert_eq!(OpType::from("Deleted"), OpType::Deleted);
        assert_eq!(OpType::from("moved"), OpType::Other("moved".to_owned()));
        assert_eq!(serde_json::to_string(&OpType::Modified).unwrap(), "\"modified\"");
    }

    #[test]
    fn account_page_limit() {
        let account: Account = serde_json::from_str(
            r#"{"server_name":"S","admin_id":"","facilitator_id":"f@x","org_type":"org",
               "urls":[{"uri":"/server/devices","http_method":["POST"],"limit":{"default":1000,"maximum":5000}},
                       {"uri":"/devices/sync","http_method":["POST"],"limit":{"default":"100"}},
                       {"uri":"/account","http_method":["GET"]},
                       {"uri":"/profile","http_method":"POST","limit":"none"}]}"#,
        )
        .unwrap();
        assert_eq!(account.page_limit("/server/devices"), Some(5000));
        assert_eq!(account.page_limit("server/devices/"), Some(5000));
        assert_eq!(account.page_limit("/devices/sync"), Some(100));
        assert_eq!(account.page_limit("/account"), None);
        assert_eq!(account.page_limit("/profile"), None);
        assert_eq!(account.page_limit("/nope"), None);
        assert_eq!(account.urls[3].http_method, vec!["POST".to_owned()]);
        assert_eq!(account.admin_apple_id(), Some("f@x"));
    }

    #[test]
    fn empty_profile_serializes_to_empty_object() {
        assert_eq!(serde_json::to_string(&Profile::default()).unwrap(), "{}");
    }

    #[test]
    fn page_requires_a_cursor() {
        assert!(serde_json::from_str::<DevicePage>(r#"{"devices":[]}"#).is_err());
        let page: DevicePage =
            serde_json::from_str(r#"{"cursor":"c","devices":null,"fetched_until":"0001-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(page.cursor, "c");
        assert!(page.devices.is_empty() && !page.more_to_follow && page.fetched_until.is_none());
    }
}
