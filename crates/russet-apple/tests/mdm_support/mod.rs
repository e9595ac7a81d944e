//! Shared by the MDM integration tests: finding command-line tools (with a loud skip when one
//! is missing), and making certificate authorities and device certificates with OpenSSL.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};

/// Says, visibly, that a test did not run and why (past the harness' output capture).
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {why} ***");
}

/// A command-line tool: the path in `env` when set, else `default` on PATH. `None` (after a
/// loud skip notice) when it cannot be run.
pub fn tool(test: &str, env: &str, default: &str, version_arg: &str, package: &str) -> Option<PathBuf> {
    let program = match std::env::var(env) {
        Ok(p) if !p.trim().is_empty() => PathBuf::from(p),
        _ => PathBuf::from(default),
    };
    let runs = Command::new(&program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        Some(program)
    } else {
        skip(
            test,
            &format!(
                "`{}` cannot be run (install the Debian package {package}, or set {env} to its path)",
                program.display()
            ),
        );
        None
    }
}

/// The openssl command line (`RUSSET_TEST_OPENSSL`, else `openssl`).
pub fn openssl_cli(test: &str) -> Option<PathBuf> {
    tool(test, "RUSSET_TEST_OPENSSL", "openssl", "version", "openssl")
}

/// Runs a tool and insists that it succeeds.
pub fn run(program: &Path, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes a file in `dir` and returns its path as a string.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write temporary file");
    path.to_str().expect("UTF-8 temporary path").to_owned()
}

/// A certificate with its key.
pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Issued {
    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().expect("certificate PEM")
    }
    pub fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().expect("key PEM")
    }
}

/// The extended key usage of a test certificate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Eku {
    ClientAuth,
    ServerAuthOnly,
    None,
}

/// What to make.
pub struct CertSpec<'a> {
    pub cn: &'a str,
    pub ca: bool,
    pub eku: Eku,
    /// Validity as Unix times.
    pub not_before: i64,
    pub not_after: i64,
}

/// 2024-01-01T00:00:00Z and 2044-01-01T00:00:00Z: a validity that covers every `now` the
/// tests use unless they mean otherwise.
pub const Y2024: i64 = 1_704_067_200;
pub const Y2044: i64 = 2_335_219_200;

pub fn ca_spec(cn: &str) -> CertSpec<'_> {
    CertSpec {
        cn,
        ca: true,
        eku: Eku::None,
        not_before: Y2024,
        not_after: Y2044,
    }
}

pub fn device_spec(cn: &str) -> CertSpec<'_> {
    CertSpec {
        cn,
        ca: false,
        eku: Eku::ClientAuth,
        not_before: Y2024,
        not_after: Y2044,
    }
}

/// The RSA-2048 key for a common name. RSA key generation is slow on a small machine, so keys
/// are made once per common name and test binary: certificates that must have different keys
/// need different common names.
fn rsa_key(cn: &str) -> PKey<Private> {
    static KEYS: OnceLock<Mutex<HashMap<String, PKey<Private>>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    if let Some(key) = keys.lock().expect("key cache").get(cn) {
        return key.clone();
    }
    let key = PKey::from_rsa(Rsa::generate(2048).expect("RSA key")).expect("PKey");
    keys.lock()
        .expect("key cache")
        .entry(cn.to_owned())
        .or_insert(key)
        .clone()
}

/// Makes a certificate, self-signed when `issuer` is `None`, with a fresh random serial number.
pub fn issue(spec: &CertSpec<'_>, issuer: Option<&Issued>) -> Issued {
    let key = rsa_key(spec.cn);
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("O", "Russet Test").expect("O");
    name.append_entry_by_text("CN", spec.cn).expect("CN");
    let name = name.build();

    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    let mut serial = BigNum::new().expect("bn");
    serial
        .rand(120, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .expect("serial");
    b.set_serial_number(&Asn1Integer::from_bn(&serial).expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    match issuer {
        Some(i) => b.set_issuer_name(i.cert.subject_name()).expect("issuer"),
        None => b.set_issuer_name(&name).expect("issuer"),
    }
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::from_unix(spec.not_before).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::from_unix(spec.not_after).expect("time"))
        .expect("not after");
    if spec.ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("bc");
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .digital_signature()
                .build()
                .expect("ku"),
        )
        .expect("ku");
    } else {
        b.append_extension(BasicConstraints::new().critical().build().expect("bc"))
            .expect("bc");
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()
                .expect("ku"),
        )
        .expect("ku");
    }
    match spec.eku {
        Eku::ClientAuth => b
            .append_extension(ExtendedKeyUsage::new().client_auth().build().expect("eku"))
            .expect("eku"),
        Eku::ServerAuthOnly => b
            .append_extension(ExtendedKeyUsage::new().server_auth().build().expect("eku"))
            .expect("eku"),
        Eku::None => {}
    }
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
        .expect("ski");
    b.append_extension(ski).expect("ski");
    if issuer.is_some() {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
            .expect("aki");
        b.append_extension(aki).expect("aki");
    }
    let signing_key = issuer.map_or(&key, |i| &i.key);
    b.sign(signing_key, MessageDigest::sha256()).expect("sign");
    Issued { cert: b.build(), key }
}
