//! The Apple Push Certificates Portal: vendor certificates, create, renew, refusals, and
//! its admin HTTP API.

use applesim::{AppleSim, SimError};
use base64::Engine as _;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509StoreContext};
use serde_json::{Value, json};

use crate::pushkit::*;

fn entry(cert: &X509, nid: Nid) -> String {
    cert.subject_name()
        .entries_by_nid(nid)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap()
}

fn refusal(r: Result<applesim::IssuedPushCert, SimError>) -> String {
    match r {
        Err(SimError::PushCertRequest(m)) => m,
        other => panic!("expected a portal refusal, got {other:?}"),
    }
}

/// Does `cert` chain to the PEM `anchors` through `intermediates`?
fn chains_to(cert: &X509, intermediates: &[X509], anchor: &X509) -> bool {
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(anchor.clone()).unwrap();
    let store = store.build();
    let mut chain = Stack::new().unwrap();
    for c in intermediates {
        chain.push(c.clone()).unwrap();
    }
    let mut ctx = X509StoreContext::new().unwrap();
    ctx.init(&store, cert, &chain, |c| c.verify_cert()).unwrap()
}

#[test]
fn vendor_certificate_chains_to_the_simulated_root() {
    let sim = AppleSim::new();
    let vendor = Vendor::new(&sim);
    let cert = X509::from_pem(vendor.cert_pem.as_bytes()).unwrap();
    assert_eq!(entry(&cert, Nid::COMMONNAME), "MDM Vendor: Example MDM Vendor");
    assert_eq!(entry(&cert, Nid::ORGANIZATIONNAME), "Example MDM Vendor");
    assert_eq!(entry(&cert, Nid::ORGANIZATIONALUNITNAME).len(), 10);
    assert!(
        cert.public_key()
            .unwrap()
            .public_eq(&PKey::public_key_from_der(&vendor_key().public_key_to_der().unwrap()).unwrap())
    );
    let chain = X509::stack_from_pem(vendor.chain_pem.as_bytes()).unwrap();
    assert_eq!(chain.len(), 2, "WWDR then root");
    let (wwdr, root) = (&chain[0], &chain[1]);
    assert!(entry(wwdr, Nid::COMMONNAME).contains("Worldwide Developer Relations"));
    assert_eq!(entry(root, Nid::COMMONNAME), "Apple Root CA");
    assert!(chains_to(&cert, std::slice::from_ref(wwdr), root));
    // Issued from the simulated clock, for a year.
    let now = Asn1Time::from_unix(sim.clock().now().unix_timestamp()).unwrap();
    let d = now.diff(cert.not_after()).unwrap();
    assert!((364..=366).contains(&d.days), "{d:?}");

    // A long organisation name is shortened to fit X.520's 64 characters.
    let long = csr(vendor_key(), &"Vendor".repeat(10));
    let long_pem = sim
        .issue_vendor_certificate(&String::from_utf8(long.to_pem().unwrap()).unwrap())
        .unwrap();
    let cn = entry(&X509::from_pem(long_pem.as_bytes()).unwrap(), Nid::COMMONNAME);
    assert_eq!(cn, format!("MDM Vendor: {}", &"Vendor".repeat(10)[..52]));

    // Not a CSR, or a CSR whose signature does not match.
    assert!(matches!(
        sim.issue_vendor_certificate("hello"),
        Err(SimError::InvalidCsr(_))
    ));
    let small = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    let small_csr = String::from_utf8(csr(&small, "Tiny").to_pem().unwrap()).unwrap();
    let e = sim.issue_vendor_certificate(&small_csr).unwrap_err();
    assert!(e.to_string().contains("2048"), "{e}");
}

#[test]
fn create_issues_a_push_certificate_with_a_new_topic() {
    let sim = AppleSim::new();
    let pc = create_push_cert(&sim, customer_key());
    let issued = &pc.issued;
    let cert = X509::from_pem(issued.certificate_pem.as_bytes()).unwrap();
    let uid = entry(&cert, Nid::USERID);
    assert_eq!(uid, issued.topic);
    let uuid = uid.strip_prefix("com.apple.mgmt.External.").unwrap();
    assert_eq!(uuid.len(), 36);
    assert!(
        uuid.chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(entry(&cert, Nid::COMMONNAME), format!("APSP:{uuid}"));
    assert_eq!(entry(&cert, Nid::COUNTRYNAME), "US");
    // The customer's key, the push CA as issuer, a year of validity, client auth.
    assert!(
        cert.public_key()
            .unwrap()
            .public_eq(&PKey::public_key_from_der(&customer_key().public_key_to_der().unwrap()).unwrap())
    );
    let push_ca = X509::from_pem(sim.push_ca_pem().as_bytes()).unwrap();
    assert!(cert.verify(&push_ca.public_key().unwrap()).unwrap());
    let root = X509::stack_from_pem(sim.vendor_chain_pem().as_bytes()).unwrap()[1].clone();
    assert!(chains_to(&cert, &[push_ca], &root));
    let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert_eq!(
        issued.serial_hex,
        cert.serial_number().to_bn().unwrap().to_hex_str().unwrap().to_string()
    );
    let days = (issued.not_after - sim.clock().now()).whole_days();
    assert!((364..=366).contains(&days), "{days}");
    assert_eq!(issued.apple_id, APPLE_ID);

    // Each creation is a new topic.
    let again = create_push_cert(&sim, customer_key());
    assert_ne!(again.issued.topic, issued.topic);
    let listed = sim.push_certificates();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|c| c.apple_id == APPLE_ID && !c.revoked));
}

#[test]
fn renew_keeps_the_topic_for_the_same_apple_id_only() {
    let sim = AppleSim::new();
    let first = create_push_cert(&sim, customer_key());
    let topic = first.issued.topic.clone();
    let vendor = Vendor::new(&sim);
    let request = vendor.request(&csr(other_customer_key(), "Customer").to_der().unwrap());

    // Apple IDs compare without case.
    let renewed = sim.push_portal_renew("Admin@Example.COM", &topic, &request).unwrap();
    assert_eq!(renewed.topic, topic);
    assert_ne!(renewed.serial_hex, first.issued.serial_hex);
    let cert = X509::from_pem(renewed.certificate_pem.as_bytes()).unwrap();
    assert_eq!(entry(&cert, Nid::USERID), topic);
    let old = X509::from_pem(first.issued.certificate_pem.as_bytes()).unwrap();
    assert_eq!(entry(&cert, Nid::COMMONNAME), entry(&old, Nid::COMMONNAME));
    // Both certificates stay listed and valid.
    let listed = sim.push_certificates();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|c| c.topic == topic && !c.revoked));

    // Another Apple ID, an unknown topic.
    assert_eq!(
        sim.push_portal_renew("someone.else@example.com", &topic, &request),
        Err(SimError::AppleIdMismatch(topic.clone()))
    );
    let unknown = "com.apple.mgmt.External.00000000-0000-4000-8000-000000000000";
    assert_eq!(
        sim.push_portal_renew(APPLE_ID, unknown, &request),
        Err(SimError::UnknownTopic(unknown.to_owned()))
    );
    // A renewal request is checked like a creation.
    let bad = vendor.request(b"not a csr");
    assert!(refusal(sim.push_portal_renew(APPLE_ID, &topic, &bad)).contains("Certificate Signing Request"));
    assert!(
        sim.push_portal_create(" ", &request).is_err(),
        "an Apple ID is required"
    );
}

#[test]
fn malformed_uploads_are_refused_with_clear_reasons() {
    let sim = AppleSim::new();
    let vendor = Vendor::new(&sim);
    let csr_der = csr(customer_key(), "Customer").to_der().unwrap();
    let chain = format!("{}{}", vendor.cert_pem, vendor.chain_pem);
    let sig = vendor.sign(&csr_der);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let sb64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);

    let m = refusal(sim.push_portal_create(APPLE_ID, "***not base64***"));
    assert!(m.contains("not base64"), "{m}");
    let m = refusal(sim.push_portal_create(APPLE_ID, ""));
    assert!(m.contains("empty"), "{m}");
    let m = refusal(sim.push_portal_create(APPLE_ID, &b64("just text, no plist")));
    assert!(m.contains("not a property list"), "{m}");
    let m = refusal(sim.push_portal_create(APPLE_ID, &b64("<plist version=\"1.0\"><array/></plist>")));
    assert!(m.contains("not a dictionary"), "{m}");
    for missing in ["PushCertRequestCSR", "PushCertCertificateChain", "PushCertSignature"] {
        let entries: Vec<(&str, String)> = vec![
            ("PushCertRequestCSR", sb64(&csr_der)),
            ("PushCertCertificateChain", chain.clone()),
            ("PushCertSignature", sb64(&sig)),
        ];
        let kept: Vec<(&str, &str)> = entries
            .iter()
            .filter(|(k, _)| *k != missing)
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let m = refusal(sim.push_portal_create(APPLE_ID, &b64(&plist_xml(&kept))));
        assert!(m.contains(missing), "{missing}: {m}");
    }
    // The request survives line breaks (76-column base64 from tools).
    let request = vendor.request(&csr_der);
    let wrapped: String = request
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    assert!(sim.push_portal_create(APPLE_ID, &wrapped).is_ok());
}

#[test]
fn signatures_and_csrs_are_verified() {
    let sim = AppleSim::new();
    let vendor = Vendor::new(&sim);
    let csr_der = csr(customer_key(), "Customer").to_der().unwrap();
    let chain = format!("{}{}", vendor.cert_pem, vendor.chain_pem);

    // A signature over other bytes, or by another key, or with SHA-1.
    let m = refusal(sim.push_portal_create(
        APPLE_ID,
        &request_from_parts(&csr_der, &chain, &vendor.sign(b"something else")),
    ));
    assert!(m.contains("Certificate Signature Verification failed"), "{m}");
    let mut other = openssl::sign::Signer::new(MessageDigest::sha256(), customer_key()).unwrap();
    other.update(&csr_der).unwrap();
    let m = refusal(sim.push_portal_create(
        APPLE_ID,
        &request_from_parts(&csr_der, &chain, &other.sign_to_vec().unwrap()),
    ));
    assert!(m.contains("PushCertSignature"), "{m}");
    let mut sha1 = openssl::sign::Signer::new(MessageDigest::sha1(), &vendor.key).unwrap();
    sha1.update(&csr_der).unwrap();
    assert!(
        sim.push_portal_create(
            APPLE_ID,
            &request_from_parts(&csr_der, &chain, &sha1.sign_to_vec().unwrap())
        )
        .is_err(),
        "SHA-1 is not SHA256withRSA"
    );

    // A CSR altered after the customer signed it (and then signed by the vendor).
    let mut tampered = csr_der.clone();
    let at = tampered
        .windows(8)
        .position(|w| w == b"Customer")
        .expect("the CN is in the DER");
    tampered[at + 6] = b'o';
    let m = refusal(sim.push_portal_create(APPLE_ID, &vendor.request(&tampered)));
    assert!(m.contains("CSR's own signature"), "{m}");

    // Not a CSR at all, and a key that is too small.
    let m = refusal(sim.push_portal_create(APPLE_ID, &vendor.request(b"\x30\x03\x02\x01\x00")));
    assert!(m.contains("PKCS#10"), "{m}");
    let small = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    let m = refusal(sim.push_portal_create(APPLE_ID, &vendor.request(&csr(&small, "Small").to_der().unwrap())));
    assert!(m.contains("1024 bits"), "{m}");
}

#[test]
fn vendor_chains_are_verified() {
    let sim = AppleSim::new();
    let vendor = Vendor::new(&sim);
    let csr_der = csr(customer_key(), "Customer").to_der().unwrap();
    let sig = vendor.sign(&csr_der);

    // The vendor certificate alone, or without the root.
    let m = refusal(sim.push_portal_create(APPLE_ID, &request_from_parts(&csr_der, &vendor.cert_pem, &sig)));
    assert!(m.contains("WWDR"), "{m}");
    let wwdr_only = X509::stack_from_pem(vendor.chain_pem.as_bytes()).unwrap()[0]
        .to_pem()
        .unwrap();
    let m = refusal(sim.push_portal_create(
        APPLE_ID,
        &request_from_parts(
            &csr_der,
            &format!("{}{}", vendor.cert_pem, String::from_utf8(wwdr_only).unwrap()),
            &sig,
        ),
    ));
    assert!(m.contains("Root"), "{m}");
    let m = refusal(sim.push_portal_create(APPLE_ID, &request_from_parts(&csr_der, "", &sig)));
    assert!(m.contains("PushCertCertificateChain"), "{m}");

    // A self-signed "vendor" certificate with the same key.
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "MDM Vendor: Forged").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&vendor.key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    b.sign(&vendor.key, MessageDigest::sha256()).unwrap();
    let forged = String::from_utf8(b.build().to_pem().unwrap()).unwrap();
    let m = refusal(sim.push_portal_create(
        APPLE_ID,
        &request_from_parts(&csr_der, &format!("{forged}{}", vendor.chain_pem), &sig),
    ));
    assert!(m.contains("not issued by Apple's WWDR CA"), "{m}");

    // A vendor certificate from another simulated Apple.
    let elsewhere = AppleSim::new();
    let foreign = Vendor::new(&elsewhere);
    let m = refusal(sim.push_portal_create(APPLE_ID, &foreign.request(&csr_der)));
    assert!(m.contains("not issued by Apple's WWDR CA"), "{m}");

    // A push certificate (issued under the same root, by the push CA) is no vendor certificate.
    let push = create_push_cert(&sim, vendor_key());
    let push_ca = sim.push_ca_pem();
    let root = String::from_utf8(
        X509::stack_from_pem(vendor.chain_pem.as_bytes()).unwrap()[1]
            .to_pem()
            .unwrap(),
    )
    .unwrap();
    let m = refusal(sim.push_portal_create(
        APPLE_ID,
        &request_from_parts(
            &csr_der,
            &format!("{}{push_ca}{root}", push.issued.certificate_pem),
            &sig,
        ),
    ));
    assert!(m.contains("not issued by Apple's WWDR CA"), "{m}");

    // The vendor certificate expires after a year of simulated time.
    sim.clock().advance(time::Duration::days(367));
    let m = refusal(sim.push_portal_create(APPLE_ID, &vendor.request(&csr_der)));
    assert!(m.contains("expired"), "{m}");
    // A fresh vendor certificate works again.
    let fresh = Vendor::new(&sim);
    assert!(sim.push_portal_create(APPLE_ID, &fresh.request(&csr_der)).is_ok());
}

#[tokio::test]
async fn admin_http_api() {
    let sim = AppleSim::new();
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let b = &running.base_url;
    let http = reqwest::Client::new();

    let vendor_csr = String::from_utf8(csr(vendor_key(), "HTTP Vendor").to_pem().unwrap()).unwrap();
    let r = http
        .post(format!("{b}/abm/vendor-certificate"))
        .body(vendor_csr)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-pem-file");
    let vendor_pem = r.text().await.unwrap();
    assert!(vendor_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let chain = http
        .get(format!("{b}/abm/vendor-chain"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(chain, sim.vendor_chain_pem());
    let r = http
        .post(format!("{b}/abm/vendor-certificate"))
        .body("nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("certificate signing request"));

    let vendor = Vendor {
        key: vendor_key().clone(),
        cert_pem: vendor_pem,
        chain_pem: chain,
    };
    let request = vendor.request(&csr(customer_key(), "Customer").to_der().unwrap());
    let r = http
        .post(format!("{b}/abm/push-certificates"))
        .json(&json!({"apple_id": APPLE_ID, "request": request}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let topic = created["topic"].as_str().unwrap().to_owned();
    assert!(topic.starts_with("com.apple.mgmt.External."));
    assert!(
        created["certificate_pem"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert!(created["serial"].as_str().unwrap().len() >= 30);
    assert!(created["not_after"].as_str().unwrap().ends_with('Z'));

    let r = http
        .post(format!("{b}/abm/push-certificates/{topic}/renew"))
        .json(&json!({"apple_id": APPLE_ID, "request": request}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let renewed: Value = r.json().await.unwrap();
    assert_eq!(renewed["topic"], created["topic"]);
    assert_ne!(renewed["serial"], created["serial"]);

    let r = http
        .post(format!("{b}/abm/push-certificates/{topic}/renew"))
        .json(&json!({"apple_id": "other@example.com", "request": request}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{b}/abm/push-certificates/com.apple.mgmt.External.nope/renew"))
        .json(&json!({"apple_id": APPLE_ID, "request": request}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .post(format!("{b}/abm/push-certificates"))
        .json(&json!({"apple_id": APPLE_ID, "request": "bm90IGEgcGxpc3Q="}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("property list"), "{e}");

    let r = http
        .post(format!("{b}/abm/push-certificates/{topic}/revoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let listed: Value = http
        .get(format!("{b}/abm/push-certificates"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|c| c["revoked"] == true && c["topic"] == topic.as_str())
    );

    let ca = http
        .get(format!("{b}/abm/apns-ca"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(ca, sim.apns_ca_pem());
}
