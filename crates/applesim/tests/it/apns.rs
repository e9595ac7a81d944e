//! APNs over a real TLS HTTP/2 client: pushes, every error reason, certificate checks,
//! device wake-ups, the push log, counters and faults.

use std::time::{Duration, Instant};

use applesim::{AppleSim, Endpoint, Fault, FaultKind, RetryAfter};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use serde_json::{Value, json};

use crate::pushkit::*;

const MAGIC: &str = "5B3C5A30-6C1B-4D43-9D24-61A2B17C1F7E";

#[tokio::test]
async fn a_push_wakes_the_registered_device() {
    let w = ApnsWorld::new().await;
    assert!(w.running.apns_url.starts_with("https://127.0.0.1:"));
    let mut device = w.sim.register_push_token(w.topic());
    assert_eq!(device.token.len(), 32);
    assert_eq!(device.token_hex.len(), 64);
    assert!(device.receiver.try_recv().is_none());
    let mut c = w.client().await;

    // Headers as Apple recommends, with our own apns-id.
    let id = "1d4c5f0a-2b3e-4c5d-8e9f-0a1b2c3d4e5f";
    let a = c
        .push(
            &device.token_hex,
            MAGIC,
            &[
                ("apns-push-type", "mdm"),
                ("apns-topic", w.topic()),
                ("apns-id", id),
                ("apns-priority", "10"),
                ("apns-expiration", "0"),
                ("content-type", "application/json"),
            ],
        )
        .await
        .unwrap();
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    assert_eq!(a.apns_id.as_deref(), Some(id));
    let wake = tokio::time::timeout(Duration::from_secs(5), device.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (wake.push_magic.as_str(), wake.apns_id.as_str(), wake.delivered),
        (MAGIC, id, 1)
    );

    // No apns-* headers at all (as nanomdm sends) and an uppercase token: APNs makes an id.
    let a = c.push(&device.token_hex.to_uppercase(), "second", &[]).await.unwrap();
    assert_eq!(a.status, 200);
    let made = a.apns_id.unwrap();
    assert_eq!(made.len(), 36);
    assert!(
        made.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase())
    );

    // Pushes coalesce: three before the device looks wake it once, with the last one.
    for m in ["a", "b", "c"] {
        assert_eq!(c.push(&device.token_hex, m, &[]).await.unwrap().status, 200);
    }
    let wake = device.receiver.recv().await.unwrap();
    assert_eq!((wake.push_magic.as_str(), wake.delivered), ("c", 5));
    assert!(device.receiver.try_recv().is_none());

    // The log has every push with its details.
    let log = w.sim.pushes();
    assert_eq!(log.len(), 5);
    assert_eq!(log[0].token, device.token_hex);
    assert_eq!(log[0].topic, w.topic());
    assert_eq!(log[0].push_magic.as_deref(), Some(MAGIC));
    assert_eq!(log[0].apns_id, id);
    assert_eq!((log[0].status, log[0].reason.as_deref()), (Some(200), None));
    let stats = w.sim.apns_stats();
    assert_eq!(
        (stats.connections, stats.requests, stats.delivered, stats.rejected),
        (1, 5, 5, 0)
    );

    // A token registered with given bytes.
    let mut fixed = w.sim.register_push_token_bytes(w.topic(), &[0xab; 8]).unwrap();
    assert_eq!(fixed.token_hex, "abababababababab");
    assert_eq!(c.push("abababababababab", "x", &[]).await.unwrap().status, 200);
    assert_eq!(fixed.receiver.recv().await.unwrap().push_magic, "x");
    assert!(w.sim.register_push_token_bytes(w.topic(), &[]).is_err());
    assert!(w.sim.register_push_token_bytes(w.topic(), &[1; 101]).is_err());
}

#[tokio::test]
async fn every_request_error_has_apples_status_and_reason() {
    let w = ApnsWorld::new().await;
    let device = w.sim.register_push_token(w.topic());
    let elsewhere = w
        .sim
        .register_push_token("com.apple.mgmt.External.00000000-1111-4222-8333-444444444444");
    let gone = w.sim.register_push_token(w.topic());
    w.sim.unregister_push_token(&gone.token_hex).unwrap();
    let gone_ms = w.sim.clock().now().unix_timestamp() * 1000;
    let mut c = w.client().await;
    let tok = device.token_hex.as_str();
    let path = format!("/3/device/{tok}");
    let good = format!(r#"{{"mdm":"{MAGIC}"}}"#);
    let big = format!(r#"{{"mdm":"{}"}}"#, "x".repeat(4096));
    let exact = format!(r#"{{"mdm":"{}"}}"#, "x".repeat(4096 - 10));
    assert_eq!(exact.len(), 4096);
    let long_collapse = "c".repeat(65);

    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, String, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/3/device/".into(),
            vec![],
            good.clone(),
            400,
            Some("MissingDeviceToken"),
        ),
        (
            "POST",
            "/3/device".into(),
            vec![],
            good.clone(),
            400,
            Some("MissingDeviceToken"),
        ),
        (
            "POST",
            "/3/devices/abc".into(),
            vec![],
            good.clone(),
            404,
            Some("BadPath"),
        ),
        (
            "POST",
            "/2/device/abcd".into(),
            vec![],
            good.clone(),
            404,
            Some("BadPath"),
        ),
        (
            "GET",
            path.clone(),
            vec![],
            String::new(),
            405,
            Some("MethodNotAllowed"),
        ),
        ("PUT", path.clone(), vec![], good.clone(), 405, Some("MethodNotAllowed")),
        (
            "POST",
            path.clone(),
            vec![("apns-push-type", "alert")],
            good.clone(),
            400,
            Some("InvalidPushType"),
        ),
        (
            "POST",
            path.clone(),
            vec![("apns-push-type", "")],
            good.clone(),
            400,
            Some("InvalidPushType"),
        ),
        (
            "POST",
            path.clone(),
            vec![("apns-topic", "com.example.app")],
            good.clone(),
            400,
            Some("TopicDisallowed"),
        ),
        (
            "POST",
            path.clone(),
            vec![("apns-topic", "")],
            good.clone(),
            400,
            Some("BadTopic"),
        ),
        (
            "POST",
            path.clone(),
            vec![("apns-topic", "two words")],
            good.clone(),
            400,
            Some("BadTopic"),
        ),
        (
            "POST",
            path.clone(),
            vec![("apns-id", "not-a-uuid")],
            good.clone(),
            400,
            Some("BadMessageId"),
        ),
        (
            "POST",
            path.clone(),
            vec![("apns-priority", "7")],
            good.clone(),
            400,
            Some("BadPriority"),
        ),
        (
            "POST",
            path.clone(),
            vec![("apns-expiration", "soon")],
            good.clone(),
            400,
            Some("BadExpirationDate"),
        ),
        (
            "POST",
            path.clone(),
            vec![("apns-collapse-id", long_collapse.as_str())],
            good.clone(),
            400,
            Some("BadCollapseId"),
        ),
        (
            "POST",
            path.clone(),
            vec![("apns-topic", w.topic()), ("apns-topic", w.topic())],
            good.clone(),
            400,
            Some("DuplicateHeaders"),
        ),
        (
            "POST",
            "/3/device/xyz1".into(),
            vec![],
            good.clone(),
            400,
            Some("BadDeviceToken"),
        ),
        (
            "POST",
            "/3/device/abc".into(),
            vec![],
            good.clone(),
            400,
            Some("BadDeviceToken"),
        ),
        (
            "POST",
            format!("/3/device/{}", "ab".repeat(32)),
            vec![],
            good.clone(),
            400,
            Some("BadDeviceToken"),
        ),
        (
            "POST",
            format!("/3/device/{}", elsewhere.token_hex),
            vec![],
            good.clone(),
            400,
            Some("DeviceTokenNotForTopic"),
        ),
        ("POST", path.clone(), vec![], String::new(), 400, Some("PayloadEmpty")),
        ("POST", path.clone(), vec![], "  \n".into(), 400, Some("PayloadEmpty")),
        ("POST", path.clone(), vec![], "{}".into(), 400, Some("BadPayload")),
        ("POST", path.clone(), vec![], "not json".into(), 400, Some("BadPayload")),
        (
            "POST",
            path.clone(),
            vec![],
            format!(r#"["{MAGIC}"]"#),
            400,
            Some("BadPayload"),
        ),
        (
            "POST",
            path.clone(),
            vec![],
            r#"{"mdm":42}"#.into(),
            400,
            Some("BadPayload"),
        ),
        (
            "POST",
            path.clone(),
            vec![],
            r#"{"mdm":""}"#.into(),
            400,
            Some("BadPayload"),
        ),
        ("POST", path.clone(), vec![], big, 413, Some("PayloadTooLarge")),
        ("POST", path.clone(), vec![], exact, 200, None),
        (
            "POST",
            path.clone(),
            vec![("apns-priority", "5"), ("apns-expiration", "1893456000")],
            good.clone(),
            200,
            None,
        ),
    ];
    for (method, path, headers, body, status, reason) in &cases {
        let a = c.request(method, path, headers, body.as_bytes()).await.unwrap();
        assert_eq!(
            (a.status, a.reason().as_deref()),
            (*status, *reason),
            "{method} {path} {headers:?} {}",
            &body.chars().take(40).collect::<String>()
        );
        assert!(a.apns_id.is_some(), "every answer has an apns-id");
        if let Some(reason) = reason {
            assert_eq!(a.body, format!(r#"{{"reason":"{reason}"}}"#), "exactly Apple's body");
            assert_eq!(a.content_type.as_deref(), Some("application/json"));
        }
    }

    // Unregistered: 410 with the time the token became invalid (ms since the epoch).
    let a = c.push(&gone.token_hex, MAGIC, &[]).await.unwrap();
    assert_eq!(a.status, 410);
    let body = a.json();
    assert_eq!(body["reason"], "Unregistered");
    let ts = body["timestamp"].as_i64().unwrap();
    assert!((gone_ms..gone_ms + 5_000).contains(&ts), "{ts} vs {gone_ms}");
    assert_eq!(body.as_object().unwrap().len(), 2);

    let log = w.sim.pushes();
    assert_eq!(log.len(), cases.len() + 1);
    for (rec, case) in log.iter().zip(&cases) {
        assert_eq!(rec.status, Some(case.4));
        assert_eq!(rec.reason.as_deref(), case.5);
    }
    assert_eq!(log.last().unwrap().reason.as_deref(), Some("Unregistered"));
    let stats = w.sim.apns_stats();
    assert_eq!(stats.delivered, 2);
    assert_eq!(stats.rejected, cases.len() as u64 - 2 + 1);

    // Unregistering unknown or malformed tokens is an error.
    assert!(w.sim.unregister_push_token(&"cd".repeat(32)).is_err());
    assert!(w.sim.unregister_push_token("zz").is_err());
}

#[tokio::test]
async fn expired_certificates_are_refused() {
    let w = ApnsWorld::new().await;
    let device = w.sim.register_push_token(w.topic());
    let mut open = w.client().await;
    assert_eq!(open.push(&device.token_hex, MAGIC, &[]).await.unwrap().status, 200);

    w.sim.clock().advance(time::Duration::days(366));
    // The open connection: 403 BadCertificate.
    let a = open.push(&device.token_hex, MAGIC, &[]).await.unwrap();
    assert_eq!((a.status, a.reason().as_deref()), (403, Some("BadCertificate")));
    // A new connection: the TLS handshake fails with certificate_expired.
    let err = try_push(
        &w.running.apns_url,
        &w.sim.apns_ca_pem(),
        Some((&w.cert.issued.certificate_pem, &w.cert.key)),
    )
    .await
    .expect("an expired certificate must not connect");
    assert!(err.contains("certificate expired"), "{err}");
    assert!(w.sim.apns_stats().handshake_failures >= 1);

    // A renewed certificate (same topic) works, and devices keep their tokens.
    let vendor = Vendor::new(&w.sim);
    let renewed = w
        .sim
        .push_portal_renew(
            APPLE_ID,
            w.topic(),
            &vendor.request(&csr(customer_key(), "Customer").to_der().unwrap()),
        )
        .unwrap();
    let mut c = Apns::connect(
        &w.running.apns_url,
        &w.sim.apns_ca_pem(),
        Some((&renewed.certificate_pem, customer_key())),
    )
    .await
    .unwrap();
    assert_eq!(c.push(&device.token_hex, MAGIC, &[]).await.unwrap().status, 200);
}

#[tokio::test]
async fn renewal_leaves_the_old_certificate_valid_and_revocation_refuses_both() {
    let w = ApnsWorld::new().await;
    let device = w.sim.register_push_token(w.topic());
    let vendor = Vendor::new(&w.sim);
    let renewed = w
        .sim
        .push_portal_renew(
            APPLE_ID,
            w.topic(),
            &vendor.request(&csr(other_customer_key(), "Customer").to_der().unwrap()),
        )
        .unwrap();
    let mut old = w.client().await;
    let mut new = Apns::connect(
        &w.running.apns_url,
        &w.sim.apns_ca_pem(),
        Some((&renewed.certificate_pem, other_customer_key())),
    )
    .await
    .unwrap();
    assert_eq!(old.push(&device.token_hex, MAGIC, &[]).await.unwrap().status, 200);
    assert_eq!(new.push(&device.token_hex, MAGIC, &[]).await.unwrap().status, 200);

    w.sim.revoke_push_cert(w.topic()).unwrap();
    for c in [&mut old, &mut new] {
        let a = c.push(&device.token_hex, MAGIC, &[]).await.unwrap();
        assert_eq!((a.status, a.reason().as_deref()), (403, Some("BadCertificate")));
    }
    let err = try_push(
        &w.running.apns_url,
        &w.sim.apns_ca_pem(),
        Some((&w.cert.issued.certificate_pem, &w.cert.key)),
    )
    .await
    .expect("a revoked certificate must not connect");
    assert!(err.contains("certificate revoked"), "{err}");
    assert!(w.sim.revoke_push_cert("com.apple.mgmt.External.unknown").is_err());
}

#[tokio::test]
async fn tls_requires_a_push_certificate_from_the_push_ca() {
    let w = ApnsWorld::new().await;
    let url = &w.running.apns_url;
    let ca = w.sim.apns_ca_pem();

    // No client certificate.
    let err = try_push(url, &ca, None).await.expect("no certificate, no connection");
    assert!(err.contains("alert"), "{err}");

    // A self-signed certificate with the right-looking subject.
    let key = customer_key();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::USERID, w.topic()).unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "APSP:forged").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    b.sign(key, MessageDigest::sha256()).unwrap();
    let forged = String::from_utf8(b.build().to_pem().unwrap()).unwrap();
    let err = try_push(url, &ca, Some((&forged, key)))
        .await
        .expect("a forged certificate");
    assert!(err.contains("alert"), "{err}");

    // A push certificate of another simulated Apple.
    let other = AppleSim::new();
    let foreign = create_push_cert(&other, customer_key());
    let err = try_push(url, &ca, Some((&foreign.issued.certificate_pem, key)))
        .await
        .expect("another Apple's certificate");
    assert!(err.contains("alert"), "{err}");

    // The vendor's certificate: issued under the same root, but not by the push CA.
    let vendor = Vendor::new(&w.sim);
    let err = try_push(url, &ca, Some((&vendor.cert_pem, &vendor.key)))
        .await
        .expect("a vendor certificate is no push certificate");
    assert!(err.contains("alert"), "{err}");

    // The client must trust the APNs CA, and the server certificate names 127.0.0.1.
    let wrong_ca = w.sim.push_ca_pem();
    let err = Apns::connect(url, &wrong_ca, Some((&w.cert.issued.certificate_pem, key)))
        .await
        .err()
        .expect("the server's CA is the APNs CA");
    assert!(err.contains("certificate verify failed"), "{err}");
    let server = X509::from_pem(ca.as_bytes()).unwrap();
    assert!(
        String::from_utf8(server.to_text().unwrap())
            .unwrap()
            .contains("CA:TRUE")
    );

    assert!(w.sim.apns_stats().handshake_failures >= 4);
    assert_eq!(w.sim.apns_stats().requests, 0);
    // The right certificate still works.
    let mut c = w.client().await;
    let d = w.sim.register_push_token(w.topic());
    assert_eq!(c.push(&d.token_hex, MAGIC, &[]).await.unwrap().status, 200);
}

#[tokio::test]
async fn http2_is_required() {
    let w = ApnsWorld::new().await;
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).unwrap();
    b.cert_store_mut()
        .add_cert(X509::from_pem(w.sim.apns_ca_pem().as_bytes()).unwrap())
        .unwrap();
    b.set_alpn_protos(b"\x08http/1.1").unwrap();
    b.set_certificate(&X509::from_pem(w.cert.issued.certificate_pem.as_bytes()).unwrap())
        .unwrap();
    b.set_private_key(&w.cert.key).unwrap();
    let ssl = b.build().configure().unwrap().into_ssl("127.0.0.1").unwrap();
    let tcp = tokio::net::TcpStream::connect(w.running.apns_addr).await.unwrap();
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    let r = std::pin::Pin::new(&mut tls).connect().await;
    let err = chain(&r.expect_err("ALPN without h2 is refused"));
    assert!(err.contains("no application protocol"), "{err}");
}

#[tokio::test]
async fn faults_apply_in_order() {
    let w = ApnsWorld::new().await;
    let d = w.sim.register_push_token(w.topic());
    let mut c = w.client().await;
    w.sim.push_faults(
        Endpoint::Apns,
        vec![
            Fault::new(
                1,
                FaultKind::TooManyRequests {
                    retry_after: Some(RetryAfter::Seconds(7)),
                },
            ),
            Fault::new(1, FaultKind::InternalError),
            Fault::new(1, FaultKind::ServiceUnavailable { retry_after: None }),
            Fault::new(1, FaultKind::Pass),
            Fault::new(1, FaultKind::Forbidden),
            Fault::new(1, FaultKind::BadRequest("IdleTimeout".into())),
            Fault::new(1, FaultKind::Slow(Duration::from_millis(300))),
        ],
    );
    let expect = [
        (429, Some("TooManyRequests")),
        (500, Some("InternalServerError")),
        (503, Some("ServiceUnavailable")),
        (200, None),
        (403, Some("Forbidden")),
        (400, Some("IdleTimeout")),
    ];
    for (i, (status, reason)) in expect.iter().enumerate() {
        let a = c.push(&d.token_hex, MAGIC, &[]).await.unwrap();
        assert_eq!((a.status, a.reason().as_deref()), (*status, *reason), "#{i}");
        assert_eq!(a.retry_after.as_deref(), if i == 0 { Some("7") } else { None });
    }
    let t = Instant::now();
    assert_eq!(c.push(&d.token_hex, MAGIC, &[]).await.unwrap().status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(w.sim.pending_faults(Endpoint::Apns).is_empty());
    assert_eq!(c.push(&d.token_hex, MAGIC, &[]).await.unwrap().status, 200);
    let log = w.sim.pushes();
    assert!(log[0].fault.as_deref().unwrap().contains("TooManyRequests"));
    assert!(log.last().unwrap().fault.is_none());
    let stats = w.sim.apns_stats();
    // 429 counts as a rejection (4xx), 500 and 503 as server errors.
    assert_eq!((stats.server_errors, stats.rejected, stats.delivered), (2, 3, 3));
}

#[tokio::test]
async fn goaway_and_dropped_connections() {
    let w = ApnsWorld::new().await;
    let d = w.sim.register_push_token(w.topic());
    let mut c = w.client().await;

    // GOAWAY: the request is answered 503 Shutdown, then the connection closes.
    w.sim
        .push_faults(Endpoint::Apns, vec![Fault::new(1, FaultKind::GoAway)]);
    let a = c.push(&d.token_hex, MAGIC, &[]).await.unwrap();
    assert_eq!((a.status, a.reason().as_deref()), (503, Some("Shutdown")));
    let mut refused = false;
    for _ in 0..50 {
        if c.push(&d.token_hex, MAGIC, &[]).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "after GOAWAY the connection takes no new streams");
    let mut c = w.client().await;
    assert_eq!(c.push(&d.token_hex, MAGIC, &[]).await.unwrap().status, 200);

    // Dropped connection: no answer at all; a new connection works.
    w.sim
        .push_faults(Endpoint::Apns, vec![Fault::new(1, FaultKind::DropConnection)]);
    let err = c.push(&d.token_hex, MAGIC, &[]).await.expect_err("dropped");
    assert!(!err.is_empty());
    let mut c = w.client().await;
    assert_eq!(c.push(&d.token_hex, MAGIC, &[]).await.unwrap().status, 200);
    let stats = w.sim.apns_stats();
    assert_eq!(stats.dropped, 1);
    assert_eq!(stats.connections, 3);
    let log = w.sim.pushes();
    let dropped = log.iter().find(|r| r.status.is_none()).unwrap();
    assert!(dropped.fault.as_deref().unwrap().contains("DropConnection"));
}

#[tokio::test]
async fn admin_api_for_tokens_pushes_and_faults() {
    let w = ApnsWorld::new().await;
    let b = &w.running.base_url;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{b}/abm/push-tokens"))
        .json(&json!({"topic": w.topic()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    let r = http
        .post(format!("{b}/abm/push-tokens"))
        .json(&json!({"topic": w.topic(), "token": "0a0b0c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["token"], "0a0b0c");
    let r = http
        .post(format!("{b}/abm/push-tokens"))
        .json(&json!({"topic": w.topic(), "token": "+1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let mut c = w.client().await;
    assert_eq!(c.push(&token, MAGIC, &[]).await.unwrap().status, 200);
    assert_eq!(c.push("0a0b0c", MAGIC, &[]).await.unwrap().status, 200);
    let r = http.delete(format!("{b}/abm/push-tokens/0a0b0c")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(c.push("0a0b0c", MAGIC, &[]).await.unwrap().status, 410);
    let r = http.delete(format!("{b}/abm/push-tokens/0d0d")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Faults through the admin API, GOAWAY included.
    let r = http
        .post(format!("{b}/abm/faults"))
        .json(&json!({"endpoint": "apns", "faults": [
            {"count": 2, "kind": "service_unavailable", "retry_after_seconds": 3},
            {"kind": "go_away"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let pending: Value = http
        .get(format!("{b}/abm/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending["apns"][1]["kind"], "go_away");
    for _ in 0..2 {
        let a = c.push(&token, MAGIC, &[]).await.unwrap();
        assert_eq!((a.status, a.retry_after.as_deref()), (503, Some("3")));
    }
    assert_eq!(
        c.push(&token, MAGIC, &[]).await.unwrap().reason().as_deref(),
        Some("Shutdown")
    );

    let last: Value = http
        .get(format!("{b}/abm/pushes?last=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = last.as_array().unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(last[1]["status"], 503);
    assert_eq!(last[1]["reason"], "Shutdown");
    assert_eq!(last[1]["token"], token.as_str());
    assert_eq!(last[1]["topic"], w.topic());
    let stats: Value = http
        .get(format!("{b}/abm/push-stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 6);
    assert_eq!(stats["delivered"], 2);
    assert_eq!(stats["server_errors"], 3);
    let r = http.delete(format!("{b}/abm/pushes")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(w.sim.pushes().is_empty());
}

#[tokio::test]
async fn unregistering_ends_the_device_receiver() {
    let w = ApnsWorld::new().await;
    let mut d = w.sim.register_push_token(w.topic());
    w.sim.unregister_push_token(&d.token_hex).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), d.receiver.recv())
        .await
        .unwrap();
    assert!(r.is_none());
    // Registering the same token again makes it active again.
    let mut again = w.sim.register_push_token_bytes(w.topic(), &d.token).unwrap();
    let mut c = w.client().await;
    assert_eq!(c.push(&d.token_hex, MAGIC, &[]).await.unwrap().status, 200);
    assert_eq!(again.receiver.recv().await.unwrap().push_magic, MAGIC);
}

/// Push `total` notifications over `connections` HTTP/2 connections with `per_conn`
/// streams in flight on each; returns the rate per second.
pub async fn push_many(w: &ApnsWorld, total: usize, connections: usize, per_conn: usize) -> f64 {
    let tokens: Vec<String> = (0..1000)
        .map(|_| w.sim.register_push_token(w.topic()).token_hex)
        .collect();
    let tokens = std::sync::Arc::new(tokens);
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(w.client().await);
    }
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in &clients {
        for _ in 0..per_conn {
            let mut c = client.clone();
            let next = next.clone();
            let tokens = tokens.clone();
            tasks.spawn(async move {
                let mut ok = 0usize;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        return ok;
                    }
                    let a = c.push(&tokens[i % tokens.len()], "magic", &[]).await.unwrap();
                    assert_eq!(a.status, 200, "{a:?}");
                    ok += 1;
                }
            });
        }
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        ok += r.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(ok, total);
    assert_eq!(w.sim.apns_stats().delivered, total as u64);
    total as f64 / secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pushes_over_a_few_connections() {
    let w = ApnsWorld::new().await;
    // Debug builds are slow; the release-mode `apns_bench` example pushes 100,000.
    let rate = push_many(&w, 4_000, 4, 50).await;
    eprintln!("APNs: 4,000 pushes at {rate:.0}/s (debug build, client and server in one process)");
    assert_eq!(w.sim.pushes().len(), 4_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "100,000 pushes: run with --ignored, ideally in release mode"]
async fn hundred_thousand_pushes() {
    let w = ApnsWorld::new().await;
    let rate = push_many(&w, 100_000, 4, 100).await;
    eprintln!("APNs: 100,000 pushes at {rate:.0}/s");
}

#[tokio::test]
async fn a_simulated_clock_years_ahead_still_serves_tls() {
    // The push certificate follows the simulated clock; the server certificate the real one.
    let sim = AppleSim::new();
    sim.clock().advance(time::Duration::days(3 * 365));
    let cert = create_push_cert(&sim, customer_key());
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut c = Apns::connect(
        &running.apns_url,
        &sim.apns_ca_pem(),
        Some((&cert.issued.certificate_pem, customer_key())),
    )
    .await
    .unwrap();
    let d = sim.register_push_token(&cert.issued.topic);
    assert_eq!(c.push(&d.token_hex, MAGIC, &[]).await.unwrap().status, 200);
}
