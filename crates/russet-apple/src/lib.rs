//! russet-apple: Apple's wire formats and the clients that speak them.
//!
//! This crate knows what Apple's files and protocols look like and nothing about Russet's
//! storage or HTTP server: no database, no web framework, no clock of its own (callers pass
//! times in). It holds:
//!
//! * [`server_token`]: Apple Business Manager server tokens (`.p7m`) and the key pair whose
//!   certificate is uploaded to ABM.
//!
//! Later additions: the device assignment (DEP) API client, MDM command and check-in plist
//! types, SCEP, APNs, and Apps and Books.

pub mod server_token;
