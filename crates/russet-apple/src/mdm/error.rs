//! The error of every MDM message decoder, builder and validator in [`crate::mdm`].

use std::collections::BTreeMap;
use std::fmt;

/// Problems found in a command, one message per field, keyed by the field's path: the JSON
/// field of a [`CommandRequest`](super::CommandRequest) (`pin`, `settings[0].device_name`) or
/// the plist key of a raw command (`Command.PIN`, `Command.Settings[1].Item`).
pub type FieldErrors = BTreeMap<String, String>;

/// Why an MDM message could not be decoded, built or accepted.
///
/// Messages name the key at fault, what was expected and what was found. Every variant but
/// [`Internal`](MdmError::Internal) is the sender's fault: a server answers it with HTTP 400
/// (never 401, which would make an enrolled device unenroll). [`code`](MdmError::code) is a
/// stable machine-readable name for each variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdmError {
    /// The body is empty, is not a plist at all, or is a damaged one.
    #[error(
        "the body is not a property list ({detail}): devices send XML plists; a tool sending MDM \
         messages must send an XML or binary plist"
    )]
    NotPlist { detail: String },

    /// The plist nests deeper, or expands to more values, than any MDM message could; it was
    /// refused before being read (see [`MAX_DEPTH`](super::MAX_DEPTH)).
    #[error("the plist {detail}; no MDM message comes close, so it was refused unread")]
    TooComplex { detail: String },

    /// The plist's top-level value is not a dictionary.
    #[error("the plist holds {found} at its top level where a dictionary was expected")]
    NotDictionary { found: &'static str },

    /// A check-in message without `MessageType`.
    #[error(
        "the check-in message has no MessageType key: the body is not an MDM check-in (a command \
         report belongs on the server URL, not the check-in URL)"
    )]
    MissingMessageType,

    /// A check-in `MessageType` Russet does not know.
    #[error(
        "the check-in MessageType \"{message_type}\" is not one Russet handles (Authenticate, \
         TokenUpdate, CheckOut, UserAuthenticate, SetBootstrapToken, GetBootstrapToken, GetToken, \
         DeclarativeManagement)"
    )]
    UnknownMessageType { message_type: String },

    /// A required key is absent.
    #[error("{context} has no {key} key; it is required and must be {expected}")]
    MissingKey {
        /// What was being read: "the Authenticate message", "the command report", …
        context: String,
        key: String,
        /// Apple's type name: `<string>`, `<data>`, …
        expected: &'static str,
    },

    /// A key holds a value of the wrong plist type.
    #[error("{context}: {key} must be {expected} but is {found}")]
    WrongType {
        context: String,
        key: String,
        expected: &'static str,
        found: &'static str,
    },

    /// A key has the right type but an unacceptable value.
    #[error("{context}: {key} {reason}")]
    InvalidValue {
        context: String,
        key: String,
        reason: String,
    },

    /// A message without any enrollment identifier: neither `UDID` (device enrollment) nor
    /// `EnrollmentID` (User Enrollment), or only empty ones.
    #[error(
        "the message names no enrollment: it has neither a UDID (device enrollment) nor an \
         EnrollmentID (User Enrollment), so it cannot be attributed to a device"
    )]
    NoEnrollmentId,

    /// A command report whose status requires a `CommandUUID` (every status but `Idle`) has none.
    #[error(
        "the command report has status {status} but no CommandUUID: only an Idle report may omit it, \
         so it is not known which command the report is about"
    )]
    MissingCommandUuid { status: &'static str },

    /// A command (JSON request or raw plist) failed validation; every problem is listed.
    #[error("{}", InvalidCommandMessage { request_type: request_type.as_deref(), fields })]
    InvalidCommand {
        /// The request type when it was known.
        request_type: Option<String>,
        fields: FieldErrors,
    },

    /// A command request that is not the JSON Russet accepts.
    #[error(
        "the command request is not valid JSON of a known shape ({detail}): send an object with \
         \"request_type\" (for example \"DeviceLock\") and that command's fields"
    )]
    Json { detail: String },

    /// A failure of Russet itself (random numbers, plist serialisation): not the sender's fault.
    #[error(
        "internal error while handling an MDM message ({detail}); this is a bug or a system problem, see the server log"
    )]
    Internal { detail: String },
}

struct InvalidCommandMessage<'a> {
    request_type: Option<&'a str>,
    fields: &'a FieldErrors,
}

impl fmt::Display for InvalidCommandMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.request_type {
            Some(rt) => write!(f, "the {rt} command is not valid")?,
            None => f.write_str("the command is not valid")?,
        }
        let mut sep = ": ";
        for (field, message) in self.fields {
            write!(f, "{sep}{field}: {message}")?;
            sep = "; ";
        }
        Ok(())
    }
}

impl MdmError {
    /// A stable, snake_case name of the variant, for API clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            MdmError::NotPlist { .. } => "not_plist",
            MdmError::TooComplex { .. } => "too_complex",
            MdmError::NotDictionary { .. } => "not_dictionary",
            MdmError::MissingMessageType => "missing_message_type",
            MdmError::UnknownMessageType { .. } => "unknown_message_type",
            MdmError::MissingKey { .. } => "missing_key",
            MdmError::WrongType { .. } => "wrong_type",
            MdmError::InvalidValue { .. } => "invalid_value",
            MdmError::NoEnrollmentId => "no_enrollment_id",
            MdmError::MissingCommandUuid { .. } => "missing_command_uuid",
            MdmError::InvalidCommand { .. } => "invalid_command",
            MdmError::Json { .. } => "invalid_json",
            MdmError::Internal { .. } => "internal",
        }
    }

    /// True when the sender is at fault (HTTP 400); false only for [`MdmError::Internal`].
    pub fn is_bad_request(&self) -> bool {
        !matches!(self, MdmError::Internal { .. })
    }

    /// The per-field problems of an [`InvalidCommand`](MdmError::InvalidCommand) error.
    pub fn field_errors(&self) -> Option<&FieldErrors> {
        match self {
            MdmError::InvalidCommand { fields, .. } => Some(fields),
            _ => None,
        }
    }
}
