//! The MDM push certificate over the admin API, on SQLite and (when configured) PostgreSQL:
//! CSR, upload, renewal keeping the topic, and every refusal leaving things as they were.
//! The test plays Apple's push certificate portal with OpenSSL: it issues certificates for
//! Russet's CSR with a subject UID topic, as Apple does.

mod common;

use std::sync::Arc;

use common::*;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509Req};
use reqwest::{Method, StatusCode};
use russet_testkit::TestDb;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

const TOPIC: &str = "com.apple.mgmt.External.2b7e6a0c-5f0e-4d6b-9a51-1c3d5e7f9a0b";
const OTHER_TOPIC: &str = "com.apple.mgmt.External.99999999-5f0e-4d6b-9a51-1c3d5e7f9a0b";

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

/// Apple's portal: a certificate for the CSR's public key, subject `UID=<topic>, CN=APSP:…, C=US`.
fn issue(
    csr_pem: &str,
    uid: Option<&str>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: u32,
) -> Vec<u8> {
    let csr = X509Req::from_pem(csr_pem.as_bytes()).unwrap();
    issue_for(&csr.public_key().unwrap(), uid, not_before, not_after, serial)
}

fn issue_for(
    public: &PKey<openssl::pkey::Public>,
    uid: Option<&str>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: u32,
) -> Vec<u8> {
    let apple_key = key();
    let mut subject = X509NameBuilder::new().unwrap();
    if let Some(uid) = uid {
        subject.append_entry_by_nid(Nid::USERID, uid).unwrap();
    }
    subject.append_entry_by_nid(Nid::COMMONNAME, "APSP:test").unwrap();
    subject.append_entry_by_nid(Nid::COUNTRYNAME, "US").unwrap();
    let subject = subject.build();
    let mut issuer = X509NameBuilder::new().unwrap();
    issuer
        .append_entry_by_nid(
            Nid::COMMONNAME,
            "Apple Application Integration 2 Certification Authority (test)",
        )
        .unwrap();
    let issuer = issuer.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(&issuer).unwrap();
    b.set_pubkey(public).unwrap();
    b.set_not_before(&Asn1Time::from_unix(not_before.unix_timestamp()).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(not_after.unix_timestamp()).unwrap())
        .unwrap();
    b.sign(&apple_key, MessageDigest::sha256()).unwrap();
    b.build().to_pem().unwrap()
}

async fn new_csr(s: &TestServer) -> Value {
    s.json(s.req(Method::POST, "/api/v1/push-cert/csr"), StatusCode::CREATED)
        .await
}

fn upload(s: &TestServer, cert: Vec<u8>, query: &[(&str, &str)]) -> reqwest::RequestBuilder {
    s.req(Method::PUT, "/api/v1/push-cert").query(query).body(cert)
}

async fn show(s: &TestServer) -> Value {
    s.json(s.req(Method::GET, "/api/v1/push-cert"), StatusCode::OK).await
}

#[tokio::test]
async fn csr_upload_and_renewal_keep_the_topic() {
    for s in servers("push_cert::lifecycle", Options::default()).await {
        let year = Duration::days(365);
        assert_eq!(show(&s).await["status"], "none");
        // Nothing to upload against yet.
        let stranger = PKey::public_key_from_pem(&key().public_key_to_pem().unwrap()).unwrap();
        let cert = issue_for(&stranger, Some(TOPIC), NOW, NOW + year, 1);
        let e = s
            .json(
                upload(&s, cert, &[("apple_id", "it@example.com")]),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&e), "push_csr_not_found");

        let csr = new_csr(&s).await;
        let pem = csr["csr_pem"].as_str().unwrap().to_string();
        let req = X509Req::from_pem(pem.as_bytes()).unwrap();
        assert!(
            req.verify(&req.public_key().unwrap()).unwrap(),
            "the CSR is self-signed"
        );
        assert!(csr["signed_request"].is_null(), "no vendor identity configured");
        assert!(csr["instructions"].as_str().unwrap().contains("vendor"));
        let shown = show(&s).await;
        assert_eq!(shown["status"], "pending");
        assert_eq!(shown["csr_pending"], true);
        // The pending CSR can be read again.
        let again = s
            .json(s.req(Method::GET, "/api/v1/push-cert/csr"), StatusCode::OK)
            .await;
        assert_eq!(again["csr_pem"], pem);

        // The first upload needs the Apple ID.
        let first = issue(&pem, Some(TOPIC), NOW - Duration::days(1), NOW + year, 0x1001);
        let e = s
            .json(upload(&s, first.clone(), &[]), StatusCode::UNPROCESSABLE_ENTITY)
            .await;
        assert_eq!(code(&e), "invalid_apple_id");
        let e = s
            .json(
                upload(&s, first.clone(), &[("apple_id", "not an apple id")]),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert_eq!(code(&e), "invalid_apple_id");
        let active = s
            .json(
                upload(&s, first.clone(), &[("apple_id", "it@example.com")]),
                StatusCode::OK,
            )
            .await;
        assert_eq!(active["status"], "active");
        assert_eq!(active["topic"], TOPIC);
        assert_eq!(active["serial"], "1001");
        assert_eq!(active["apple_id"], "it@example.com");
        assert_eq!(active["days_left"], 365);
        assert_eq!(active["csr_pending"], false);
        assert!(active["renewed_at"].is_null());
        assert!(!active.to_string().contains("PRIVATE KEY"));

        // Renewal: a new CSR while the certificate in place stays active.
        let csr2 = new_csr(&s).await["csr_pem"].as_str().unwrap().to_string();
        assert_ne!(csr2, pem, "a new key");
        assert_eq!(show(&s).await["status"], "active");
        // Another topic is refused, naming the topic to keep, and changes nothing.
        let wrong = issue(&csr2, Some(OTHER_TOPIC), NOW, NOW + year + Duration::days(30), 0x2002);
        let e = s.json(upload(&s, wrong.clone(), &[]), StatusCode::CONFLICT).await;
        assert_eq!(code(&e), "push_topic_changed");
        assert!(
            message(&e).contains(TOPIC) && message(&e).contains(OTHER_TOPIC),
            "{}",
            message(&e)
        );
        assert!(
            message(&e).contains("re-enrolled") && message(&e).contains("Renew"),
            "{}",
            message(&e)
        );
        assert!(
            message(&e).contains("it@example.com"),
            "names the Apple ID: {}",
            message(&e)
        );
        assert_eq!(e["error"]["details"]["current_topic"], TOPIC);
        let after = show(&s).await;
        assert_eq!(
            (after["topic"].as_str(), after["serial"].as_str()),
            (Some(TOPIC), Some("1001"))
        );
        assert_eq!(after["csr_pending"], true, "the pending CSR survives a refused upload");

        // An older download of the same topic is refused.
        let older = issue(
            &csr2,
            Some(TOPIC),
            NOW - Duration::days(2),
            NOW + Duration::days(100),
            0x3003,
        );
        let e = s.json(upload(&s, older, &[]), StatusCode::CONFLICT).await;
        assert_eq!(code(&e), "push_cert_older");

        // The right renewal: same topic, the new key; the Apple ID is kept.
        s.advance(Duration::days(300));
        let renewed_cert = issue(
            &csr2,
            Some(TOPIC),
            NOW + Duration::days(300),
            NOW + Duration::days(300) + year,
            0x4004,
        );
        let renewed = s.json(upload(&s, renewed_cert.clone(), &[]), StatusCode::OK).await;
        assert_eq!(renewed["topic"], TOPIC);
        assert_eq!(renewed["serial"], "4004");
        assert_eq!(renewed["apple_id"], "it@example.com");
        assert_eq!(renewed["days_left"], 365);
        assert!(!renewed["renewed_at"].is_null());
        assert_eq!(renewed["csr_pending"], false);
        // Uploading the same certificate again is harmless (it matches the active key now).
        s.json(upload(&s, renewed_cert, &[]), StatusCode::OK).await;
        // The old certificate's key is gone: its certificate no longer matches.
        let e = s.json(upload(&s, first, &[]), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(code(&e), "push_cert_key_mismatch");

        // A deliberate topic change, with the flag.
        let csr3 = new_csr(&s).await["csr_pem"].as_str().unwrap().to_string();
        let moved = issue(
            &csr3,
            Some(OTHER_TOPIC),
            NOW + Duration::days(300),
            NOW + Duration::days(700),
            0x5005,
        );
        let e = s
            .json(
                upload(&s, moved.clone(), &[("accept_topic_change", "false")]),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&e), "push_topic_changed");
        let changed = s
            .json(upload(&s, moved, &[("accept_topic_change", "true")]), StatusCode::OK)
            .await;
        assert_eq!(changed["topic"], OTHER_TOPIC);

        let actions: Vec<String> = s
            .audit()
            .await
            .iter()
            .filter_map(|e| {
                e["action"]
                    .as_str()
                    .filter(|a| a.starts_with("push_cert."))
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(
            actions,
            [
                "push_cert.topic_change",
                "push_cert.csr",
                "push_cert.renew",
                "push_cert.renew",
                "push_cert.csr",
                "push_cert.upload",
                "push_cert.csr",
            ],
            "newest first"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn bad_certificates_are_refused_with_what_to_do() {
    for s in servers("push_cert::bad_input", Options::default()).await {
        let csr = new_csr(&s).await["csr_pem"].as_str().unwrap().to_string();
        let year = Duration::days(365);
        let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
            (
                b"not a certificate".to_vec(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "push_cert_unreadable",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "push_cert_unreadable",
            ),
            (
                issue(&csr, None, NOW, NOW + year, 1),
                StatusCode::UNPROCESSABLE_ENTITY,
                "push_cert_not_mdm",
            ),
            (
                issue(&csr, Some("com.example.someapp"), NOW, NOW + year, 2),
                StatusCode::UNPROCESSABLE_ENTITY,
                "push_cert_not_mdm",
            ),
            (
                issue(&csr, Some(TOPIC), NOW - year - year, NOW - Duration::days(1), 3),
                StatusCode::UNPROCESSABLE_ENTITY,
                "push_cert_expired",
            ),
            (
                issue_for(
                    &PKey::public_key_from_pem(&key().public_key_to_pem().unwrap()).unwrap(),
                    Some(TOPIC),
                    NOW,
                    NOW + year,
                    4,
                ),
                StatusCode::UNPROCESSABLE_ENTITY,
                "push_cert_key_mismatch",
            ),
            (
                [
                    issue(&csr, Some(TOPIC), NOW, NOW + year, 5),
                    issue(&csr, Some(TOPIC), NOW, NOW + year, 6),
                ]
                .concat(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "push_cert_unreadable",
            ),
            (vec![b'x'; 70 * 1024], StatusCode::PAYLOAD_TOO_LARGE, ""),
            (Vec::new(), StatusCode::BAD_REQUEST, "missing_file"),
        ];
        for (body, status, expected) in cases {
            let e = s
                .json(upload(&s, body, &[("apple_id", "it@example.com")]), status)
                .await;
            if !expected.is_empty() {
                assert_eq!(code(&e), expected, "{e}");
            }
            assert!(!message(&e).is_empty());
        }
        // DER is accepted as well as PEM.
        let pem = issue(&csr, Some(TOPIC), NOW, NOW + year, 7);
        let der = X509::from_pem(&pem).unwrap().to_der().unwrap();
        let ok = s
            .json(upload(&s, der, &[("apple_id", "it@example.com")]), StatusCode::OK)
            .await;
        assert_eq!(ok["topic"], TOPIC);
        // Unknown query parameters are refused rather than ignored.
        let e = s
            .json(
                upload(&s, pem, &[("accept_topic_chnage", "true")]),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert!(message(&e).contains("accept_topic_chnage"), "{e}");
        s.stop().await;
    }
}

/// With an MDM vendor signing identity configured, the CSR comes with the signed request
/// for Apple's portal: the vendor's SHA-256 signature over the CSR's DER and its chain.
#[tokio::test]
async fn vendor_identity_signs_the_push_request() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let db = TestDb::sqlite();
    let dir = db.path().to_path_buf();
    let vendor_key = key();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "MDM Vendor: Example")
        .unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&vendor_key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(NOW.unix_timestamp()).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix((NOW + Duration::days(365)).unix_timestamp()).unwrap())
        .unwrap();
    b.sign(&vendor_key, MessageDigest::sha256()).unwrap();
    let vendor_cert = b.build();
    std::fs::write(dir.join("vendor.pem"), vendor_cert.to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("vendor.key"), vendor_key.private_key_to_pem_pkcs8().unwrap()).unwrap();

    let (_sim, run, _org) = start_sim().await;
    let mut config = config_for(&db, &run.base_url, Options::default());
    config.mdm.vendor_certificate_file = Some(dir.join("vendor.pem"));
    config.mdm.vendor_key_file = Some(dir.join("vendor.key"));
    config.mdm.organization = "Example Org".into();
    let clock = russet_core::ManualClock::new(NOW);
    let server = russet_server::serve::start(
        &config,
        russet_server::serve::StartOptions {
            master_key: None,
            clock: Arc::new(clock),
        },
    )
    .await
    .unwrap();
    let admin = std::fs::read_to_string(config.data_dir.join("admin-api-key")).unwrap();
    let http = reqwest::Client::new();
    let csr: Value = http
        .post(format!("http://{}/api/v1/push-cert/csr", server.local_addr))
        .bearer_auth(admin.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let req = X509Req::from_pem(csr["csr_pem"].as_str().unwrap().as_bytes()).unwrap();
    let subject: Vec<String> = req
        .subject_name()
        .entries()
        .map(|e| e.data().to_string().unwrap())
        .collect();
    assert_eq!(subject, ["Russet MDM push", "Example Org"]);
    let xml = STANDARD.decode(csr["signed_request"].as_str().unwrap()).unwrap();
    let text = String::from_utf8(xml).unwrap();
    for key in ["PushCertRequestCSR", "PushCertCertificateChain", "PushCertSignature"] {
        assert!(text.contains(key), "{key} in {text}");
    }
    assert!(text.contains("BEGIN CERTIFICATE"));
    // The signature is checked in russet-apple's unit tests; here the pieces reach the API.
    server.shutdown().await.unwrap();

    // A key that does not belong to the certificate stops the start with a clear error.
    std::fs::write(dir.join("other.key"), key().private_key_to_pem_pkcs8().unwrap()).unwrap();
    config.mdm.vendor_key_file = Some(dir.join("other.key"));
    let err = russet_server::serve::start(
        &config,
        russet_server::serve::StartOptions {
            master_key: None,
            clock: Arc::new(russet_core::ManualClock::new(NOW)),
        },
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("does not belong"), "{err}");
    run.shutdown().await;
}
