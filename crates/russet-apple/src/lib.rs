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
//!
//! * [`mdm`]: the MDM protocol's plists: check-in messages and their answers, command
//!   reports, commands built from typed requests or validated from raw plists, and Apple's
//!   command schema as data.
//!
//! Later additions: SCEP, APNs, and Apps and Books.

pub mod dep;
pub mod mdm;
pub mod server_token;
