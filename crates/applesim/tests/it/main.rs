//! Integration tests of applesim over real HTTP on 127.0.0.1 (one test binary to keep links few).

mod activation;
mod admin;
mod apns;
mod common;
mod devices;
mod faults;
mod hostile;
mod interop;
mod portal;
mod profiles;
mod pushkit;
mod scale;
mod session;
mod token;
mod vpp;
