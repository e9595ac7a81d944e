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
//! * [`signature`]: who is asking: the `Mdm-Signature` header (a detached CMS signature over
//!   the request body), the client certificate a TLS-terminating proxy forwards, and the check
//!   of a device identity certificate against Russet's SCEP certificate authority.
//! * [`machine_info`]: the signed MachineInfo a device in Setup Assistant sends for its
//!   Automated Device Enrollment profile.
//! * [`profile`]: the enrollment profile (`.mobileconfig`) a device installs to enroll, and its
//!   CMS signature.

pub mod checkin;
pub mod command;
mod error;
pub mod machine_info;
mod plist_util;
pub mod profile;
pub mod report;
pub mod schema;
pub mod signature;

pub use checkin::{
    Checkin, CheckinMessage, EnrollmentIds, EnrollmentKind, EnrollmentRef, TokenParameters, decode_checkin,
};
pub use command::{CommandRequest, RawCommand, new_command_uuid, validate_raw_command};
pub use error::{FieldErrors, MdmError};
pub use plist_util::MAX_DEPTH;
pub use profile::{
    EnrollmentProfileSpec, PROFILE_CONTENT_TYPE, ProfileError, ScepPayloadSpec, SpecProblem, build_enrollment_profile,
    sign_profile, unsign_profile,
};
pub use report::{DeviceInventory, ErrorChainItem, Report, Status, decode_report, device_information};
pub use signature::{
    DeviceCertificate, IdentityInfo, MdmIdentityError, SignatureVerifier, VerifierCounts, cert_sha256_hex,
    client_cert_from_header, verify_device_identity, verify_device_identity_with_intermediates, verify_mdm_signature,
};
