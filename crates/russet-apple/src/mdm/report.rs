//! Command reports ("connect" requests): what a device `PUT`s to the server URL to say it is
//! idle or to report the outcome of a command, and the results it carries.
//!
//! [`decode_report`] reads the common keys (`Status`, `CommandUUID`, `ErrorChain`,
//! `RequestType` and the enrollment identifiers) and keeps the body as received, to be stored
//! verbatim. Command-specific results sit at the top level of the body
//! ([`Report::body`]); [`device_information`] and [`DeviceInventory`] read the result of a
//! `DeviceInformation` command.
//!
//! The server answers a report with the next command's plist, or HTTP 200 with an empty body
//! when nothing is queued (an empty body, not an empty plist).

use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};

use super::MdmError;
use super::checkin::{EnrollmentIds, EnrollmentRef};
use super::plist_util::{Fields, parse_dictionary};

/// The `Content-Type` devices send command reports with (`; charset=UTF-8` may follow, and
/// some tools send none at all: do not require it).
pub const REPORT_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm";

/// A report's `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// The command was carried out.
    Acknowledged,
    /// The command failed; see the error chain.
    Error,
    /// The device could not read the command.
    CommandFormatError,
    /// The device is asking for the next command (no `CommandUUID`).
    Idle,
    /// The device cannot run the command now (locked, busy); it must be sent again later.
    NotNow,
}

impl Status {
    /// Apple's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Acknowledged => "Acknowledged",
            Status::Error => "Error",
            Status::CommandFormatError => "CommandFormatError",
            Status::Idle => "Idle",
            Status::NotNow => "NotNow",
        }
    }

    /// The status of Apple's spelling (exact, case-sensitive).
    pub fn from_apple(name: &str) -> Option<Status> {
        [
            Status::Acknowledged,
            Status::Error,
            Status::CommandFormatError,
            Status::Idle,
            Status::NotNow,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// True when the command is done with (`Acknowledged`, `Error`, `CommandFormatError`) and
    /// leaves the queue; `NotNow` keeps it queued.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Acknowledged | Status::Error | Status::CommandFormatError)
    }
}

/// One entry of a report's `ErrorChain` (an `NSError` and its underlying errors, outermost
/// first). Every field is optional because devices and tools vary; the raw body keeps all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorChainItem {
    /// `ErrorCode`
    pub code: Option<i64>,
    /// `ErrorDomain`, e.g. `MCMDMErrorDomain`.
    pub domain: Option<String>,
    /// `LocalizedDescription`, in the device's language.
    pub localized_description: Option<String>,
    /// `USEnglishDescription`
    pub us_english_description: Option<String>,
}

/// A decoded command report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub ids: EnrollmentIds,
    /// The enrollment (channel) the report comes from.
    pub enrollment: EnrollmentRef,
    pub status: Status,
    /// The command reported on; always present unless the status is `Idle`.
    pub command_uuid: Option<String>,
    pub error_chain: Vec<ErrorChainItem>,
    /// `RequestType`, which some devices and tools echo.
    pub request_type: Option<String>,
    /// The whole body, with the command's results at its top level.
    pub body: Dictionary,
    /// The body exactly as received, to store verbatim.
    pub raw: Vec<u8>,
}

impl Report {
    /// The `QueryResponses` dictionary of a `DeviceInformation` result.
    pub fn query_responses(&self) -> Option<&Dictionary> {
        self.body.get("QueryResponses").and_then(Value::as_dictionary)
    }

    /// The inventory keys of a `DeviceInformation` result, when the report carries one.
    pub fn inventory(&self) -> Option<DeviceInventory> {
        self.query_responses().map(DeviceInventory::from_query_responses)
    }

    /// The error chain as one line for people, e.g.
    /// `MCMDMErrorDomain 12021: The command is not supported.`; None without an error chain.
    pub fn error_summary(&self) -> Option<String> {
        if self.error_chain.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .error_chain
            .iter()
            .map(|e| {
                let mut s = String::new();
                if let Some(d) = &e.domain {
                    s.push_str(d);
                }
                if let Some(c) = e.code {
                    if !s.is_empty() {
                        s.push(' ');
                    }
                    s.push_str(&c.to_string());
                }
                let text = e.us_english_description.as_ref().or(e.localized_description.as_ref());
                if let Some(t) = text {
                    if !s.is_empty() {
                        s.push_str(": ");
                    }
                    s.push_str(t);
                }
                s
            })
            .collect();
        Some(parts.join(" ← "))
    }
}

/// The `QueryResponses` dictionary of a `DeviceInformation` report, if it has one.
pub fn device_information(report: &Report) -> Option<Dictionary> {
    report.query_responses().cloned()
}

const CONTEXT: &str = "the command report";

/// Decodes a command report body (XML or binary plist).
///
/// Errors: [`MdmError::NotPlist`] / [`MdmError::NotDictionary`]; [`MdmError::MissingKey`]
/// without `Status`; [`MdmError::InvalidValue`] for a status Apple does not define;
/// [`MdmError::MissingCommandUuid`] for a status other than `Idle` without `CommandUUID`;
/// [`MdmError::WrongType`] naming the key; [`MdmError::NoEnrollmentId`].
pub fn decode_report(body: &[u8]) -> Result<Report, MdmError> {
    let dict = parse_dictionary(body)?;
    let f = Fields::new(&dict, CONTEXT);
    let status_text = f.req_string("Status")?;
    let status = Status::from_apple(&status_text).ok_or_else(|| {
        f.invalid(
            "Status",
            format!(
                "is \"{status_text}\", which is not one of Apple's statuses (Acknowledged, Error, \
                 CommandFormatError, Idle, NotNow)"
            ),
        )
    })?;
    let command_uuid = f.opt_nonempty_string("CommandUUID")?;
    if command_uuid.is_none() && status != Status::Idle {
        return Err(MdmError::MissingCommandUuid {
            status: status.as_str(),
        });
    }
    let request_type = f.opt_nonempty_string("RequestType")?;
    let mut error_chain = Vec::new();
    if let Some(items) = f.opt_array("ErrorChain")? {
        for (i, item) in items.iter().enumerate() {
            let context = format!("item {i} of the command report's ErrorChain");
            let Value::Dictionary(d) = item else {
                return Err(MdmError::WrongType {
                    context,
                    key: format!("ErrorChain[{i}]"),
                    expected: "<dictionary>",
                    found: super::plist_util::type_name(item),
                });
            };
            let fi = Fields::new(d, &context);
            error_chain.push(ErrorChainItem {
                code: fi.opt_integer("ErrorCode")?,
                domain: fi.opt_string("ErrorDomain")?,
                localized_description: fi.opt_string("LocalizedDescription")?,
                us_english_description: fi.opt_string("USEnglishDescription")?,
            });
        }
    }
    let ids = EnrollmentIds::from_dictionary(&dict, CONTEXT)?;
    let enrollment = ids.resolve()?;
    Ok(Report {
        ids,
        enrollment,
        status,
        command_uuid,
        error_chain,
        request_type,
        body: dict,
        raw: body.to_vec(),
    })
}

/// The inventory keys Russet keeps from a `DeviceInformation` result. Read leniently: a key
/// that is absent or of an unexpected type is `None`, so one odd value never loses the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInventory {
    pub udid: Option<String>,
    pub serial_number: Option<String>,
    pub device_name: Option<String>,
    /// `OSVersion`, e.g. `18.1`.
    pub os_version: Option<String>,
    /// `BuildVersion`, e.g. `22B83`.
    pub build_version: Option<String>,
    /// `ProductName`, e.g. `iPhone14,2` or `Mac14,3`.
    pub product_name: Option<String>,
    /// `Model`, e.g. `D16AP` or `MNEH3LL/A`.
    pub model: Option<String>,
    /// `ModelName`, e.g. `iPhone` or `MacBook Pro`.
    pub model_name: Option<String>,
    pub model_number: Option<String>,
    pub imei: Option<String>,
    pub meid: Option<String>,
    pub iccid: Option<String>,
    pub phone_number: Option<String>,
    pub wifi_mac: Option<String>,
    pub bluetooth_mac: Option<String>,
    pub ethernet_mac: Option<String>,
    pub is_supervised: Option<bool>,
    pub is_activation_lock_enabled: Option<bool>,
    /// Find My is on.
    pub is_device_locator_service_enabled: Option<bool>,
    pub is_mdm_lost_mode_enabled: Option<bool>,
    pub is_apple_silicon: Option<bool>,
    pub awaiting_configuration: Option<bool>,
    pub has_battery: Option<bool>,
    /// `BatteryLevel` from 0.0 to 1.0; None when absent or reported as unknown (negative).
    pub battery_level: Option<f64>,
    /// `DeviceCapacity`, in GB.
    pub device_capacity_gb: Option<f64>,
    /// `AvailableDeviceCapacity`, in GB.
    pub available_device_capacity_gb: Option<f64>,
    pub time_zone: Option<String>,
    /// macOS `LocalHostName`.
    pub local_host_name: Option<String>,
    /// macOS `HostName`.
    pub host_name: Option<String>,
}

impl DeviceInventory {
    /// Reads the inventory keys of a `QueryResponses` dictionary.
    pub fn from_query_responses(q: &Dictionary) -> DeviceInventory {
        let s = |k: &str| {
            q.get(k)
                .and_then(Value::as_string)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let b = |k: &str| q.get(k).and_then(Value::as_boolean);
        let r = |k: &str| match q.get(k) {
            Some(Value::Real(v)) if v.is_finite() => Some(*v),
            Some(Value::Integer(i)) => i.as_signed().map(|v| v as f64),
            _ => None,
        };
        DeviceInventory {
            udid: s("UDID"),
            serial_number: s("SerialNumber"),
            device_name: s("DeviceName"),
            os_version: s("OSVersion"),
            build_version: s("BuildVersion"),
            product_name: s("ProductName"),
            model: s("Model"),
            model_name: s("ModelName"),
            model_number: s("ModelNumber"),
            imei: s("IMEI"),
            meid: s("MEID"),
            iccid: s("ICCID"),
            phone_number: s("PhoneNumber"),
            wifi_mac: s("WiFiMAC"),
            bluetooth_mac: s("BluetoothMAC"),
            ethernet_mac: s("EthernetMAC"),
            is_supervised: b("IsSupervised"),
            is_activation_lock_enabled: b("IsActivationLockEnabled"),
            is_device_locator_service_enabled: b("IsDeviceLocatorServiceEnabled"),
            is_mdm_lost_mode_enabled: b("IsMDMLostModeEnabled"),
            is_apple_silicon: b("IsAppleSilicon"),
            awaiting_configuration: b("AwaitingConfiguration"),
            has_battery: b("HasBattery"),
            battery_level: r("BatteryLevel").filter(|v| *v >= 0.0),
            device_capacity_gb: r("DeviceCapacity"),
            available_device_capacity_gb: r("AvailableDeviceCapacity"),
            time_zone: s("TimeZone"),
            local_host_name: s("LocalHostName"),
            host_name: s("HostName"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(inner: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
             \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n{inner}</dict>\n</plist>\n"
        )
        .into_bytes()
    }

    const UDID: &str = "00008030-001A2B3C4D5E6F7A";

    #[test]
    fn idle_report() {
        let b = body(&format!(
            "\t<key>Status</key>\n\t<string>Idle</string>\n\t<key>UDID</key>\n\t<string>{UDID}</string>\n"
        ));
        let r = decode_report(&b).unwrap();
        assert_eq!(r.status, Status::Idle);
        assert_eq!(r.command_uuid, None);
        assert_eq!(r.enrollment.id, UDID);
        assert!(r.error_chain.is_empty());
        assert_eq!(r.raw, b);
        assert_eq!(r.inventory(), None);
        assert_eq!(r.error_summary(), None);
    }

    #[test]
    fn device_information_report() {
        let b = body(&format!(
            "<key>CommandUUID</key><string>0F6A3E0C-1D1B-4B7A-8E33-2B7D4C1A9F00</string>\
             <key>QueryResponses</key><dict>\
               <key>AvailableDeviceCapacity</key><real>87.5</real>\
               <key>BatteryLevel</key><real>0.82</real>\
               <key>BluetoothMAC</key><string>a4:83:e7:00:00:01</string>\
               <key>BuildVersion</key><string>22B83</string>\
               <key>DeviceCapacity</key><integer>128</integer>\
               <key>DeviceName</key><string>Bob&#39;s iPhone</string>\
               <key>IMEI</key><string>35 345678 901234 5</string>\
               <key>IsActivationLockEnabled</key><false/>\
               <key>IsSupervised</key><true/>\
               <key>Model</key><string>D16AP</string>\
               <key>ModelName</key><string>iPhone</string>\
               <key>OSVersion</key><string>18.1</string>\
               <key>ProductName</key><string>iPhone14,2</string>\
               <key>SerialNumber</key><string>F2LXK0ABCD12</string>\
               <key>UDID</key><string>{UDID}</string>\
               <key>WiFiMAC</key><string>a4:83:e7:00:00:02</string>\
               <key>MEID</key><integer>5</integer>\
             </dict>\
             <key>RequestType</key><string>DeviceInformation</string>\
             <key>Status</key><string>Acknowledged</string>\
             <key>UDID</key><string>{UDID}</string>"
        ));
        let r = decode_report(&b).unwrap();
        assert_eq!(r.status, Status::Acknowledged);
        assert!(r.status.is_final());
        assert_eq!(r.command_uuid.as_deref(), Some("0F6A3E0C-1D1B-4B7A-8E33-2B7D4C1A9F00"));
        assert_eq!(r.request_type.as_deref(), Some("DeviceInformation"));
        assert_eq!(device_information(&r).map(|d| d.len()), Some(17));
        let inv = r.inventory().unwrap();
        assert_eq!(inv.device_name.as_deref(), Some("Bob's iPhone"));
        assert_eq!(inv.serial_number.as_deref(), Some("F2LXK0ABCD12"));
        assert_eq!(inv.udid.as_deref(), Some(UDID));
        assert_eq!(inv.os_version.as_deref(), Some("18.1"));
        assert_eq!(inv.build_version.as_deref(), Some("22B83"));
        assert_eq!(inv.product_name.as_deref(), Some("iPhone14,2"));
        assert_eq!(inv.model.as_deref(), Some("D16AP"));
        assert_eq!(inv.model_name.as_deref(), Some("iPhone"));
        assert_eq!(inv.imei.as_deref(), Some("35 345678 901234 5"));
        assert_eq!(inv.wifi_mac.as_deref(), Some("a4:83:e7:00:00:02"));
        assert_eq!(inv.bluetooth_mac.as_deref(), Some("a4:83:e7:00:00:01"));
        assert_eq!(inv.is_supervised, Some(true));
        assert_eq!(inv.is_activation_lock_enabled, Some(false));
        assert_eq!(inv.battery_level, Some(0.82));
        assert_eq!(inv.device_capacity_gb, Some(128.0));
        assert_eq!(inv.available_device_capacity_gb, Some(87.5));
        // MEID of the wrong type is dropped, not fatal.
        assert_eq!(inv.meid, None);
        assert_eq!(inv.has_battery, None);
    }

    #[test]
    fn unknown_battery_level_is_none() {
        let mut q = Dictionary::new();
        q.insert("BatteryLevel".into(), Value::Real(-1.0));
        assert_eq!(DeviceInventory::from_query_responses(&q).battery_level, None);
    }

    #[test]
    fn error_report_with_chain() {
        let b = body(&format!(
            "<key>CommandUUID</key><string>C1</string>\
             <key>ErrorChain</key><array>\
               <dict><key>ErrorCode</key><integer>12021</integer><key>ErrorDomain</key><string>MCMDMErrorDomain</string>\
               <key>LocalizedDescription</key><string>Commande non prise en charge.</string>\
               <key>USEnglishDescription</key><string>The command is not supported.</string></dict>\
               <dict><key>ErrorCode</key><integer>-1</integer><key>ErrorDomain</key><string>NSPOSIXErrorDomain</string></dict>\
             </array>\
             <key>Status</key><string>Error</string><key>UDID</key><string>{UDID}</string>"
        ));
        let r = decode_report(&b).unwrap();
        assert_eq!(r.status, Status::Error);
        assert_eq!(
            r.error_chain,
            vec![
                ErrorChainItem {
                    code: Some(12021),
                    domain: Some("MCMDMErrorDomain".into()),
                    localized_description: Some("Commande non prise en charge.".into()),
                    us_english_description: Some("The command is not supported.".into()),
                },
                ErrorChainItem {
                    code: Some(-1),
                    domain: Some("NSPOSIXErrorDomain".into()),
                    ..Default::default()
                }
            ]
        );
        assert_eq!(
            r.error_summary().as_deref(),
            Some("MCMDMErrorDomain 12021: The command is not supported. ← NSPOSIXErrorDomain -1")
        );
    }

    #[test]
    fn not_now_and_format_error() {
        let r = decode_report(&body(
            "<key>CommandUUID</key><string>C2</string><key>Status</key><string>NotNow</string>\
             <key>EnrollmentID</key><string>EID</string>",
        ))
        .unwrap();
        assert_eq!(r.status, Status::NotNow);
        assert!(!r.status.is_final());
        assert_eq!(r.enrollment.id, "EID");

        let r = decode_report(&body(&format!(
            "<key>CommandUUID</key><string>C3</string><key>Status</key><string>CommandFormatError</string>\
             <key>UDID</key><string>{UDID}</string><key>UserID</key><string>GUID</string>"
        )))
        .unwrap();
        assert_eq!(r.status, Status::CommandFormatError);
        assert_eq!(r.enrollment.id, format!("{UDID}:GUID"));
    }

    #[test]
    fn bad_reports() {
        let e = decode_report(&body(&format!(
            "<key>Status</key><string>NotNow</string><key>UDID</key><string>{UDID}</string>"
        )))
        .unwrap_err();
        assert_eq!(e, MdmError::MissingCommandUuid { status: "NotNow" });
        assert!(e.to_string().contains("NotNow"), "{e}");

        let e = decode_report(&body(&format!("<key>UDID</key><string>{UDID}</string>"))).unwrap_err();
        assert_eq!(e.code(), "missing_key");
        assert!(e.to_string().contains("Status"), "{e}");

        let e = decode_report(&body(&format!(
            "<key>Status</key><string>Done</string><key>UDID</key><string>{UDID}</string>"
        )))
        .unwrap_err();
        assert_eq!(e.code(), "invalid_value");
        assert!(e.to_string().contains("\"Done\""), "{e}");

        let e = decode_report(&body("<key>Status</key><string>Idle</string>")).unwrap_err();
        assert_eq!(e, MdmError::NoEnrollmentId);

        let e = decode_report(&body(&format!(
            "<key>CommandUUID</key><integer>7</integer><key>Status</key><string>Acknowledged</string>\
             <key>UDID</key><string>{UDID}</string>"
        )))
        .unwrap_err();
        assert!(
            matches!(&e, MdmError::WrongType { key, .. } if key == "CommandUUID"),
            "{e:?}"
        );

        let e = decode_report(&body(&format!(
            "<key>CommandUUID</key><string>C</string><key>ErrorChain</key><array><string>x</string></array>\
             <key>Status</key><string>Error</string><key>UDID</key><string>{UDID}</string>"
        )))
        .unwrap_err();
        assert!(
            matches!(&e, MdmError::WrongType { key, .. } if key == "ErrorChain[0]"),
            "{e:?}"
        );

        assert_eq!(decode_report(b"").unwrap_err().code(), "not_plist");
        assert_eq!(
            decode_report(b"<plist><string>Idle</string></plist>").unwrap_err(),
            MdmError::NotDictionary { found: "<string>" }
        );
    }

    #[test]
    fn status_names() {
        for s in [
            Status::Acknowledged,
            Status::Error,
            Status::CommandFormatError,
            Status::Idle,
            Status::NotNow,
        ] {
            assert_eq!(Status::from_apple(s.as_str()), Some(s));
        }
        assert_eq!(Status::from_apple("acknowledged"), None);
    }
}
