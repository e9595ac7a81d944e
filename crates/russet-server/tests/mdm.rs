//! The MDM core end to end over real HTTP, on SQLite and (when configured) PostgreSQL:
//! the push certificate from applesim's portal (vendor-signed request made by Russet),
//! an enrollment link, SCEP with Debian's `scepclient`, check-ins and command reports signed
//! like a device signs them, pushes arriving at applesim's APNs, NotNow, inventory,
//! impersonation refused.
//!
//! Needs `scepclient` (`RUSSET_TEST_SCEPCLIENT`; CI installs Debian's `scep`); without it the
//! test says loudly that it was skipped.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::mdm::*;
use common::*;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::{X509, X509NameBuilder, X509ReqBuilder};
use plist::{Dictionary, Value};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn scepclient(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("RUSSET_TEST_SCEPCLIENT").map(PathBuf::from);
    match path {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!(
                "*** SKIPPED {test}: RUSSET_TEST_SCEPCLIENT is not set to Debian's scepclient (apt install scep) ***"
            );
            None
        }
    }
}

/// A simulated device: its identity from Russet's SCEP service, and what it says.
struct Device {
    udid: String,
    serial: String,
    cert: X509,
    key: PKey<Private>,
    dir: tempfile::TempDir,
}

impl Device {
    fn key_path(&self) -> PathBuf {
        self.dir.path().join("device.key")
    }
    fn cert_path(&self) -> PathBuf {
        self.dir.path().join("device.pem")
    }
}

/// Downloads the profile behind a link; returns (profile dictionary, SCEP payload).
async fn profile(s: &TestServer, url: &str) -> (Dictionary, Dictionary) {
    let resp = s.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-apple-aspen-config"
    );
    let body = resp.bytes().await.unwrap();
    let dict = Value::from_reader(std::io::Cursor::new(&body[..]))
        .unwrap()
        .into_dictionary()
        .unwrap();
    let scep = dict["PayloadContent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_dictionary)
        .find(|p| p["PayloadType"].as_string() == Some("com.apple.security.scep"))
        .unwrap()["PayloadContent"]
        .as_dictionary()
        .unwrap()
        .clone();
    (dict, scep)
}

fn mdm_payload(profile: &Dictionary) -> Dictionary {
    profile["PayloadContent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_dictionary)
        .find(|p| p["PayloadType"].as_string() == Some("com.apple.mdm"))
        .unwrap()
        .clone()
}

/// Installs the profile's identity with scepclient, as the device's SCEP client would.
async fn scep_enroll(scepclient: &Path, scep: &Dictionary, n: usize) -> Result<Device, String> {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("device.key");
    let cert = dir.path().join("device.pem");
    let out = tokio::process::Command::new(scepclient)
        .args(["-server-url", scep["URL"].as_string().unwrap()])
        .args(["-challenge", scep["Challenge"].as_string().unwrap()])
        .arg("-private-key")
        .arg(&key)
        .arg("-certificate")
        .arg(&cert)
        .args(["-cn", &format!("device-{n}")])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Device {
        udid: format!("00008030-00{n:02}1A2B3C4D5E6F"),
        serial: format!("F2LTEST{n:05}"),
        cert: X509::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        key: PKey::private_key_from_pem(&std::fs::read(&key).unwrap()).unwrap(),
        dir,
    })
}

/// Gets the profile's identity with strongSwan's `pki --scep` (AES, SHA-256, POST), when
/// `RUSSET_TEST_STRONGSWAN_PKI` names it.
async fn strongswan_enroll(s: &TestServer, scep: &Dictionary, n: usize) -> Option<Device> {
    strongswan_enroll_to(s, scep, n, None).await
}

/// [`strongswan_enroll`], encrypting to `ra` instead of the RA GetCACert serves, when given.
async fn strongswan_enroll_to(
    s: &TestServer,
    scep: &Dictionary,
    n: usize,
    override_ra: Option<&X509>,
) -> Option<Device> {
    let pki = std::env::var_os("RUSSET_TEST_STRONGSWAN_PKI")
        .map(PathBuf::from)
        .filter(|p| p.exists());
    let Some(pki) = pki else {
        eprintln!(
            "*** SKIPPED mdm (strongSwan part): RUSSET_TEST_STRONGSWAN_PKI is not set (apt install strongswan-pki) ***"
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>| {
        let pki = pki.clone();
        async move {
            tokio::process::Command::new(&pki)
                .args(args)
                .kill_on_drop(true)
                .output()
                .await
                .unwrap()
        }
    };
    let key_out = run(["--gen", "--type", "rsa", "--size", "2048", "--outform", "pem"]
        .map(String::from)
        .to_vec())
    .await;
    assert!(key_out.status.success(), "pki --gen");
    let key_path = dir.path().join("device.key");
    std::fs::write(&key_path, &key_out.stdout).unwrap();
    // GetCACert: the RA certificate (devices encrypt to it, it signs the answers), then the
    // CA's, as a certificates-only PKCS#7.
    let resp = s
        .http
        .get(format!("{}/scep?operation=GetCACert", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-x509-ca-ra-cert");
    let p7 = openssl::pkcs7::Pkcs7::from_der(&resp.bytes().await.unwrap()).unwrap();
    let certs: Vec<X509> = p7
        .signed()
        .unwrap()
        .certificates()
        .unwrap()
        .iter()
        .map(|c| c.to_owned())
        .collect();
    assert_eq!(certs.len(), 2, "RA and CA");
    let (ra, ca) = (&certs[0], &certs[1]);
    assert!(ra.verify(&ca.public_key().unwrap()).unwrap(), "the CA issued the RA");
    assert_eq!(
        hex::encode(ca.digest(openssl::hash::MessageDigest::sha1()).unwrap()).to_uppercase(),
        hex::encode(scep["CAFingerprint"].as_data().unwrap()).to_uppercase(),
        "the profile pins the CA"
    );
    let ra_path = dir.path().join("ra.der");
    std::fs::write(&ra_path, override_ra.unwrap_or(ra).to_der().unwrap()).unwrap();
    let ca_path = ra_path.clone();
    let out = run(vec![
        "--scep".into(),
        "--url".into(),
        scep["URL"].as_string().unwrap().into(),
        "--in".into(),
        key_path.display().to_string(),
        "--dn".into(),
        format!("CN=strongswan-device-{n}"),
        "--cacert-enc".into(),
        ca_path.display().to_string(),
        "--cacert-sig".into(),
        ca_path.display().to_string(),
        "--password".into(),
        scep["Challenge"].as_string().unwrap().into(),
        "--outform".into(),
        "pem".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "pki --scep against Russet: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Device {
        udid: format!("00008030-00{n:02}1A2B3C4D5E6F"),
        serial: format!("F2LTEST{n:05}"),
        cert: X509::from_pem(&out.stdout).unwrap(),
        key: PKey::private_key_from_pem(&key_out.stdout).unwrap(),
        dir,
    })
}

fn plist(entries: Vec<(&str, Value)>) -> Vec<u8> {
    let mut d = Dictionary::new();
    for (k, v) in entries {
        d.insert(k.to_string(), v);
    }
    let mut out = Vec::new();
    Value::Dictionary(d).to_writer_xml(&mut out).unwrap();
    out
}

/// `Mdm-Signature`: a detached CMS signature over the body, as a device makes it.
fn signature(device: &Device, body: &[u8]) -> String {
    let p7 = Pkcs7::sign(
        &device.cert,
        &device.key,
        &Stack::new().unwrap(),
        body,
        Pkcs7Flags::DETACHED | Pkcs7Flags::BINARY,
    )
    .unwrap();
    STANDARD.encode(p7.to_der().unwrap())
}

async fn put(s: &TestServer, path: &str, body: Vec<u8>, sig: Option<String>, checkin: bool) -> (StatusCode, Vec<u8>) {
    let mut req = s.http.put(format!("{}{path}", s.url)).body(body);
    if checkin {
        req = req.header("content-type", "application/x-apple-aspen-mdm-checkin");
    }
    if let Some(sig) = sig {
        req = req.header("mdm-signature", sig);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

async fn checkin(s: &TestServer, device: &Device, as_udid: &str, entries: Vec<(&str, Value)>) -> (StatusCode, Vec<u8>) {
    let mut all = vec![("UDID", Value::String(as_udid.into()))];
    all.extend(entries);
    let body = plist(all);
    let sig = signature(device, &body);
    put(s, "/mdm/checkin", body, Some(sig), true).await
}

async fn authenticate(s: &TestServer, d: &Device, topic: &str) -> StatusCode {
    checkin(
        s,
        d,
        &d.udid,
        vec![
            ("MessageType", Value::String("Authenticate".into())),
            ("Topic", Value::String(topic.into())),
            ("SerialNumber", Value::String(d.serial.clone())),
            ("DeviceName", Value::String("Test iPhone".into())),
            ("Model", Value::String("iPhone16,1".into())),
        ],
    )
    .await
    .0
}

async fn token_update(s: &TestServer, d: &Device, topic: &str, token: &[u8]) -> StatusCode {
    checkin(
        s,
        d,
        &d.udid,
        vec![
            ("MessageType", Value::String("TokenUpdate".into())),
            ("Topic", Value::String(topic.into())),
            ("Token", Value::Data(token.to_vec())),
            ("PushMagic", Value::String(format!("magic-{}", d.udid))),
            ("UnlockToken", Value::Data(b"unlock".to_vec())),
        ],
    )
    .await
    .0
}

/// A command report; returns the next command (uuid, request type) if any.
async fn report(
    s: &TestServer,
    d: &Device,
    status: &str,
    uuid: Option<&str>,
    extra: Vec<(&str, Value)>,
) -> Option<(String, String)> {
    let mut entries = vec![
        ("UDID", Value::String(d.udid.clone())),
        ("Status", Value::String(status.into())),
    ];
    if let Some(u) = uuid {
        entries.push(("CommandUUID", Value::String(u.into())));
    }
    entries.extend(extra);
    let body = plist(entries);
    let sig = signature(d, &body);
    let (code, out) = put(s, "/mdm/connect", body, Some(sig), false).await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&out));
    if out.is_empty() {
        return None;
    }
    let cmd = Value::from_reader(std::io::Cursor::new(&out[..]))
        .unwrap()
        .into_dictionary()
        .unwrap();
    Some((
        cmd["CommandUUID"].as_string().unwrap().to_string(),
        cmd["Command"].as_dictionary().unwrap()["RequestType"]
            .as_string()
            .unwrap()
            .to_string(),
    ))
}

/// An enrolled device written straight to the store, as its Authenticate and TokenUpdate
/// would write it (for tests about pushes, not about check-ins).
async fn enrolled(s: &TestServer, udid: &str, serial: Option<String>, topic: &str, token_hex: &str, magic: &str) {
    let store = &s.server.core.store;
    store
        .mdm_authenticate(
            &russet_store::mdm::AuthenticateRecord {
                id: udid.into(),
                kind: "device".into(),
                udid: Some(udid.into()),
                serial_number: serial,
                topic: topic.into(),
                ..Default::default()
            },
            NOW,
        )
        .await
        .unwrap();
    store
        .mdm_token_update(
            &russet_store::mdm::TokenUpdateRecord {
                id: udid.into(),
                device_id: udid.into(),
                kind: "device".into(),
                udid: Some(udid.into()),
                topic: topic.into(),
                push_token: token_hex.into(),
                push_magic: magic.into(),
                ..Default::default()
            },
            NOW,
        )
        .await
        .unwrap();
}

async fn woken(reg: &mut applesim::PushRegistration) -> String {
    match tokio::time::timeout(StdDuration::from_secs(15), reg.receiver.recv()).await {
        Ok(Some(w)) => w.push_magic,
        other => panic!("no push arrived: {:?}", other.map(|w| w.map(|w| w.push_magic))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_through_a_link_command_push_and_report() {
    let test = "mdm::enroll_link";
    let Some(scep) = scepclient(test) else { return };
    // Debian's scepclient 2.1 encrypts its request to every certificate GetCACert returns,
    // the CA's included, and cannot encrypt to an EC key: it needs an RSA CA. (strongSwan,
    // like Apple's devices, picks the RA; `a_replaced_scep_ra_is_read_again` runs it against
    // the default EC CA.)
    for s in start_with(test, |c, _| c.mdm.ca_key_type = "rsa-3072".into()).await {
        let ca_key = s.server.core.device_ca().await.unwrap().key.clone();
        assert!(ca_key.rsa().is_ok(), "mdm.ca_key_type = rsa-3072 makes an RSA CA");
        // Without a push certificate a link serves nothing a device could use.
        let url = new_link(&s, false).await;
        let e = s.json(s.http.request(Method::GET, &url), StatusCode::CONFLICT).await;
        assert_eq!(code(&e), "no_push_certificate");

        let topic = install_push_cert(&s).await;
        let (profile_dict, scep_payload) = profile(&s, &url).await;
        let mdm = mdm_payload(&profile_dict);
        assert_eq!(mdm["Topic"].as_string(), Some(topic.as_str()));
        assert_eq!(
            mdm["ServerURL"].as_string(),
            Some(format!("{}/mdm/connect", s.url).as_str())
        );
        assert_eq!(mdm["SignMessage"].as_boolean(), Some(true));
        assert_eq!(mdm["AccessRights"].as_signed_integer(), Some(8191));

        let a = scep_enroll(&scep, &scep_payload, 1)
            .await
            .expect("scepclient enrolls with the challenge");
        // The challenge is single use.
        let again = scep_enroll(&scep, &scep_payload, 9).await;
        assert!(again.is_err(), "a used challenge is refused");

        let mut reg = s.sim.register_push_token(&topic);
        assert_eq!(authenticate(&s, &a, &topic).await, StatusCode::OK);
        assert_eq!(token_update(&s, &a, &topic, &reg.token).await, StatusCode::OK);
        // Enrolled: Russet queues the first DeviceInformation and wakes the device.
        assert_eq!(woken(&mut reg).await, format!("magic-{}", a.udid));
        let (uuid, rt) = report(&s, &a, "Idle", None, vec![])
            .await
            .expect("a command is waiting");
        assert_eq!(rt, "DeviceInformation");
        let mut answers = Dictionary::new();
        answers.insert("DeviceName".into(), Value::String("Alice's iPhone".into()));
        answers.insert("OSVersion".into(), Value::String("18.1".into()));
        answers.insert("SerialNumber".into(), Value::String(a.serial.clone()));
        answers.insert("ModelName".into(), Value::String("iPhone".into()));
        let next = report(
            &s,
            &a,
            "Acknowledged",
            Some(&uuid),
            vec![("QueryResponses", Value::Dictionary(answers))],
        )
        .await;
        assert!(next.is_none(), "an empty body when nothing is queued");
        let enrolled = s
            .json(
                s.req(Method::GET, &format!("/api/v1/enrollments/{}", a.udid)),
                StatusCode::OK,
            )
            .await;
        assert_eq!(enrolled["device_name"], "Alice's iPhone");
        assert_eq!(enrolled["os_version"], "18.1");
        assert_eq!(enrolled["serial_number"], a.serial);
        assert_eq!(enrolled["enabled"], true);

        // An administrator's command to the serial number: pushed, NotNow, re-offered, acknowledged.
        let queued = s
            .json(
                s.req(Method::POST, "/api/v1/commands").json(&json!({
                    "targets": { "serials": [a.serial, "NOT-ENROLLED"] },
                    "command": { "request_type": "SecurityInfo" }
                })),
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(queued["queued"], 1);
        assert_eq!(queued["not_enrolled"], json!(["NOT-ENROLLED"]));
        let cmd = queued["command_uuid"].as_str().unwrap().to_string();
        woken(&mut reg).await;
        let (got, rt) = report(&s, &a, "Idle", None, vec![]).await.unwrap();
        assert_eq!((got.as_str(), rt.as_str()), (cmd.as_str(), "SecurityInfo"));
        assert!(report(&s, &a, "NotNow", Some(&cmd), vec![]).await.is_none());
        let (got, _) = report(&s, &a, "Idle", None, vec![])
            .await
            .expect("NotNow'd command comes back");
        assert_eq!(got, cmd);
        assert!(report(&s, &a, "Acknowledged", Some(&cmd), vec![]).await.is_none());
        let status = s
            .json(s.req(Method::GET, &format!("/api/v1/commands/{cmd}")), StatusCode::OK)
            .await;
        assert_eq!(status["devices"][0]["status"], "Acknowledged");
        assert_eq!(status["devices"][0]["not_now_count"], 1);
        // Invalid commands are refused before anything is queued.
        let e = s
            .json(
                s.req(Method::POST, "/api/v1/commands").json(&json!({
                    "targets": { "serials": [a.serial] },
                    "command": { "request_type": "DeviceLock", "pin": "12" }
                })),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert!(!message(&e).is_empty());

        // A second device; neither may speak for the other.
        let (_, scep2) = profile(&s, &url).await;
        let b = match strongswan_enroll(&s, &scep2, 2).await {
            Some(d) => d,
            None => scep_enroll(&scep, &scep2, 2).await.unwrap(),
        };
        assert_eq!(authenticate(&s, &b, &topic).await, StatusCode::OK);
        let impostor = Device {
            udid: a.udid.clone(),
            serial: a.serial.clone(),
            cert: b.cert.clone(),
            key: b.key.clone(),
            dir: tempfile::tempdir().unwrap(),
        };
        let body = plist(vec![
            ("UDID", Value::String(a.udid.clone())),
            ("Status", Value::String("Idle".into())),
        ]);
        let (code_, text) = put(
            &s,
            "/mdm/connect",
            body.clone(),
            Some(signature(&impostor, &body)),
            false,
        )
        .await;
        assert_eq!(code_, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&text));
        assert_eq!(
            authenticate(&s, &impostor, &topic).await,
            StatusCode::BAD_REQUEST,
            "A's UDID with B's certificate"
        );
        // A tampered body, no signature, garbage, unknown message types: 400, never 401.
        let sig = signature(&a, &body);
        let mut tampered = body.clone();
        tampered.extend_from_slice(b"\n");
        assert_eq!(
            put(&s, "/mdm/connect", tampered, Some(sig), false).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            put(&s, "/mdm/connect", body.clone(), None, false).await.0,
            StatusCode::BAD_REQUEST
        );
        let junk = b"not a plist".to_vec();
        assert_eq!(
            put(&s, "/mdm/checkin", junk.clone(), Some(signature(&a, &junk)), true)
                .await
                .0,
            StatusCode::BAD_REQUEST
        );
        let (c, _) = checkin(&s, &a, &a.udid, vec![("MessageType", Value::String("Bogus".into()))]).await;
        assert_eq!(c, StatusCode::BAD_REQUEST);
        let (c, _) = checkin(
            &s,
            &a,
            &a.udid,
            vec![
                ("MessageType", Value::String("UserAuthenticate".into())),
                ("UserID", Value::String("U1".into())),
            ],
        )
        .await;
        assert_eq!(c, StatusCode::GONE, "user channels are declined with 410");
        let big = vec![b' '; russet_core::mdm::MAX_CHECKIN_BODY + 10];
        assert_eq!(
            put(&s, "/mdm/checkin", big, None, true).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );

        // An Mdm-Signature made by the openssl command line is accepted.
        let body = plist(vec![
            ("UDID", Value::String(a.udid.clone())),
            ("Status", Value::String("Idle".into())),
        ]);
        let body_path = a.dir.path().join("body.plist");
        std::fs::write(&body_path, &body).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256"])
            .arg("-signer")
            .arg(a.cert_path())
            .arg("-inkey")
            .arg(a.key_path())
            .arg("-in")
            .arg(&body_path)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let (c, _) = put(&s, "/mdm/connect", body, Some(STANDARD.encode(o.stdout)), false).await;
                assert_eq!(c, StatusCode::OK);
            }
            _ => eprintln!("*** SKIPPED {test} (openssl cms part): the openssl command line is missing ***"),
        }

        // CheckOut: no more pushes for A.
        let (c, _) = checkin(
            &s,
            &a,
            &a.udid,
            vec![
                ("MessageType", Value::String("CheckOut".into())),
                ("Topic", Value::String(topic.clone())),
            ],
        )
        .await;
        assert_eq!(c, StatusCode::OK);
        let e = s
            .json(
                s.req(Method::POST, "/api/v1/commands").json(&json!({
                    "targets": { "udids": [a.udid] },
                    "command": { "request_type": "ProfileList" }
                })),
                StatusCode::NOT_FOUND,
            )
            .await;
        assert_eq!(code(&e), "no_enrolled_targets");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_certificate_renewal_through_apples_portal() {
    for s in start("mdm::push_renewal").await {
        let topic = install_push_cert(&s).await;
        // "Create" instead of "Renew" in Apple's portal: a new topic, refused.
        let csr = s
            .json(s.req(Method::POST, "/api/v1/push-cert/csr"), StatusCode::CREATED)
            .await;
        let request = csr["signed_request"].as_str().unwrap();
        let wrong = s.sim.push_portal_create(APPLE_ID, request).unwrap();
        assert_ne!(wrong.topic, topic);
        let e = s
            .json(
                s.req(Method::PUT, "/api/v1/push-cert").body(wrong.certificate_pem),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&e), "push_topic_changed");
        // "Renew": same topic, accepted.
        let renewed = s.sim.push_portal_renew(APPLE_ID, &topic, request).unwrap();
        assert_eq!(renewed.topic, topic);
        let cert = s
            .json(
                s.req(Method::PUT, "/api/v1/push-cert").body(renewed.certificate_pem),
                StatusCode::OK,
            )
            .await;
        assert_eq!(cert["topic"], topic);
        assert_eq!(
            cert["serial"].as_str().map(str::to_lowercase),
            Some(renewed.serial_hex.to_lowercase())
        );
        s.stop().await;
    }
}

/// A renewal uploaded to one process reaches every process sharing the database: the second
/// server's next push uses the new certificate (the old one has expired by then, so a push
/// with it would be refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_push_certificate_reaches_every_process() {
    use std::sync::Arc;
    for s in start("mdm::renewal_two_processes").await {
        let topic = install_push_cert(&s).await;
        // A second server on the same database, with the same master key and Apple.
        let mut config = russet_server::config::Config {
            listen: "127.0.0.1:0".into(),
            data_dir: s.db.path().join("second"),
            database_url: Some(s.db.url.clone()),
            ..russet_server::config::Config::default()
        };
        config.sync.enabled = false;
        config.apple.apns_url = s.sim_run.as_ref().unwrap().apns_url.clone();
        config.apple.apns_ca_file = Some(s.db.path().join("apns-ca.pem"));
        let master = std::fs::read_to_string(s.db.path().join("data").join("master.key")).unwrap();
        let clock2 = russet_core::ManualClock::new(NOW);
        let second = russet_server::serve::start(
            &config,
            russet_server::serve::StartOptions {
                master_key: Some(secrecy::SecretString::from(master.trim().to_string())),
                clock: Arc::new(clock2.clone()),
            },
        )
        .await
        .expect("second server starts");
        // An enrolled device (written as check-ins would write it).
        let mut reg = s.sim.register_push_token(&topic);
        let udid = "00008030-000A1B2C3D4E5F60".to_string();
        enrolled(&s, &udid, None, &topic, &reg.token_hex, "magic").await;
        let pushed = second.core.push_enrollments(std::slice::from_ref(&udid)).await.unwrap();
        assert_eq!(pushed.sent, 1, "{pushed:?}");
        woken(&mut reg).await;
        // 200 days on, the first server renews (same topic, a new key, a year from now).
        let later = NOW + time::Duration::days(200);
        s.set_time(later);
        clock2.set(later);
        let csr = s
            .json(s.req(Method::POST, "/api/v1/push-cert/csr"), StatusCode::CREATED)
            .await;
        let renewed = s
            .sim
            .push_portal_renew(APPLE_ID, &topic, csr["signed_request"].as_str().unwrap())
            .unwrap();
        s.json(
            s.req(Method::PUT, "/api/v1/push-cert").body(renewed.certificate_pem),
            StatusCode::OK,
        )
        .await;
        // Past the first certificate's expiry: only the renewed one is accepted by APNs.
        let past = NOW + time::Duration::days(380);
        s.set_time(past);
        clock2.set(past);
        let pushed = second.core.push_enrollments(std::slice::from_ref(&udid)).await.unwrap();
        assert_eq!(
            (pushed.sent, pushed.certificate_refused),
            (1, 0),
            "the second process pushes with the renewed certificate: {pushed:?}"
        );
        woken(&mut reg).await;
        second.shutdown().await.unwrap();
        s.stop().await;
    }
}

/// The re-push round wakes, oldest push first and at most `limit` at a time, the devices
/// whose commands have waited longer than the re-push interval; devices without waiting
/// commands, or pushed recently, are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_devices_are_pushed_again_oldest_first() {
    for s in start("mdm::repush").await {
        let topic = install_push_cert(&s).await;
        let mut regs = Vec::new();
        for i in 0..3 {
            let udid = format!("00008030-0000000000000{i:03}");
            let reg = s.sim.register_push_token(&topic);
            enrolled(
                &s,
                &udid,
                Some(format!("REPUSH{i}")),
                &topic,
                &reg.token_hex,
                &format!("magic-{i}"),
            )
            .await;
            regs.push((udid, reg));
        }
        // Commands for devices 0 and 1 (each enqueue pushes them at once); device 2 has none.
        for (i, (udid, reg)) in regs.iter_mut().enumerate().take(2) {
            s.advance(time::Duration::minutes(10));
            s.json(
                s.req(Method::POST, "/api/v1/commands").json(&json!({
                    "targets": { "udids": [udid] },
                    "command": { "request_type": "ProfileList" }
                })),
                StatusCode::CREATED,
            )
            .await;
            assert_eq!(woken(reg).await, format!("magic-{i}"));
            // Russet records the push once APNs answered; wait for that.
            for _ in 0..200 {
                let e = s
                    .json(
                        s.req(Method::GET, &format!("/api/v1/enrollments/{udid}")),
                        StatusCode::OK,
                    )
                    .await;
                if !e["last_push_at"].is_null() {
                    break;
                }
                tokio::time::sleep(StdDuration::from_millis(25)).await;
            }
        }
        let core = &s.server.core;
        // Within the interval nothing is due.
        assert_eq!(core.repush_pending(10).await.unwrap().sent, 0);
        // Past it, the device pushed longest ago goes first.
        s.advance(core.settings.repush_interval + time::Duration::minutes(15));
        let first = core.repush_pending(1).await.unwrap();
        assert_eq!(first.sent, 1);
        assert_eq!(woken(&mut regs[0].1).await, "magic-0");
        let second = core.repush_pending(10).await.unwrap();
        assert_eq!(second.sent, 1, "device 0 was just pushed; device 2 has nothing waiting");
        assert_eq!(woken(&mut regs[1].1).await, "magic-1");
        assert!(
            regs[2].1.receiver.try_recv().is_none(),
            "no push without a waiting command"
        );
        s.stop().await;
    }
}

async fn send(
    client: reqwest::Client,
    url: String,
    entries: Vec<(&str, Value)>,
    checkin: bool,
) -> (StatusCode, String) {
    let mut req = client.put(url).body(plist(entries));
    if checkin {
        req = req.header("content-type", "application/x-apple-aspen-mdm-checkin");
    }
    let resp = req.send().await.unwrap();
    (
        resp.status(),
        String::from_utf8_lossy(&resp.bytes().await.unwrap()).into_owned(),
    )
}

/// A device identity issued by Russet's CA directly (as SCEP would), recorded in the store.
async fn issued_identity(s: &TestServer, cn: &str) -> (X509, PKey<Private>) {
    let ca = s.server.core.device_ca().await.unwrap();
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(openssl::nid::Nid::COMMONNAME, cn).unwrap();
    let mut req = X509ReqBuilder::new().unwrap();
    req.set_subject_name(&name.build()).unwrap();
    req.set_pubkey(&key).unwrap();
    req.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
    let cert = russet_apple::scep::issue_identity(
        &req.build(),
        &ca.cert,
        &ca.key,
        &russet_apple::scep::IssueParams::new(NOW - time::Duration::minutes(5), time::Duration::days(365)),
    )
    .unwrap();
    s.server
        .core
        .store
        .mdm_certificate_record(&russet_store::mdm::CertRecord {
            sha256: hex::encode(cert.digest(openssl::hash::MessageDigest::sha256()).unwrap()),
            serial: cert.serial_number().to_bn().unwrap().to_hex_str().unwrap().to_string(),
            subject: format!("CN={cn}"),
            not_before: NOW - time::Duration::minutes(5),
            not_after: NOW + time::Duration::days(365),
            issued_at: NOW,
            challenge_id: None,
            renewed_from: None,
            enrollment_id: None,
        })
        .await
        .unwrap();
    (cert, key)
}

/// On Russet's own HTTPS listener a device may identify by the TLS client certificate it
/// presents, without Mdm-Signature: the certificate is checked and pinned like a signer's,
/// a request without any identity is refused, and another device's certificate is refused.
#[tokio::test]
async fn tls_client_certificate_identifies_a_device() {
    let (tls_cert, tls_key) = russet_testkit::openssl_self_signed("localhost");
    let servers = start_with("mdm::tls_client_cert", |c, dir| {
        std::fs::write(dir.join("tls.crt"), &tls_cert).unwrap();
        std::fs::write(dir.join("tls.key"), &tls_key).unwrap();
        c.tls.cert = Some(dir.join("tls.crt"));
        c.tls.key = Some(dir.join("tls.key"));
    })
    .await;
    for mut s in servers {
        let root = reqwest::Certificate::from_pem(tls_cert.as_bytes()).unwrap();
        s.url = format!("https://localhost:{}", s.server.local_addr.port());
        s.http = reqwest::Client::builder()
            .add_root_certificate(root.clone())
            .build()
            .unwrap();
        let topic = install_push_cert(&s).await;
        let device_client = |cert: &X509, key: &PKey<Private>| {
            let identity =
                reqwest::Identity::from_pkcs8_pem(&cert.to_pem().unwrap(), &key.private_key_to_pem_pkcs8().unwrap())
                    .unwrap();
            reqwest::Client::builder()
                .add_root_certificate(root.clone())
                .identity(identity)
                .build()
                .unwrap()
        };
        let (a_cert, a_key) = issued_identity(&s, "tls-device-a").await;
        let (b_cert, b_key) = issued_identity(&s, "tls-device-b").await;
        let (a, b) = (device_client(&a_cert, &a_key), device_client(&b_cert, &b_key));
        let checkin_url = format!("{}/mdm/checkin", s.url);
        let connect_url = format!("{}/mdm/connect", s.url);
        for (client, udid) in [(&a, "TLS-DEVICE-A"), (&b, "TLS-DEVICE-B")] {
            let (code, text) = send(
                client.clone(),
                checkin_url.clone(),
                vec![
                    ("MessageType", Value::String("Authenticate".into())),
                    ("UDID", Value::String(udid.into())),
                    ("Topic", Value::String(topic.clone())),
                ],
                true,
            )
            .await;
            assert_eq!(code, StatusCode::OK, "{udid} Authenticate: {text}");
            let (code, text) = send(
                client.clone(),
                checkin_url.clone(),
                vec![
                    ("MessageType", Value::String("TokenUpdate".into())),
                    ("UDID", Value::String(udid.into())),
                    ("Topic", Value::String(topic.clone())),
                    ("Token", Value::Data(udid.as_bytes().to_vec())),
                    ("PushMagic", Value::String(format!("magic-{udid}"))),
                ],
                true,
            )
            .await;
            assert_eq!(code, StatusCode::OK, "{udid} TokenUpdate: {text}");
        }
        // The first DeviceInformation reaches device A over its TLS identity.
        let idle = |udid: &str| {
            vec![
                ("UDID", Value::String(udid.into())),
                ("Status", Value::String("Idle".into())),
            ]
        };
        let (code, text) = send(a.clone(), connect_url.clone(), idle("TLS-DEVICE-A"), false).await;
        assert_eq!(code, StatusCode::OK, "{text}");
        assert!(text.contains("DeviceInformation"), "{text}");
        // Device B's certificate does not speak for device A.
        let (code, text) = send(b.clone(), connect_url.clone(), idle("TLS-DEVICE-A"), false).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains("belongs to another enrollment"), "{text}");
        // No certificate and no signature: refused, never 401.
        let (code, text) = send(s.http.clone(), connect_url.clone(), idle("TLS-DEVICE-A"), false).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains("no device identity"), "{text}");
        s.stop().await;
    }
}

/// Another process replaced the SCEP RA: a request encrypted to the new RA reaches a process
/// still holding the old one, which reads the RA again and answers, signed by the new RA.
#[tokio::test]
async fn a_replaced_scep_ra_is_read_again() {
    for s in start("mdm::ra_replaced").await {
        let ca_key = s.server.core.device_ca().await.unwrap().key.clone();
        assert!(ca_key.ec_key().is_ok(), "a new CA has a P-256 key by default");
        let _topic = install_push_cert(&s).await;
        let url = new_link(&s, false).await;
        let (_, scep) = profile(&s, &url).await;
        // This process holds the RA it made (in the background) at start.
        s.server.core.scep_ra(false).await.unwrap();
        let store = &s.server.core.store;
        let (old_pem, _) = store.mdm_ra_get().await.unwrap().expect("an RA exists");
        let ca = s.server.core.device_ca().await.unwrap();
        let (new_ra, new_key) =
            russet_apple::scep::new_ra(&ca.cert, &ca.key, "Replacement RA", "Example Org", NOW, 730).unwrap();
        let new_pem = String::from_utf8(new_ra.to_pem().unwrap()).unwrap();
        let key_pem = String::from_utf8(new_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        store
            .mdm_ra_replace(Some(&old_pem), &new_pem, &secrecy::SecretString::from(key_pem))
            .await
            .unwrap();
        let Some(device) = strongswan_enroll_to(&s, &scep, 7, Some(&new_ra)).await else {
            return;
        };
        assert!(device.cert.verify(&ca.cert.public_key().unwrap()).unwrap());
        // GetCACert now serves the new RA.
        let p7 = s
            .http
            .get(format!("{}/scep?operation=GetCACert", s.url))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let p7 = openssl::pkcs7::Pkcs7::from_der(&p7).unwrap();
        let first = p7
            .signed()
            .unwrap()
            .certificates()
            .unwrap()
            .iter()
            .next()
            .unwrap()
            .to_der()
            .unwrap();
        assert_eq!(first, new_ra.to_der().unwrap());
    }
}
