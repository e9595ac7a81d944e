//! ADE activation of simulated devices against a small stand-in MDM server (axum, in this
//! file): signed MachineInfo checked by the real `openssl cms -verify`, the sign-in form of
//! `configuration_web_url`, the `url` POST, SCEP through a tiny CA, check-ins, DeviceConfigured,
//! erasure, and the devices Setup Assistant leaves alone.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use applesim::devices::der::{self, oid};
use applesim::devices::scep::{self, Digest};
use applesim::devices::{
    ActivationOptions, ActivationOutcome, ActivationStep, Configured, Credentials, Fleet, FleetOptions, SignIn,
};
use applesim::{AppleSim, DeviceFamily, DeviceSpec};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509NameBuilder, X509Req};
use plist::{Dictionary, Value};
use serde_json::json;

use crate::common::*;

const TOPIC: &str = "com.apple.mgmt.External.2f1c5b8e-activation-test";
const PASSWORD: &str = "correct horse";

/// What the stand-in MDM server saw.
#[derive(Default)]
struct Seen {
    /// `x-apple-aspen-deviceinfo` of each GET of the web page (`None` when absent).
    web_gets: Vec<Option<String>>,
    /// The form fields of each sign-in POST, with the Cookie header.
    sign_ins: Vec<(HashMap<String, String>, Option<String>)>,
    /// Content type of each POST to the enrollment URL.
    enroll_posts: Vec<String>,
    /// (UDID, MessageType, AwaitingConfiguration) of each check-in.
    checkins: Vec<(String, String, Option<bool>)>,
    /// UDIDs that acknowledged DeviceConfigured.
    configured: Vec<String>,
    /// UDIDs DeviceConfigured was sent to.
    configured_sent: HashSet<String>,
    /// Serials of verified MachineInfo.
    machine_infos: Vec<Dictionary>,
}

struct Stub {
    base: String,
    ca_cert: X509,
    ca_key: PKey<Private>,
    device_root: X509,
    seen: Mutex<Seen>,
    /// Serials the enrollment URL refuses.
    refuse: HashSet<String>,
    requests: AtomicUsize,
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn ca(k: &PKey<Private>) -> X509 {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", "Stand-in MDM SCEP CA").unwrap();
    let n = n.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(&n).unwrap();
    b.set_pubkey(k).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(10).unwrap()).unwrap();
    b.sign(k, MessageDigest::sha256()).unwrap();
    b.build()
}

impl Stub {
    /// The MachineInfo inside a CMS SignedData, checked against the simulator's device CA.
    fn machine_info(&self, der_bytes: &[u8]) -> Option<Dictionary> {
        let p7 = Pkcs7::from_der(der_bytes).ok()?;
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(self.device_root.clone()).unwrap();
        let store = store.build();
        let mut out = Vec::new();
        p7.verify(&Stack::new().unwrap(), &store, None, Some(&mut out), Pkcs7Flags::BINARY)
            .ok()?;
        let d = Value::from_reader(std::io::Cursor::new(out)).ok()?.into_dictionary()?;
        self.seen.lock().unwrap().machine_infos.push(d.clone());
        Some(d)
    }

    fn profile(&self) -> Vec<u8> {
        let b = &self.base;
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.stand-in.enroll</string>
<key>PayloadUUID</key><string>77777777-2222-4333-8444-555555555555</string>
<key>PayloadDisplayName</key><string>Stand-in MDM</string>
<key>PayloadContent</key><array>
<dict>
<key>PayloadType</key><string>com.apple.security.scep</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.stand-in.scep</string>
<key>PayloadUUID</key><string>11111111-2222-4333-8444-555555555555</string>
<key>PayloadContent</key><dict>
  <key>URL</key><string>{b}/scep</string>
  <key>Challenge</key><string>let-me-in</string>
  <key>Keysize</key><integer>2048</integer>
  <key>Key Type</key><string>RSA</string>
</dict></dict>
<dict>
<key>PayloadType</key><string>com.apple.mdm</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.stand-in.mdm</string>
<key>PayloadUUID</key><string>66666666-2222-4333-8444-555555555555</string>
<key>ServerURL</key><string>{b}/mdm/connect</string>
<key>CheckInURL</key><string>{b}/mdm/checkin</string>
<key>Topic</key><string>{TOPIC}</string>
<key>AccessRights</key><integer>8191</integer>
<key>IdentityCertificateUUID</key><string>11111111-2222-4333-8444-555555555555</string>
</dict>
</array></dict></plist>"#
        )
        .into_bytes()
    }

    /// The tiny SCEP CA: read the PKCSReq, issue, answer a CertRep.
    fn cert_rep(&self, req: &[u8]) -> Vec<u8> {
        let attrs = scep::read_attributes(req).unwrap();
        let p7 = Pkcs7::from_der(req).unwrap();
        let store = X509StoreBuilder::new().unwrap().build();
        let mut envelope = Vec::new();
        p7.verify(
            &Stack::new().unwrap(),
            &store,
            None,
            Some(&mut envelope),
            Pkcs7Flags::NOVERIFY,
        )
        .unwrap();
        let signer = p7
            .signers(&Stack::new().unwrap(), Pkcs7Flags::empty())
            .unwrap()
            .iter()
            .next()
            .unwrap()
            .to_owned();
        let csr_der = Pkcs7::from_der(&envelope)
            .unwrap()
            .decrypt(&self.ca_key, &self.ca_cert, Pkcs7Flags::BINARY)
            .unwrap();
        let csr = X509Req::from_der(&csr_der).unwrap();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::ONE, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
        b.set_subject_name(csr.subject_name()).unwrap();
        b.set_issuer_name(self.ca_cert.subject_name()).unwrap();
        b.set_pubkey(&csr.public_key().unwrap()).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(10).unwrap()).unwrap();
        b.sign(&self.ca_key, MessageDigest::sha256()).unwrap();
        let mut chain = Stack::new().unwrap();
        chain.push(b.build()).unwrap();
        let degenerate = Pkcs7::sign(&self.ca_cert, &self.ca_key, &chain, b"", Pkcs7Flags::empty()).unwrap();
        let mut to = Stack::new().unwrap();
        to.push(signer).unwrap();
        let content = Pkcs7::encrypt(
            &to,
            &degenerate.to_der().unwrap(),
            Cipher::aes_256_cbc(),
            Pkcs7Flags::BINARY,
        )
        .unwrap()
        .to_der()
        .unwrap();
        let extra = vec![
            der::attribute(oid::SCEP_MESSAGE_TYPE, der::printable_string("3")).unwrap(),
            der::attribute(
                oid::SCEP_TRANSACTION_ID,
                der::printable_string(attrs.transaction_id.as_deref().unwrap()),
            )
            .unwrap(),
            der::attribute(
                oid::SCEP_RECIPIENT_NONCE,
                der::octet_string(&attrs.sender_nonce.unwrap()),
            )
            .unwrap(),
            der::attribute(oid::SCEP_SENDER_NONCE, der::octet_string(&[7; 16])).unwrap(),
            der::attribute(oid::SCEP_PKI_STATUS, der::printable_string("0")).unwrap(),
        ];
        scep::signed_data(&content, &extra, &self.ca_cert, &self.ca_key, Digest::Sha256).unwrap()
    }
}

type St = State<Arc<Stub>>;

fn profile_response(s: &Stub) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-apple-aspen-config")],
        s.profile(),
    )
        .into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn sign_in_page(serial: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<div class="error">{e}</div>"#))
        .unwrap_or_default();
    format!(
        r#"<!DOCTYPE html><html><head><title>Sign in</title></head><body>
<h1>Welcome to Example &amp; Co</h1>{error}
<form method="post" action="sign-in">
<input type="hidden" name="device" value="{serial}">
<input type="hidden" name="csrf" value="tok&amp;en">
<label>Name <input type="text" name="user"></label>
<label>Password <input type="password" name="pass"></label>
<input type="submit" value="Sign in">
</form></body></html>"#
    )
}

async fn web_page(State(s): St, headers: HeaderMap) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let info = headers
        .get("x-apple-aspen-deviceinfo")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.seen.lock().unwrap().web_gets.push(info.clone());
    let Some(mi) = info
        .and_then(|i| base64::engine::general_purpose::STANDARD.decode(i).ok())
        .and_then(|d| s.machine_info(&d))
    else {
        return html(StatusCode::FORBIDDEN, "<p>no device</p>".into());
    };
    let serial = mi.get("SERIAL").and_then(Value::as_string).unwrap_or("");
    let mut r = html(StatusCode::OK, sign_in_page(serial, None));
    r.headers_mut()
        .insert(header::SET_COOKIE, "sid=s3ss10n; Path=/; HttpOnly".parse().unwrap());
    r
}

async fn web_sign_in(State(s): St, headers: HeaderMap, body: String) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/x-www-form-urlencoded"
    );
    let fields: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.seen.lock().unwrap().sign_ins.push((fields.clone(), cookie.clone()));
    let serial = fields.get("device").cloned().unwrap_or_default();
    if fields.get("pass").map(String::as_str) == Some(PASSWORD)
        && fields.get("user").map(String::as_str) == Some("ava")
        && cookie.as_deref() == Some("sid=s3ss10n")
    {
        (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("profile?device={serial}"))],
        )
            .into_response()
    } else {
        html(
            StatusCode::OK,
            sign_in_page(&serial, Some("The password for <b>ava</b> is wrong.")),
        )
    }
}

async fn web_profile(State(s): St) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    profile_response(&s)
}

async fn enroll(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    s.seen.lock().unwrap().enroll_posts.push(ct);
    let Some(mi) = s.machine_info(&body) else {
        return (StatusCode::BAD_REQUEST, "bad signature").into_response();
    };
    let serial = mi.get("SERIAL").and_then(Value::as_string).unwrap_or("");
    if s.refuse.contains(serial) {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"code":"DEVICE_NOT_FOUND","message":"This device is not known to the MDM server."}"#,
        )
            .into_response();
    }
    profile_response(&s)
}

async fn scep_get(State(s): St, Query(q): Query<HashMap<String, String>>) -> Response {
    match q.get("operation").map(String::as_str) {
        Some("GetCACaps") => "POSTPKIOperation\nSHA-256\nAES\n".into_response(),
        Some("GetCACert") => (
            [(header::CONTENT_TYPE, "application/x-x509-ca-cert")],
            s.ca_cert.to_der().unwrap(),
        )
            .into_response(),
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn scep_post(State(s): St, body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/x-pki-message")], s.cert_rep(&body)).into_response()
}

fn read_plist(body: &[u8]) -> Dictionary {
    Value::from_reader(std::io::Cursor::new(body))
        .unwrap()
        .into_dictionary()
        .unwrap()
}

async fn checkin(State(s): St, body: Bytes) -> Response {
    let d = read_plist(&body);
    let get = |k: &str| d.get(k).and_then(Value::as_string).unwrap_or("").to_owned();
    let awaiting = d.get("AwaitingConfiguration").and_then(Value::as_boolean);
    s.seen
        .lock()
        .unwrap()
        .checkins
        .push((get("UDID"), get("MessageType"), awaiting));
    StatusCode::OK.into_response()
}

/// Sends DeviceConfigured once to each device that said it awaits configuration.
async fn connect(State(s): St, body: Bytes) -> Response {
    let d = read_plist(&body);
    let udid = d.get("UDID").and_then(Value::as_string).unwrap_or("").to_owned();
    let status = d.get("Status").and_then(Value::as_string).unwrap_or("");
    let mut seen = s.seen.lock().unwrap();
    if status == "Acknowledged" && d.get("CommandUUID").and_then(Value::as_string) == Some("configured-1") {
        seen.configured.push(udid.clone());
    }
    let awaiting = seen
        .checkins
        .iter()
        .rev()
        .find(|(u, m, _)| *u == udid && m == "TokenUpdate")
        .is_some_and(|(_, _, a)| *a == Some(true));
    if status == "Idle" && awaiting && seen.configured_sent.insert(udid) {
        let mut cmd = Dictionary::new();
        cmd.insert("RequestType".into(), "DeviceConfigured".into());
        let mut top = Dictionary::new();
        top.insert("CommandUUID".into(), "configured-1".into());
        top.insert("Command".into(), Value::Dictionary(cmd));
        let mut out = Vec::new();
        Value::Dictionary(top).to_writer_xml(&mut out).unwrap();
        return out.into_response();
    }
    StatusCode::OK.into_response()
}

async fn start_stub(sim: &AppleSim, refuse: &[String]) -> Arc<Stub> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ca_key = key();
    let stub = Arc::new(Stub {
        base,
        ca_cert: ca(&ca_key),
        ca_key,
        device_root: X509::from_pem(sim.device_ca_root_pem().as_bytes()).unwrap(),
        seen: Mutex::new(Seen::default()),
        refuse: refuse.iter().cloned().collect(),
        requests: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/ade/web", get(web_page))
        .route("/ade/sign-in", post(web_sign_in))
        .route("/ade/profile", get(web_profile))
        .route("/ade/enroll", post(enroll))
        .route("/scep", get(scep_get).post(scep_post))
        .route("/mdm/checkin", put(checkin))
        .route("/mdm/connect", put(connect))
        .with_state(stub.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    stub
}

/// Define an ADE profile and assign it to `serials`.
async fn assign_profile(w: &World, profile: serde_json::Value, serials: &[String]) -> String {
    let mut d = w.logged_in().await;
    let r = d.post("/profile", profile).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let uuid = r.json()["profile_uuid"].as_str().unwrap().to_owned();
    let r = d
        .post("/profile/devices", json!({ "profile_uuid": uuid, "devices": serials }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    uuid
}

fn buy(w: &World, n: usize, family: DeviceFamily) -> Vec<String> {
    let s = w.sim.add_devices(w.org, n, DeviceSpec { family: Some(family) });
    w.sim.assign_devices(w.server, &s).unwrap();
    s
}

fn fleet(sim: &AppleSim) -> Arc<Fleet> {
    Arc::new(
        Fleet::new(
            sim.clone(),
            FleetOptions {
                key_pool: Some(2),
                request_timeout: Duration::from_secs(10),
                ..FleetOptions::default()
            },
        )
        .unwrap(),
    )
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "applesim-activation-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn machine_info_is_cms_that_openssl_verifies_against_the_device_ca() {
    let w = World::new().await;
    let phone = buy(&w, 1, DeviceFamily::IPhone).remove(0);
    let mac = buy(&w, 1, DeviceFamily::Mac).remove(0);
    let f = fleet(&w.sim);
    let dir = temp_dir("cms");
    // The root as the admin API serves it is the one to trust.
    let r = reqwest::get(format!("{}/abm/device-ca", w.run.base_url)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-pem-file");
    let root = r.text().await.unwrap();
    assert_eq!(root, w.sim.device_ca_root_pem());
    std::fs::write(dir.join("root.pem"), &root).unwrap();
    std::fs::write(dir.join("other-root.pem"), AppleSim::new().device_ca_root_pem()).unwrap();

    for (serial, phone_like) in [(&phone, true), (&mac, false)] {
        let der_bytes = f.machine_info(serial).await.unwrap();
        assert_eq!(
            der_bytes,
            f.machine_info(serial).await.unwrap(),
            "the same identity each time"
        );
        let input = dir.join(format!("{serial}.der"));
        std::fs::write(&input, &der_bytes).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["cms", "-verify", "-inform", "DER", "-in"])
            .arg(&input)
            .arg("-CAfile")
            .arg(dir.join("root.pem"))
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl cms -verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mi = read_plist(&out.stdout);
        let dev = f.device_by_serial(serial).unwrap();
        let s = |k: &str| mi.get(k).and_then(Value::as_string).map(str::to_owned);
        assert_eq!(s("SERIAL").as_deref(), Some(serial.as_str()));
        assert_eq!(s("UDID").as_deref(), Some(dev.udid()));
        assert_eq!(s("PRODUCT").as_deref(), Some(dev.info().product_name.as_str()));
        assert_eq!(s("VERSION").as_deref(), Some(dev.info().build_version.as_str()));
        assert_eq!(s("OS_VERSION").as_deref(), Some(dev.info().os_version.as_str()));
        assert_eq!(s("LANGUAGE").as_deref(), Some("en"));
        assert_eq!(
            mi.get("MDM_CAN_REQUEST_SOFTWARE_UPDATE").and_then(Value::as_boolean),
            Some(true)
        );
        assert_eq!(s("IMEI").is_some(), phone_like, "{mi:?}");
        assert_eq!(s("MEID").is_some(), phone_like, "{mi:?}");
        let product = s("PRODUCT").unwrap();
        assert!(
            product.starts_with(if phone_like { "iPhone" } else { "Mac" }) && product.contains(','),
            "{product}"
        );
        // Signed with SHA-256 by the device's identity, which is included.
        let printed = std::process::Command::new("openssl")
            .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
            .arg(&input)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&printed.stdout);
        assert!(printed.contains("sha256"), "{printed}");
        assert!(printed.contains(dev.udid()), "the signer's certificate names the UDID");
        // Another simulator's root does not vouch for it.
        let other = std::process::Command::new("openssl")
            .args(["cms", "-verify", "-inform", "DER", "-in"])
            .arg(&input)
            .arg("-CAfile")
            .arg(dir.join("other-root.pem"))
            .output()
            .unwrap();
        assert!(!other.status.success());
    }
    // The same serial is the same device in another fleet (UDID stable per serial).
    let again = fleet(&w.sim);
    again.machine_info(&phone).await.unwrap();
    assert_eq!(
        again.device_by_serial(&phone).unwrap().udid(),
        f.device_by_serial(&phone).unwrap().udid()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sign_in_page_then_enrollment_then_device_configured_and_erase() {
    let w = World::new().await;
    let phones = buy(&w, 2, DeviceFamily::IPhone);
    let stub = start_stub(&w.sim, &[]).await;
    assign_profile(
        &w,
        json!({
            "profile_name": "With user affinity",
            "url": format!("{}/ade/enroll", stub.base),
            "configuration_web_url": format!("{}/ade/web", stub.base),
            "is_supervised": true,
            "is_mdm_removable": false,
            "await_device_configured": true,
        }),
        &phones,
    )
    .await;
    let (good, bad) = (&phones[0], &phones[1]);
    let f = fleet(&w.sim);
    let opts = ActivationOptions {
        credentials: Credentials::PerSerial(HashMap::from([
            (good.clone(), SignIn::new("ava", PASSWORD)),
            (bad.clone(), SignIn::new("ava", "wrong")),
        ])),
        wait_configured: Some(Duration::from_secs(5)),
    };
    // The stand-in server pushes nothing: release the device from Setup Assistant by making
    // it connect once it has enrolled (as a push would).
    let releaser = {
        let f = f.clone();
        let good = good.clone();
        tokio::spawn(async move {
            for _ in 0..500 {
                if let Some(d) = f.device_by_serial(&good)
                    && d.is_enrolled()
                {
                    f.connect(d.index()).await.unwrap();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the device never enrolled");
        })
    };
    let report = f.activate(&phones, &opts).await;
    releaser.await.unwrap();

    // The wrong password: refused with the page's error text, nothing installed.
    match report.get(bad).unwrap() {
        ActivationOutcome::Refused {
            step: ActivationStep::SignIn,
            status: Some(200),
            message,
            body,
            ..
        } => {
            assert_eq!(message, "The password for ava is wrong.");
            assert!(body.contains("<form"), "{body}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!f.device_by_serial(bad).unwrap().is_enrolled());

    // The right one: enrolled, then configured.
    let dev = f.device_by_serial(good).unwrap();
    let (udid, configured_at) = match report.get(good).unwrap() {
        ActivationOutcome::Enrolled {
            udid,
            device,
            configured: Configured::At(t),
            enrolled_at,
            ..
        } => {
            assert_eq!(*device, dev.index());
            assert!(t >= enrolled_at);
            (udid.clone(), *t)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(udid, dev.udid());
    assert_eq!(dev.configured_at(), Some(configured_at));
    assert!(!dev.is_awaiting_configuration());
    assert_eq!(
        (report.enrolled(), report.configured(), report.refused().len()),
        (1, 1, 1)
    );
    assert_eq!(
        w.sim.device(good).unwrap().profile_status,
        "pushed",
        "Setup Assistant fetched it"
    );
    let installed = &dev.profiles()[0];
    assert!(installed.removal_disallowed, "is_mdm_removable false");
    assert!(dev.state().supervised);

    {
        let seen = stub.seen.lock().unwrap();
        // Both devices sent their signed MachineInfo on the GET.
        assert_eq!(seen.web_gets.len(), 2);
        assert!(seen.web_gets.iter().all(Option::is_some), "{:?}", seen.web_gets);
        let serials: HashSet<String> = seen
            .machine_infos
            .iter()
            .map(|m| m.get("SERIAL").and_then(Value::as_string).unwrap().to_owned())
            .collect();
        assert_eq!(serials, phones.iter().cloned().collect());
        // The form: hidden fields kept (decoded), the user's name and password typed in,
        // the session cookie sent back.
        let (fields, cookie) = seen
            .sign_ins
            .iter()
            .find(|(f, _)| f.get("device") == Some(good))
            .unwrap();
        assert_eq!(fields.get("csrf").map(String::as_str), Some("tok&en"));
        assert_eq!(fields.get("user").map(String::as_str), Some("ava"));
        assert_eq!(fields.get("pass").map(String::as_str), Some(PASSWORD));
        assert_eq!(fields.len(), 4);
        assert_eq!(cookie.as_deref(), Some("sid=s3ss10n"));
        assert!(seen.enroll_posts.is_empty(), "the web flow does not POST to url");
        // Authenticate and TokenUpdate with the MachineInfo's UDID, awaiting configuration.
        let mine: Vec<_> = seen.checkins.iter().filter(|(u, _, _)| *u == udid).collect();
        assert_eq!(mine.len(), 2, "{:?}", seen.checkins);
        assert_eq!(mine[0].1, "Authenticate");
        assert_eq!((mine[1].1.as_str(), mine[1].2), ("TokenUpdate", Some(true)));
        assert_eq!(seen.configured, vec![udid.clone()]);
    }

    // Enrolled already: activating again is refused; erasing first re-enrolls it with the
    // same UDID and a clean slate.
    let again = f.activate(std::slice::from_ref(good), &opts).await;
    assert!(matches!(
        again.outcomes[0],
        ActivationOutcome::Refused {
            step: ActivationStep::Device,
            ..
        }
    ));
    let old_cert = dev.identity_certificate().unwrap();
    let hardware = dev.hardware_certificate().unwrap();
    let erased = f
        .erase_and_activate(
            good,
            &ActivationOptions {
                wait_configured: None,
                ..opts.clone()
            },
        )
        .await;
    match &erased {
        ActivationOutcome::Enrolled {
            udid: u,
            configured: Configured::Waiting,
            ..
        } => assert_eq!(*u, udid),
        other => panic!("{other:?}"),
    }
    assert!(dev.is_enrolled() && dev.is_awaiting_configuration());
    assert_eq!(dev.configured_at(), None);
    assert!(dev.commands().is_empty(), "the erased device forgot its command log");
    assert_ne!(
        dev.identity_certificate().unwrap().to_der().unwrap(),
        old_cert.to_der().unwrap()
    );
    assert_eq!(
        dev.hardware_certificate().unwrap().to_der().unwrap(),
        hardware.to_der().unwrap(),
        "the hardware identity survives erasure"
    );
    assert_eq!(f.stats().enrolled, 1);
    let seen = stub.seen.lock().unwrap();
    assert_eq!(
        seen.checkins
            .iter()
            .filter(|(u, m, _)| *u == udid && m == "Authenticate")
            .count(),
        2
    );
}

#[tokio::test]
async fn enrollment_url_post_and_its_refusals() {
    let w = World::new().await;
    let devices = [
        buy(&w, 1, DeviceFamily::IPad).remove(0),
        buy(&w, 1, DeviceFamily::Mac).remove(0),
    ];
    let stub = start_stub(&w.sim, &devices[1..]).await;
    assign_profile(
        &w,
        json!({ "profile_name": "No affinity", "url": format!("{}/ade/enroll", stub.base) }),
        &devices,
    )
    .await;
    let f = fleet(&w.sim);
    let report = f.activate(&devices, &ActivationOptions::default()).await;
    assert!(
        matches!(
            report.get(&devices[0]),
            Some(ActivationOutcome::Enrolled {
                configured: Configured::NotRequested,
                ..
            })
        ),
        "{report:?}"
    );
    match report.get(&devices[1]).unwrap() {
        ActivationOutcome::Refused {
            step: ActivationStep::EnrollmentUrl,
            status: Some(403),
            message,
            body,
            ..
        } => {
            let raw = r#"{"code":"DEVICE_NOT_FOUND","message":"This device is not known to the MDM server."}"#;
            assert_eq!((message.as_str(), body.as_str()), (raw, raw));
        }
        other => panic!("{other:?}"),
    }
    let seen = stub.seen.lock().unwrap();
    assert_eq!(seen.enroll_posts, vec!["application/pkcs7-signature".to_owned(); 2]);
    assert!(seen.web_gets.is_empty());
    let ipad = f.device_by_serial(&devices[0]).unwrap();
    let tu = seen
        .checkins
        .iter()
        .find(|(u, m, _)| u == ipad.udid() && m == "TokenUpdate")
        .unwrap();
    assert_eq!(tu.2, Some(false), "no await_device_configured");
}

#[tokio::test]
async fn devices_outside_ade_send_nothing() {
    let w = World::new().await;
    let stub = start_stub(&w.sim, &[]).await;
    let with_profile = buy(&w, 2, DeviceFamily::IPhone);
    let tv = buy(&w, 1, DeviceFamily::AppleTV).remove(0);
    assign_profile(
        &w,
        json!({ "profile_name": "P", "url": format!("{}/ade/enroll", stub.base) }),
        &[with_profile.clone(), vec![tv.clone()]].concat(),
    )
    .await;
    let no_profile = buy(&w, 1, DeviceFamily::IPhone).remove(0);
    let unassigned = w.sim.add_devices(
        w.org,
        1,
        DeviceSpec {
            family: Some(DeviceFamily::IPhone),
        },
    );
    // Moved to another MDM server after the profile was assigned: the assignment is gone.
    let other = w.sim.create_mdm_server(w.org, "Other MDM");
    w.sim.assign_devices(other, &with_profile[1..]).unwrap();
    let serials = vec![
        "NOSUCHSERIAL".to_owned(),
        unassigned[0].clone(),
        no_profile.clone(),
        with_profile[1].clone(),
        tv.clone(),
    ];
    let f = fleet(&w.sim);
    let report = f.activate(&serials, &ActivationOptions::default()).await;
    assert_eq!(report.outcomes.len(), 5);
    for o in &report.outcomes[..4] {
        assert!(matches!(o, ActivationOutcome::NotAde { .. }), "{o:?}");
        assert!(o.to_string().contains("not enrolled in ADE"), "{o}");
    }
    assert_eq!(report.not_ade().len(), 4);
    assert!(matches!(
        report.outcomes[4],
        ActivationOutcome::Refused {
            step: ActivationStep::Device,
            status: None,
            ..
        }
    ));
    assert_eq!(stub.requests.load(Ordering::Relaxed), 0, "no request was sent");
    assert_eq!(w.sim.device(&no_profile).unwrap().profile_status, "empty");
    assert!(f.is_empty(), "none of them became a fleet device");
}
