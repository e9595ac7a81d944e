//! Device identity: `Mdm-Signature` headers made by the real `openssl cms -sign` command line
//! (SHA-256, SHA-1, BER, subject key identifiers), every refusal with its own error,
//! forwarded client certificates, and the identity checks against a certificate authority
//! at an injected time.

mod mdm_support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::stack::Stack;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use russet_apple::mdm::{
    MdmIdentityError, SignatureVerifier, VerifierCounts, cert_sha256_hex, client_cert_from_header,
    verify_device_identity, verify_device_identity_with_intermediates, verify_mdm_signature,
};
use time::OffsetDateTime;
use time::macros::datetime;

use mdm_support::{CertSpec, Eku, Issued, Y2024, Y2044, ca_spec, device_spec, issue, openssl_cli, run, write};

const BODY: &[u8] =
    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n\t<key>MessageType</key>\n\
\t<string>Authenticate</string>\n\t<key>Topic</key>\n\t<string>com.apple.mgmt.External.0b6a</string>\n\
\t<key>UDID</key>\n\t<string>0000FE00-5FAF33C1E2A9BF28</string>\n</dict>\n</plist>\n";

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

struct Pki {
    ca: Issued,
    device: Issued,
}

fn pki() -> Pki {
    let ca = issue(&ca_spec("Russet SCEP CA"), None);
    let device = issue(&device_spec("device-0001"), Some(&ca));
    Pki { ca, device }
}

/// Signs `body` with `openssl cms -sign` and the extra arguments; returns the DER.
fn cli_sign(openssl: &std::path::Path, signers: &[&Issued], body: &[u8], extra: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let body_path = write(dir.path(), "body", body);
    let out_path = dir.path().join("sig.der");
    let out = out_path.to_str().expect("path").to_owned();
    let mut args: Vec<String> = vec![
        "cms".into(),
        "-sign".into(),
        "-binary".into(),
        "-outform".into(),
        "DER".into(),
    ];
    for (i, s) in signers.iter().enumerate() {
        args.push("-signer".into());
        args.push(write(dir.path(), &format!("signer{i}.pem"), &s.cert_pem()));
        args.push("-inkey".into());
        args.push(write(dir.path(), &format!("signer{i}.key"), &s.key_pem()));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-in".into(), body_path, "-out".into(), out]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(openssl, &refs);
    std::fs::read(out_path).expect("read signature")
}

/// base64 with line breaks every 64 characters, as `openssl base64` writes it.
fn header(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    b64.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn same_cert(a: &openssl::x509::X509, b: &openssl::x509::X509) -> bool {
    a.to_der().expect("der") == b.to_der().expect("der")
}

// ---------------------------------------------------------------------------------------
// Mdm-Signature made by the openssl command line

#[test]
fn cli_sha256_signature_is_accepted_and_identity_checks_out() {
    let Some(openssl) = openssl_cli("cli_sha256_signature_is_accepted_and_identity_checks_out") else {
        return;
    };
    let p = pki();
    let der = cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256"]);
    let signer = verify_mdm_signature(&header(&der), BODY).expect("a good signature");
    assert!(same_cert(&signer, &p.device.cert));

    let info = verify_device_identity(&signer, std::slice::from_ref(&p.ca.cert), NOW).expect("identity");
    // Compare with what the openssl command line says about the certificate.
    let dir = tempfile::tempdir().expect("temporary directory");
    let pem = write(dir.path(), "device.pem", &p.device.cert_pem());
    let fp = run(&openssl, &["x509", "-in", &pem, "-noout", "-fingerprint", "-sha256"]);
    let fp = String::from_utf8_lossy(&fp.stdout);
    let fp = fp
        .trim()
        .rsplit('=')
        .next()
        .expect("fingerprint")
        .replace(':', "")
        .to_lowercase();
    assert_eq!(info.sha256_hex, fp);
    assert_eq!(cert_sha256_hex(&signer).expect("hash"), fp);
    let serial = run(&openssl, &["x509", "-in", &pem, "-noout", "-serial"]);
    let serial = String::from_utf8_lossy(&serial.stdout);
    let serial = serial.trim().trim_start_matches("serial=").trim_start_matches('0');
    assert_eq!(info.serial_hex.trim_start_matches('0'), serial);
    assert_eq!(info.subject, "CN=device-0001, O=Russet Test");
    assert_eq!(info.not_after.unix_timestamp(), Y2044);
}

#[test]
fn cli_sha1_signature_is_accepted() {
    let Some(openssl) = openssl_cli("cli_sha1_signature_is_accepted") else {
        return;
    };
    let p = pki();
    let der = cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha1"]);
    let signer = verify_mdm_signature(&header(&der), BODY).expect("SHA-1 as devices sign");
    assert!(same_cert(&signer, &p.device.cert));
}

/// The header and contents of the DER element at the start of `der`.
fn der_element(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = der[0];
    let (len, header) = match der[1] {
        n if n < 0x80 => (usize::from(n), 2),
        n => {
            let count = usize::from(n & 0x7f);
            let len = der[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + count)
        }
    };
    (tag, &der[header..header + len], &der[header + len..])
}

/// Re-encodes the outer layers of a DER SignedData (ContentInfo, its [0], the SignedData, the
/// encapsulated content info and the certificate set) with indefinite lengths, the way streaming encoders write BER.
fn outer_layers_to_ber(der: &[u8]) -> Vec<u8> {
    fn indefinite(tag: u8, children: &[u8], depth: usize) -> Vec<u8> {
        let mut out = vec![tag, 0x80];
        let mut rest = children;
        while !rest.is_empty() {
            let (t, contents, next) = der_element(rest);
            let whole = &rest[..rest.len() - next.len()];
            // Layers to convert: [0] under ContentInfo, the SignedData, and within the
            // SignedData the encapsulated content info (its only SEQUENCE) and the
            // certificates ([0]).
            let convert = match depth {
                0 => t == 0xa0,
                1 => t == 0x30,
                2 => t == 0x30 || t == 0xa0,
                _ => false,
            };
            if convert {
                out.extend(indefinite(t, contents, depth + 1));
            } else {
                out.extend_from_slice(whole);
            }
            rest = next;
        }
        out.extend_from_slice(&[0, 0]);
        out
    }
    let (tag, contents, _) = der_element(der);
    indefinite(tag, contents, 0)
}

#[test]
fn cli_ber_signature_with_indefinite_lengths_is_accepted() {
    let Some(openssl) = openssl_cli("cli_ber_signature_with_indefinite_lengths_is_accepted") else {
        return;
    };
    let p = pki();
    let der = cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha1"]);
    let ber = outer_layers_to_ber(&der);
    assert_eq!(&ber[..2], &[0x30, 0x80], "the test needs BER with an indefinite length");
    assert_ne!(ber, der);
    // OpenSSL itself must still read the converted signature as the same one.
    let dir = tempfile::tempdir().expect("temporary directory");
    let ber_path = write(dir.path(), "sig.ber", &ber);
    let body_path = write(dir.path(), "body", BODY);
    run(
        &openssl,
        &[
            "cms",
            "-verify",
            "-binary",
            "-noverify",
            "-inform",
            "DER",
            "-in",
            &ber_path,
            "-content",
            &body_path,
        ],
    );
    let signer = verify_mdm_signature(&header(&ber), BODY).expect("BER");
    assert!(same_cert(&signer, &p.device.cert));
    let err = verify_mdm_signature(&header(&ber), b"tampered").expect_err("tampered BER");
    assert!(matches!(err, MdmIdentityError::SignatureMismatch { .. }), "{err:?}");
    // A streaming signer's BER with the content inside is still refused for being attached.
    let attached = cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256", "-stream"]);
    assert_eq!(&attached[..2], &[0x30, 0x80]);
    let err = verify_mdm_signature(&header(&attached), BODY).expect_err("attached BER");
    assert_eq!(err, MdmIdentityError::ContentAttached);
}

#[test]
fn cli_signer_named_by_key_identifier_is_found() {
    let Some(openssl) = openssl_cli("cli_signer_named_by_key_identifier_is_found") else {
        return;
    };
    let p = pki();
    // An unrelated certificate is embedded too: the signer must be picked by its key id.
    let other = issue(&device_spec("bystander"), Some(&p.ca));
    let dir = tempfile::tempdir().expect("temporary directory");
    let extra = write(dir.path(), "other.pem", &other.cert_pem());
    let der = cli_sign(
        &openssl,
        &[&p.device],
        BODY,
        &["-md", "sha256", "-keyid", "-certfile", &extra],
    );
    let signer = verify_mdm_signature(&header(&der), BODY).expect("signer by key id");
    assert!(same_cert(&signer, &p.device.cert));
}

#[test]
fn cli_tampered_body_is_refused() {
    let Some(openssl) = openssl_cli("cli_tampered_body_is_refused") else {
        return;
    };
    let p = pki();
    let der = cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256"]);
    let mut tampered = BODY.to_vec();
    let at = tampered.len() - 20;
    tampered[at] ^= 0x01;
    let err = verify_mdm_signature(&header(&der), &tampered).expect_err("tampered");
    assert!(matches!(err, MdmIdentityError::SignatureMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("does not match the request body"), "{err}");
    // A body with a line ending changed is just as wrong (no canonicalisation).
    let crlf = String::from_utf8_lossy(BODY).replace('\n', "\r\n");
    let err = verify_mdm_signature(&header(&der), crlf.as_bytes()).expect_err("CRLF");
    assert!(matches!(err, MdmIdentityError::SignatureMismatch { .. }), "{err:?}");
    let err = verify_mdm_signature(&header(&der), b"").expect_err("empty body");
    assert!(matches!(err, MdmIdentityError::SignatureMismatch { .. }), "{err:?}");
}

#[test]
fn cli_two_signers_are_refused() {
    let Some(openssl) = openssl_cli("cli_two_signers_are_refused") else {
        return;
    };
    let p = pki();
    let second = issue(&device_spec("device-0002"), Some(&p.ca));
    let der = cli_sign(&openssl, &[&p.device, &second], BODY, &["-md", "sha256"]);
    let err = verify_mdm_signature(&header(&der), BODY).expect_err("two signers");
    assert_eq!(err, MdmIdentityError::ManySigners { count: 2 });
}

#[test]
fn cli_signature_without_signers_is_refused() {
    let Some(openssl) = openssl_cli("cli_signature_without_signers_is_refused") else {
        return;
    };
    let p = pki();
    let dir = tempfile::tempdir().expect("temporary directory");
    let pem = write(dir.path(), "device.pem", &p.device.cert_pem());
    // A "certs-only" PKCS#7: SignedData with certificates and no signer.
    let out = run(&openssl, &["crl2pkcs7", "-nocrl", "-certfile", &pem, "-outform", "DER"]);
    let err = verify_mdm_signature(&header(&out.stdout), BODY).expect_err("no signer");
    assert_eq!(err, MdmIdentityError::NoSigner);
}

#[test]
fn cli_signature_without_certificate_is_refused() {
    let Some(openssl) = openssl_cli("cli_signature_without_certificate_is_refused") else {
        return;
    };
    let p = pki();
    let der = cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256", "-nocerts"]);
    let err = verify_mdm_signature(&header(&der), BODY).expect_err("no certificate");
    assert_eq!(err, MdmIdentityError::SignerCertificateMissing);
}

#[test]
fn cli_attached_content_is_refused() {
    let Some(openssl) = openssl_cli("cli_attached_content_is_refused") else {
        return;
    };
    let p = pki();
    let der = cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256", "-nodetach"]);
    let err = verify_mdm_signature(&header(&der), BODY).expect_err("attached");
    assert_eq!(err, MdmIdentityError::ContentAttached);
}

#[test]
fn cli_md5_digest_is_refused() {
    let Some(openssl) = openssl_cli("cli_md5_digest_is_refused") else {
        return;
    };
    let p = pki();
    let der = cli_sign(&openssl, &[&p.device], BODY, &["-md", "md5"]);
    let err = verify_mdm_signature(&header(&der), BODY).expect_err("md5");
    assert!(
        matches!(&err, MdmIdentityError::UnsupportedDigest { algorithm } if algorithm.starts_with("MD5")),
        "{err:?}"
    );
}

#[test]
fn cli_encrypted_message_is_not_a_signature() {
    let Some(openssl) = openssl_cli("cli_encrypted_message_is_not_a_signature") else {
        return;
    };
    let p = pki();
    let dir = tempfile::tempdir().expect("temporary directory");
    let body = write(dir.path(), "body", BODY);
    let pem = write(dir.path(), "device.pem", &p.device.cert_pem());
    let out = run(
        &openssl,
        &[
            "cms", "-encrypt", "-binary", "-aes256", "-outform", "DER", "-in", &body, &pem,
        ],
    );
    let err = verify_mdm_signature(&header(&out.stdout), BODY).expect_err("enveloped");
    assert!(
        matches!(&err, MdmIdentityError::NotSignedData { content_type } if content_type.contains("1.2.840.113549.1.7.3")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Mdm-Signature: checks that need no command line

/// A detached signature made with OpenSSL's library (as a device would make it).
fn lib_sign(signer: &Issued, body: &[u8]) -> Vec<u8> {
    let certs = Stack::new().expect("stack");
    CmsContentInfo::sign(
        Some(&signer.cert),
        Some(&signer.key),
        Some(&certs),
        Some(body),
        CMSOptions::BINARY | CMSOptions::DETACHED,
    )
    .expect("sign")
    .to_der()
    .expect("der")
}

#[test]
fn library_signature_round_trip_and_whitespace() {
    let p = pki();
    let der = lib_sign(&p.device, BODY);
    let spaced = format!("  {}\r\n\t", header(&der).replace('\n', "\r\n "));
    let signer = verify_mdm_signature(&spaced, BODY).expect("whitespace is tolerated");
    assert!(same_cert(&signer, &p.device.cert));
    let unpadded = STANDARD.encode(&der).trim_end_matches('=').to_owned();
    verify_mdm_signature(&unpadded, BODY).expect("missing padding is tolerated");
    let err = verify_mdm_signature(&header(&der), b"other body").expect_err("other body");
    assert!(matches!(err, MdmIdentityError::SignatureMismatch { .. }), "{err:?}");
}

#[test]
fn garbage_headers_get_their_own_errors() {
    let p = pki();
    assert_eq!(
        verify_mdm_signature("  \n", BODY),
        Err(MdmIdentityError::EmptyHeader {
            header: "Mdm-Signature"
        })
    );
    assert!(matches!(
        verify_mdm_signature("this is not base64!", BODY),
        Err(MdmIdentityError::NotBase64 { .. })
    ));
    let cert_der = p.device.cert.to_der().expect("der");
    let err = verify_mdm_signature(&STANDARD.encode(&cert_der), BODY).expect_err("a certificate");
    assert!(matches!(err, MdmIdentityError::NotCms { .. }), "{err:?}");
    let err = verify_mdm_signature(&STANDARD.encode(b"hello world"), BODY).expect_err("text");
    assert!(matches!(err, MdmIdentityError::NotCms { .. }), "{err:?}");
    let der = lib_sign(&p.device, BODY);
    let err = verify_mdm_signature(&STANDARD.encode(&der[..der.len() / 2]), BODY).expect_err("cut short");
    assert!(matches!(err, MdmIdentityError::NotCms { .. }), "{err:?}");
    let huge = "A".repeat(russet_apple::mdm::signature::MAX_HEADER_LEN + 4);
    assert!(matches!(
        verify_mdm_signature(&huge, BODY),
        Err(MdmIdentityError::HeaderTooLarge { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Forwarded client certificates

/// What nginx's `$ssl_client_escaped_cert` leaves unescaped: RFC 3986 unreserved characters.
const NGINX_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

#[test]
fn client_cert_headers_in_both_forms() {
    let p = pki();
    let der = p.device.cert.to_der().expect("der");
    let rfc9440 = format!(":{}:", STANDARD.encode(&der));
    assert!(same_cert(
        &client_cert_from_header(&rfc9440).expect("RFC 9440"),
        &p.device.cert
    ));
    let unpadded = format!(" :{}: ", STANDARD.encode(&der).trim_end_matches('='));
    assert!(same_cert(
        &client_cert_from_header(&unpadded).expect("unpadded"),
        &p.device.cert
    ));

    let pem = String::from_utf8(p.device.cert_pem()).expect("PEM text");
    let escaped = utf8_percent_encode(&pem, NGINX_ESCAPE).to_string();
    assert!(escaped.starts_with("-----BEGIN%20CERTIFICATE-----%0A"), "{escaped}");
    assert!(same_cert(
        &client_cert_from_header(&escaped).expect("escaped PEM"),
        &p.device.cert
    ));

    // Form encoding: spaces as '+', a real '+' as %2B.
    let form = escaped.replace("%20", "+");
    assert!(same_cert(
        &client_cert_from_header(&form).expect("form-encoded"),
        &p.device.cert
    ));
    assert!(same_cert(
        &client_cert_from_header(&pem).expect("plain PEM"),
        &p.device.cert
    ));
}

#[test]
fn bad_client_cert_headers_are_refused() {
    let p = pki();
    assert_eq!(
        client_cert_from_header(""),
        Err(MdmIdentityError::EmptyHeader {
            header: "client certificate"
        })
    );
    let der = p.device.cert.to_der().expect("der");
    let unclosed = format!(":{}", STANDARD.encode(&der));
    assert!(matches!(
        client_cert_from_header(&unclosed),
        Err(MdmIdentityError::BadClientCertHeader { .. })
    ));
    assert!(matches!(
        client_cert_from_header(":!!!:"),
        Err(MdmIdentityError::BadClientCertHeader { .. })
    ));
    let not_cert = format!(":{}:", STANDARD.encode(b"hello"));
    assert!(matches!(
        client_cert_from_header(&not_cert),
        Err(MdmIdentityError::BadCertificate { .. })
    ));
    assert!(matches!(
        client_cert_from_header("CN=device-0001"),
        Err(MdmIdentityError::BadClientCertHeader { .. })
    ));
    let broken = "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A";
    assert!(matches!(
        client_cert_from_header(broken),
        Err(MdmIdentityError::BadCertificate { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Identity checks at an injected time

#[test]
fn identity_from_another_ca_is_untrusted() {
    let p = pki();
    let stranger_ca = issue(&ca_spec("Some other CA"), None);
    let stranger = issue(&device_spec("device-0001"), Some(&stranger_ca));
    let err = verify_device_identity(&stranger.cert, std::slice::from_ref(&p.ca.cert), NOW).expect_err("other CA");
    assert!(matches!(err, MdmIdentityError::Untrusted { .. }), "{err:?}");
    // A self-signed "device" is no better.
    let selfie = issue(&device_spec("device-0001"), None);
    let err = verify_device_identity(&selfie.cert, std::slice::from_ref(&p.ca.cert), NOW).expect_err("self-signed");
    assert!(matches!(err, MdmIdentityError::Untrusted { .. }), "{err:?}");
    assert_eq!(
        verify_device_identity(&p.device.cert, &[], NOW),
        Err(MdmIdentityError::NoCaCertificates)
    );
}

#[test]
fn validity_is_checked_at_the_given_time() {
    let p = pki();
    let short = issue(
        &CertSpec {
            not_before: 1_767_225_600, // 2026-01-01
            not_after: 1_782_864_000,  // 2026-07-01
            ..device_spec("short-lived")
        },
        Some(&p.ca),
    );
    let cas = std::slice::from_ref(&p.ca.cert);
    verify_device_identity(&short.cert, cas, NOW).expect("valid in June 2026");
    let later = datetime!(2026-07-02 00:00 UTC);
    let err = verify_device_identity(&short.cert, cas, later).expect_err("expired");
    assert!(
        matches!(&err, MdmIdentityError::Expired { not_after, .. } if not_after.unix_timestamp() == 1_782_864_000),
        "{err:?}"
    );
    assert!(err.to_string().contains("2026-07-01T00:00:00Z"), "{err}");
    let earlier = datetime!(2025-12-31 00:00 UTC);
    let err = verify_device_identity(&short.cert, cas, earlier).expect_err("not yet valid");
    assert!(matches!(err, MdmIdentityError::NotYetValid { .. }), "{err:?}");
}

#[test]
fn an_expired_ca_is_caught_at_the_given_time() {
    let ca = issue(
        &CertSpec {
            not_after: 1_798_761_600, // 2027-01-01
            ..ca_spec("Short CA")
        },
        None,
    );
    let device = issue(&device_spec("outlives its CA"), Some(&ca));
    let cas = std::slice::from_ref(&ca.cert);
    verify_device_identity(&device.cert, cas, NOW).expect("CA still valid in 2026");
    let err = verify_device_identity(&device.cert, cas, datetime!(2028-01-01 00:00 UTC)).expect_err("CA expired");
    assert!(
        matches!(&err, MdmIdentityError::Untrusted { detail, .. } if detail.contains("expired")),
        "{err:?}"
    );
}

#[test]
fn client_auth_is_required() {
    let p = pki();
    let cas = std::slice::from_ref(&p.ca.cert);
    let server_only = issue(
        &CertSpec {
            eku: Eku::ServerAuthOnly,
            ..device_spec("server")
        },
        Some(&p.ca),
    );
    let err = verify_device_identity(&server_only.cert, cas, NOW).expect_err("serverAuth only");
    assert!(
        matches!(err, MdmIdentityError::NoClientAuth { eku_present: true, .. }),
        "{err:?}"
    );
    let no_eku = issue(
        &CertSpec {
            eku: Eku::None,
            ..device_spec("no eku")
        },
        Some(&p.ca),
    );
    let err = verify_device_identity(&no_eku.cert, cas, NOW).expect_err("no EKU");
    assert!(
        matches!(err, MdmIdentityError::NoClientAuth { eku_present: false, .. }),
        "{err:?}"
    );
}

#[test]
fn intermediates_complete_the_chain() {
    let root = issue(&ca_spec("Russet Root"), None);
    let intermediate = issue(&ca_spec("Russet SCEP CA"), Some(&root));
    let device = issue(&device_spec("device-0003"), Some(&intermediate));
    let roots = std::slice::from_ref(&root.cert);
    let ints = std::slice::from_ref(&intermediate.cert);
    let info = verify_device_identity_with_intermediates(&device.cert, roots, ints, NOW).expect("full chain");
    assert_eq!(
        info.sha256_hex,
        hex::encode(device.cert.digest(MessageDigest::sha256()).expect("digest"))
    );
    let err = verify_device_identity(&device.cert, roots, NOW).expect_err("missing intermediate");
    assert!(matches!(err, MdmIdentityError::Untrusted { .. }), "{err:?}");
    // Russet's SCEP CA trusted directly, even though it is not self-signed.
    verify_device_identity(&device.cert, ints, NOW).expect("the issuing CA as the anchor");
    // Validity of the whole range is honoured.
    assert_eq!(info.not_after.unix_timestamp(), Y2044);
    assert!(Y2024 < NOW.unix_timestamp());
}

// ---------------------------------------------------------------------------------------
// SignatureVerifier: the same answers as verify_mdm_signature, from its memory

/// Every form a signature takes, checked by a fresh verifier twice (the second time from its
/// memory of the certificate) and compared with `verify_mdm_signature`; then the body and the
/// signature are altered on the remembered path.
#[test]
fn verifier_gives_the_same_answers_from_memory() {
    let Some(openssl) = openssl_cli("verifier_gives_the_same_answers_from_memory") else {
        return;
    };
    let p = pki();
    let sha256 = cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256"]);
    let forms: Vec<(&str, Vec<u8>)> = vec![
        ("SHA-256", sha256.clone()),
        ("SHA-1", cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha1"])),
        ("BER", outer_layers_to_ber(&sha256)),
        (
            "key identifier",
            cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256", "-keyid"]),
        ),
        (
            "no signed attributes",
            cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256", "-noattr"]),
        ),
    ];
    let expected_sha = cert_sha256_hex(&p.device.cert).expect("hash");
    for (form, der) in &forms {
        let verifier = SignatureVerifier::new(16);
        let value = header(der);
        let reference = verify_mdm_signature(&value, BODY).expect(form);
        for round in ["first", "remembered"] {
            let got = verifier
                .verify(&value, BODY)
                .unwrap_or_else(|e| panic!("{form}, {round}: {e}"));
            assert_eq!(got.sha256_hex(), expected_sha, "{form}, {round}");
            assert!(
                same_cert(&got.certificate().expect("parse"), &reference),
                "{form}, {round}"
            );
        }
        assert_eq!(verifier.remembered(), 1, "{form}");
        // The common forms are checked from memory the second time; the rest by OpenSSL.
        let fast = u64::from(*form != "no signed attributes");
        assert_eq!(verifier.counts(), VerifierCounts { fast, full: 2 - fast }, "{form}");

        let mut tampered = BODY.to_vec();
        tampered[60] ^= 0x01;
        let err = verifier.verify(&value, &tampered).expect_err("tampered body");
        assert!(
            matches!(err, MdmIdentityError::SignatureMismatch { .. }),
            "{form}: {err:?}"
        );
        let err = verifier.verify(&value, b"").expect_err("empty body");
        assert!(
            matches!(err, MdmIdentityError::SignatureMismatch { .. }),
            "{form}: {err:?}"
        );
    }

    // The signature value is the last element of a DER SignedData: damage its last byte.
    let verifier = SignatureVerifier::new(16);
    verifier.verify(&header(&sha256), BODY).expect("remembered");
    let mut forged = sha256.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x5a;
    let err = verifier.verify(&header(&forged), BODY).expect_err("forged signature");
    assert!(matches!(err, MdmIdentityError::SignatureMismatch { .. }), "{err:?}");
    assert_eq!(err, verify_mdm_signature(&header(&forged), BODY).expect_err("forged"));
}

/// Refusals come out exactly as `verify_mdm_signature` words them, even for a certificate
/// the verifier remembers.
#[test]
fn verifier_refuses_what_verify_mdm_signature_refuses() {
    let Some(openssl) = openssl_cli("verifier_refuses_what_verify_mdm_signature_refuses") else {
        return;
    };
    let p = pki();
    let second = issue(&device_spec("device-0002"), Some(&p.ca));
    let verifier = SignatureVerifier::new(16);
    verifier
        .verify(
            &header(&cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256"])),
            BODY,
        )
        .expect("remembered");
    let cases: Vec<(&str, String)> = vec![
        (
            "two signers",
            header(&cli_sign(&openssl, &[&p.device, &second], BODY, &["-md", "sha256"])),
        ),
        (
            "no certificate",
            header(&cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256", "-nocerts"])),
        ),
        (
            "attached",
            header(&cli_sign(&openssl, &[&p.device], BODY, &["-md", "sha256", "-nodetach"])),
        ),
        ("MD5", header(&cli_sign(&openssl, &[&p.device], BODY, &["-md", "md5"]))),
        ("not base64", "%%%".to_owned()),
        ("empty", "  ".to_owned()),
        ("not CMS", STANDARD.encode(b"hello")),
    ];
    for (case, value) in cases {
        let ours = verifier.verify(&value, BODY).expect_err(case);
        let reference = verify_mdm_signature(&value, BODY).expect_err(case);
        assert_eq!(ours, reference, "{case}");
    }
}

/// The memory is bounded and certificates it forgot still verify.
#[test]
fn verifier_memory_is_bounded() {
    let Some(openssl) = openssl_cli("verifier_memory_is_bounded") else {
        return;
    };
    let p = pki();
    let devices: Vec<Issued> = (0..5)
        .map(|i| issue(&device_spec(&format!("device-{i}")), Some(&p.ca)))
        .collect();
    let signatures: Vec<String> = devices
        .iter()
        .map(|d| header(&cli_sign(&openssl, &[d], BODY, &["-md", "sha256"])))
        .collect();
    let verifier = SignatureVerifier::new(4);
    for _ in 0..3 {
        for (d, s) in devices.iter().zip(&signatures) {
            let got = verifier.verify(s, BODY).expect("verifies");
            assert_eq!(got.sha256_hex(), cert_sha256_hex(&d.cert).expect("hash"));
            assert!(verifier.remembered() <= 4, "{}", verifier.remembered());
        }
    }
}
