//! russet-apple: Apple's wire formats and the clients that speak them.
//!
//! This crate knows what Apple's files and protocols look like and nothing about Russet's
//! storage or HTTP server: no database, no web framework, no clock of its own (callers pass
//! times in). It holds:
//!
//! * [`server_token`]: Apple Business Manager server tokens (`.p7m`) and the key pair whose
//!   certificate is uploaded to ABM.
//! * [`dep`]: the device assignment (DEP / ADE) API client: OAuth session handshake, device
//!   fetch and sync, device details, disowning, and enrollment profiles. Being a network
//!   client, it is the exception to "no clock": it reads the system clock for OAuth timestamps
//!   and `Retry-After` dates and sleeps between retries.
//! * [`push_cert`]: the MDM push certificate: key and CSR, the vendor-signed request for
//!   Apple's portal, and reading the issued certificate's topic.
//! * [`apns`]: the APNs client for MDM pushes (HTTP/2, the push certificate as TLS client
//!   certificate), with Apple's answers sorted by what to do.
//! * [`scep`]: the SCEP certificate authority that issues each device its MDM identity:
//!   making the CA, answering GetCACaps and GetCACert, verifying and decrypting PKIOperation
//!   requests, issuing certificates and building the CertRep answers.
//! * [`mdm`]: the MDM protocol as the server sees it: check-in messages, command reports,
//!   commands (typed or raw, validated against Apple's schema as data), the identity behind
//!   a device's request, and the enrollment profile (`.mobileconfig`).
//! * [`vpp`]: Apps and Books (VPP): the `.vpptoken` file and the API v2 client (location and
//!   its claim by an MDM, assets, assignments, associate / disassociate / revoke and their
//!   event status). Like [`dep`], a network client that sleeps between retries and reads the
//!   system clock only for `Retry-After` dates; token expiry is judged with the caller's time.

pub mod apns;
mod ber;
pub mod dep;
mod dn;
pub mod mdm;
pub mod push_cert;
pub mod scep;
pub mod server_token;
pub mod vpp;
