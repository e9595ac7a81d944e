//! Server token parsing and decryption against a real Apple token, tokens made by the
//! `openssl` command line, and hostile input.
//!
//! Secret values are never printed: assertions on them use fixed messages.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::asn1::Asn1Time;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use russet_apple::server_token::{
    ContentCipher, EncryptedServerToken, FileFormat, MAX_FILE_SIZE, ServerToken, ServerTokenError, TokenKeyPair,
    generate_key_pair, load_key_pair,
};
use secrecy::ExposeSecret;
use time::OffsetDateTime;
use time::macros::datetime;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/abm-server-token/"
);
const APPLE_TOKEN: &str = "apple-mdm-client-tests-1-server-token.p7m";
const APPLE_KEY: &str = "apple-mdm-client-tests-1.pem";
const APPLE_CERT: &str = "apple-mdm-client-tests-1.crt";

// ---------------------------------------------------------------------------------------
// Helpers

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {path}: {e}"))
}

fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("fixture is text")
}

fn apple_pair() -> (PKey<Private>, X509) {
    load_key_pair(&fixture_text(APPLE_KEY), &fixture_text(APPLE_CERT)).expect("fixture key pair")
}

fn to_lf(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8(bytes.to_vec())
        .expect("text")
        .replace("\r\n", "\n")
        .into_bytes()
}

fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8(to_lf(bytes))
        .expect("text")
        .replace('\n', "\r\n")
        .into_bytes()
}

/// The base64 body of an S/MIME file (everything after the first blank line).
fn smime_body(file: &[u8]) -> String {
    let text = String::from_utf8(to_lf(file)).expect("text");
    let (_, body) = text.split_once("\n\n").expect("S/MIME file has a blank line");
    body.to_owned()
}

fn smime_der(file: &[u8]) -> Vec<u8> {
    let body: String = smime_body(file).split_whitespace().collect();
    B64.decode(body).expect("valid base64 body")
}

fn wrap64(der: &[u8]) -> String {
    let encoded = B64.encode(der);
    let mut out = String::new();
    for chunk in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("ascii"));
        out.push('\n');
    }
    out
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    format!("-----BEGIN {label}-----\n{}-----END {label}-----\n", wrap64(der)).into_bytes()
}

/// Checks the decrypted Apple token without ever showing a secret.
fn check_apple_token(token: &ServerToken) {
    assert!(
        token.consumer_key.starts_with("CK_"),
        "consumer_key does not start with CK_"
    );
    assert!(
        token.consumer_secret.expose_secret().starts_with("CS_"),
        "consumer_secret does not start with CS_"
    );
    assert!(
        token.access_token.expose_secret().starts_with("AT_"),
        "access_token does not start with AT_"
    );
    assert!(
        token.access_secret.expose_secret().starts_with("AS_"),
        "access_secret does not start with AS_"
    );
    assert_eq!(token.access_token_expiry, datetime!(2026-01-17 11:02:21 UTC));
}

fn apple_expectations(parsed: &EncryptedServerToken) {
    assert_eq!(parsed.content_cipher(), &ContentCipher::Aes128Cbc);
    assert_eq!(parsed.content_cipher().name(), "AES-128-CBC");
    let recipients = parsed.recipients();
    assert_eq!(recipients.len(), 1);
    assert_eq!(recipients[0].serial, "70FEDDC7D5AFA393");
    assert!(
        recipients[0].issuer.contains("CN=apple-mdm-client-tests"),
        "{}",
        recipients[0].issuer
    );
}

/// A minimal xorshift generator: reproducible "random" input without another dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("fits")).expect("fits")
    }
}

fn now() -> OffsetDateTime {
    datetime!(2026-03-01 12:00:00 UTC)
}

fn new_pair(cn: &str) -> (TokenKeyPair, PKey<Private>, X509) {
    let pair = generate_key_pair(cn, now(), 3650).expect("generate_key_pair");
    let (key, cert) = load_key_pair(pair.private_key_pem.expose_secret(), &pair.certificate_pem).expect("load");
    (pair, key, cert)
}

/// Encrypts `payload` for `cert` with the openssl crate (DER, definite lengths).
fn encrypt_in_process(cert: &X509, payload: &[u8], cipher: Cipher) -> Vec<u8> {
    let mut certs = Stack::new().expect("stack");
    certs.push(cert.clone()).expect("push");
    CmsContentInfo::encrypt(&certs, payload, cipher, CMSOptions::BINARY)
        .expect("encrypt")
        .to_der()
        .expect("der")
}

fn apple_payload(json: &str) -> Vec<u8> {
    format!(
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
         -----BEGIN MESSAGE-----\n{json}\n-----END MESSAGE-----\n"
    )
    .into_bytes()
}

const SAMPLE_JSON: &str = r#"{"consumer_key":"CK_0123abcd","consumer_secret":"CS_s3cr3t","access_token":"AT_O123O456O789","access_secret":"AS_an0ther","access_token_expiry":"2027-02-03T04:05:06Z"}"#;

fn check_sample(token: &ServerToken) {
    assert_eq!(token.consumer_key, "CK_0123abcd");
    assert!(
        token.consumer_secret.expose_secret() == "CS_s3cr3t",
        "consumer_secret differs"
    );
    assert!(
        token.access_token.expose_secret() == "AT_O123O456O789",
        "access_token differs"
    );
    assert!(
        token.access_secret.expose_secret() == "AS_an0ther",
        "access_secret differs"
    );
    assert_eq!(token.access_token_expiry, datetime!(2027-02-03 04:05:06 UTC));
}

fn openssl_cli_available(test: &str) -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test} (openssl command line not found; install the openssl package)"
        );
    }
    found
}

fn run_openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path.to_str().expect("utf-8 path").to_owned()
}

// ---------------------------------------------------------------------------------------
// 1. The real Apple token

#[test]
fn real_apple_token_decrypts() {
    let (key, cert) = apple_pair();
    let file = fixture(APPLE_TOKEN);
    let parsed = EncryptedServerToken::parse(&file).expect("parse");
    assert_eq!(parsed.format(), FileFormat::Smime);
    assert_eq!(parsed.format().as_str(), "smime");
    apple_expectations(&parsed);
    assert!(parsed.is_for(&cert));
    check_apple_token(&parsed.decrypt(&key, &cert).expect("decrypt"));
}

#[test]
fn real_apple_token_in_every_form() {
    let (key, cert) = apple_pair();
    let file = fixture(APPLE_TOKEN);
    let der = smime_der(&file);
    let body = smime_body(&file);
    let lf = to_lf(&file);

    // Headers reordered, the x- media type, and no Content-Disposition/Description.
    let reordered = format!(
        "Content-Transfer-Encoding: base64\r\nContent-Type: application/x-pkcs7-mime; smime-type=enveloped-data\r\n\r\n{}",
        body.replace('\n', "\r\n")
    );
    let forms: Vec<(&str, Vec<u8>, FileFormat)> = vec![
        ("CRLF", to_crlf(&file), FileFormat::Smime),
        ("LF", lf.clone(), FileFormat::Smime),
        ("reordered headers", reordered.into_bytes(), FileFormat::Smime),
        ("DER", der.clone(), FileFormat::Der),
        ("PEM PKCS7", pem("PKCS7", &der), FileFormat::Pem),
        ("PEM CMS CRLF", to_crlf(&pem("CMS", &der)), FileFormat::Pem),
        ("bare base64", body.clone().into_bytes(), FileFormat::Base64),
        (
            "bare base64 one line",
            B64.encode(&der).into_bytes(),
            FileFormat::Base64,
        ),
        ("bare base64 CRLF", to_crlf(body.as_bytes()), FileFormat::Base64),
    ];
    for (name, bytes, format) in forms {
        let parsed = EncryptedServerToken::parse(&bytes).unwrap_or_else(|e| panic!("{name}: parse failed: {e}"));
        assert_eq!(parsed.format(), format, "{name}");
        apple_expectations(&parsed);
        let token = parsed
            .decrypt(&key, &cert)
            .unwrap_or_else(|e| panic!("{name}: decrypt failed: {e}"));
        check_apple_token(&token);
    }
}

#[test]
fn real_apple_token_json_round_trips() {
    let (key, cert) = apple_pair();
    let token = EncryptedServerToken::parse(&fixture(APPLE_TOKEN))
        .expect("parse")
        .decrypt(&key, &cert)
        .expect("decrypt");
    let json = token.to_json();
    assert!(
        json.expose_secret()
            .ends_with(r#","access_token_expiry":"2026-01-17T11:02:21Z"}"#),
        "canonical JSON does not end with the expiry"
    );
    assert!(
        json.expose_secret().starts_with(r#"{"consumer_key":"CK_"#),
        "canonical JSON does not start with consumer_key"
    );
    let again = ServerToken::from_message(json.expose_secret().as_bytes()).expect("round trip");
    check_apple_token(&again);
    assert_eq!(again.consumer_key, token.consumer_key);
    assert!(
        again.consumer_secret.expose_secret() == token.consumer_secret.expose_secret()
            && again.access_token.expose_secret() == token.access_token.expose_secret()
            && again.access_secret.expose_secret() == token.access_secret.expose_secret(),
        "secrets differ after the JSON round trip"
    );
}

#[test]
fn debug_output_redacts_secrets() {
    let (key, cert) = apple_pair();
    let token = EncryptedServerToken::parse(&fixture(APPLE_TOKEN))
        .expect("parse")
        .decrypt(&key, &cert)
        .expect("decrypt");
    let debug = format!("{token:?}");
    for (name, secret) in [
        ("consumer_secret", token.consumer_secret.expose_secret()),
        ("access_token", token.access_token.expose_secret()),
        ("access_secret", token.access_secret.expose_secret()),
    ] {
        assert!(!debug.contains(secret), "Debug output shows {name}");
    }
    assert!(debug.contains("REDACTED"), "Debug output does not say REDACTED");
    assert!(debug.contains("CK_"), "Debug output lacks the consumer key");

    let (pair, _, _) = new_pair("russet-debug");
    let debug = format!("{pair:?}");
    assert!(
        !debug.contains("PRIVATE KEY"),
        "TokenKeyPair Debug shows the private key"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Tokens made with the openssl command line

struct Payload {
    name: &'static str,
    bytes: Vec<u8>,
}

fn payloads() -> Vec<Payload> {
    vec![
        Payload {
            name: "Apple layout",
            bytes: apple_payload(SAMPLE_JSON),
        },
        Payload {
            name: "all LF",
            bytes: to_lf(&apple_payload(SAMPLE_JSON)),
        },
        Payload {
            name: "no MESSAGE lines",
            bytes: format!(
                "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{SAMPLE_JSON}\r\n"
            )
            .into_bytes(),
        },
        Payload {
            name: "bare JSON",
            bytes: SAMPLE_JSON.as_bytes().to_vec(),
        },
    ]
}

#[test]
fn openssl_cli_tokens_decrypt() {
    if !openssl_cli_available("openssl_cli_tokens_decrypt") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (pair, key, cert) = new_pair("russet-ade-3");
    let cert_path = write(dir.path(), "cert.pem", pair.certificate_pem.as_bytes());
    let ciphers = [
        ("-aes128", ContentCipher::Aes128Cbc),
        ("-aes192", ContentCipher::Aes192Cbc),
        ("-aes256", ContentCipher::Aes256Cbc),
        ("-des3", ContentCipher::DesEde3Cbc),
    ];
    // (command, extra arguments, expected format)
    let forms: [(&str, &[&str], FileFormat); 4] = [
        ("smime", &["-stream"], FileFormat::Smime),
        ("smime", &["-outform", "DER"], FileFormat::Der),
        ("smime", &["-outform", "PEM"], FileFormat::Pem),
        ("cms", &["-outform", "PEM"], FileFormat::Pem),
    ];
    let mut checked = 0;
    for payload in payloads() {
        let in_path = write(dir.path(), "payload", &payload.bytes);
        for (flag, cipher) in &ciphers {
            for (command, extra, format) in &forms {
                let out_path = dir.path().join("token.out");
                let out = out_path.to_str().expect("utf-8 path");
                let mut args = vec![*command, "-encrypt", "-binary", flag, "-in", &in_path];
                args.extend_from_slice(extra);
                args.extend_from_slice(&["-out", out, &cert_path]);
                run_openssl(&args);
                let file = std::fs::read(&out_path).expect("read output");
                let what = format!("{} / {flag} / {command} {extra:?}", payload.name);

                let parsed = EncryptedServerToken::parse(&file).unwrap_or_else(|e| panic!("{what}: parse failed: {e}"));
                assert_eq!(parsed.format(), *format, "{what}");
                assert_eq!(parsed.content_cipher(), cipher, "{what}");
                assert_eq!(parsed.recipients().len(), 1, "{what}");
                assert_eq!(parsed.recipients()[0].issuer, "CN=russet-ade-3, O=Russet", "{what}");
                let serial = cert.serial_number().to_bn().expect("bn").to_hex_str().expect("hex");
                assert_eq!(parsed.recipients()[0].serial, serial.to_string(), "{what}");
                assert!(parsed.is_for(&cert), "{what}");

                let token = parsed
                    .decrypt(&key, &cert)
                    .unwrap_or_else(|e| panic!("{what}: decrypt failed: {e}"));
                check_sample(&token);
                let again = ServerToken::from_message(token.to_json().expose_secret().as_bytes())
                    .unwrap_or_else(|e| panic!("{what}: JSON round trip failed: {e}"));
                check_sample(&again);

                if *format == FileFormat::Smime {
                    // The body alone, as bare base64, and as raw BER (indefinite lengths).
                    let der = smime_der(&file);
                    assert_eq!(&der[..2], &[0x30, 0x80], "{what}: -stream should give BER");
                    for (bytes, format) in [
                        (smime_body(&file).into_bytes(), FileFormat::Base64),
                        (der, FileFormat::Der),
                    ] {
                        let parsed = EncryptedServerToken::parse(&bytes).expect("parse body");
                        assert_eq!(parsed.format(), format, "{what}");
                        check_sample(&parsed.decrypt(&key, &cert).expect("decrypt body"));
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * 4 * 4);
}

#[test]
fn openssl_cli_signed_message_is_not_enveloped() {
    if !openssl_cli_available("openssl_cli_signed_message_is_not_enveloped") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (pair, _, _) = new_pair("russet-signer");
    let cert_path = write(dir.path(), "cert.pem", pair.certificate_pem.as_bytes());
    let key_path = write(dir.path(), "key.pem", pair.private_key_pem.expose_secret().as_bytes());
    let in_path = write(dir.path(), "payload", SAMPLE_JSON.as_bytes());
    let out_path = dir.path().join("signed.out");
    let out = out_path.to_str().expect("utf-8 path");
    let variants: [&[&str]; 3] = [
        &["-nodetach"],                    // application/pkcs7-mime; smime-type=signed-data
        &[],                               // multipart/signed with a detached signature
        &["-nodetach", "-outform", "DER"], // raw DER
    ];
    for extra in variants {
        let mut args = vec![
            "smime", "-sign", "-in", &in_path, "-signer", &cert_path, "-inkey", &key_path, "-out", out,
        ];
        args.extend_from_slice(extra);
        run_openssl(&args);
        let file = std::fs::read(&out_path).expect("read");
        match EncryptedServerToken::parse(&file) {
            Err(ServerTokenError::NotEnvelopedData { content_type }) => {
                assert!(content_type.contains("signed"), "{extra:?}: {content_type}");
            }
            other => panic!("{extra:?}: expected NotEnvelopedData, got {other:?}"),
        }
    }
}

#[test]
fn payload_layouts_parse() {
    for payload in payloads() {
        let token = ServerToken::from_message(&payload.bytes).unwrap_or_else(|e| panic!("{}: {e}", payload.name));
        check_sample(&token);
    }
    // The same through the in-process encryption (DER, definite lengths).
    let (_, key, cert) = new_pair("russet-layouts");
    for payload in payloads() {
        let der = encrypt_in_process(&cert, &payload.bytes, Cipher::aes_256_cbc());
        let parsed = EncryptedServerToken::parse(&der).expect("parse");
        assert_eq!(parsed.content_cipher(), &ContentCipher::Aes256Cbc);
        check_sample(&parsed.decrypt(&key, &cert).expect("decrypt"));
    }
}

#[test]
fn message_edge_cases() {
    // Extra keys are ignored, fractional seconds and offsets are normalised to whole-second UTC.
    let json = r#"{"consumer_key":"CK_1","consumer_secret":"CS_1","access_token":"AT_1","access_secret":"AS_1","access_token_expiry":"2026-01-17T12:02:21.75+01:00","extra":1}"#;
    let token = ServerToken::from_message(json.as_bytes()).expect("parse");
    assert_eq!(token.access_token_expiry, datetime!(2026-01-17 11:02:21 UTC));
    assert_eq!(token.access_token_expiry.offset(), time::UtcOffset::UTC);
    let canonical = token.to_json();
    assert!(
        canonical.expose_secret()
            == r#"{"consumer_key":"CK_1","consumer_secret":"CS_1","access_token":"AT_1","access_secret":"AS_1","access_token_expiry":"2026-01-17T11:02:21Z"}"#,
        "canonical JSON differs from the expected form"
    );
    // JSON escapes survive the round trip.
    let json = r#"{"consumer_key":"CK_\"q\"\\","consumer_secret":"CS_\u00e9","access_token":"AT_1","access_secret":"AS_1","access_token_expiry":"2026-01-17T11:02:21Z"}"#;
    let token = ServerToken::from_message(json.as_bytes()).expect("parse");
    assert_eq!(token.consumer_key, "CK_\"q\"\\");
    let again = ServerToken::from_message(token.to_json().expose_secret().as_bytes()).expect("again");
    assert_eq!(again.consumer_key, token.consumer_key);
    assert!(
        again.consumer_secret.expose_secret() == "CS_\u{e9}",
        "escaped secret differs"
    );
    // A BOM and JSON spread over several lines.
    let spread = format!(
        "\u{feff}-----BEGIN MESSAGE-----\r\n{}\r\n-----END MESSAGE-----\r\n",
        SAMPLE_JSON.replace(',', ",\r\n")
    );
    check_sample(&ServerToken::from_message(spread.as_bytes()).expect("spread"));
}

// ---------------------------------------------------------------------------------------
// 3. Bad input

fn parse_err(bytes: &[u8]) -> ServerTokenError {
    match EncryptedServerToken::parse(bytes) {
        Ok(parsed) => panic!("expected an error, parsed {parsed:?}"),
        Err(e) => e,
    }
}

#[test]
fn random_text_is_not_cms() {
    let e = parse_err(b"Hello, this is the meeting agenda for Tuesday.\nItems: budget; hiring.\n");
    assert!(matches!(e, ServerTokenError::NotCms { .. }), "{e:?}");
    assert!(e.to_string().contains("Download Token"), "{e}");

    let e = parse_err(b"short");
    assert!(matches!(e, ServerTokenError::NotCms { .. }), "{e:?}");
}

#[test]
fn pem_certificate_is_not_cms() {
    let e = parse_err(&fixture(APPLE_CERT));
    match &e {
        ServerTokenError::NotCms { looks_like: Some(what) } => assert!(what.contains("certificate"), "{what}"),
        other => panic!("expected NotCms, got {other:?}"),
    }
    let e = parse_err(&fixture(APPLE_KEY));
    match &e {
        ServerTokenError::NotCms { looks_like: Some(what) } => assert!(what.contains("private key"), "{what}"),
        other => panic!("expected NotCms, got {other:?}"),
    }
    // The certificate in DER form.
    let der = X509::from_pem(&fixture(APPLE_CERT))
        .expect("cert")
        .to_der()
        .expect("der");
    assert!(matches!(parse_err(&der), ServerTokenError::NotCms { .. }));
}

#[test]
fn damaged_base64_body() {
    let file = String::from_utf8(fixture(APPLE_TOKEN)).expect("text");
    let body_start = file.find("\n\n").expect("blank line") + 2;
    let position = body_start + 100;
    let mut damaged = file.into_bytes();
    damaged[position] = b'!';
    let e = parse_err(&damaged);
    match &e {
        ServerTokenError::BadBase64 { detail } => {
            assert!(detail.contains("'!'"), "{detail}");
            assert!(detail.contains("line 7"), "{detail}");
        }
        other => panic!("expected BadBase64, got {other:?}"),
    }
    assert!(e.to_string().contains("download the token again"), "{e}");

    // A base64 body cut in the middle of a quantum: the file ends "…AAA==\n"; dropping
    // "A==\n" leaves one character too many for a whole number of bytes.
    let file = fixture(APPLE_TOKEN);
    assert!(file.ends_with(b"A==\n"));
    let e = parse_err(&file[..file.len() - 4]);
    assert!(matches!(e, ServerTokenError::BadBase64 { .. }), "{e:?}");
    // Missing '=' padding alone is tolerated.
    let unpadded = [&file[..file.len() - 3], b"\n"].concat();
    assert!(EncryptedServerToken::parse(&unpadded).is_ok());
}

#[test]
fn truncated_der_is_malformed() {
    let der = smime_der(&fixture(APPLE_TOKEN));
    for len in [20, der.len() / 2, der.len() - 2] {
        let e = parse_err(&der[..len]);
        assert!(matches!(e, ServerTokenError::Malformed { .. }), "{len}: {e:?}");
    }
    // S/MIME whose base64 body stops early (at a line boundary, so the base64 is fine).
    let text = String::from_utf8(to_lf(&fixture(APPLE_TOKEN))).expect("text");
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines[..lines.len() - 4].join("\n");
    let e = parse_err(cut.as_bytes());
    assert!(matches!(e, ServerTokenError::Malformed { .. }), "{e:?}");
}

#[test]
fn token_for_another_certificate() {
    // The real token, offered a different key pair.
    let (_, key, cert) = new_pair("russet-other");
    let parsed = EncryptedServerToken::parse(&fixture(APPLE_TOKEN)).expect("parse");
    assert!(!parsed.is_for(&cert));
    match parsed.decrypt(&key, &cert) {
        Err(ServerTokenError::WrongRecipient { recipients }) => {
            assert_eq!(recipients.len(), 1);
            assert_eq!(recipients[0].serial, "70FEDDC7D5AFA393");
            assert!(recipients[0].issuer.contains("CN=apple-mdm-client-tests"));
            let e = ServerTokenError::WrongRecipient { recipients };
            let text = e.to_string();
            assert!(text.contains("70FEDDC7D5AFA393"), "{text}");
            assert!(text.contains("different public key"), "{text}");
        }
        other => panic!("expected WrongRecipient, got {other:?}"),
    }

    // A token made for pair A, offered pair B.
    let (_, _, cert_a) = new_pair("russet-a");
    let (_, key_b, cert_b) = new_pair("russet-b");
    let der = encrypt_in_process(&cert_a, SAMPLE_JSON.as_bytes(), Cipher::aes_128_cbc());
    let parsed = EncryptedServerToken::parse(&der).expect("parse");
    assert!(parsed.is_for(&cert_a));
    assert!(!parsed.is_for(&cert_b));
    match parsed.decrypt(&key_b, &cert_b) {
        Err(ServerTokenError::WrongRecipient { recipients }) => {
            assert_eq!(recipients[0].issuer, "CN=russet-a, O=Russet");
            let serial_a = cert_a.serial_number().to_bn().expect("bn").to_hex_str().expect("hex");
            assert_eq!(recipients[0].serial, serial_a.to_string());
        }
        other => panic!("expected WrongRecipient, got {other:?}"),
    }
}

#[test]
fn token_for_two_certificates() {
    let (_, key_a, cert_a) = new_pair("russet-a");
    let (_, key_b, cert_b) = new_pair("russet-b");
    let mut certs = Stack::new().expect("stack");
    certs.push(cert_a.clone()).expect("push");
    certs.push(cert_b.clone()).expect("push");
    let der = CmsContentInfo::encrypt(
        &certs,
        SAMPLE_JSON.as_bytes(),
        Cipher::aes_128_cbc(),
        CMSOptions::BINARY,
    )
    .expect("encrypt")
    .to_der()
    .expect("der");
    let parsed = EncryptedServerToken::parse(&der).expect("parse");
    assert_eq!(parsed.recipients().len(), 2);
    check_sample(&parsed.decrypt(&key_a, &cert_a).expect("a"));
    check_sample(&parsed.decrypt(&key_b, &cert_b).expect("b"));
}

/// A certificate with `victim`'s issuer and serial number but `key`'s public key.
fn impostor_cert(victim: &X509, key: &PKey<Private>) -> X509 {
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    b.set_serial_number(victim.serial_number()).expect("serial");
    b.set_issuer_name(victim.issuer_name()).expect("issuer");
    b.set_subject_name(victim.subject_name()).expect("subject");
    b.set_pubkey(key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(1).expect("time")).expect("na");
    b.sign(key, MessageDigest::sha256()).expect("sign");
    b.build()
}

#[test]
fn right_recipient_wrong_key() {
    let (_, _, cert_a) = new_pair("russet-a");
    let (_, key_b, _) = new_pair("russet-b");
    let impostor = impostor_cert(&cert_a, &key_b);
    // Apple's layout, as long as the real thing, so that noise from a failed decryption is
    // never mistaken for text.
    let der = encrypt_in_process(&cert_a, &apple_payload(SAMPLE_JSON), Cipher::aes_128_cbc());
    let parsed = EncryptedServerToken::parse(&der).expect("parse");
    assert!(parsed.is_for(&impostor));
    // OpenSSL continues with a random content key when the RSA step fails, so each attempt
    // is independent; all must fail the same way.
    for attempt in 0..64 {
        match parsed.decrypt(&key_b, &impostor) {
            Err(ServerTokenError::DecryptFailed { .. }) => {}
            Err(other) => panic!("attempt {attempt}: expected DecryptFailed, got {other:?}"),
            Ok(_) => panic!("attempt {attempt}: decrypted with the wrong key"),
        }
    }

    // The key does not belong to the certificate it comes with.
    let (_, key_c, _) = new_pair("russet-c");
    match parsed.decrypt(&key_c, &cert_a) {
        Err(ServerTokenError::DecryptFailed { detail }) => {
            assert!(detail.contains("does not belong"), "{detail}");
        }
        other => panic!("expected DecryptFailed, got {other:?}"),
    }
}

#[test]
fn unsupported_cipher() {
    let (key, cert) = apple_pair();
    let mut der = smime_der(&fixture(APPLE_TOKEN));
    // Turn the AES-128-CBC OID (2.16.840.1.101.3.4.1.2) into AES-128-OFB (…1.3).
    let oid = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
    let at = der.windows(oid.len()).position(|w| w == oid).expect("AES OID present");
    der[at + oid.len() - 1] = 0x03;
    let parsed = EncryptedServerToken::parse(&der).expect("parse");
    assert_eq!(
        parsed.content_cipher(),
        &ContentCipher::Other("2.16.840.1.101.3.4.1.3".into())
    );
    match parsed.decrypt(&key, &cert) {
        Err(ServerTokenError::UnsupportedCipher { oid }) => {
            assert_eq!(oid, "2.16.840.1.101.3.4.1.3");
        }
        other => panic!("expected UnsupportedCipher, got {other:?}"),
    }
}

#[test]
fn bad_messages() {
    let e = ServerToken::from_message(br#"{"consumer_key":"CK_1","access_token":""}"#).unwrap_err();
    assert_eq!(
        e,
        ServerTokenError::MissingFields {
            fields: vec![
                "consumer_secret",
                "access_token",
                "access_secret",
                "access_token_expiry"
            ]
        }
    );
    assert!(
        e.to_string()
            .contains("consumer_secret, access_token, access_secret, access_token_expiry")
    );

    let e = ServerToken::from_message(&apple_payload("{}")).unwrap_err();
    assert!(
        matches!(&e, ServerTokenError::MissingFields { fields } if fields.len() == 5),
        "{e:?}"
    );

    for not_json in [
        &b"hello"[..],
        b"",
        b"-----BEGIN MESSAGE-----\n{\"a\":1}\n",
        b"[1,2]",
        b"{\"consumer_key\":5}",
        b"{\"consumer_key\":\"CK\"} trailing",
        b"Content-Type: text/plain\r\n",
    ] {
        let e = ServerToken::from_message(not_json).unwrap_err();
        assert!(
            matches!(e, ServerTokenError::NotJson { .. }),
            "{:?}: {e:?}",
            String::from_utf8_lossy(not_json)
        );
    }

    let e = ServerToken::from_message(b"\xff\xfe{}").unwrap_err();
    assert_eq!(e, ServerTokenError::NotUtf8);

    let bad_expiry = SAMPLE_JSON.replace("2027-02-03T04:05:06Z", "next year");
    let e = ServerToken::from_message(bad_expiry.as_bytes()).unwrap_err();
    assert_eq!(
        e,
        ServerTokenError::BadExpiry {
            value: "next year".into()
        }
    );

    // Through decryption, too.
    let (_, key, cert) = new_pair("russet-bad");
    let der = encrypt_in_process(
        &cert,
        &apple_payload(r#"{"consumer_key":"CK_1"}"#),
        Cipher::aes_128_cbc(),
    );
    let e = EncryptedServerToken::parse(&der)
        .expect("parse")
        .decrypt(&key, &cert)
        .unwrap_err();
    assert!(matches!(e, ServerTokenError::MissingFields { .. }), "{e:?}");
}

#[test]
fn empty_and_oversized_files() {
    assert_eq!(parse_err(b""), ServerTokenError::Empty);
    assert_eq!(parse_err(b" \r\n\t\n"), ServerTokenError::Empty);

    let huge = vec![b'A'; MAX_FILE_SIZE + 1];
    let started = Instant::now();
    let e = parse_err(&huge);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "TooLarge took {:?}",
        started.elapsed()
    );
    assert_eq!(
        e,
        ServerTokenError::TooLarge {
            size: MAX_FILE_SIZE + 1
        }
    );
    assert!(e.to_string().contains("1048577 bytes"), "{e}");

    // Exactly the limit is read (and refused for what it is), and quickly.
    let at_limit = vec![b'A'; MAX_FILE_SIZE];
    let started = Instant::now();
    let e = parse_err(&at_limit);
    assert!(!matches!(e, ServerTokenError::TooLarge { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn hostile_ber() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("deep nesting", [0x30u8, 0x80].repeat(300_000)),
        ("absurd length", vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x06, 0x09]),
        (
            "huge long-form length",
            vec![0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
        ("a cut-off header", vec![0x30, 0x84, 0x01]),
        (
            "enveloped data then nothing",
            vec![
                0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
            ],
        ),
        (
            "deep nesting inside the content",
            [
                vec![
                    0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
                ],
                [0xa0u8, 0x80].repeat(100_000),
            ]
            .concat(),
        ),
    ];
    for (name, bytes) in cases {
        let started = Instant::now();
        let e = parse_err(&bytes);
        if name == "deep nesting" {
            // SEQUENCE in SEQUENCE: that is how certificates start, not CMS.
            assert!(matches!(e, ServerTokenError::NotCms { .. }), "{name}: {e:?}");
        } else {
            assert!(matches!(e, ServerTokenError::Malformed { .. }), "{name}: {e:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{name}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn every_truncation_and_random_flips() {
    let (key, cert) = apple_pair();
    let der = smime_der(&fixture(APPLE_TOKEN));
    for len in 0..der.len() {
        assert!(
            EncryptedServerToken::parse(&der[..len]).is_err(),
            "truncation to {len} parsed"
        );
    }
    let file = fixture(APPLE_TOKEN);
    for len in (0..file.len()).step_by(7) {
        if let Ok(parsed) = EncryptedServerToken::parse(&file[..len]) {
            let _ = parsed.decrypt(&key, &cert);
        }
    }

    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let mut parsed_ok = 0;
    for _ in 0..3000 {
        let mut bytes = der.clone();
        for _ in 0..=rng.below(3) {
            let at = rng.below(bytes.len());
            let flip = u8::try_from(rng.below(255) + 1).expect("byte");
            bytes[at] ^= flip;
        }
        if let Ok(parsed) = EncryptedServerToken::parse(&bytes) {
            parsed_ok += 1;
            // Any outcome but a panic is acceptable; a success must still be a whole token.
            if let Ok(token) = parsed.decrypt(&key, &cert) {
                assert!(
                    token.consumer_key.starts_with("CK_"),
                    "flipped token decrypted to something odd"
                );
            }
        }
    }
    // Flips in the encrypted parts leave the structure readable.
    assert!(parsed_ok > 100, "only {parsed_ok} of 3000 flipped tokens parsed");

    // Random bytes, and random bytes behind a valid-looking start.
    for round in 0..2000 {
        let len = rng.below(300);
        let mut bytes: Vec<u8> = (0..len).map(|_| u8::try_from(rng.below(256)).expect("byte")).collect();
        if round % 2 == 0 {
            bytes.splice(0..0, der[..24].iter().copied());
        }
        let _ = EncryptedServerToken::parse(&bytes);
    }
}

// ---------------------------------------------------------------------------------------
// 4. Key pairs

#[test]
fn generated_key_pair() {
    let not_before = datetime!(2026-03-01 12:00:00 UTC);
    let pair = generate_key_pair("russet-ade-3", not_before, 3650).expect("generate");
    assert!(
        pair.private_key_pem
            .expose_secret()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );
    assert!(pair.certificate_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    let (key, cert) = load_key_pair(pair.private_key_pem.expose_secret(), &pair.certificate_pem).expect("load");

    assert_eq!(key.id(), Id::RSA);
    assert_eq!(key.bits(), 2048);
    let public = cert.public_key().expect("public key");
    assert!(cert.verify(&public).expect("verify"), "self-signature does not verify");
    assert_eq!(cert.signature_algorithm().object().nid(), Nid::SHA256WITHRSAENCRYPTION);

    let serial = cert.serial_number().to_bn().expect("bn");
    assert!(!serial.is_negative());
    assert_eq!(serial.num_bits(), 128);

    let entry = |name: &openssl::x509::X509NameRef, nid| -> Vec<String> {
        name.entries_by_nid(nid)
            .map(|e| e.data().to_string().expect("utf8"))
            .collect()
    };
    assert_eq!(entry(cert.subject_name(), Nid::COMMONNAME), ["russet-ade-3"]);
    assert_eq!(entry(cert.subject_name(), Nid::ORGANIZATIONNAME), ["Russet"]);
    assert_eq!(entry(cert.issuer_name(), Nid::COMMONNAME), ["russet-ade-3"]);
    assert_eq!(entry(cert.issuer_name(), Nid::ORGANIZATIONNAME), ["Russet"]);

    let expected_start = Asn1Time::from_unix(not_before.unix_timestamp()).expect("time");
    let expected_end = Asn1Time::from_unix((not_before + time::Duration::days(3650)).unix_timestamp()).expect("time");
    let d = cert.not_before().diff(&expected_start).expect("diff");
    assert_eq!((d.days, d.secs), (0, 0), "notBefore");
    let d = cert.not_after().diff(&expected_end).expect("diff");
    assert_eq!((d.days, d.secs), (0, 0), "notAfter");

    let text = String::from_utf8(cert.to_text().expect("text")).expect("utf8");
    assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
    assert!(text.contains("Digital Signature, Key Encipherment"), "{text}");
    assert!(text.contains("X509v3 Basic Constraints: critical"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("Version: 3"), "{text}");

    // Serials differ between pairs.
    let other = generate_key_pair("russet-ade-3", not_before, 1).expect("generate");
    let other = X509::from_pem(other.certificate_pem.as_bytes()).expect("cert");
    assert_ne!(
        other.serial_number().to_bn().expect("bn"),
        serial,
        "two key pairs got the same serial"
    );
}

#[test]
fn key_pair_argument_checks() {
    let t = datetime!(2026-03-01 12:00:00 UTC);
    for (cn, days) in [("", 10), ("   ", 10), ("a\nb", 10), (&*"x".repeat(65), 10), ("ok", 0)] {
        match generate_key_pair(cn, t, days) {
            Err(ServerTokenError::Key { .. }) => {}
            other => panic!("{cn:?}/{days}: expected Key error, got {other:?}"),
        }
    }
    match generate_key_pair("ok", datetime!(9999-12-01 00:00:00 UTC), 365) {
        Err(ServerTokenError::Key { .. }) => {}
        other => panic!("expected Key error past year 9999, got {other:?}"),
    }
}

#[test]
fn load_key_pair_checks() {
    let (pair_a, _, _) = new_pair("russet-a");
    let (pair_b, _, _) = new_pair("russet-b");
    match load_key_pair(pair_a.private_key_pem.expose_secret(), &pair_b.certificate_pem) {
        Err(ServerTokenError::Key { detail }) => {
            assert!(detail.contains("does not belong"), "{detail}")
        }
        other => panic!("expected Key error, got {other:?}"),
    }
    // PKCS#1 ("RSA PRIVATE KEY") loads too: the fixture is one.
    let (key, _) = apple_pair();
    assert_eq!(key.bits(), 2048);

    match load_key_pair("not a key", &pair_a.certificate_pem) {
        Err(ServerTokenError::Key { .. }) => {}
        other => panic!("expected Key error, got {other:?}"),
    }
    match load_key_pair(pair_a.private_key_pem.expose_secret(), "not a certificate") {
        Err(ServerTokenError::Key { .. }) => {}
        other => panic!("expected Key error, got {other:?}"),
    }
    // A passphrase-protected key is refused instead of prompting on the terminal.
    let (key, _) = load_key_pair(pair_a.private_key_pem.expose_secret(), &pair_a.certificate_pem).expect("load");
    let encrypted = key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"secret")
        .expect("encrypt key");
    let encrypted = String::from_utf8(encrypted).expect("pem");
    match load_key_pair(&encrypted, &pair_a.certificate_pem) {
        Err(ServerTokenError::Key { detail }) => assert!(detail.contains("passphrase"), "{detail}"),
        other => panic!("expected Key error, got {other:?}"),
    }
    // A non-RSA key.
    let ec =
        openssl::ec::EcKey::generate(&openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group"))
            .expect("ec key");
    let ec_pem = PKey::from_ec_key(ec)
        .expect("pkey")
        .private_key_to_pem_pkcs8()
        .expect("pem");
    match load_key_pair(std::str::from_utf8(&ec_pem).expect("pem"), &pair_a.certificate_pem) {
        Err(ServerTokenError::Key { detail }) => assert!(detail.contains("RSA"), "{detail}"),
        other => panic!("expected Key error, got {other:?}"),
    }
}

#[test]
fn error_messages_say_what_to_do() {
    let samples = [
        ServerTokenError::TooLarge { size: 5 },
        ServerTokenError::Empty,
        ServerTokenError::NotCms { looks_like: None },
        ServerTokenError::BadBase64 { detail: "x".into() },
        ServerTokenError::Malformed { detail: "x".into() },
        ServerTokenError::NotEnvelopedData {
            content_type: "signed data".into(),
        },
        ServerTokenError::UnsupportedCipher { oid: "1.2.3".into() },
        ServerTokenError::WrongRecipient { recipients: vec![] },
        ServerTokenError::DecryptFailed { detail: "x".into() },
        ServerTokenError::NotUtf8,
        ServerTokenError::NotJson { detail: "x".into() },
        ServerTokenError::MissingFields {
            fields: vec!["access_token"],
        },
        ServerTokenError::BadExpiry { value: "x".into() },
        ServerTokenError::Key { detail: "x".into() },
    ];
    for e in samples {
        let text = e.to_string();
        let lower = text.to_lowercase();
        assert!(
            ["download", "upload", "generate", "check"]
                .iter()
                .any(|w| lower.contains(w)),
            "no advice in: {text}"
        );
    }
}
