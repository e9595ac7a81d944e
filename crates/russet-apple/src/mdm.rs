//! Apple's MDM protocol messages: what enrolled devices send Russet and the commands Russet
//! sends them, as plists, with no HTTP, storage or clock.
//!
//! * [`checkin`]: the check-in messages devices `PUT` to the check-in URL (`Authenticate`,
//!   `TokenUpdate`, `CheckOut`, bootstrap tokens, …), the enrollment identifiers every message
//!   carries and how they resolve to one enrollment (device or user channel), and the bodies
//!   the server answers with.
//! * [`report`]: the command reports ("connect" requests) devices `PUT` to the server URL:
//!   status, command UUID, error chain and the command's results, plus the inventory read
//!   from a `DeviceInformation` result.
//! * [`command`]: commands Russet sends: a typed [`CommandRequest`] (the admin API's JSON)
//!   built into the command plist, and the validation of raw command plists written by an
//!   administrator.
//! * [`schema`]: Apple's MDM command request types and their keys as Rust data, used to
//!   validate every command before it is queued.
//!
//! Plists are accepted as XML (what devices send) or binary. Every failure is an [`MdmError`]
//! that says which key was wrong and how.

pub mod checkin;
pub mod command;
mod error;
mod plist_util;
pub mod report;
pub mod schema;

pub use checkin::{
    Checkin, CheckinMessage, EnrollmentIds, EnrollmentKind, EnrollmentRef, TokenParameters, decode_checkin,
};
pub use command::{CommandRequest, RawCommand, new_command_uuid, validate_raw_command};
pub use error::{FieldErrors, MdmError};
pub use plist_util::MAX_DEPTH;
pub use report::{DeviceInventory, ErrorChainItem, Report, Status, decode_report, device_information};
