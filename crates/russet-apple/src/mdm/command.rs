//! Commands Russet sends to devices: the command plist `{CommandUUID, Command: {RequestType,
//! …}}`, built from a typed [`CommandRequest`] or validated from a raw plist an administrator
//! wrote ([`validate_raw_command`]). Either way the result is a [`RawCommand`]: the XML plist
//! to queue, checked against Apple's schema ([`super::schema`]).
//!
//! # The admin API's JSON
//!
//! A [`CommandRequest`] is a JSON object whose `request_type` is Apple's request type and
//! whose other fields are that command's options in snake_case. Binary values (profiles) are
//! standard base64. Unknown fields are refused. Examples:
//!
//! ```json
//! {"request_type": "DeviceInformation"}
//! {"request_type": "DeviceInformation", "queries": ["DeviceName", "OSVersion", "BatteryLevel"]}
//! {"request_type": "SecurityInfo"}
//! {"request_type": "ProfileList", "managed_only": true}
//! {"request_type": "InstallProfile", "payload": "<base64 of the .mobileconfig, signed or not>"}
//! {"request_type": "RemoveProfile", "identifier": "com.example.wifi"}
//! {"request_type": "InstalledApplicationList", "identifiers": ["com.apple.Pages"], "managed_apps_only": true,
//!  "items": ["Name", "Version"]}
//! {"request_type": "DeviceLock", "pin": "123456", "message": "Return to IT", "phone_number": "+33 1 23 45 67 89"}
//! {"request_type": "EraseDevice", "pin": "123456", "preserve_data_plan": true, "disallow_proximity_setup": true,
//!  "obliteration_behavior": "DoNotObliterate",
//!  "return_to_service": {"enabled": true, "wifi_profile": "<base64>", "mdm_profile": "<base64>"}}
//! {"request_type": "RestartDevice", "notify_user": true}
//! {"request_type": "DeviceConfigured"}
//! {"request_type": "Settings", "settings": [{"item": "DeviceName", "device_name": "Lab iPad 12"},
//!                                           {"item": "Bluetooth", "enabled": false}]}
//! ```
//!
//! [`CommandRequest::validate`] checks every field and reports every problem at once, one
//! message per field ([`MdmError::InvalidCommand`]); [`CommandRequest::build`] validates and
//! makes the plist.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};

use super::plist_util::{parse_dictionary, parse_value, to_xml, type_name};
use super::schema::{self, RangeList};
use super::{FieldErrors, MdmError};

/// The `DeviceInformation` queries asked when a request names none: identity, OS, hardware,
/// network addresses, supervision and Activation Lock, battery and storage.
pub const DEFAULT_DEVICE_QUERIES: &[&str] = &[
    "UDID",
    "SerialNumber",
    "DeviceName",
    "OSVersion",
    "BuildVersion",
    "ProductName",
    "Model",
    "ModelName",
    "ModelNumber",
    "IMEI",
    "MEID",
    "ICCID",
    "PhoneNumber",
    "WiFiMAC",
    "BluetoothMAC",
    "EthernetMAC",
    "IsSupervised",
    "IsActivationLockEnabled",
    "IsDeviceLocatorServiceEnabled",
    "IsMDMLostModeEnabled",
    "IsAppleSilicon",
    "AwaitingConfiguration",
    "HasBattery",
    "BatteryLevel",
    "DeviceCapacity",
    "AvailableDeviceCapacity",
    "TimeZone",
    "LocalHostName",
    "HostName",
];

/// The longest `CommandUUID` accepted, in bytes.
pub const MAX_COMMAND_UUID_LEN: usize = 255;

/// A command as the admin API accepts it (see the module documentation for the JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request_type", deny_unknown_fields)]
pub enum CommandRequest {
    DeviceInformation(DeviceInformation),
    SecurityInfo {},
    ProfileList(ProfileList),
    InstallProfile(InstallProfile),
    RemoveProfile(RemoveProfile),
    InstalledApplicationList(InstalledApplicationList),
    DeviceLock(DeviceLock),
    EraseDevice(EraseDevice),
    RestartDevice(RestartDevice),
    DeviceConfigured {},
    Settings(Settings),
}

/// `DeviceInformation`: asks the device for the values of `queries`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInformation {
    /// Apple's query names (case-sensitive); [`DEFAULT_DEVICE_QUERIES`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<Vec<String>>,
}

/// `ProfileList`: the profiles installed on the device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileList {
    /// Only the profiles installed by MDM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_only: Option<bool>,
}

/// `InstallProfile`: installs a configuration profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallProfile {
    /// The `.mobileconfig` (XML or binary plist, or CMS-signed), base64.
    pub payload: String,
}

/// `RemoveProfile`: removes an installed profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveProfile {
    /// The profile's `PayloadIdentifier`.
    pub identifier: String,
}

/// `InstalledApplicationList`: the apps installed on the device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledApplicationList {
    /// Only these bundle identifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifiers: Option<Vec<String>>,
    /// Only the apps installed by MDM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_apps_only: Option<bool>,
    /// Only these attributes of each app (Apple's names, e.g. `Name`, `Version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<String>>,
}

/// `DeviceLock`: locks the device now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceLock {
    /// macOS: the six-digit Find My PIN that unlocks the Mac.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Shown on the Lock Screen (iOS 7, macOS 10.14 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Shown on the Lock Screen (iOS 7, macOS 11.5 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

/// `EraseDevice`: erases the device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseDevice {
    /// macOS: the six-digit Find My PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// iOS 11+: keep the cellular data plan (eSIM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_data_plan: Option<bool>,
    /// iOS 11.3+: no Proximity Setup after the erase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disallow_proximity_setup: Option<bool>,
    /// macOS 12+: what to do when Erase All Content and Settings cannot run: `Default`,
    /// `DoNotObliterate`, `ObliterateWithWarning` or `Always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obliteration_behavior: Option<String>,
    /// iOS 17+, tvOS 18+: re-enroll automatically after the erase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to_service: Option<ReturnToService>,
}

/// Return to Service options of `EraseDevice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnToService {
    pub enabled: bool,
    /// A Wi-Fi profile (base64) installed after the erase; needed without Ethernet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wifi_profile: Option<String>,
    /// The MDM enrollment profile (base64) to use after the erase; needed for devices not
    /// enrolled through Automated Device Enrollment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdm_profile: Option<String>,
}

/// `RestartDevice`: restarts the device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartDevice {
    /// macOS 11.3+: only ask the user to restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_user: Option<bool>,
    /// macOS 11+: rebuild the kernel cache while restarting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild_kernel_cache: Option<bool>,
    /// macOS 11+: absolute paths of kexts to add to the auxiliary kernel cache; only with
    /// `rebuild_kernel_cache`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kext_paths: Option<Vec<String>>,
}

/// `Settings`: changes settings on the device, one item each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub settings: Vec<SettingsItem>,
}

/// One item of a `Settings` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "item", deny_unknown_fields)]
pub enum SettingsItem {
    /// The device's name (iOS supervised, macOS 10.10+, tvOS).
    DeviceName {
        device_name: String,
    },
    /// macOS: the host name.
    HostName {
        host_name: String,
    },
    /// The time zone, as an IANA name (`Europe/Paris`); iOS 14+, macOS 10.14+ supervised.
    TimeZone {
        time_zone: String,
    },
    Bluetooth {
        enabled: bool,
    },
    DataRoaming {
        enabled: bool,
    },
    VoiceRoaming {
        enabled: bool,
    },
    PersonalHotspot {
        enabled: bool,
    },
}

/// A command plist ready to queue: validated against Apple's schema, as an XML plist.
#[derive(Debug, Clone, PartialEq)]
pub struct RawCommand {
    pub command_uuid: String,
    pub request_type: String,
    /// The `Command` dictionary (with `RequestType`).
    pub command: Dictionary,
    /// The whole command, `{CommandUUID, Command}`, as an XML plist.
    pub plist: Vec<u8>,
}

/// A new random (version 4) UUID in upper case, for `CommandUUID`.
pub fn new_command_uuid() -> Result<String, MdmError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| MdmError::Internal {
        detail: format!("no random numbers from the operating system: {e}"),
    })?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode_upper(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

impl CommandRequest {
    /// Reads the admin API's JSON.
    pub fn from_json(json: &[u8]) -> Result<CommandRequest, MdmError> {
        serde_json::from_slice(json).map_err(|e| MdmError::Json { detail: e.to_string() })
    }

    /// `DeviceInformation` with [`DEFAULT_DEVICE_QUERIES`].
    pub fn device_information() -> CommandRequest {
        CommandRequest::DeviceInformation(DeviceInformation::default())
    }

    /// `InstallProfile` of a `.mobileconfig` (plist or signed).
    pub fn install_profile(mobileconfig: &[u8]) -> CommandRequest {
        CommandRequest::InstallProfile(InstallProfile {
            payload: STANDARD.encode(mobileconfig),
        })
    }

    /// Apple's `RequestType`.
    pub fn request_type(&self) -> &'static str {
        match self {
            CommandRequest::DeviceInformation(_) => "DeviceInformation",
            CommandRequest::SecurityInfo {} => "SecurityInfo",
            CommandRequest::ProfileList(_) => "ProfileList",
            CommandRequest::InstallProfile(_) => "InstallProfile",
            CommandRequest::RemoveProfile(_) => "RemoveProfile",
            CommandRequest::InstalledApplicationList(_) => "InstalledApplicationList",
            CommandRequest::DeviceLock(_) => "DeviceLock",
            CommandRequest::EraseDevice(_) => "EraseDevice",
            CommandRequest::RestartDevice(_) => "RestartDevice",
            CommandRequest::DeviceConfigured {} => "DeviceConfigured",
            CommandRequest::Settings(_) => "Settings",
        }
    }

    /// Checks every field; the error lists every problem, one message per field (JSON field
    /// names, e.g. `pin`, `settings[1].host_name`).
    pub fn validate(&self) -> Result<(), MdmError> {
        self.command_dictionary().map(|_| ())
    }

    /// Validates the request and builds its command plist with `command_uuid` (for example
    /// from [`new_command_uuid`]).
    pub fn build(&self, command_uuid: &str) -> Result<RawCommand, MdmError> {
        let request_type = self.request_type();
        let mut fields = FieldErrors::new();
        check_command_uuid(command_uuid, "command_uuid", &mut fields);
        let command = match self.command_dictionary() {
            Ok(c) => Some(c),
            Err(MdmError::InvalidCommand { fields: mut f, .. }) => {
                fields.append(&mut f);
                None
            }
            Err(other) => return Err(other),
        };
        let invalid = |fields| MdmError::InvalidCommand {
            request_type: Some(request_type.to_owned()),
            fields,
        };
        let Some(command) = command.filter(|_| fields.is_empty()) else {
            return Err(invalid(fields));
        };
        // What was built must be what Apple's schema allows; a failure here is a bug.
        let spec = schema::command(request_type).ok_or_else(|| MdmError::Internal {
            detail: format!("{request_type} is missing from the schema table"),
        })?;
        let errors = schema::validate_command(spec, &command, "Command");
        if !errors.is_empty() {
            return Err(MdmError::Internal {
                detail: format!(
                    "the {request_type} command built from a valid request does not match Apple's schema: {errors:?}"
                ),
            });
        }
        finish(command_uuid.to_owned(), request_type.to_owned(), command)
    }

    /// The `Command` dictionary, or every problem found.
    fn command_dictionary(&self) -> Result<Dictionary, MdmError> {
        let mut c = Builder::new(self.request_type());
        match self {
            CommandRequest::DeviceInformation(r) => {
                let queries: Vec<String> = match &r.queries {
                    Some(q) => q.clone(),
                    None => DEFAULT_DEVICE_QUERIES.iter().map(|q| (*q).to_owned()).collect(),
                };
                if queries.is_empty() {
                    c.error(
                        "queries",
                        "is empty: name at least one query, or leave the field out for the default ones",
                    );
                }
                let allowed = element_values("DeviceInformation", "Queries");
                let mut unique: Vec<String> = Vec::with_capacity(queries.len());
                for (i, q) in queries.iter().enumerate() {
                    if !allowed.contains(&q.as_str()) {
                        c.error(
                            &format!("queries[{i}]"),
                            format!(
                                "\"{q}\" is not a DeviceInformation query Apple defines (names are case-sensitive)"
                            ),
                        );
                    } else if !unique.contains(q) {
                        unique.push(q.clone());
                    }
                }
                c.set("Queries", Value::Array(unique.into_iter().map(Value::String).collect()));
            }
            CommandRequest::SecurityInfo {} | CommandRequest::DeviceConfigured {} => {}
            CommandRequest::ProfileList(r) => c.set_opt_bool("ManagedOnly", r.managed_only),
            CommandRequest::InstallProfile(r) => {
                if let Some(profile) = c.base64("payload", &r.payload) {
                    match check_profile(&profile) {
                        Ok(()) => c.set("Payload", Value::Data(profile)),
                        Err(reason) => c.error("payload", reason),
                    }
                }
            }
            CommandRequest::RemoveProfile(r) => {
                if let Some(id) = c.text("identifier", &r.identifier) {
                    c.set("Identifier", Value::String(id));
                }
            }
            CommandRequest::InstalledApplicationList(r) => {
                if let Some(ids) = &r.identifiers {
                    let mut out = Vec::with_capacity(ids.len());
                    for (i, id) in ids.iter().enumerate() {
                        if let Some(id) = c.text(&format!("identifiers[{i}]"), id) {
                            out.push(Value::String(id));
                        }
                    }
                    c.set("Identifiers", Value::Array(out));
                }
                c.set_opt_bool("ManagedAppsOnly", r.managed_apps_only);
                if let Some(items) = &r.items {
                    let allowed = element_values("InstalledApplicationList", "Items");
                    for (i, item) in items.iter().enumerate() {
                        if !allowed.contains(&item.as_str()) {
                            c.error(
                                &format!("items[{i}]"),
                                format!(
                                    "\"{item}\" is not an app attribute Apple defines; use one of: {}",
                                    allowed.join(", ")
                                ),
                            );
                        }
                    }
                    c.set(
                        "Items",
                        Value::Array(items.iter().cloned().map(Value::String).collect()),
                    );
                }
            }
            CommandRequest::DeviceLock(r) => {
                c.pin("pin", "PIN", r.pin.as_deref());
                if let Some(m) = &r.message
                    && let Some(m) = c.text("message", m)
                {
                    c.set("Message", Value::String(m));
                }
                if let Some(p) = &r.phone_number
                    && let Some(p) = c.phone("phone_number", p)
                {
                    c.set("PhoneNumber", Value::String(p));
                }
            }
            CommandRequest::EraseDevice(r) => {
                c.pin("pin", "PIN", r.pin.as_deref());
                c.set_opt_bool("PreserveDataPlan", r.preserve_data_plan);
                c.set_opt_bool("DisallowProximitySetup", r.disallow_proximity_setup);
                if let Some(b) = &r.obliteration_behavior {
                    let allowed = key_values("EraseDevice", "ObliterationBehavior");
                    if allowed.contains(&b.as_str()) {
                        c.set("ObliterationBehavior", Value::String(b.clone()));
                    } else {
                        c.error(
                            "obliteration_behavior",
                            format!("\"{b}\" is not one of {} (case-sensitive)", allowed.join(", ")),
                        );
                    }
                }
                if let Some(rts) = &r.return_to_service {
                    let mut d = Dictionary::new();
                    d.insert("Enabled".into(), Value::Boolean(rts.enabled));
                    for (field, key, value) in [
                        ("return_to_service.wifi_profile", "WiFiProfileData", &rts.wifi_profile),
                        ("return_to_service.mdm_profile", "MDMProfileData", &rts.mdm_profile),
                    ] {
                        if let Some(v) = value
                            && let Some(profile) = c.base64(field, v)
                        {
                            match check_profile(&profile) {
                                Ok(()) => {
                                    d.insert(key.into(), Value::Data(profile));
                                }
                                Err(reason) => c.error(field, reason),
                            }
                        }
                    }
                    c.set("ReturnToService", Value::Dictionary(d));
                }
            }
            CommandRequest::RestartDevice(r) => {
                c.set_opt_bool("NotifyUser", r.notify_user);
                c.set_opt_bool("RebuildKernelCache", r.rebuild_kernel_cache);
                if let Some(paths) = &r.kext_paths {
                    if r.rebuild_kernel_cache != Some(true) {
                        c.error(
                            "kext_paths",
                            "is only used when the kernel cache is rebuilt: set rebuild_kernel_cache to true or leave kext_paths out",
                        );
                    }
                    for (i, p) in paths.iter().enumerate() {
                        if !p.starts_with('/') || p.chars().any(char::is_control) {
                            c.error(
                                &format!("kext_paths[{i}]"),
                                format!("\"{}\" is not an absolute path", p.escape_debug()),
                            );
                        }
                    }
                    c.set(
                        "KextPaths",
                        Value::Array(paths.iter().cloned().map(Value::String).collect()),
                    );
                }
            }
            CommandRequest::Settings(r) => {
                if r.settings.is_empty() {
                    c.error("settings", "is empty: give at least one setting to change");
                }
                let mut items = Vec::with_capacity(r.settings.len());
                for (i, s) in r.settings.iter().enumerate() {
                    let field = |name: &str| format!("settings[{i}].{name}");
                    let mut d = Dictionary::new();
                    let (item, rest): (&str, Option<(&str, Value)>) = match s {
                        SettingsItem::DeviceName { device_name } => (
                            "DeviceName",
                            c.device_name(&field("device_name"), device_name)
                                .map(|n| ("DeviceName", Value::String(n))),
                        ),
                        SettingsItem::HostName { host_name } => (
                            "HostName",
                            c.host_name(&field("host_name"), host_name)
                                .map(|n| ("HostName", Value::String(n))),
                        ),
                        SettingsItem::TimeZone { time_zone } => (
                            "TimeZone",
                            c.time_zone(&field("time_zone"), time_zone)
                                .map(|n| ("TimeZone", Value::String(n))),
                        ),
                        SettingsItem::Bluetooth { enabled } => {
                            ("Bluetooth", Some(("Enabled", Value::Boolean(*enabled))))
                        }
                        SettingsItem::DataRoaming { enabled } => {
                            ("DataRoaming", Some(("Enabled", Value::Boolean(*enabled))))
                        }
                        SettingsItem::VoiceRoaming { enabled } => {
                            ("VoiceRoaming", Some(("Enabled", Value::Boolean(*enabled))))
                        }
                        SettingsItem::PersonalHotspot { enabled } => {
                            ("PersonalHotspot", Some(("Enabled", Value::Boolean(*enabled))))
                        }
                    };
                    d.insert("Item".into(), Value::String(item.into()));
                    if let Some((k, v)) = rest {
                        d.insert(k.into(), v);
                    }
                    items.push(Value::Dictionary(d));
                }
                c.set("Settings", Value::Array(items));
            }
        }
        c.finish()
    }
}

/// The allowed values of a top-level key, from the schema table.
fn key_values(request_type: &str, key: &str) -> &'static [&'static str] {
    schema::command(request_type)
        .and_then(|c| c.keys.iter().find(|k| k.key == key))
        .and_then(|k| match k.rangelist {
            RangeList::Strings(v) => Some(v),
            _ => None,
        })
        .unwrap_or(&[])
}

/// The allowed values of the elements of a top-level array key, from the schema table.
fn element_values(request_type: &str, key: &str) -> &'static [&'static str] {
    schema::command(request_type)
        .and_then(|c| c.keys.iter().find(|k| k.key == key))
        .and_then(|k| k.subkeys.first())
        .and_then(|e| match e.rangelist {
            RangeList::Strings(v) => Some(v),
            _ => None,
        })
        .unwrap_or(&[])
}

/// Collects the `Command` dictionary and the problems of a request.
struct Builder {
    request_type: &'static str,
    dict: Dictionary,
    errors: FieldErrors,
}

impl Builder {
    fn new(request_type: &'static str) -> Builder {
        let mut dict = Dictionary::new();
        dict.insert("RequestType".into(), Value::String(request_type.into()));
        Builder {
            request_type,
            dict,
            errors: FieldErrors::new(),
        }
    }

    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.entry(field.to_owned()).or_insert_with(|| message.into());
    }

    fn set(&mut self, key: &str, value: Value) {
        self.dict.insert(key.into(), value);
    }

    fn set_opt_bool(&mut self, key: &str, value: Option<bool>) {
        if let Some(b) = value {
            self.set(key, Value::Boolean(b));
        }
    }

    /// Text: trimmed, not empty, no control characters other than line breaks and tabs.
    fn text(&mut self, field: &str, value: &str) -> Option<String> {
        let v = value.trim();
        if v.is_empty() {
            self.error(field, "is empty: give a value or leave the field out");
            return None;
        }
        if v.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            self.error(field, "contains control characters");
            return None;
        }
        Some(v.to_owned())
    }

    /// Standard base64 (whitespace ignored), not empty.
    fn base64(&mut self, field: &str, value: &str) -> Option<Vec<u8>> {
        let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if compact.is_empty() {
            self.error(field, "is empty: give the file as standard base64");
            return None;
        }
        match STANDARD.decode(compact.as_bytes()) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.error(field, format!("is not valid standard base64 ({e})"));
                None
            }
        }
    }

    /// The Find My PIN of `DeviceLock` and `EraseDevice` (macOS): six digits.
    fn pin(&mut self, field: &str, key: &str, value: Option<&str>) {
        let Some(pin) = value else { return };
        if pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit()) {
            self.set(key, Value::String(pin.to_owned()));
        } else {
            self.error(
                field,
                format!(
                    "must be exactly six digits (the Mac's Find My PIN), got {} characters{}",
                    pin.chars().count(),
                    if pin.bytes().all(|b| b.is_ascii_digit()) {
                        ""
                    } else {
                        " including non-digits"
                    }
                ),
            );
        }
    }

    fn phone(&mut self, field: &str, value: &str) -> Option<String> {
        let v = self.text(field, value)?;
        if v.chars().count() > 64 {
            self.error(field, "is longer than 64 characters");
            return None;
        }
        if !v.chars().all(|c| c.is_ascii_digit() || " +-().#*/x".contains(c)) || !v.chars().any(|c| c.is_ascii_digit())
        {
            self.error(
                field,
                format!("\"{v}\" is not a phone number (digits, spaces and + - ( ) . # * / x)"),
            );
            return None;
        }
        Some(v)
    }

    fn device_name(&mut self, field: &str, value: &str) -> Option<String> {
        let v = self.text(field, value)?;
        if v.contains(['\n', '\r', '\t']) {
            self.error(field, "must be a single line");
            return None;
        }
        let n = v.chars().count();
        if n > 255 {
            self.error(field, format!("is {n} characters long; at most 255 are accepted"));
            return None;
        }
        Some(v)
    }

    /// A host name: dot-separated labels of letters, digits and hyphens (1–63 each, not
    /// starting or ending with a hyphen), at most 253 characters.
    fn host_name(&mut self, field: &str, value: &str) -> Option<String> {
        let v = self.text(field, value)?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if v.len() > 253 || !v.split('.').all(label_ok) {
            self.error(
                field,
                format!(
                    "\"{}\" is not a host name (letters, digits and hyphens in dot-separated labels of 1 to 63 \
                     characters, at most 253 in all)",
                    v.escape_debug()
                ),
            );
            return None;
        }
        Some(v)
    }

    /// An IANA time zone name such as `Europe/Paris`, `America/Argentina/Buenos_Aires` or `UTC`.
    fn time_zone(&mut self, field: &str, value: &str) -> Option<String> {
        let v = self.text(field, value)?;
        let part_ok = |p: &str| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-+".contains(&b)) && p.len() <= 64
        };
        if !v.split('/').all(part_ok) {
            self.error(
                field,
                format!(
                    "\"{}\" is not an IANA time zone name such as Europe/Paris",
                    v.escape_debug()
                ),
            );
            return None;
        }
        Some(v)
    }

    fn finish(self) -> Result<Dictionary, MdmError> {
        if self.errors.is_empty() {
            Ok(self.dict)
        } else {
            Err(MdmError::InvalidCommand {
                request_type: Some(self.request_type.to_owned()),
                fields: self.errors,
            })
        }
    }
}

/// A configuration profile: an XML or binary plist whose `PayloadType` is `Configuration`
/// with a `PayloadIdentifier` and `PayloadUUID`, or a CMS-signed one.
fn check_profile(bytes: &[u8]) -> Result<(), String> {
    if bytes.first() == Some(&0x30) {
        return match openssl::pkcs7::Pkcs7::from_der(bytes) {
            Ok(_) => Ok(()),
            Err(_) => Err("starts like a signed profile (DER) but is not a readable CMS/PKCS#7 message".into()),
        };
    }
    let dict = match parse_value(bytes) {
        Ok(Value::Dictionary(d)) => d,
        Err(MdmError::TooComplex { detail }) => return Err(format!("is a plist that {detail}")),
        Ok(other) => {
            return Err(format!(
                "is a plist holding {} instead of a profile's dictionary",
                type_name(&other)
            ));
        }
        Err(_) => {
            return Err("is neither a configuration profile (XML or binary plist) nor a signed one (CMS)".into());
        }
    };
    match dict.get("PayloadType").and_then(Value::as_string) {
        Some("Configuration") => {}
        Some(other) => {
            return Err(format!(
                "has PayloadType \"{other}\" where a profile has \"Configuration\""
            ));
        }
        None => return Err("has no PayloadType: it is not a configuration profile".into()),
    }
    for key in ["PayloadIdentifier", "PayloadUUID"] {
        if dict.get(key).and_then(Value::as_string).is_none_or(str::is_empty) {
            return Err(format!("has no {key}: a configuration profile needs one"));
        }
    }
    Ok(())
}

fn check_command_uuid(uuid: &str, field: &str, errors: &mut FieldErrors) {
    let problem = if uuid.is_empty() {
        Some("is empty".to_owned())
    } else if uuid.len() > MAX_COMMAND_UUID_LEN {
        Some(format!(
            "is {} bytes long; at most {MAX_COMMAND_UUID_LEN} are accepted",
            uuid.len()
        ))
    } else if uuid.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("contains spaces or control characters".to_owned())
    } else {
        None
    };
    if let Some(p) = problem {
        errors.insert(field.to_owned(), p);
    }
}

fn finish(command_uuid: String, request_type: String, command: Dictionary) -> Result<RawCommand, MdmError> {
    let mut top = Dictionary::new();
    top.insert("CommandUUID".into(), Value::String(command_uuid.clone()));
    top.insert("Command".into(), Value::Dictionary(command.clone()));
    let plist = to_xml(&Value::Dictionary(top))?;
    Ok(RawCommand {
        command_uuid,
        request_type,
        command,
        plist,
    })
}

/// Validates a command plist written by an administrator (XML or binary):
/// a dictionary with only `CommandUUID` (a non-empty string of at most
/// [`MAX_COMMAND_UUID_LEN`] bytes without spaces) and `Command` (a dictionary whose
/// `RequestType` is one Apple defines, every other key known for that request type with the
/// right type and an allowed value, every required key present).
///
/// Returns the command re-written as an XML plist, or [`MdmError::InvalidCommand`] with every
/// problem keyed by its path (`CommandUUID`, `Command.RequestType`, `Command.Settings[0].Item`).
pub fn validate_raw_command(bytes: &[u8]) -> Result<RawCommand, MdmError> {
    let top = parse_dictionary(bytes)?;
    let mut fields = FieldErrors::new();
    for key in top.keys() {
        if key != "CommandUUID" && key != "Command" {
            fields.insert(
                key.clone(),
                "is not part of a command plist, which has only CommandUUID and Command".into(),
            );
        }
    }
    let command_uuid = match top.get("CommandUUID") {
        None => {
            fields.insert("CommandUUID".into(), "is required and must be <string>".into());
            None
        }
        Some(Value::String(s)) => {
            check_command_uuid(s, "CommandUUID", &mut fields);
            Some(s.clone())
        }
        Some(other) => {
            fields.insert(
                "CommandUUID".into(),
                format!("must be <string> but is {}", type_name(other)),
            );
            None
        }
    };
    let command = match top.get("Command") {
        None => {
            fields.insert("Command".into(), "is required and must be <dictionary>".into());
            None
        }
        Some(Value::Dictionary(d)) => Some(d),
        Some(other) => {
            fields.insert(
                "Command".into(),
                format!("must be <dictionary> but is {}", type_name(other)),
            );
            None
        }
    };
    let mut request_type = None;
    if let Some(command) = command {
        match command.get("RequestType") {
            None => {
                fields.insert("Command.RequestType".into(), "is required and must be <string>".into());
            }
            Some(Value::String(rt)) => match schema::command(rt) {
                Some(spec) => {
                    request_type = Some(spec.request_type);
                    fields.append(&mut schema::validate_command(spec, command, "Command"));
                }
                None => {
                    let hint = schema::request_types()
                        .find(|known| known.eq_ignore_ascii_case(rt))
                        .map(|known| format!(" (did you mean {known}?)"))
                        .unwrap_or_default();
                    fields.insert(
                        "Command.RequestType".into(),
                        format!("is \"{rt}\", which is not a request type Apple defines{hint}"),
                    );
                }
            },
            Some(other) => {
                fields.insert(
                    "Command.RequestType".into(),
                    format!("must be <string> but is {}", type_name(other)),
                );
            }
        }
    }
    match (command_uuid, request_type, command) {
        (Some(uuid), Some(rt), Some(command)) if fields.is_empty() => finish(uuid, rt.to_owned(), command.clone()),
        _ => Err(MdmError::InvalidCommand {
            request_type: request_type.map(str::to_owned),
            fields,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0F6A3E0C-1D1B-4B7A-8E33-2B7D4C1A9F00";

    fn profile() -> Vec<u8> {
        br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadContent</key><array/>
<key>PayloadIdentifier</key><string>com.example.test</string>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadUUID</key><string>9C4F4D0B-6D1E-4C55-9F71-0E3B1C2D3E4F</string>
<key>PayloadVersion</key><integer>1</integer>
</dict></plist>"#
            .to_vec()
    }

    fn fields(e: MdmError) -> FieldErrors {
        match e {
            MdmError::InvalidCommand { fields, .. } => fields,
            other => panic!("expected InvalidCommand, got {other:?}"),
        }
    }

    fn command_of(raw: &RawCommand) -> Dictionary {
        let v: Value = plist::from_bytes(&raw.plist).unwrap();
        let top = v.into_dictionary().unwrap();
        assert_eq!(top.get("CommandUUID").and_then(Value::as_string), Some(UUID));
        top.get("Command").and_then(Value::as_dictionary).cloned().unwrap()
    }

    #[test]
    fn device_information_defaults_and_custom_queries() {
        let raw = CommandRequest::device_information().build(UUID).unwrap();
        assert!(raw.plist.starts_with(b"<?xml"));
        assert_eq!(raw.request_type, "DeviceInformation");
        let c = command_of(&raw);
        assert_eq!(
            c.get("RequestType").and_then(Value::as_string),
            Some("DeviceInformation")
        );
        let q = c.get("Queries").and_then(Value::as_array).unwrap();
        assert_eq!(q.len(), DEFAULT_DEVICE_QUERIES.len());

        let r = CommandRequest::from_json(
            br#"{"request_type":"DeviceInformation","queries":["DeviceName","DeviceName","BatteryLevel"]}"#,
        )
        .unwrap();
        let c = command_of(&r.build(UUID).unwrap());
        assert_eq!(
            c.get("Queries"),
            Some(&Value::Array(vec![
                Value::String("DeviceName".into()),
                Value::String("BatteryLevel".into())
            ]))
        );

        let r = CommandRequest::from_json(br#"{"request_type":"DeviceInformation","queries":["devicename"]}"#).unwrap();
        let f = fields(r.build(UUID).unwrap_err());
        assert!(
            f["queries[0]"].contains("\"devicename\" is not a DeviceInformation query"),
            "{f:?}"
        );

        let r = CommandRequest::from_json(br#"{"request_type":"DeviceInformation","queries":[]}"#).unwrap();
        assert!(fields(r.validate().unwrap_err())["queries"].starts_with("is empty"));
    }

    #[test]
    fn simple_commands() {
        for (json, rt) in [
            (r#"{"request_type":"SecurityInfo"}"#, "SecurityInfo"),
            (r#"{"request_type":"DeviceConfigured"}"#, "DeviceConfigured"),
            (r#"{"request_type":"ProfileList"}"#, "ProfileList"),
            (
                r#"{"request_type":"RestartDevice","notify_user":true}"#,
                "RestartDevice",
            ),
        ] {
            let r = CommandRequest::from_json(json.as_bytes()).unwrap();
            assert_eq!(r.request_type(), rt);
            let c = command_of(&r.build(UUID).unwrap());
            assert_eq!(c.get("RequestType").and_then(Value::as_string), Some(rt));
        }
        let r = CommandRequest::from_json(br#"{"request_type":"ProfileList","managed_only":true}"#).unwrap();
        assert_eq!(
            command_of(&r.build(UUID).unwrap()).get("ManagedOnly"),
            Some(&Value::Boolean(true))
        );
    }

    #[test]
    fn json_shape_is_strict() {
        let e = CommandRequest::from_json(br#"{"request_type":"DeviceLock","pinn":"123456"}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_json");
        assert!(e.to_string().contains("unknown field `pinn`"), "{e}");
        let e = CommandRequest::from_json(br#"{"request_type":"SecurityInfo","x":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
        let e = CommandRequest::from_json(br#"{"request_type":"Reboot"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `Reboot`"), "{e}");
        let e = CommandRequest::from_json(br#"{"pin":"123456"}"#).unwrap_err();
        assert!(e.to_string().contains("request_type"), "{e}");
        // Serialising gives back the same JSON shape.
        let r = CommandRequest::DeviceLock(DeviceLock {
            pin: Some("123456".into()),
            ..Default::default()
        });
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j, serde_json::json!({"request_type": "DeviceLock", "pin": "123456"}));
        assert_eq!(serde_json::from_value::<CommandRequest>(j).unwrap(), r);
    }

    #[test]
    fn device_lock_validation_one_message_per_field() {
        let r = CommandRequest::from_json(
            br#"{"request_type":"DeviceLock","pin":"1234","message":"   ","phone_number":"call me"}"#,
        )
        .unwrap();
        let e = r.validate().unwrap_err();
        assert!(
            e.to_string().starts_with("the DeviceLock command is not valid: "),
            "{e}"
        );
        let f = fields(e);
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(
            f["pin"],
            "must be exactly six digits (the Mac's Find My PIN), got 4 characters"
        );
        assert_eq!(f["message"], "is empty: give a value or leave the field out");
        assert!(f["phone_number"].contains("is not a phone number"), "{f:?}");

        let f = fields(
            CommandRequest::from_json(br#"{"request_type":"DeviceLock","pin":"12345a"}"#)
                .unwrap()
                .validate()
                .unwrap_err(),
        );
        assert!(f["pin"].ends_with("including non-digits"), "{f:?}");

        let r = CommandRequest::from_json(
            br#"{"request_type":"DeviceLock","pin":"123456","message":"Return to IT, room 4","phone_number":"+33 1 23 45 67 89"}"#,
        )
        .unwrap();
        let c = command_of(&r.build(UUID).unwrap());
        assert_eq!(c.get("PIN").and_then(Value::as_string), Some("123456"));
        assert_eq!(
            c.get("Message").and_then(Value::as_string),
            Some("Return to IT, room 4")
        );
        assert_eq!(
            c.get("PhoneNumber").and_then(Value::as_string),
            Some("+33 1 23 45 67 89")
        );
    }

    #[test]
    fn install_and_remove_profile() {
        let r = CommandRequest::install_profile(&profile());
        let c = command_of(&r.build(UUID).unwrap());
        assert_eq!(c.get("Payload").and_then(Value::as_data), Some(&profile()[..]));

        let bad = |payload: &str| {
            fields(
                CommandRequest::InstallProfile(InstallProfile {
                    payload: payload.into(),
                })
                .validate()
                .unwrap_err(),
            )["payload"]
                .clone()
        };
        assert!(bad("not base64!").starts_with("is not valid standard base64"));
        assert!(bad("").starts_with("is empty"));
        assert!(bad(&STANDARD.encode(b"hello")).starts_with("is neither a configuration profile"));
        assert!(bad(&STANDARD.encode([0x30, 0x03, 0x02, 0x01])).contains("not a readable CMS"));
        let wrong_type = String::from_utf8(profile())
            .unwrap()
            .replace(">Configuration<", ">com.apple.wifi.managed<");
        assert!(bad(&STANDARD.encode(wrong_type)).contains("PayloadType \"com.apple.wifi.managed\""));

        let r = CommandRequest::from_json(br#"{"request_type":"RemoveProfile","identifier":" com.example.wifi "}"#)
            .unwrap();
        let c = command_of(&r.build(UUID).unwrap());
        assert_eq!(c.get("Identifier").and_then(Value::as_string), Some("com.example.wifi"));
        let e = CommandRequest::from_json(br#"{"request_type":"RemoveProfile"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `identifier`"), "{e}");
    }

    #[test]
    fn signed_profile_is_accepted() {
        use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
        use openssl::stack::Stack;
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let key = openssl::pkey::PKey::from_rsa(rsa).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "profile signer").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
        let cert = b.build();
        let signed = Pkcs7::sign(&cert, &key, &Stack::new().unwrap(), &profile(), Pkcs7Flags::BINARY)
            .unwrap()
            .to_der()
            .unwrap();
        let c = command_of(&CommandRequest::install_profile(&signed).build(UUID).unwrap());
        assert_eq!(c.get("Payload").and_then(Value::as_data), Some(&signed[..]));
    }

    #[test]
    fn installed_application_list() {
        let r = CommandRequest::from_json(
            br#"{"request_type":"InstalledApplicationList","identifiers":["com.apple.Pages"],"managed_apps_only":true,"items":["Name","Version"]}"#,
        )
        .unwrap();
        let c = command_of(&r.build(UUID).unwrap());
        assert_eq!(c.get("ManagedAppsOnly"), Some(&Value::Boolean(true)));
        assert_eq!(c.get("Identifiers").and_then(Value::as_array).map(Vec::len), Some(1));
        assert_eq!(c.get("Items").and_then(Value::as_array).map(Vec::len), Some(2));

        let f = fields(
            CommandRequest::from_json(
                br#"{"request_type":"InstalledApplicationList","identifiers":[""],"items":["Size"]}"#,
            )
            .unwrap()
            .validate()
            .unwrap_err(),
        );
        assert!(f["identifiers[0]"].starts_with("is empty"));
        assert!(f["items[0]"].contains("\"Size\" is not an app attribute"), "{f:?}");
    }

    #[test]
    fn erase_device() {
        let r = CommandRequest::EraseDevice(EraseDevice {
            pin: Some("654321".into()),
            preserve_data_plan: Some(true),
            disallow_proximity_setup: Some(true),
            obliteration_behavior: Some("DoNotObliterate".into()),
            return_to_service: Some(ReturnToService {
                enabled: true,
                wifi_profile: Some(STANDARD.encode(profile())),
                mdm_profile: None,
            }),
        });
        let c = command_of(&r.build(UUID).unwrap());
        assert_eq!(
            c.get("ObliterationBehavior").and_then(Value::as_string),
            Some("DoNotObliterate")
        );
        let rts = c.get("ReturnToService").and_then(Value::as_dictionary).unwrap();
        assert_eq!(rts.get("Enabled"), Some(&Value::Boolean(true)));
        assert!(rts.get("WiFiProfileData").and_then(Value::as_data).is_some());
        assert!(rts.get("MDMProfileData").is_none());

        let f = fields(
            CommandRequest::from_json(
                br#"{"request_type":"EraseDevice","pin":"12","obliteration_behavior":"always",
                     "return_to_service":{"enabled":true,"mdm_profile":"%%%"}}"#,
            )
            .unwrap()
            .validate()
            .unwrap_err(),
        );
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f["obliteration_behavior"].contains("Default, DoNotObliterate, ObliterateWithWarning, Always"));
        assert!(f["return_to_service.mdm_profile"].starts_with("is not valid standard base64"));
    }

    #[test]
    fn restart_device_kext_paths_need_rebuild() {
        let f = fields(
            CommandRequest::from_json(br#"{"request_type":"RestartDevice","kext_paths":["relative/x.kext"]}"#)
                .unwrap()
                .validate()
                .unwrap_err(),
        );
        assert!(f["kext_paths"].contains("rebuild_kernel_cache"));
        assert!(f["kext_paths[0]"].contains("not an absolute path"));
        let r = CommandRequest::from_json(
            br#"{"request_type":"RestartDevice","rebuild_kernel_cache":true,"kext_paths":["/Library/Extensions/x.kext"]}"#,
        )
        .unwrap();
        let c = command_of(&r.build(UUID).unwrap());
        assert_eq!(c.get("KextPaths").and_then(Value::as_array).map(Vec::len), Some(1));
    }

    #[test]
    fn settings() {
        let r = CommandRequest::from_json(
            br#"{"request_type":"Settings","settings":[
                {"item":"DeviceName","device_name":"Lab iPad 12"},
                {"item":"HostName","host_name":"lab-mac-12.example.org"},
                {"item":"TimeZone","time_zone":"America/Argentina/Buenos_Aires"},
                {"item":"Bluetooth","enabled":false}]}"#,
        )
        .unwrap();
        let c = command_of(&r.build(UUID).unwrap());
        let items = c.get("Settings").and_then(Value::as_array).unwrap();
        assert_eq!(items.len(), 4);
        let first = items[0].as_dictionary().unwrap();
        assert_eq!(first.get("Item").and_then(Value::as_string), Some("DeviceName"));
        assert_eq!(first.get("DeviceName").and_then(Value::as_string), Some("Lab iPad 12"));

        let f = fields(
            CommandRequest::from_json(
                br#"{"request_type":"Settings","settings":[
                    {"item":"DeviceName","device_name":""},
                    {"item":"HostName","host_name":"bad_host-"},
                    {"item":"TimeZone","time_zone":"Paris time"}]}"#,
            )
            .unwrap()
            .validate()
            .unwrap_err(),
        );
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f["settings[0].device_name"].starts_with("is empty"));
        assert!(f["settings[1].host_name"].contains("is not a host name"));
        assert!(f["settings[2].time_zone"].contains("IANA"));

        let f = fields(
            CommandRequest::from_json(br#"{"request_type":"Settings","settings":[]}"#)
                .unwrap()
                .validate()
                .unwrap_err(),
        );
        assert!(f["settings"].starts_with("is empty"));
        let e = CommandRequest::from_json(br#"{"request_type":"Settings","settings":[{"item":"Brightness"}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown variant `Brightness`"), "{e}");
    }

    #[test]
    fn build_checks_the_uuid() {
        let f = fields(CommandRequest::device_information().build("").unwrap_err());
        assert_eq!(f["command_uuid"], "is empty");
        let long = "A".repeat(256);
        let f = fields(CommandRequest::device_information().build(&long).unwrap_err());
        assert!(f["command_uuid"].contains("256 bytes"));
    }

    #[test]
    fn new_command_uuids_are_v4_and_distinct() {
        let a = new_command_uuid().unwrap();
        let b = new_command_uuid().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'A' | b'B'));
        assert_eq!(a, a.to_uppercase());
    }

    fn raw(inner: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
             \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>{inner}</dict></plist>"
        )
        .into_bytes()
    }

    #[test]
    fn raw_commands_that_pass() {
        let r = validate_raw_command(&raw(&format!(
            "<key>Command</key><dict><key>RequestType</key><string>DeviceLock</string>\
             <key>Message</key><string>IT&#39;s locked</string></dict>\
             <key>CommandUUID</key><string>{UUID}</string>"
        )))
        .unwrap();
        assert_eq!(r.request_type, "DeviceLock");
        assert_eq!(r.command_uuid, UUID);
        assert_eq!(
            command_of(&r).get("Message").and_then(Value::as_string),
            Some("IT's locked")
        );

        // A command Russet has no typed request for, in binary form.
        let mut cmd = Dictionary::new();
        cmd.insert("RequestType".into(), Value::String("ScheduleOSUpdate".into()));
        let mut update = Dictionary::new();
        update.insert("InstallAction".into(), Value::String("InstallASAP".into()));
        update.insert("ProductVersion".into(), Value::String("15.1".into()));
        cmd.insert("Updates".into(), Value::Array(vec![Value::Dictionary(update)]));
        let mut top = Dictionary::new();
        top.insert("CommandUUID".into(), Value::String(UUID.into()));
        top.insert("Command".into(), Value::Dictionary(cmd));
        let mut bin = Vec::new();
        plist::to_writer_binary(&mut bin, &Value::Dictionary(top)).unwrap();
        let r = validate_raw_command(&bin).unwrap();
        assert_eq!(r.request_type, "ScheduleOSUpdate");
        assert!(r.plist.starts_with(b"<?xml"), "re-written as XML");
    }

    #[test]
    fn raw_commands_that_fail_say_where() {
        let f = fields(
            validate_raw_command(&raw(
                "<key>Command</key><dict><key>RequestType</key><string>devicelock</string></dict>",
            ))
            .unwrap_err(),
        );
        assert_eq!(f["CommandUUID"], "is required and must be <string>");
        assert!(f["Command.RequestType"].contains("(did you mean DeviceLock?)"), "{f:?}");

        let f = fields(
            validate_raw_command(&raw(
                "<key>CommandUUID</key><string></string><key>Extra</key><true/>\
                 <key>Command</key><dict><key>RequestType</key><string>EraseDevice</string>\
                 <key>PIN</key><integer>123456</integer><key>ObliterationBehaviour</key><string>Always</string></dict>",
            ))
            .unwrap_err(),
        );
        assert_eq!(f["CommandUUID"], "is empty");
        assert!(f["Extra"].contains("only CommandUUID and Command"));
        assert_eq!(f["Command.PIN"], "must be <string> but is <integer>");
        assert!(
            f["Command.ObliterationBehaviour"].contains("is not a key Apple defines"),
            "{f:?}"
        );
        assert_eq!(f.len(), 4);

        let e = validate_raw_command(&raw(&format!(
            "<key>CommandUUID</key><string>{UUID}</string><key>Command</key><dict><key>RequestType</key>\
             <string>InstallProfile</string></dict>"
        )))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the InstallProfile command is not valid: Command.Payload: is required and must be <data>"
        );

        let f = fields(
            validate_raw_command(&raw(
                "<key>CommandUUID</key><integer>1</integer><key>Command</key><string>x</string>",
            ))
            .unwrap_err(),
        );
        assert_eq!(f["CommandUUID"], "must be <string> but is <integer>");
        assert_eq!(f["Command"], "must be <dictionary> but is <string>");

        let f = fields(
            validate_raw_command(&raw(&format!(
                "<key>CommandUUID</key><string>{UUID}</string><key>Command</key><dict/>"
            )))
            .unwrap_err(),
        );
        assert_eq!(f["Command.RequestType"], "is required and must be <string>");

        assert_eq!(validate_raw_command(b"[]").unwrap_err().code(), "not_plist");
        assert_eq!(
            validate_raw_command(b"<plist><array/></plist>").unwrap_err(),
            MdmError::NotDictionary { found: "<array>" }
        );
    }
}
