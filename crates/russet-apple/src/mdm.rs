//! The MDM protocol as the server sees it (Apple: "Device Management").
//!
//! * [`signature`]: who is asking: the `Mdm-Signature` header (a detached CMS signature over
//!   the request body), the client certificate a TLS-terminating proxy forwards, and the check
//!   of a device identity certificate against Russet's SCEP certificate authority.
//! * [`profile`]: the enrollment profile (`.mobileconfig`) a device installs to enroll, and its
//!   CMS signature.

pub mod profile;
pub mod signature;

pub use profile::{
    EnrollmentProfileSpec, PROFILE_CONTENT_TYPE, ProfileError, ScepPayloadSpec, SpecProblem, build_enrollment_profile,
    sign_profile, unsign_profile,
};
pub use signature::{
    IdentityInfo, MdmIdentityError, cert_sha256_hex, client_cert_from_header, verify_device_identity,
    verify_device_identity_with_intermediates, verify_mdm_signature,
};
