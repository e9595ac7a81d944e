//! How a simulated device answers MDM commands: the result keys of Apple's
//! `mdm/commands/*.yaml` response sections, with values a real device of the kind would
//! give. Pure state changes, no I/O: [`answer`] takes the device's state and a command
//! plist and says what to report.

use std::collections::BTreeMap;

use plist::{Dictionary, Value};

use super::model::{DeviceInfo, DeviceKind};
use super::profile::{self, InstalledProfile};

/// A report's `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Done.
    Acknowledged,
    /// Failed; the report has an `ErrorChain`.
    Error,
    /// The command plist was malformed.
    CommandFormatError,
    /// Not now (device locked, busy); the server keeps the command.
    NotNow,
}

impl Status {
    /// The `Status` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Acknowledged => "Acknowledged",
            Status::Error => "Error",
            Status::CommandFormatError => "CommandFormatError",
            Status::NotNow => "NotNow",
        }
    }
}

/// Commands a device runs even when locked, so never answers `NotNow` (Apple's MDM protocol
/// reference: "guaranteed to execute even if the device is locked").
pub const NEVER_NOT_NOW: &[&str] = &[
    "DeviceLock",
    "EraseDevice",
    "ClearPasscode",
    "DeviceInformation",
    "ProfileList",
    "CertificateList",
    "ProvisioningProfileList",
    "InstalledApplicationList",
    "Restrictions",
];

/// Whether a device may answer `NotNow` to this request type.
pub fn may_not_now(request_type: &str) -> bool {
    !NEVER_NOT_NOW.contains(&request_type)
}

/// One command as the device saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// `CommandUUID` (empty when the plist had none).
    pub command_uuid: String,
    /// `RequestType` (empty when the plist had none).
    pub request_type: String,
    /// What the device answered.
    pub status: Status,
}

/// The mutable side of a simulated device.
#[derive(Debug, Clone)]
pub struct DeviceState {
    /// Fixed facts.
    pub info: DeviceInfo,
    /// The current `DeviceName` (Settings can change it).
    pub name: String,
    /// Installed profiles, the enrollment profile first.
    pub profiles: Vec<InstalledProfile>,
    /// Commands received, in order.
    pub log: Vec<CommandRecord>,
    /// Settings applied by the Settings command (item → its dictionary).
    pub settings: BTreeMap<String, Dictionary>,
    /// The push token (for the `PushToken` query).
    pub push_token: Vec<u8>,
    /// DeviceConfigured received.
    pub configured: bool,
    /// Waiting in Setup Assistant for DeviceConfigured (`AwaitingConfiguration`).
    pub awaiting_configuration: bool,
    /// Supervised (enrolled through ADE with `is_supervised`): `IsSupervised`.
    pub supervised: bool,
    /// DeviceLock received.
    pub locked: bool,
}

impl DeviceState {
    /// A fresh device.
    pub fn new(info: DeviceInfo) -> DeviceState {
        DeviceState {
            name: info.initial_name.clone(),
            info,
            profiles: Vec::new(),
            log: Vec::new(),
            settings: BTreeMap::new(),
            push_token: Vec::new(),
            configured: false,
            awaiting_configuration: false,
            supervised: false,
            locked: false,
        }
    }
}

/// What to report for a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// `Status`.
    pub status: Status,
    /// `CommandUUID` (absent only when the command had none).
    pub command_uuid: Option<String>,
    /// `RequestType` of the command, when it had one.
    pub request_type: Option<String>,
    /// The result keys (`QueryResponses`, `ErrorChain`, …), without `UDID`/`Status`/`CommandUUID`.
    pub keys: Dictionary,
    /// EraseDevice: the device forgets its enrollment after reporting.
    pub erase: bool,
}

/// An `ErrorChain` with one entry.
pub fn error_chain(domain: &str, code: i64, description: &str) -> Value {
    let mut e = Dictionary::new();
    e.insert("ErrorCode".into(), Value::Integer(code.into()));
    e.insert("ErrorDomain".into(), domain.into());
    e.insert("LocalizedDescription".into(), description.into());
    e.insert("USEnglishDescription".into(), description.into());
    Value::Array(vec![Value::Dictionary(e)])
}

fn error(command_uuid: Option<String>, rt: Option<String>, chain: Value) -> Answer {
    let mut keys = Dictionary::new();
    keys.insert("ErrorChain".into(), chain);
    Answer {
        status: Status::Error,
        command_uuid,
        request_type: rt,
        keys,
        erase: false,
    }
}

/// `CommandFormatError`: the command plist lacks what its request type needs.
fn format_error(command_uuid: Option<String>, request_type: Option<String>) -> Answer {
    Answer {
        status: Status::CommandFormatError,
        command_uuid,
        request_type,
        keys: Dictionary::new(),
        erase: false,
    }
}

/// The answer to a command plist (`{CommandUUID, Command: {RequestType, …}}`). NotNow is the
/// caller's decision (see [`may_not_now`]); this always executes.
pub fn answer(dev: &mut DeviceState, command: &Value) -> Answer {
    let top = command.as_dictionary();
    let uuid = top
        .and_then(|t| t.get("CommandUUID"))
        .and_then(Value::as_string)
        .map(str::to_owned);
    let cmd = top.and_then(|t| t.get("Command")).and_then(Value::as_dictionary);
    let rt = cmd.and_then(|c| c.get("RequestType")).and_then(Value::as_string);
    let (Some(cmd), Some(rt)) = (cmd, rt) else {
        return format_error(uuid, None);
    };
    let rt_owned = Some(rt.to_owned());
    let ok = |keys: Dictionary| Answer {
        status: Status::Acknowledged,
        command_uuid: uuid.clone(),
        request_type: rt_owned.clone(),
        keys,
        erase: false,
    };
    let one = |k: &str, v: Value| {
        let mut d = Dictionary::new();
        d.insert(k.into(), v);
        d
    };
    match rt {
        "DeviceInformation" => {
            let queries: Option<Vec<String>> = match cmd.get("Queries") {
                None => None,
                Some(Value::Array(a)) => Some(a.iter().filter_map(Value::as_string).map(str::to_owned).collect()),
                Some(_) => {
                    return format_error(uuid, rt_owned);
                }
            };
            ok(one(
                "QueryResponses",
                Value::Dictionary(device_information(dev, queries.as_deref())),
            ))
        }
        "SecurityInfo" => ok(one("SecurityInfo", Value::Dictionary(security_info(&dev.info)))),
        "ProfileList" => {
            let managed_only = cmd.get("ManagedOnly").and_then(Value::as_boolean).unwrap_or(false);
            let list = dev
                .profiles
                .iter()
                .filter(|p| !managed_only || p.is_managed)
                .map(InstalledProfile::to_plist)
                .collect();
            ok(one("ProfileList", Value::Array(list)))
        }
        "InstallProfile" => {
            let Some(payload) = cmd.get("Payload").and_then(Value::as_data) else {
                return format_error(uuid, rt_owned);
            };
            let read = profile::read_profile(payload).and_then(|(top, signed)| profile::summarize(&top, signed, true));
            match read {
                Ok(p) => {
                    if dev.profiles.first().is_some_and(|e| e.identifier == p.identifier) {
                        return error(
                            uuid,
                            rt_owned,
                            error_chain(
                                "MCInstallationErrorDomain",
                                4001,
                                "The profile cannot replace the MDM enrollment profile.",
                            ),
                        );
                    }
                    match dev.profiles.iter_mut().find(|x| x.identifier == p.identifier) {
                        Some(existing) => *existing = p,
                        None => dev.profiles.push(p),
                    }
                    ok(Dictionary::new())
                }
                Err(e) => error(
                    uuid,
                    rt_owned,
                    error_chain(
                        "MCProfileErrorDomain",
                        1000,
                        &format!("The profile could not be read ({}).", e.0),
                    ),
                ),
            }
        }
        "RemoveProfile" => {
            let Some(id) = cmd.get("Identifier").and_then(Value::as_string) else {
                return format_error(uuid, rt_owned);
            };
            match dev.profiles.iter().position(|p| p.identifier == id) {
                Some(0) => error(
                    uuid,
                    rt_owned,
                    error_chain(
                        "MCMDMErrorDomain",
                        12023,
                        "The MDM enrollment profile cannot be removed with RemoveProfile.",
                    ),
                ),
                Some(i) => {
                    dev.profiles.remove(i);
                    ok(Dictionary::new())
                }
                None => error(
                    uuid,
                    rt_owned,
                    error_chain(
                        "MCProfileErrorDomain",
                        1003,
                        &format!("The profile “{id}” could not be found."),
                    ),
                ),
            }
        }
        "InstalledApplicationList" => {
            let ids: Option<Vec<&str>> = cmd
                .get("Identifiers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_string).collect());
            let items: Option<Vec<&str>> = cmd
                .get("Items")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_string).collect());
            let managed_only = cmd.get("ManagedAppsOnly").and_then(Value::as_boolean).unwrap_or(false);
            let list = if managed_only {
                Vec::new()
            } else {
                installed_apps(dev.info.kind)
                    .into_iter()
                    .filter(|a| {
                        ids.as_ref().is_none_or(|ids| {
                            a.get("Identifier")
                                .and_then(Value::as_string)
                                .is_some_and(|i| ids.contains(&i))
                        })
                    })
                    .map(|mut a| {
                        if let Some(items) = &items {
                            a.retain(|k, _| items.contains(&k.as_str()));
                        }
                        Value::Dictionary(a)
                    })
                    .collect()
            };
            ok(one("InstalledApplicationList", Value::Array(list)))
        }
        "Settings" => {
            let Some(items) = cmd.get("Settings").and_then(Value::as_array) else {
                return format_error(uuid, rt_owned);
            };
            let mut results = Vec::new();
            let mut first_error = None;
            for item in items {
                let r = apply_setting(dev, item);
                if first_error.is_none()
                    && let Some(chain) = r.get("ErrorChain")
                {
                    first_error = Some(chain.clone());
                }
                results.push(Value::Dictionary(r));
            }
            let mut keys = one("Settings", Value::Array(results));
            match first_error {
                None => ok(keys),
                Some(chain) => {
                    keys.insert("ErrorChain".into(), chain);
                    Answer {
                        status: Status::Error,
                        command_uuid: uuid,
                        request_type: rt_owned,
                        keys,
                        erase: false,
                    }
                }
            }
        }
        "DeviceConfigured" => {
            dev.configured = true;
            dev.awaiting_configuration = false;
            ok(Dictionary::new())
        }
        "DeviceLock" => {
            dev.locked = true;
            ok(Dictionary::new())
        }
        "RestartDevice" => ok(Dictionary::new()),
        "EraseDevice" => {
            let mut a = ok(Dictionary::new());
            a.erase = true;
            a
        }
        _ => error(
            uuid,
            rt_owned,
            error_chain("MCMDMErrorDomain", 12021, "Unknown command"),
        ),
    }
}

fn apply_setting(dev: &mut DeviceState, item: &Value) -> Dictionary {
    let mut out = Dictionary::new();
    let Some(d) = item.as_dictionary() else {
        out.insert("Status".into(), "Error".into());
        out.insert(
            "ErrorChain".into(),
            error_chain("MCMDMErrorDomain", 12001, "The setting is not a dictionary."),
        );
        return out;
    };
    let name = d.get("Item").and_then(Value::as_string).unwrap_or("");
    let kind = dev.info.kind;
    if let Some(id) = d.get("Identifier").and_then(Value::as_string) {
        out.insert("Identifier".into(), id.into());
    }
    let supported = match name {
        "DeviceName" => match d.get("DeviceName").and_then(Value::as_string) {
            Some(n) if !n.trim().is_empty() => {
                dev.name = n.to_owned();
                true
            }
            _ => false,
        },
        "HostName" => kind == DeviceKind::Mac && d.get("HostName").and_then(Value::as_string).is_some(),
        "DataRoaming" | "VoiceRoaming" | "PersonalHotspot" => kind == DeviceKind::IPhone,
        "Wallpaper" | "ApplicationAttributes" | "ApplicationConfiguration" | "AccessibilitySettings" => kind.is_ios(),
        "Bluetooth"
        | "TimeZone"
        | "DiagnosticSubmission"
        | "AppAnalytics"
        | "OrganizationInfo"
        | "MDMOptions"
        | "SoftwareUpdateSettings"
        | "PasscodeLockGracePeriod" => true,
        "MaximumResidentUsers" | "SharedDeviceConfiguration" => false,
        _ => false,
    };
    if supported {
        dev.settings.insert(name.to_owned(), d.clone());
        out.insert("Status".into(), "Acknowledged".into());
    } else {
        out.insert("Status".into(), "Error".into());
        out.insert(
            "ErrorChain".into(),
            error_chain(
                "MCMDMErrorDomain",
                12078,
                &format!("The setting “{name}” is not supported on this device."),
            ),
        );
    }
    out
}

/// The default DeviceInformation queries (when the command names none).
pub const DEFAULT_QUERIES: &[&str] = &[
    "UDID",
    "SerialNumber",
    "DeviceName",
    "Model",
    "ModelName",
    "ModelNumber",
    "ProductName",
    "OSVersion",
    "BuildVersion",
    "IsSupervised",
    "WiFiMAC",
    "BluetoothMAC",
    "EthernetMAC",
    "IMEI",
    "MEID",
    "AvailableDeviceCapacity",
    "DeviceCapacity",
    "BatteryLevel",
];

/// Every DeviceInformation value this device can report.
pub fn all_device_information(dev: &DeviceState) -> Dictionary {
    let i = &dev.info;
    let mut d = Dictionary::new();
    let s = |v: &str| Value::String(v.to_owned());
    d.insert("UDID".into(), s(&i.udid));
    d.insert("SerialNumber".into(), s(&i.serial_number));
    d.insert("DeviceName".into(), s(&dev.name));
    d.insert("Model".into(), s(&i.model));
    d.insert("ModelName".into(), s(&i.model_name));
    d.insert("ModelNumber".into(), s(&i.model_number));
    d.insert("ProductName".into(), s(&i.product_name));
    d.insert("OSVersion".into(), s(&i.os_version));
    d.insert("BuildVersion".into(), s(&i.build_version));
    d.insert("IsSupervised".into(), Value::Boolean(dev.supervised));
    d.insert("WiFiMAC".into(), s(&i.wifi_mac));
    d.insert("BluetoothMAC".into(), s(&i.bluetooth_mac));
    if let Some(m) = &i.ethernet_mac {
        d.insert("EthernetMAC".into(), s(m));
    }
    if let Some(v) = &i.imei {
        d.insert("IMEI".into(), s(v));
    }
    if let Some(v) = &i.meid {
        d.insert("MEID".into(), s(v));
    }
    d.insert("DeviceCapacity".into(), Value::Real(i.capacity_gb));
    d.insert("AvailableDeviceCapacity".into(), Value::Real(i.available_gb));
    if let Some(b) = i.battery_level {
        d.insert("BatteryLevel".into(), Value::Real(b));
    }
    d.insert(
        "AwaitingConfiguration".into(),
        Value::Boolean(dev.awaiting_configuration),
    );
    d.insert("IsActivationLockEnabled".into(), Value::Boolean(false));
    d.insert("IsDeviceLocatorServiceEnabled".into(), Value::Boolean(false));
    d.insert("IsDoNotDisturbInEffect".into(), Value::Boolean(false));
    d.insert("IsMDMLostModeEnabled".into(), Value::Boolean(false));
    d.insert("PushToken".into(), Value::Data(dev.push_token.clone()));
    d.insert(
        "TimeZone".into(),
        dev.settings
            .get("TimeZone")
            .and_then(|t| t.get("TimeZone"))
            .cloned()
            .unwrap_or_else(|| s("Europe/Paris")),
    );
    d.insert("DiagnosticSubmissionEnabled".into(), Value::Boolean(false));
    d.insert("AppAnalyticsEnabled".into(), Value::Boolean(false));
    match i.kind {
        DeviceKind::IPhone | DeviceKind::IPad => {
            d.insert("IsCloudBackupEnabled".into(), Value::Boolean(true));
            d.insert("IsMultiUser".into(), Value::Boolean(false));
            d.insert("PINRequiredForDeviceLock".into(), Value::Boolean(false));
            d.insert("PINRequiredForEraseDevice".into(), Value::Boolean(false));
            d.insert("HasBattery".into(), Value::Boolean(true));
            if i.kind == DeviceKind::IPhone {
                d.insert("CellularTechnology".into(), Value::Integer(3.into()));
                d.insert("DataRoamingEnabled".into(), Value::Boolean(false));
                d.insert("VoiceRoamingEnabled".into(), Value::Boolean(true));
                d.insert("PersonalHotspotEnabled".into(), Value::Boolean(false));
                d.insert("IsRoaming".into(), Value::Boolean(false));
            }
        }
        DeviceKind::Mac => {
            let host = dev.name.replace(['’', '\'', ' '], "-");
            d.insert("HostName".into(), s(&format!("{host}.local")));
            d.insert("LocalHostName".into(), s(&host));
            d.insert("IsAppleSilicon".into(), Value::Boolean(true));
            d.insert("HasBattery".into(), Value::Boolean(i.battery_level.is_some()));
            d.insert("SystemIntegrityProtectionEnabled".into(), Value::Boolean(true));
            d.insert("SupportsLOMDevice".into(), Value::Boolean(false));
            d.insert("IsMultiUser".into(), Value::Boolean(true));
            d.insert("PINRequiredForDeviceLock".into(), Value::Boolean(true));
            d.insert("PINRequiredForEraseDevice".into(), Value::Boolean(false));
        }
    }
    d
}

/// DeviceInformation's `QueryResponses`: the keys asked for that this device knows (others
/// are left out, as devices do), or [`DEFAULT_QUERIES`].
pub fn device_information(dev: &DeviceState, queries: Option<&[String]>) -> Dictionary {
    let all = all_device_information(dev);
    let mut out = Dictionary::new();
    let mut take = |k: &str| {
        if let Some(v) = all.get(k) {
            out.insert(k.to_owned(), v.clone());
        }
    };
    match queries {
        Some(q) => q.iter().for_each(|k| take(k)),
        None => DEFAULT_QUERIES.iter().for_each(|k| take(k)),
    }
    out
}

/// SecurityInfo's dictionary for the device's platform.
pub fn security_info(info: &DeviceInfo) -> Dictionary {
    let mut d = Dictionary::new();
    let mut mgmt = Dictionary::new();
    mgmt.insert("EnrolledViaDEP".into(), Value::Boolean(false));
    mgmt.insert("IsUserEnrollment".into(), Value::Boolean(false));
    mgmt.insert("IsActivationLockManageable".into(), Value::Boolean(false));
    match info.kind {
        DeviceKind::IPhone | DeviceKind::IPad => {
            d.insert("HardwareEncryptionCaps".into(), Value::Integer(3.into()));
            d.insert("PasscodePresent".into(), Value::Boolean(true));
            d.insert("PasscodeCompliant".into(), Value::Boolean(true));
            d.insert("PasscodeCompliantWithProfiles".into(), Value::Boolean(true));
            d.insert("PasscodeLockGracePeriodEnforced".into(), Value::Integer(0.into()));
        }
        DeviceKind::Mac => {
            mgmt.insert("UserApprovedEnrollment".into(), Value::Boolean(true));
            d.insert("FDE_Enabled".into(), Value::Boolean(true));
            d.insert("FDE_HasPersonalRecoveryKey".into(), Value::Boolean(true));
            d.insert("FDE_HasInstitutionalRecoveryKey".into(), Value::Boolean(false));
            d.insert("SystemIntegrityProtectionEnabled".into(), Value::Boolean(true));
            let mut fw = Dictionary::new();
            fw.insert("FirewallEnabled".into(), Value::Boolean(true));
            fw.insert("BlockAllIncoming".into(), Value::Boolean(false));
            fw.insert("StealthMode".into(), Value::Boolean(false));
            fw.insert("LoggingEnabled".into(), Value::Boolean(true));
            fw.insert("LoggingOption".into(), "throttled".into());
            fw.insert("Applications".into(), Value::Array(Vec::new()));
            d.insert("FirewallSettings".into(), Value::Dictionary(fw));
            let mut sb = Dictionary::new();
            sb.insert("SecureBootLevel".into(), "full".into());
            sb.insert("ExternalBootLevel".into(), "disallowed".into());
            d.insert("SecureBoot".into(), Value::Dictionary(sb));
            d.insert("AuthenticatedRootVolumeEnabled".into(), Value::Boolean(true));
            d.insert("RemoteDesktopEnabled".into(), Value::Boolean(false));
            d.insert("BootstrapTokenAllowedForAuthentication".into(), "allowed".into());
            d.insert("BootstrapTokenRequiredForSoftwareUpdate".into(), Value::Boolean(false));
            d.insert(
                "BootstrapTokenRequiredForKernelExtensionApproval".into(),
                Value::Boolean(false),
            );
            d.insert("IsRecoveryLockEnabled".into(), Value::Boolean(false));
        }
    }
    d.insert("ManagementStatus".into(), Value::Dictionary(mgmt));
    d
}

/// (identifier, name, short version, bundle version, bundle size in bytes).
const IOS_APPS: &[(&str, &str, &str, &str, i64)] = &[
    ("com.apple.Pages", "Pages", "14.2", "7031.0.102", 494_876_672),
    ("com.apple.Keynote", "Keynote", "14.2", "7031.0.102", 601_120_768),
    ("com.apple.Numbers", "Numbers", "14.2", "7031.0.102", 455_340_032),
    (
        "com.microsoft.Office.Outlook",
        "Microsoft Outlook",
        "4.2445.0",
        "4.2445.0",
        349_405_184,
    ),
    ("com.tinyspeck.chatlyio", "Slack", "24.11.10", "24.11.10.0", 301_735_936),
    ("us.zoom.videomeetings", "Zoom", "6.2.10", "6.2.10.22766", 171_569_152),
    (
        "com.google.chrome.ios",
        "Chrome",
        "131.0.6778.73",
        "131.6778.73",
        255_156_224,
    ),
];
const MAC_APPS: &[(&str, &str, &str, &str, i64)] = &[
    ("com.apple.Safari", "Safari", "18.1", "20619.2.8.11.10", 13_950_976),
    ("com.apple.Pages", "Pages", "14.2", "7031.0.102", 623_927_296),
    ("com.apple.dt.Xcode", "Xcode", "16.1", "23503", 12_154_675_200),
    (
        "com.google.Chrome",
        "Google Chrome",
        "131.0.6778.86",
        "6778.86",
        1_265_123_328,
    ),
    (
        "com.microsoft.Word",
        "Microsoft Word",
        "16.91",
        "16.91.24111020",
        2_304_131_072,
    ),
    (
        "com.tinyspeck.slackmacgap",
        "Slack",
        "4.41.97",
        "441000097",
        552_198_144,
    ),
    ("us.zoom.xos", "zoom.us", "6.2.11", "6.2.11.43613", 358_309_888),
];

/// The applications a device of `kind` reports.
pub fn installed_apps(kind: DeviceKind) -> Vec<Dictionary> {
    let apps = if kind.is_ios() { IOS_APPS } else { MAC_APPS };
    apps.iter()
        .map(|(id, name, short, version, size)| {
            let mut d = Dictionary::new();
            d.insert("Identifier".into(), (*id).into());
            d.insert("Name".into(), (*name).into());
            d.insert("ShortVersion".into(), (*short).into());
            d.insert("Version".into(), (*version).into());
            d.insert("BundleSize".into(), Value::Integer((*size).into()));
            d.insert("DynamicSize".into(), Value::Integer((size / 7).into()));
            d.insert("Installing".into(), Value::Boolean(false));
            d.insert("IsValidated".into(), Value::Boolean(true));
            d.insert(
                "AppStoreVendable".into(),
                Value::Boolean(!id.starts_with("com.apple.Safari")),
            );
            d.insert("DeviceBasedVPP".into(), Value::Boolean(false));
            d.insert("BetaApp".into(), Value::Boolean(false));
            d.insert("AdHocCodeSigned".into(), Value::Boolean(false));
            d.insert("HasUpdateAvailable".into(), Value::Boolean(false));
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Answers checked against the response keys of Apple's `mdm/commands/*.yaml` (read from
    //! `shared/apple-device-management` beside the repository when it is there, else against
    //! the expectations embedded below, copied from those files).

    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn cmd(rt: Option<&str>, extra: &[(&str, Value)]) -> Value {
        let mut c = Dictionary::new();
        if let Some(rt) = rt {
            c.insert("RequestType".into(), rt.into());
        }
        for (k, v) in extra {
            c.insert((*k).into(), v.clone());
        }
        let mut top = Dictionary::new();
        top.insert("CommandUUID".into(), "C0FFEE00-0000-4000-8000-000000000001".into());
        top.insert("Command".into(), Value::Dictionary(c));
        Value::Dictionary(top)
    }

    fn dev(kind: DeviceKind) -> DeviceState {
        let mut d = DeviceState::new(DeviceInfo::random(kind));
        let (top, _) = profile::read_profile(&profile::tests::enrollment_xml(true, true)).unwrap();
        d.profiles.push(profile::summarize(&top, false, true).unwrap());
        d.push_token = vec![1; 32];
        d
    }

    /// `shared/apple-device-management` inside the repository or beside it.
    fn yaml_dir() -> Option<PathBuf> {
        let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        ["../../shared", "../../../shared"]
            .iter()
            .map(|up| crate_dir.join(up).join("apple-device-management/mdm/commands"))
            .find(|p| p.is_dir())
    }

    /// The keys a yaml file allows directly under `path` of its `responsekeys`.
    fn yaml_keys(file: &str, path: &[&str]) -> Option<BTreeSet<String>> {
        use yaml_rust2::{Yaml, YamlLoader};
        let text = std::fs::read_to_string(yaml_dir()?.join(file)).ok()?;
        let docs = YamlLoader::load_from_str(&text).ok()?;
        let mut keys: &Vec<Yaml> = docs.first()?["responsekeys"].as_vec()?;
        for p in path {
            let k = keys.iter().find(|k| k["key"].as_str() == Some(*p))?;
            keys = k["subkeys"].as_vec()?;
        }
        Some(
            keys.iter()
                .filter_map(|k| k["key"].as_str().map(str::to_owned))
                .collect(),
        )
    }

    fn assert_subset(what: &str, got: impl IntoIterator<Item = String>, allowed: &BTreeSet<String>) {
        for k in got {
            assert!(
                allowed.contains(&k),
                "{what}: {k} is not a response key in Apple's schema {allowed:?}"
            );
        }
    }

    /// The response keys, from the yaml when it is there, else the embedded copy.
    fn allowed(file: &str, path: &[&str], embedded: &[&str]) -> BTreeSet<String> {
        match yaml_keys(file, path) {
            Some(k) if !k.is_empty() => k,
            _ => embedded.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn device_information_keys_are_apples() {
        let allowed_q = allowed(
            "information.device.yaml",
            &["QueryResponses"],
            &[
                "UDID",
                "DeviceName",
                "OSVersion",
                "BuildVersion",
                "ModelName",
                "Model",
                "ModelNumber",
                "ProductName",
                "SerialNumber",
                "DeviceCapacity",
                "AvailableDeviceCapacity",
                "IMEI",
                "MEID",
                "BatteryLevel",
                "HasBattery",
                "IsSupervised",
                "IsMultiUser",
                "IsDeviceLocatorServiceEnabled",
                "IsActivationLockEnabled",
                "IsDoNotDisturbInEffect",
                "IsCloudBackupEnabled",
                "WiFiMAC",
                "BluetoothMAC",
                "EthernetMAC",
                "CellularTechnology",
                "DataRoamingEnabled",
                "VoiceRoamingEnabled",
                "PersonalHotspotEnabled",
                "IsRoaming",
                "AwaitingConfiguration",
                "PushToken",
                "TimeZone",
                "DiagnosticSubmissionEnabled",
                "AppAnalyticsEnabled",
                "IsMDMLostModeEnabled",
                "HostName",
                "LocalHostName",
                "IsAppleSilicon",
                "SystemIntegrityProtectionEnabled",
                "SupportsLOMDevice",
                "PINRequiredForDeviceLock",
                "PINRequiredForEraseDevice",
            ],
        );
        assert!(
            allowed_q.contains("UDID") && allowed_q.contains("BatteryLevel"),
            "{allowed_q:?}"
        );
        for kind in [DeviceKind::IPhone, DeviceKind::IPad, DeviceKind::Mac] {
            let mut d = dev(kind);
            let all = all_device_information(&d);
            assert_subset("DeviceInformation", all.keys().cloned(), &allowed_q);
            let a = answer(&mut d, &cmd(Some("DeviceInformation"), &[]));
            assert_eq!(a.status, Status::Acknowledged);
            assert_eq!(a.keys.keys().cloned().collect::<Vec<_>>(), vec!["QueryResponses"]);
            let q = a.keys["QueryResponses"].as_dictionary().unwrap();
            for k in [
                "UDID",
                "SerialNumber",
                "DeviceName",
                "Model",
                "ProductName",
                "OSVersion",
                "WiFiMAC",
            ] {
                assert!(q.contains_key(k), "{kind:?} default answer lacks {k}");
            }
            assert_eq!(q.contains_key("IMEI"), kind == DeviceKind::IPhone);
            // Only what was asked (and known).
            let a = answer(
                &mut d,
                &cmd(
                    Some("DeviceInformation"),
                    &[(
                        "Queries",
                        Value::Array(vec!["DeviceName".into(), "NoSuchKey".into(), "OSVersion".into()]),
                    )],
                ),
            );
            let q = a.keys["QueryResponses"].as_dictionary().unwrap();
            assert_eq!(
                q.keys().cloned().collect::<BTreeSet<_>>(),
                ["DeviceName", "OSVersion"].map(String::from).into()
            );
        }
    }

    #[test]
    fn security_info_keys_are_apples() {
        let top = allowed(
            "information.security.yaml",
            &["SecurityInfo"],
            &[
                "HardwareEncryptionCaps",
                "PasscodePresent",
                "PasscodeCompliant",
                "PasscodeCompliantWithProfiles",
                "PasscodeLockGracePeriodEnforced",
                "FDE_Enabled",
                "FDE_HasPersonalRecoveryKey",
                "FDE_HasInstitutionalRecoveryKey",
                "SystemIntegrityProtectionEnabled",
                "FirewallSettings",
                "SecureBoot",
                "ManagementStatus",
                "AuthenticatedRootVolumeEnabled",
                "RemoteDesktopEnabled",
                "BootstrapTokenAllowedForAuthentication",
                "BootstrapTokenRequiredForSoftwareUpdate",
                "BootstrapTokenRequiredForKernelExtensionApproval",
                "IsRecoveryLockEnabled",
            ],
        );
        let mgmt = allowed(
            "information.security.yaml",
            &["SecurityInfo", "ManagementStatus"],
            &[
                "EnrolledViaDEP",
                "UserApprovedEnrollment",
                "IsUserEnrollment",
                "IsActivationLockManageable",
            ],
        );
        for kind in [DeviceKind::IPhone, DeviceKind::Mac] {
            let mut d = dev(kind);
            let a = answer(&mut d, &cmd(Some("SecurityInfo"), &[]));
            assert_eq!(a.status, Status::Acknowledged);
            let s = a.keys["SecurityInfo"].as_dictionary().unwrap();
            assert_subset("SecurityInfo", s.keys().cloned(), &top);
            assert_subset(
                "ManagementStatus",
                s["ManagementStatus"].as_dictionary().unwrap().keys().cloned(),
                &mgmt,
            );
        }
    }

    #[test]
    fn profiles_install_list_remove() {
        let item = allowed(
            "profile.list.yaml",
            &["ProfileList", "ProfileListItem"],
            &[
                "PayloadUUID",
                "PayloadIdentifier",
                "PayloadVersion",
                "PayloadDisplayName",
                "PayloadOrganization",
                "PayloadDescription",
                "PayloadRemovalDisallowed",
                "HasRemovalPasscode",
                "IsEncrypted",
                "SignerCertificates",
                "IsManaged",
                "Source",
                "PayloadContent",
            ],
        );
        let content = allowed(
            "profile.list.yaml",
            &["ProfileList", "ProfileListItem", "PayloadContent", "PayloadContentItem"],
            &[
                "PayloadType",
                "PayloadVersion",
                "PayloadIdentifier",
                "PayloadUUID",
                "PayloadDisplayName",
                "PayloadDescription",
                "PayloadOrganization",
            ],
        );
        let mut d = dev(DeviceKind::IPad);
        let wifi = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string><key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.wifi</string>
<key>PayloadUUID</key><string>AAAAAAAA-2222-4333-8444-555555555555</string>
<key>PayloadDisplayName</key><string>Wi-Fi</string>
<key>PayloadContent</key><array><dict>
<key>PayloadType</key><string>com.apple.wifi.managed</string><key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.wifi.1</string>
<key>PayloadUUID</key><string>BBBBBBBB-2222-4333-8444-555555555555</string>
<key>SSID_STR</key><string>Office</string></dict></array></dict></plist>"#;
        let a = answer(
            &mut d,
            &cmd(Some("InstallProfile"), &[("Payload", Value::Data(wifi.to_vec()))]),
        );
        assert_eq!(a.status, Status::Acknowledged, "{a:?}");
        assert!(a.keys.is_empty(), "InstallProfile has no response keys");
        // Same identifier again: replaced, not added.
        let a = answer(
            &mut d,
            &cmd(Some("InstallProfile"), &[("Payload", Value::Data(wifi.to_vec()))]),
        );
        assert_eq!(a.status, Status::Acknowledged);
        let a = answer(&mut d, &cmd(Some("ProfileList"), &[]));
        let list = a.keys["ProfileList"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        for p in list {
            let p = p.as_dictionary().unwrap();
            assert_subset("ProfileListItem", p.keys().cloned(), &item);
            for c in p["PayloadContent"].as_array().unwrap() {
                assert_subset(
                    "PayloadContentItem",
                    c.as_dictionary().unwrap().keys().cloned(),
                    &content,
                );
            }
        }
        // Garbage payload: Error with an ErrorChain.
        let a = answer(
            &mut d,
            &cmd(Some("InstallProfile"), &[("Payload", Value::Data(b"nope".to_vec()))]),
        );
        assert_eq!(a.status, Status::Error);
        assert!(a.keys["ErrorChain"].as_array().is_some());
        // Missing Payload: CommandFormatError.
        assert_eq!(
            answer(&mut d, &cmd(Some("InstallProfile"), &[])).status,
            Status::CommandFormatError
        );
        // Remove: known, then unknown.
        let a = answer(
            &mut d,
            &cmd(Some("RemoveProfile"), &[("Identifier", "com.example.wifi".into())]),
        );
        assert_eq!(a.status, Status::Acknowledged);
        let a = answer(
            &mut d,
            &cmd(Some("RemoveProfile"), &[("Identifier", "com.example.wifi".into())]),
        );
        assert_eq!(a.status, Status::Error);
        let e = a.keys["ErrorChain"].as_array().unwrap()[0].as_dictionary().unwrap();
        for k in [
            "ErrorCode",
            "ErrorDomain",
            "LocalizedDescription",
            "USEnglishDescription",
        ] {
            assert!(e.contains_key(k));
        }
        assert_eq!(d.profiles.len(), 1);
    }

    #[test]
    fn apps_settings_and_the_rest() {
        let app_keys = allowed(
            "application.installed.list.yaml",
            &["InstalledApplicationList", "InstalledApplicationListItem"],
            &[
                "Identifier",
                "ExternalVersionIdentifier",
                "DistributorIdentifier",
                "Version",
                "ShortVersion",
                "Name",
                "BundleSize",
                "DynamicSize",
                "IsValidated",
                "Installing",
                "AppStoreVendable",
                "DeviceBasedVPP",
                "BetaApp",
                "AdHocCodeSigned",
                "HasUpdateAvailable",
                "DownloadFailed",
                "DownloadWaiting",
                "DownloadPaused",
                "DownloadCancelled",
                "IsAppClip",
                "Source",
            ],
        );
        for kind in [DeviceKind::IPhone, DeviceKind::Mac] {
            let mut d = dev(kind);
            let a = answer(&mut d, &cmd(Some("InstalledApplicationList"), &[]));
            let list = a.keys["InstalledApplicationList"].as_array().unwrap();
            assert!(list.len() >= 5);
            for app in list {
                assert_subset(
                    "InstalledApplicationListItem",
                    app.as_dictionary().unwrap().keys().cloned(),
                    &app_keys,
                );
            }
            let a = answer(
                &mut d,
                &cmd(
                    Some("InstalledApplicationList"),
                    &[
                        ("Identifiers", Value::Array(vec!["com.apple.Pages".into()])),
                        ("Items", Value::Array(vec!["Name".into(), "Identifier".into()])),
                    ],
                ),
            );
            let list = a.keys["InstalledApplicationList"].as_array().unwrap();
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].as_dictionary().unwrap().len(), 2);
        }

        let settings_keys = allowed("settings.yaml", &["Settings"], &["Status", "ErrorChain", "Identifier"]);
        let mut d = dev(DeviceKind::IPad);
        let mut item = Dictionary::new();
        item.insert("Item".into(), "DeviceName".into());
        item.insert("DeviceName".into(), "Lab iPad 12".into());
        let a = answer(
            &mut d,
            &cmd(
                Some("Settings"),
                &[("Settings", Value::Array(vec![Value::Dictionary(item)]))],
            ),
        );
        assert_eq!(a.status, Status::Acknowledged);
        assert_eq!(d.name, "Lab iPad 12");
        for r in a.keys["Settings"].as_array().unwrap() {
            assert_subset(
                "Settings item",
                r.as_dictionary().unwrap().keys().cloned(),
                &settings_keys,
            );
        }
        let q = device_information(&d, Some(&["DeviceName".to_string()]));
        assert_eq!(q["DeviceName"].as_string(), Some("Lab iPad 12"));
        // An iPad has no data roaming: that item fails, per item.
        let mut item = Dictionary::new();
        item.insert("Item".into(), "DataRoaming".into());
        item.insert("Enabled".into(), true.into());
        let a = answer(
            &mut d,
            &cmd(
                Some("Settings"),
                &[("Settings", Value::Array(vec![Value::Dictionary(item)]))],
            ),
        );
        assert_eq!(a.status, Status::Error);
        assert_eq!(
            a.keys["Settings"].as_array().unwrap()[0].as_dictionary().unwrap()["Status"].as_string(),
            Some("Error")
        );

        for rt in ["DeviceConfigured", "DeviceLock", "RestartDevice"] {
            let a = answer(&mut d, &cmd(Some(rt), &[]));
            assert_eq!(a.status, Status::Acknowledged, "{rt}");
            assert!(a.keys.is_empty() && !a.erase);
        }
        let a = answer(&mut d, &cmd(Some("EraseDevice"), &[]));
        assert!(a.status == Status::Acknowledged && a.erase);

        let a = answer(&mut d, &cmd(Some("ShutDownDevice"), &[]));
        assert_eq!(a.status, Status::Error);
        let e = a.keys["ErrorChain"].as_array().unwrap()[0].as_dictionary().unwrap();
        assert_eq!(e["ErrorDomain"].as_string(), Some("MCMDMErrorDomain"));
        assert_eq!(e["ErrorCode"].as_signed_integer(), Some(12021));
        assert_eq!(e["LocalizedDescription"].as_string(), Some("Unknown command"));

        let a = answer(&mut d, &cmd(None, &[]));
        assert_eq!(a.status, Status::CommandFormatError);
        assert_eq!(a.command_uuid.as_deref(), Some("C0FFEE00-0000-4000-8000-000000000001"));
        assert_eq!(
            answer(&mut d, &Value::String("x".into())).status,
            Status::CommandFormatError
        );
    }

    #[test]
    fn not_now_rules() {
        for rt in ["DeviceLock", "EraseDevice", "DeviceInformation", "ProfileList"] {
            assert!(!may_not_now(rt), "{rt}");
        }
        for rt in ["InstallProfile", "Settings", "SecurityInfo", "RestartDevice"] {
            assert!(may_not_now(rt), "{rt}");
        }
    }

    #[test]
    fn the_yaml_reader_reads_the_yaml() {
        // Only meaningful where the schemas are checked out beside the repository.
        if yaml_dir().is_none() {
            eprintln!("shared/apple-device-management not found: embedded expectations used");
            return;
        }
        let k = yaml_keys("information.device.yaml", &["QueryResponses"]).unwrap();
        assert!(
            k.contains("UDID") && k.contains("BluetoothMAC") && k.len() > 50,
            "{k:?}"
        );
        let k = yaml_keys("profile.list.yaml", &["ProfileList", "ProfileListItem"]).unwrap();
        assert!(k.contains("PayloadUUID") && k.contains("IsManaged"), "{k:?}");
        let k = yaml_keys("settings.yaml", &["Settings"]).unwrap();
        assert_eq!(k, ["ErrorChain", "Identifier", "Status"].map(String::from).into());
    }
}
