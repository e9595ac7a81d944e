//! Check-in messages: what a device `PUT`s to the check-in URL (`Content-Type:
//! application/x-apple-aspen-mdm-checkin`) when it enrolls, refreshes its push token, leaves,
//! or asks for a token, and the bodies the server answers with.
//!
//! [`decode_checkin`] reads one message into a [`Checkin`]: its [`CheckinMessage`] (one
//! variant per `MessageType`), the enrollment identifiers it carries ([`EnrollmentIds`]) and
//! the enrollment they resolve to ([`EnrollmentRef`]), and the whole dictionary for storing.
//!
//! # Enrollment identifiers
//!
//! Every message names its enrollment with a few keys, resolved as follows:
//!
//! | keys present | [`EnrollmentKind`] | enrollment id | device channel id |
//! |---|---|---|---|
//! | `UDID` | `Device` | `UDID` | `UDID` |
//! | `UDID`, `UserID` | `User` (macOS user channel) | `UDID:UserID` | `UDID` |
//! | `UDID`, `UserID` = [`SHARED_IPAD_USER_ID`], `UserShortName` | `SharedIPadUser` | `UDID:UserShortName` | `UDID` |
//! | `EnrollmentID` | `UserEnrollmentDevice` | `EnrollmentID` | `EnrollmentID` |
//! | `EnrollmentID`, `EnrollmentUserID` | `UserEnrollmentUser` | `EnrollmentID:EnrollmentUserID` | `EnrollmentID` |
//!
//! `UDID` wins when both it and `EnrollmentID` are present. Empty values count as absent.
//! Each channel has its own push token and command queue; the user channel's parent is the
//! device channel.
//!
//! # Responses
//!
//! Most messages are answered with HTTP 200 and an empty body. The others:
//! `GetBootstrapToken` → [`bootstrap_token_response`]; `UserAuthenticate` without
//! `DigestResponse` → [`user_authenticate_accept`] (or HTTP 410 to refuse the user);
//! `GetToken` → [`get_token_response`]; `DeclarativeManagement` → the JSON of the declarative
//! management server. A server that wants a device to unenroll answers any request with
//! HTTP 403 and [`UNRECOGNIZED_DEVICE_BODY`] (never 401).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use plist::Dictionary;
use serde::{Deserialize, Serialize};

use super::MdmError;
use super::plist_util::{Fields, parse_dictionary};

/// The `UserID` of every Shared iPad user channel; the user is then named by `UserShortName`
/// (their Managed Apple Account).
pub const SHARED_IPAD_USER_ID: &str = "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF";

/// The `Content-Type` of check-in requests (devices may add parameters such as a charset).
pub const CHECKIN_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm-checkin";

/// The JSON body of an HTTP 403 that makes a device (iOS 17, macOS 14 and later) unenroll,
/// to be sent with `Content-Type: application/json`.
pub const UNRECOGNIZED_DEVICE_BODY: &str = r#"{"code":"com.apple.unrecognized.device"}"#;

/// The enrollment identification keys of a check-in message or command report. Empty strings
/// are read as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrollmentIds {
    /// `UDID`: the device, on device enrollments (absent on User Enrollment).
    pub udid: Option<String>,
    /// `EnrollmentID`: the device on a User Enrollment (changes with every enrollment).
    pub enrollment_id: Option<String>,
    /// `UserID`: the user of a macOS user channel (a GUID), or [`SHARED_IPAD_USER_ID`].
    pub user_id: Option<String>,
    /// `UserShortName`: the macOS short name, or the Shared iPad user's Managed Apple Account.
    pub user_short_name: Option<String>,
    /// `UserLongName`: the user's full name.
    pub user_long_name: Option<String>,
    /// `EnrollmentUserID`: the user of a User Enrollment's user channel (macOS).
    pub enrollment_user_id: Option<String>,
}

/// What kind of channel an enrollment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentKind {
    /// The device channel of a device enrollment (`UDID`).
    Device,
    /// A macOS user channel (`UDID` and `UserID`).
    User,
    /// A Shared iPad user (`UDID`, `UserID` = [`SHARED_IPAD_USER_ID`] and `UserShortName`).
    #[serde(rename = "shared_ipad_user")]
    SharedIPadUser,
    /// The device channel of a User Enrollment (`EnrollmentID`).
    UserEnrollmentDevice,
    /// The user channel of a User Enrollment (`EnrollmentID` and `EnrollmentUserID`).
    UserEnrollmentUser,
}

impl EnrollmentKind {
    /// The kind's snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentKind::Device => "device",
            EnrollmentKind::User => "user",
            EnrollmentKind::SharedIPadUser => "shared_ipad_user",
            EnrollmentKind::UserEnrollmentDevice => "user_enrollment_device",
            EnrollmentKind::UserEnrollmentUser => "user_enrollment_user",
        }
    }

    /// The kind named by [`as_str`](EnrollmentKind::as_str).
    pub fn from_name(name: &str) -> Option<EnrollmentKind> {
        [
            EnrollmentKind::Device,
            EnrollmentKind::User,
            EnrollmentKind::SharedIPadUser,
            EnrollmentKind::UserEnrollmentDevice,
            EnrollmentKind::UserEnrollmentUser,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// True for user channels, whose parent is a device channel.
    pub fn is_user_channel(self) -> bool {
        matches!(
            self,
            EnrollmentKind::User | EnrollmentKind::SharedIPadUser | EnrollmentKind::UserEnrollmentUser
        )
    }
}

/// The enrollment a message belongs to (see the module documentation for the rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnrollmentRef {
    /// The enrollment's id: the channel's command queue and push token belong to it.
    pub id: String,
    pub kind: EnrollmentKind,
    /// The device channel's id: `id` itself for a device channel, the parent for a user channel.
    pub device_id: String,
}

impl EnrollmentIds {
    /// Reads the identification keys of a message; a key of the wrong type is an error.
    pub fn from_dictionary(dict: &Dictionary, context: &str) -> Result<EnrollmentIds, MdmError> {
        let f = Fields::new(dict, context);
        Ok(EnrollmentIds {
            udid: f.opt_nonempty_string("UDID")?,
            enrollment_id: f.opt_nonempty_string("EnrollmentID")?,
            user_id: f.opt_nonempty_string("UserID")?,
            user_short_name: f.opt_nonempty_string("UserShortName")?,
            user_long_name: f.opt_nonempty_string("UserLongName")?,
            enrollment_user_id: f.opt_nonempty_string("EnrollmentUserID")?,
        })
    }

    /// The enrollment these identifiers name.
    ///
    /// Fails with [`MdmError::NoEnrollmentId`] when there is neither `UDID` nor
    /// `EnrollmentID`, and with [`MdmError::MissingKey`] for a Shared iPad user channel without
    /// `UserShortName`.
    pub fn resolve(&self) -> Result<EnrollmentRef, MdmError> {
        if let Some(udid) = &self.udid {
            let Some(user_id) = &self.user_id else {
                return Ok(EnrollmentRef {
                    id: udid.clone(),
                    kind: EnrollmentKind::Device,
                    device_id: udid.clone(),
                });
            };
            if user_id.eq_ignore_ascii_case(SHARED_IPAD_USER_ID) {
                let Some(short_name) = &self.user_short_name else {
                    return Err(MdmError::MissingKey {
                        context: "the message of a Shared iPad user (UserID FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF)"
                            .into(),
                        key: "UserShortName".into(),
                        expected: "<string>",
                    });
                };
                return Ok(EnrollmentRef {
                    id: format!("{udid}:{short_name}"),
                    kind: EnrollmentKind::SharedIPadUser,
                    device_id: udid.clone(),
                });
            }
            return Ok(EnrollmentRef {
                id: format!("{udid}:{user_id}"),
                kind: EnrollmentKind::User,
                device_id: udid.clone(),
            });
        }
        if let Some(enrollment_id) = &self.enrollment_id {
            return Ok(match &self.enrollment_user_id {
                None => EnrollmentRef {
                    id: enrollment_id.clone(),
                    kind: EnrollmentKind::UserEnrollmentDevice,
                    device_id: enrollment_id.clone(),
                },
                Some(user) => EnrollmentRef {
                    id: format!("{enrollment_id}:{user}"),
                    kind: EnrollmentKind::UserEnrollmentUser,
                    device_id: enrollment_id.clone(),
                },
            });
        }
        Err(MdmError::NoEnrollmentId)
    }
}

/// `TokenParameters` of a `GetToken` message (the watch pairing service needs all three).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenParameters {
    pub phone_udid: Option<String>,
    pub security_token: Option<String>,
    pub watch_udid: Option<String>,
}

/// One check-in message, by `MessageType`.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckinMessage {
    /// The first message of an enrollment. On iOS the hardware keys need the
    /// AllowQueryDeviceInformation right; User Enrollment never sends the serial, IMEI or MEID.
    Authenticate {
        /// The push certificate's topic the device will be pushed on.
        topic: String,
        serial_number: Option<String>,
        device_name: Option<String>,
        model: Option<String>,
        model_name: Option<String>,
        product_name: Option<String>,
        os_version: Option<String>,
        build_version: Option<String>,
        imei: Option<String>,
        meid: Option<String>,
    },
    /// A channel's push token, new or changed; the first one completes the enrollment.
    TokenUpdate {
        topic: String,
        /// The APNs device token.
        token: Vec<u8>,
        /// Sent back in every push (`{"mdm": PushMagic}`).
        push_magic: String,
        /// iOS: clears the passcode with `ClearPasscode`.
        unlock_token: Option<Vec<u8>>,
        /// The device waits in Setup Assistant for `DeviceConfigured`.
        awaiting_configuration: bool,
        /// macOS user channel: the user is not logged in at the console.
        not_on_console: bool,
    },
    /// The MDM profile was removed (sent only when the profile has `CheckOutWhenRemoved`).
    CheckOut { topic: String },
    /// macOS: the device escrows its bootstrap token; `None` clears the stored one.
    SetBootstrapToken {
        token: Option<Vec<u8>>,
        awaiting_configuration: bool,
    },
    /// macOS: the device asks for its escrowed bootstrap token.
    GetBootstrapToken { awaiting_configuration: bool },
    /// macOS user channel: a network or mobile user logs in. The first message has no
    /// `DigestResponse`; the second has the answer to the server's challenge.
    UserAuthenticate { digest_response: Option<String> },
    /// The device asks for a token of a service (`com.apple.maid`, `com.apple.watch.pairing`).
    GetToken {
        service_type: String,
        parameters: Option<TokenParameters>,
    },
    /// A declarative management request: `tokens`, `declaration-items`, `status`,
    /// `declaration/<type>/<id>`; `data` is the request's JSON when there is one.
    DeclarativeManagement { endpoint: String, data: Option<Vec<u8>> },
}

impl CheckinMessage {
    /// Apple's `MessageType` of this message.
    pub fn message_type(&self) -> &'static str {
        match self {
            CheckinMessage::Authenticate { .. } => "Authenticate",
            CheckinMessage::TokenUpdate { .. } => "TokenUpdate",
            CheckinMessage::CheckOut { .. } => "CheckOut",
            CheckinMessage::SetBootstrapToken { .. } => "SetBootstrapToken",
            CheckinMessage::GetBootstrapToken { .. } => "GetBootstrapToken",
            CheckinMessage::UserAuthenticate { .. } => "UserAuthenticate",
            CheckinMessage::GetToken { .. } => "GetToken",
            CheckinMessage::DeclarativeManagement { .. } => "DeclarativeManagement",
        }
    }
}

/// Every `MessageType` [`decode_checkin`] reads.
pub const MESSAGE_TYPES: &[&str] = &[
    "Authenticate",
    "TokenUpdate",
    "CheckOut",
    "SetBootstrapToken",
    "GetBootstrapToken",
    "UserAuthenticate",
    "GetToken",
    "DeclarativeManagement",
];

/// A decoded check-in message.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkin {
    /// The identification keys as sent.
    pub ids: EnrollmentIds,
    /// The enrollment they resolve to.
    pub enrollment: EnrollmentRef,
    pub message: CheckinMessage,
    /// The whole message, including keys not read here (to store, e.g. the last
    /// `Authenticate`).
    pub raw: Dictionary,
}

/// Decodes a check-in body (XML or binary plist).
///
/// Errors: [`MdmError::NotPlist`] / [`MdmError::NotDictionary`] for a body that is not a plist
/// dictionary; [`MdmError::MissingMessageType`]; [`MdmError::UnknownMessageType`];
/// [`MdmError::MissingKey`] / [`MdmError::WrongType`] / [`MdmError::InvalidValue`] naming the
/// key; [`MdmError::NoEnrollmentId`]. All are the sender's fault (HTTP 400). Keys Apple may add
/// later are ignored (they stay in [`Checkin::raw`]).
pub fn decode_checkin(body: &[u8]) -> Result<Checkin, MdmError> {
    let raw = parse_dictionary(body)?;
    let message_type = match raw.get("MessageType") {
        None => return Err(MdmError::MissingMessageType),
        Some(_) => Fields::new(&raw, "the check-in message").req_string("MessageType")?,
    };
    let context = match MESSAGE_TYPES.iter().find(|t| **t == message_type) {
        Some(t) => format!("the {t} message"),
        None => return Err(MdmError::UnknownMessageType { message_type }),
    };
    let f = Fields::new(&raw, &context);
    let message = match message_type.as_str() {
        "Authenticate" => CheckinMessage::Authenticate {
            topic: f.req_string("Topic")?,
            serial_number: f.opt_nonempty_string("SerialNumber")?,
            device_name: f.opt_nonempty_string("DeviceName")?,
            model: f.opt_nonempty_string("Model")?,
            model_name: f.opt_nonempty_string("ModelName")?,
            product_name: f.opt_nonempty_string("ProductName")?,
            os_version: f.opt_nonempty_string("OSVersion")?,
            build_version: f.opt_nonempty_string("BuildVersion")?,
            imei: f.opt_nonempty_string("IMEI")?,
            meid: f.opt_nonempty_string("MEID")?,
        },
        "TokenUpdate" => CheckinMessage::TokenUpdate {
            topic: f.req_string("Topic")?,
            token: f.req_data("Token")?,
            push_magic: f.req_string("PushMagic")?,
            unlock_token: f.opt_data("UnlockToken")?.filter(|t| !t.is_empty()),
            awaiting_configuration: f.opt_bool("AwaitingConfiguration")?.unwrap_or(false),
            not_on_console: f.opt_bool("NotOnConsole")?.unwrap_or(false),
        },
        "CheckOut" => CheckinMessage::CheckOut {
            topic: f.req_string("Topic")?,
        },
        "SetBootstrapToken" => CheckinMessage::SetBootstrapToken {
            token: f.opt_data("BootstrapToken")?.filter(|t| !t.is_empty()),
            awaiting_configuration: f.opt_bool("AwaitingConfiguration")?.unwrap_or(false),
        },
        "GetBootstrapToken" => CheckinMessage::GetBootstrapToken {
            awaiting_configuration: f.opt_bool("AwaitingConfiguration")?.unwrap_or(false),
        },
        "UserAuthenticate" => CheckinMessage::UserAuthenticate {
            digest_response: f.opt_nonempty_string("DigestResponse")?,
        },
        "GetToken" => CheckinMessage::GetToken {
            service_type: f.req_string("TokenServiceType")?,
            parameters: match f.opt_dictionary("TokenParameters")? {
                None => None,
                Some(p) => {
                    let pf = Fields::new(p, "the TokenParameters of the GetToken message");
                    Some(TokenParameters {
                        phone_udid: pf.opt_nonempty_string("PhoneUDID")?,
                        security_token: pf.opt_nonempty_string("SecurityToken")?,
                        watch_udid: pf.opt_nonempty_string("WatchUDID")?,
                    })
                }
            },
        },
        _ => CheckinMessage::DeclarativeManagement {
            endpoint: f.req_string("Endpoint")?,
            data: f.opt_data("Data")?.filter(|d| !d.is_empty()),
        },
    };
    let ids = EnrollmentIds::from_dictionary(&raw, &context)?;
    let enrollment = ids.resolve()?;
    Ok(Checkin {
        ids,
        enrollment,
        message,
        raw,
    })
}

const XML_HEADER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
    <plist version=\"1.0\">\n";

/// An XML plist of one dictionary with one key whose name needs no escaping.
fn one_key_plist(key: &str, value_xml: &str) -> Vec<u8> {
    format!("{XML_HEADER}<dict>\n\t<key>{key}</key>\n\t{value_xml}\n</dict>\n</plist>\n").into_bytes()
}

fn data_xml(bytes: &[u8]) -> String {
    format!("<data>{}</data>", STANDARD.encode(bytes))
}

/// The answer to `GetBootstrapToken`: the plist `{BootstrapToken: <data>}`, or an empty body
/// when no token is stored (HTTP 200 either way).
pub fn bootstrap_token_response(token: Option<&[u8]>) -> Vec<u8> {
    match token {
        Some(t) => one_key_plist("BootstrapToken", &data_xml(t)),
        None => Vec::new(),
    }
}

/// The answer to the first `UserAuthenticate` (no `DigestResponse`) that lets the user in
/// without a digest challenge: `{DigestChallenge: ""}`. To refuse the user, answer HTTP 410
/// instead. The second message (with `DigestResponse`) is answered with an empty body.
pub fn user_authenticate_accept() -> Vec<u8> {
    one_key_plist("DigestChallenge", "<string></string>")
}

/// The answer to `GetToken`: `{TokenData: <data>}` (a string token as its UTF-8 bytes).
pub fn get_token_response(token_data: &[u8]) -> Vec<u8> {
    one_key_plist("TokenData", &data_xml(token_data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plist::Value;

    const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
"#;
    const TAIL: &str = "</dict>\n</plist>\n";

    fn body(inner: &str) -> Vec<u8> {
        format!("{HEAD}{inner}{TAIL}").into_bytes()
    }

    const IPHONE_UDID: &str = "00008030-001A2B3C4D5E6F7A";
    const MAC_UDID: &str = "5C5AE4E2-6A83-5B4E-9D3C-29C1C9D37B10";

    #[test]
    fn iphone_authenticate() {
        let b = body(&format!(
            "\t<key>BuildVersion</key>\n\t<string>22B83</string>\n\
             \t<key>DeviceName</key>\n\t<string>Bob&#39;s iPhone</string>\n\
             \t<key>IMEI</key>\n\t<string>35 345678 901234 5</string>\n\
             \t<key>MEID</key>\n\t<string>35345678901234</string>\n\
             \t<key>MessageType</key>\n\t<string>Authenticate</string>\n\
             \t<key>Model</key>\n\t<string>D16AP</string>\n\
             \t<key>ModelName</key>\n\t<string>iPhone</string>\n\
             \t<key>OSVersion</key>\n\t<string>18.1</string>\n\
             \t<key>ProductName</key>\n\t<string>iPhone14,2</string>\n\
             \t<key>SerialNumber</key>\n\t<string>F2LXK0ABCD12</string>\n\
             \t<key>Topic</key>\n\t<string>com.apple.mgmt.External.8a3367bf-49d7-4dc3-ae41-c9de95f7b424</string>\n\
             \t<key>UDID</key>\n\t<string>{IPHONE_UDID}</string>\n"
        ));
        let c = decode_checkin(&b).unwrap();
        assert_eq!(
            c.enrollment,
            EnrollmentRef {
                id: IPHONE_UDID.into(),
                kind: EnrollmentKind::Device,
                device_id: IPHONE_UDID.into()
            }
        );
        assert_eq!(
            c.message,
            CheckinMessage::Authenticate {
                topic: "com.apple.mgmt.External.8a3367bf-49d7-4dc3-ae41-c9de95f7b424".into(),
                serial_number: Some("F2LXK0ABCD12".into()),
                device_name: Some("Bob's iPhone".into()),
                model: Some("D16AP".into()),
                model_name: Some("iPhone".into()),
                product_name: Some("iPhone14,2".into()),
                os_version: Some("18.1".into()),
                build_version: Some("22B83".into()),
                imei: Some("35 345678 901234 5".into()),
                meid: Some("35345678901234".into()),
            }
        );
        assert_eq!(c.message.message_type(), "Authenticate");
        assert_eq!(c.raw.len(), 12);
    }

    #[test]
    fn authenticate_needs_only_topic_and_an_id() {
        let b = body(&format!(
            "<key>MessageType</key><string>Authenticate</string>\
             <key>Topic</key><string>com.apple.mgmt.t</string><key>UDID</key><string>{MAC_UDID}</string>"
        ));
        let c = decode_checkin(&b).unwrap();
        match c.message {
            CheckinMessage::Authenticate {
                topic, serial_number, ..
            } => {
                assert_eq!(topic, "com.apple.mgmt.t");
                assert_eq!(serial_number, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mac_token_update_with_data_tokens() {
        // Token and UnlockToken as a Mac writes them: base64 split over lines inside <data>.
        let token = [0xA1u8; 32];
        let unlock = vec![7u8; 100];
        let unlock_b64 = STANDARD.encode(&unlock);
        let (l1, l2) = unlock_b64.split_at(60);
        let b = body(&format!(
            "<key>AwaitingConfiguration</key><true/>\
             <key>MessageType</key><string>TokenUpdate</string>\
             <key>PushMagic</key><string>7D2A5E5B-1C1A-4E4B-9F2D-3A5C6B7D8E9F</string>\
             <key>Token</key><data>\n\t{}\n\t</data>\
             <key>Topic</key><string>com.apple.mgmt.t</string>\
             <key>UDID</key><string>{MAC_UDID}</string>\
             <key>UnlockToken</key><data>\n\t{l1}\n\t{l2}\n\t</data>",
            STANDARD.encode(token)
        ));
        let c = decode_checkin(&b).unwrap();
        assert_eq!(
            c.message,
            CheckinMessage::TokenUpdate {
                topic: "com.apple.mgmt.t".into(),
                token: token.to_vec(),
                push_magic: "7D2A5E5B-1C1A-4E4B-9F2D-3A5C6B7D8E9F".into(),
                unlock_token: Some(unlock),
                awaiting_configuration: true,
                not_on_console: false,
            }
        );
        assert_eq!(c.enrollment.kind, EnrollmentKind::Device);
    }

    #[test]
    fn macos_user_channel_token_update() {
        let b = body(&format!(
            "<key>MessageType</key><string>TokenUpdate</string>\
             <key>NotOnConsole</key><true/>\
             <key>PushMagic</key><string>pm</string>\
             <key>Token</key><data>AAEC</data>\
             <key>Topic</key><string>com.apple.mgmt.t</string>\
             <key>UDID</key><string>{MAC_UDID}</string>\
             <key>UserID</key><string>B2A3C4D5-0000-4000-8000-00000000ABCD</string>\
             <key>UserLongName</key><string>Alice Martin</string>\
             <key>UserShortName</key><string>alice</string>"
        ));
        let c = decode_checkin(&b).unwrap();
        assert_eq!(
            c.enrollment,
            EnrollmentRef {
                id: format!("{MAC_UDID}:B2A3C4D5-0000-4000-8000-00000000ABCD"),
                kind: EnrollmentKind::User,
                device_id: MAC_UDID.into(),
            }
        );
        assert!(c.enrollment.kind.is_user_channel());
        assert_eq!(c.ids.user_long_name.as_deref(), Some("Alice Martin"));
        match c.message {
            CheckinMessage::TokenUpdate {
                not_on_console, token, ..
            } => {
                assert!(not_on_console);
                assert_eq!(token, vec![0, 1, 2]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shared_ipad_user_is_named_by_short_name() {
        let ids = EnrollmentIds {
            udid: Some("IPAD".into()),
            user_id: Some(SHARED_IPAD_USER_ID.into()),
            user_short_name: Some("alice@appleid.example.edu".into()),
            ..Default::default()
        };
        assert_eq!(
            ids.resolve().unwrap(),
            EnrollmentRef {
                id: "IPAD:alice@appleid.example.edu".into(),
                kind: EnrollmentKind::SharedIPadUser,
                device_id: "IPAD".into(),
            }
        );
        let lower = EnrollmentIds {
            user_id: Some(SHARED_IPAD_USER_ID.to_ascii_lowercase()),
            ..ids.clone()
        };
        assert_eq!(lower.resolve().unwrap().kind, EnrollmentKind::SharedIPadUser);

        let no_name = EnrollmentIds {
            user_short_name: None,
            ..ids
        };
        let e = no_name.resolve().unwrap_err();
        assert!(
            matches!(&e, MdmError::MissingKey { key, .. } if key == "UserShortName"),
            "{e:?}"
        );
        assert!(e.to_string().contains("Shared iPad"), "{e}");
    }

    #[test]
    fn user_enrollment_ids() {
        let device = EnrollmentIds {
            enrollment_id: Some("EID-1".into()),
            ..Default::default()
        };
        assert_eq!(
            device.resolve().unwrap(),
            EnrollmentRef {
                id: "EID-1".into(),
                kind: EnrollmentKind::UserEnrollmentDevice,
                device_id: "EID-1".into(),
            }
        );
        let user = EnrollmentIds {
            enrollment_user_id: Some("EUID-9".into()),
            ..device
        };
        assert_eq!(
            user.resolve().unwrap(),
            EnrollmentRef {
                id: "EID-1:EUID-9".into(),
                kind: EnrollmentKind::UserEnrollmentUser,
                device_id: "EID-1".into(),
            }
        );
        // UDID wins over EnrollmentID.
        let both = EnrollmentIds {
            udid: Some("U".into()),
            ..user
        };
        assert_eq!(both.resolve().unwrap().id, "U");
    }

    #[test]
    fn empty_ids_count_as_absent() {
        let b = body(
            "<key>MessageType</key><string>CheckOut</string><key>Topic</key><string>t</string>\
             <key>UDID</key><string></string><key>EnrollmentID</key><string>E</string>",
        );
        let c = decode_checkin(&b).unwrap();
        assert_eq!(c.ids.udid, None);
        assert_eq!(c.enrollment.kind, EnrollmentKind::UserEnrollmentDevice);
    }

    #[test]
    fn enrollment_kind_names_round_trip() {
        for k in [
            EnrollmentKind::Device,
            EnrollmentKind::User,
            EnrollmentKind::SharedIPadUser,
            EnrollmentKind::UserEnrollmentDevice,
            EnrollmentKind::UserEnrollmentUser,
        ] {
            assert_eq!(EnrollmentKind::from_name(k.as_str()), Some(k));
            let json = format!("\"{}\"", k.as_str());
            assert_eq!(serde_json::to_string(&k).unwrap(), json);
            assert_eq!(serde_json::from_str::<EnrollmentKind>(&json).unwrap(), k);
        }
        assert_eq!(EnrollmentKind::from_name("Device"), None);
    }

    #[test]
    fn checkout_and_bootstrap_tokens() {
        let c = decode_checkin(&body(&format!(
            "<key>MessageType</key><string>CheckOut</string><key>Topic</key><string>t</string>\
             <key>UDID</key><string>{MAC_UDID}</string>"
        )))
        .unwrap();
        assert_eq!(c.message, CheckinMessage::CheckOut { topic: "t".into() });

        let c = decode_checkin(&body(&format!(
            "<key>AwaitingConfiguration</key><false/><key>BootstrapToken</key><data>Ym9vdHN0cmFw</data>\
             <key>MessageType</key><string>SetBootstrapToken</string><key>UDID</key><string>{MAC_UDID}</string>"
        )))
        .unwrap();
        assert_eq!(
            c.message,
            CheckinMessage::SetBootstrapToken {
                token: Some(b"bootstrap".to_vec()),
                awaiting_configuration: false
            }
        );

        // Without a token: the device clears the escrowed one.
        let c = decode_checkin(&body(&format!(
            "<key>MessageType</key><string>SetBootstrapToken</string><key>UDID</key><string>{MAC_UDID}</string>"
        )))
        .unwrap();
        assert_eq!(
            c.message,
            CheckinMessage::SetBootstrapToken {
                token: None,
                awaiting_configuration: false
            }
        );

        let c = decode_checkin(&body(&format!(
            "<key>AwaitingConfiguration</key><true/><key>MessageType</key><string>GetBootstrapToken</string>\
             <key>UDID</key><string>{MAC_UDID}</string>"
        )))
        .unwrap();
        assert_eq!(
            c.message,
            CheckinMessage::GetBootstrapToken {
                awaiting_configuration: true
            }
        );
    }

    #[test]
    fn user_authenticate_first_and_second() {
        let first = decode_checkin(&body(&format!(
            "<key>MessageType</key><string>UserAuthenticate</string><key>UDID</key><string>{MAC_UDID}</string>\
             <key>UserID</key><string>GUID-1</string><key>UserLongName</key><string>Net User</string>\
             <key>UserShortName</key><string>net</string>"
        )))
        .unwrap();
        assert_eq!(
            first.message,
            CheckinMessage::UserAuthenticate { digest_response: None }
        );
        assert_eq!(first.enrollment.kind, EnrollmentKind::User);

        let second = decode_checkin(&body(&format!(
            "<key>DigestResponse</key><string>username=\"net\", nonce=\"n\"</string>\
             <key>MessageType</key><string>UserAuthenticate</string><key>UDID</key><string>{MAC_UDID}</string>\
             <key>UserID</key><string>GUID-1</string>"
        )))
        .unwrap();
        assert_eq!(
            second.message,
            CheckinMessage::UserAuthenticate {
                digest_response: Some("username=\"net\", nonce=\"n\"".into())
            }
        );
    }

    #[test]
    fn get_token_and_declarative_management() {
        let c = decode_checkin(&body(&format!(
            "<key>MessageType</key><string>GetToken</string>\
             <key>TokenParameters</key><dict><key>PhoneUDID</key><string>P</string>\
             <key>SecurityToken</key><string>S</string><key>WatchUDID</key><string>W</string></dict>\
             <key>TokenServiceType</key><string>com.apple.watch.pairing</string>\
             <key>UDID</key><string>{IPHONE_UDID}</string>"
        )))
        .unwrap();
        assert_eq!(
            c.message,
            CheckinMessage::GetToken {
                service_type: "com.apple.watch.pairing".into(),
                parameters: Some(TokenParameters {
                    phone_udid: Some("P".into()),
                    security_token: Some("S".into()),
                    watch_udid: Some("W".into()),
                }),
            }
        );

        let json = br#"{"StatusItems":{"device":{"identifier":{"udid":"x"}}},"Errors":[]}"#;
        let c = decode_checkin(&body(&format!(
            "<key>Data</key><data>{}</data><key>Endpoint</key><string>status</string>\
             <key>MessageType</key><string>DeclarativeManagement</string>\
             <key>EnrollmentID</key><string>EID</string>",
            STANDARD.encode(json)
        )))
        .unwrap();
        assert_eq!(
            c.message,
            CheckinMessage::DeclarativeManagement {
                endpoint: "status".into(),
                data: Some(json.to_vec())
            }
        );
    }

    #[test]
    fn binary_plist_is_accepted() {
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), Value::String("TokenUpdate".into()));
        d.insert("Topic".into(), Value::String("com.apple.mgmt.t".into()));
        d.insert("Token".into(), Value::Data(vec![9; 32]));
        d.insert("PushMagic".into(), Value::String("magic".into()));
        d.insert("EnrollmentID".into(), Value::String("EID".into()));
        let mut bin = Vec::new();
        plist::to_writer_binary(&mut bin, &Value::Dictionary(d)).unwrap();
        assert!(bin.starts_with(b"bplist"));
        let c = decode_checkin(&bin).unwrap();
        assert_eq!(c.enrollment.id, "EID");
        assert!(matches!(c.message, CheckinMessage::TokenUpdate { ref token, .. } if token == &vec![9; 32]));
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let e = decode_checkin(b"MessageType=Authenticate").unwrap_err();
        assert_eq!(e.code(), "not_plist");

        let e = decode_checkin(b"<plist><array><string>Authenticate</string></array></plist>").unwrap_err();
        assert_eq!(e, MdmError::NotDictionary { found: "<array>" });

        let e = decode_checkin(&body("<key>UDID</key><string>U</string>")).unwrap_err();
        assert_eq!(e, MdmError::MissingMessageType);

        let e = decode_checkin(&body(
            "<key>MessageType</key><string>Enroll</string><key>UDID</key><string>U</string>",
        ))
        .unwrap_err();
        assert_eq!(
            e,
            MdmError::UnknownMessageType {
                message_type: "Enroll".into()
            }
        );
        assert!(e.to_string().contains("\"Enroll\""), "{e}");

        let e = decode_checkin(&body(
            "<key>MessageType</key><integer>1</integer><key>UDID</key><string>U</string>",
        ))
        .unwrap_err();
        assert!(
            matches!(&e, MdmError::WrongType { key, expected: "<string>", found: "<integer>", .. } if key == "MessageType")
        );

        // Token as a string instead of data.
        let e = decode_checkin(&body(
            "<key>MessageType</key><string>TokenUpdate</string><key>PushMagic</key><string>pm</string>\
             <key>Token</key><string>ZmFrZVRva2Vu</string><key>Topic</key><string>t</string>\
             <key>UDID</key><string>U</string>",
        ))
        .unwrap_err();
        assert_eq!(
            e,
            MdmError::WrongType {
                context: "the TokenUpdate message".into(),
                key: "Token".into(),
                expected: "<data>",
                found: "<string>",
            }
        );
        assert_eq!(
            e.to_string(),
            "the TokenUpdate message: Token must be <data> but is <string>"
        );

        let e = decode_checkin(&body(
            "<key>MessageType</key><string>TokenUpdate</string><key>Token</key><data>AA==</data>\
             <key>Topic</key><string>t</string><key>UDID</key><string>U</string>",
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the TokenUpdate message has no PushMagic key; it is required and must be <string>"
        );

        // Neither UDID nor EnrollmentID.
        let e = decode_checkin(&body(
            "<key>MessageType</key><string>Authenticate</string><key>Topic</key><string>t</string>",
        ))
        .unwrap_err();
        assert_eq!(e, MdmError::NoEnrollmentId);

        let e = decode_checkin(&body(
            "<key>MessageType</key><string>Authenticate</string><key>Topic</key><string></string>\
             <key>UDID</key><string>U</string>",
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "the Authenticate message: Topic is empty");

        let e = decode_checkin(&body(
            "<key>MessageType</key><string>Authenticate</string><key>Topic</key><string>t</string>\
             <key>UDID</key><array/>",
        ))
        .unwrap_err();
        assert!(matches!(&e, MdmError::WrongType { key, .. } if key == "UDID"), "{e:?}");
        assert!(e.is_bad_request());
    }

    #[test]
    fn response_bodies_are_plists_of_the_right_shape() {
        assert!(bootstrap_token_response(None).is_empty());
        let b = bootstrap_token_response(Some(b"secret token"));
        let v: Value = plist::from_bytes(&b).unwrap();
        assert_eq!(
            v.as_dictionary()
                .and_then(|d| d.get("BootstrapToken"))
                .and_then(Value::as_data),
            Some(&b"secret token"[..])
        );
        assert_eq!(v.as_dictionary().map(Dictionary::len), Some(1));

        let v: Value = plist::from_bytes(&user_authenticate_accept()).unwrap();
        assert_eq!(
            v.as_dictionary()
                .and_then(|d| d.get("DigestChallenge"))
                .and_then(Value::as_string),
            Some("")
        );

        let v: Value = plist::from_bytes(&get_token_response(&[0, 255, 10])).unwrap();
        assert_eq!(
            v.as_dictionary()
                .and_then(|d| d.get("TokenData"))
                .and_then(Value::as_data),
            Some(&[0u8, 255, 10][..])
        );

        let j: serde_json::Value = serde_json::from_str(UNRECOGNIZED_DEVICE_BODY).unwrap();
        assert_eq!(j["code"], "com.apple.unrecognized.device");
    }
}
