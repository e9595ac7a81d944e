//! Automated Device Enrollment end to end: applesim's devices, bought in its ABM and assigned
//! to Russet's MDM server, activate as in Setup Assistant — MachineInfo signed by applesim's
//! device CA, the profile's `url` or its sign-in page, SCEP, Authenticate, TokenUpdate,
//! DeviceConfigured — against a real `russet serve` on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use applesim::devices::{
    ActivationOptions, ActivationOutcome, ActivationStep, Configured, Credentials, Fleet, FleetOptions, SignIn,
};
use applesim::{DeviceFamily, DeviceSpec};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::mdm::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

const WIFI: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.staff.wifi</string>
<key>PayloadUUID</key><string>7D0C2A52-1B9E-4F4D-9D55-5C1B8E2A7F10</string>
<key>PayloadDisplayName</key><string>Staff Wi-Fi</string>
<key>PayloadContent</key><array><dict>
<key>PayloadType</key><string>com.apple.wifi.managed</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.staff.wifi.1</string>
<key>PayloadUUID</key><string>3E5B1C0A-8D2F-4A6B-9C7E-1F0D2E3A4B5C</string>
<key>SSID_STR</key><string>Staff</string>
<key>EncryptionType</key><string>WPA2</string>
</dict></array>
</dict></plist>"#;

async fn enrollment(s: &TestServer, udid: &str) -> Value {
    s.json(
        s.req(Method::GET, &format!("/api/v1/enrollments/{udid}")),
        StatusCode::OK,
    )
    .await
}

async fn profile(s: &TestServer, token: i64, body: Value) -> i64 {
    s.json(
        s.req(Method::POST, &format!("/api/v1/ade-tokens/{token}/profiles"))
            .json(&body),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

async fn assign(s: &TestServer, pid: i64, serials: &[String]) {
    let job = s
        .json(
            s.req(Method::POST, &format!("/api/v1/profiles/{pid}/assign"))
                .json(&json!({ "serials": serials })),
            StatusCode::ACCEPTED,
        )
        .await;
    let job = s.wait_job(job["id"].as_i64().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
}

/// Waits until the device's DeviceConfigured was acknowledged (pushes wake it).
async fn configured(s: &TestServer, udid: &str) -> Value {
    for _ in 0..200 {
        let e = enrollment(s, udid).await;
        if !e["configured_at"].is_null() {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{udid} was never configured: {:#}", enrollment(s, udid).await);
}

fn enrolled(o: &ActivationOutcome) -> (String, Configured) {
    match o {
        ActivationOutcome::Enrolled { udid, configured, .. } => (udid.clone(), *configured),
        other => panic!("not enrolled: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_activate_through_ade_with_and_without_sign_in() {
    let servers = start_with("ade::activation", |c, dir| {
        c.mdm.scep_allow_single_des = false;
        c.apple.device_ca_file = Some(dir.join("device-ca.pem"));
    })
    .await;
    for s in servers {
        run(&s).await;
    }
}

async fn run(s: &TestServer) {
    let _topic = install_push_cert(s).await;
    let (token, server) = s.connect("ADE").await;
    let serials = devices(s, server, 8);
    s.sync(token, false).await;

    let plain = profile(
        s,
        token,
        json!({ "name": "Shared iPads", "user_affinity": false, "supervised": true, "locked_enrollment": true,
                "device_name_template": "{{DEVICETYPE}}-{{SERIAL}}" }),
    )
    .await;
    // Profiles to install during Setup Assistant are checked: a whole .mobileconfig.
    for (bad, why) in [
        ("not base64!", "not base64"),
        (
            STANDARD.encode(b"<plist><string>x</string></plist>").leak() as &str,
            "not a dictionary",
        ),
        (
            STANDARD
                .encode(b"<plist><dict><key>PayloadType</key><string>com.apple.wifi.managed</string></dict></plist>")
                .leak(),
            "not Configuration",
        ),
    ] {
        let r = s
            .json(
                s.req(Method::POST, &format!("/api/v1/ade-tokens/{token}/profiles"))
                    .json(&json!({ "name": "Bad", "install_profiles": [bad] })),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        let field = r["error"]["details"]["fields"]["install_profiles"]
            .as_str()
            .unwrap_or_default();
        assert!(field.contains(why), "{why}: {r}");
    }
    let affinity = profile(
        s,
        token,
        json!({ "name": "Staff", "user_affinity": true, "await_device_configured": true,
                "install_profiles": [STANDARD.encode(WIFI)] }),
    )
    .await;
    assign(s, plain, &serials[0..3]).await;
    assign(s, affinity, &serials[3..6]).await;
    s.json(
        s.req(Method::POST, "/api/v1/users")
            .json(&json!({ "username": "ava", "display_name": "Ava", "password": PASSWORD })),
        StatusCode::CREATED,
    )
    .await;

    let fleet = Fleet::new(
        s.sim.clone(),
        FleetOptions {
            key_pool: Some(4),
            concurrency: 4,
            ..FleetOptions::default()
        },
    )
    .unwrap();

    // Without user affinity: the profile's url, no sign-in; the name template applied.
    let report = fleet.activate(&serials[0..2], &ActivationOptions::default()).await;
    for o in &report.outcomes {
        let (udid, conf) = enrolled(o);
        assert_eq!(conf, Configured::NotRequested);
        let e = enrollment(s, &udid).await;
        assert_eq!(e["ade"]["serial_number"], o.serial(), "{e:#}");
        assert_eq!(e["ade"]["profile_id"], plain);
        assert_eq!(e["ade"]["token_id"], token);
        assert_eq!(e["ade"]["supervised"], true);
        assert_eq!(e["ade"]["locked_enrollment"], true);
        assert!(e["ade"]["user"].is_null());
        // The profile's name template, sent with Settings after the first inventory.
        let device = fleet.device_by_serial(o.serial()).unwrap();
        let family = if device.kind() == applesim::devices::DeviceKind::IPhone {
            "iPhone"
        } else {
            "iPad"
        };
        let want = format!("{family}-{}", o.serial());
        let mut named = false;
        for _ in 0..200 {
            if device.name() == want {
                named = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(named, "{} is named {:?}, not {want:?}", o.serial(), device.name());
        // Renamed before its first inventory, so Russet shows the new name.
        let mut shown = Value::Null;
        for _ in 0..200 {
            shown = enrollment(s, &udid).await["device_name"].clone();
            if shown == want.as_str() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(shown, want.as_str());
        // Not held in Setup Assistant: nothing to release.
        let r = s
            .json(
                s.req(Method::POST, &format!("/api/v1/enrollments/{udid}/release")),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&r), "not_awaiting_configuration");
    }

    // With user affinity: a wrong password shows the page again with the reason.
    let wrong = ActivationOptions {
        credentials: Credentials::All(SignIn::new("ava", "not the password")),
        ..ActivationOptions::default()
    };
    let r = fleet.activate(&serials[3..4], &wrong).await;
    match &r.outcomes[0] {
        ActivationOutcome::Refused { step, message, .. } => {
            assert_eq!(*step, ActivationStep::SignIn);
            assert!(message.contains("username or password is incorrect"), "{message}");
        }
        other => panic!("a wrong password enrolled: {other}"),
    }
    // The right one: enrolled, bound to the user, held in Setup Assistant until
    // DeviceConfigured, which Russet sends after the first commands.
    let right = ActivationOptions {
        credentials: Credentials::All(SignIn::new("AVA", PASSWORD)),
        wait_configured: Some(Duration::from_secs(20)),
    };
    let r = fleet.erase_and_activate(&serials[3], &right).await;
    let (udid, conf) = enrolled(&r);
    assert!(matches!(conf, Configured::At(_)), "{conf:?}");
    let e = configured(s, &udid).await;
    assert_eq!(e["ade"]["user"], "ava");
    // The profile to install came before DeviceConfigured.
    let device = fleet.device_by_serial(&serials[3]).unwrap();
    assert!(
        device
            .profiles()
            .iter()
            .any(|p| p.identifier == "com.example.staff.wifi")
    );
    let order: Vec<String> = device.commands().iter().map(|c| c.request_type.clone()).collect();
    let at = |t: &str| {
        order
            .iter()
            .position(|r| r == t)
            .unwrap_or_else(|| panic!("no {t} in {order:?}"))
    };
    assert!(at("InstallProfile") < at("DeviceConfigured"), "{order:?}");
    // The ABM device record shows its MDM enrollment: one device for the administrator.
    let d = s
        .json(
            s.req(Method::GET, &format!("/api/v1/devices/{}", serials[3])),
            StatusCode::OK,
        )
        .await;
    assert_eq!(d["enrollment"]["udid"], udid.as_str(), "{d:#}");
    assert_eq!(d["enrollment"]["ade"]["user"], "ava");
    assert_eq!(d["device"]["assignment"]["profile_id"], affinity);
    let d = s
        .json(
            s.req(Method::GET, &format!("/api/v1/devices/{}", serials[7])),
            StatusCode::OK,
        )
        .await;
    assert!(d["enrollment"].is_null(), "never activated: {d:#}");
    assert_eq!(e["ade"]["profile_id"], affinity);
    assert_eq!(e["awaiting_configuration"], false);
    assert_eq!(e["configured_by"], "DeviceConfigured");
    assert_eq!(e["setup_stuck"], false);

    // A device APNs cannot reach stays in Setup Assistant: after an hour Russet shows it as
    // stuck; the administrator releases it, and it goes on at its next check-in.
    s.sim.push_faults(
        applesim::Endpoint::Apns,
        vec![applesim::Fault::new(
            5,
            applesim::FaultKind::BadRequest("BadDeviceToken".into()),
        )],
    );
    let held = ActivationOptions {
        credentials: Credentials::All(SignIn::new("ava", PASSWORD)),
        wait_configured: None,
    };
    let r = fleet.activate(&serials[5..6], &held).await;
    let (udid, conf) = enrolled(&r.outcomes[0]);
    assert_eq!(conf, Configured::Waiting);
    let e = enrollment(s, &udid).await;
    assert_eq!(e["awaiting_configuration"], true, "{e:#}");
    assert_eq!(e["setup_stuck"], false);
    s.clock.set(NOW + time::Duration::minutes(61));
    let e = enrollment(s, &udid).await;
    assert_eq!(e["setup_stuck"], true, "{e:#}");
    let released = s
        .json(
            s.req(Method::POST, &format!("/api/v1/enrollments/{udid}/release")),
            StatusCode::OK,
        )
        .await;
    assert_eq!(released["id"], udid.as_str());
    assert!(s.audit().await.iter().any(|a| a["action"] == "enrollment.release"));
    s.sim.clear_faults();
    let i = fleet.devices().iter().position(|d| d.udid() == udid).unwrap();
    for _ in 0..10 {
        fleet.connect(i).await.unwrap();
        if fleet.device(i).unwrap().configured_at().is_some() {
            break;
        }
    }
    let e = configured(s, &udid).await;
    assert_eq!(e["setup_stuck"], false);
    assert_eq!(e["awaiting_configuration"], false);

    // The profile's url refuses a device whose profile asks for a sign-in.
    let (enroll_url, _) = urls(s, affinity).await;
    let mi = fleet.machine_info(&serials[4]).await.unwrap();
    let r = post_machine_info(s, &enroll_url, mi).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN);
    assert_eq!(r.1["code"], "com.russet.enrollment.ade_sign_in_required", "{}", r.1);

    // The sign-in page opened outside Setup Assistant (no device information).
    let (_, sign_in) = urls(s, affinity).await;
    let r = s.http.get(sign_in.unwrap()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("Setup Assistant"));

    // A device in ABM but not synced yet: refused, and audited.
    let late = devices(s, server, 1);
    let (plain_url, _) = urls(s, plain).await;
    let mi = fleet.machine_info(&late[0]).await.unwrap();
    let r = post_machine_info(s, &plain_url, mi).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN);
    assert_eq!(r.1["code"], "com.russet.enrollment.ade_device_unknown", "{}", r.1);
    assert!(r.1["message"].as_str().unwrap().contains(&late[0]));
    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .any(|a| a["action"] == "ade.enrollment_refused" && a["target_id"] == late[0].as_str()),
        "{audit:#?}"
    );

    // A device of another profile posting to this one: refused.
    let mi = fleet.machine_info(&serials[6]).await.unwrap();
    let r = post_machine_info(s, &plain_url, mi).await;
    assert_eq!(r.1["code"], "com.russet.enrollment.ade_profile_mismatch", "{}", r.1);

    // A device moved to another MDM server in ABM (and synced): refused.
    let other = s.sim.create_mdm_server(s.org, "Another MDM");
    s.sim.assign_devices(other, &serials[2..3]).unwrap();
    s.sync(token, false).await;
    let mi = fleet.machine_info(&serials[2]).await.unwrap();
    let r = post_machine_info(s, &plain_url, mi).await;
    assert_eq!(r.1["code"], "com.russet.enrollment.ade_device_removed", "{}", r.1);

    // A MachineInfo signed by a device CA Russet does not trust: refused.
    let stranger = applesim::AppleSim::new();
    let info = applesim::devices::DeviceInfo::for_serial(applesim::devices::DeviceKind::IPad, &serials[1], "iPad");
    let forged = applesim::devices::signed_machine_info(&stranger, &info).unwrap();
    let r = post_machine_info(s, &plain_url, forged).await;
    assert_eq!(r.1["code"], "com.russet.enrollment.ade_machine_info_invalid", "{}", r.1);
    // Garbage, and an empty body.
    for body in [b"not a cms".to_vec(), Vec::new()] {
        let r = post_machine_info(s, &plain_url, body).await;
        assert_eq!(r.0, StatusCode::FORBIDDEN);
    }
    // An unknown profile key.
    let r = post_machine_info(s, &format!("{}/enroll/ade/nosuchkey", s.url), b"x".to_vec()).await;
    assert_eq!(r.0, StatusCode::NOT_FOUND);

    // Erased and activated again: enrolls cleanly, nothing left queued.
    let r = fleet
        .erase_and_activate(&serials[0], &ActivationOptions::default())
        .await;
    let (udid, _) = enrolled(&r);
    let e = enrollment(s, &udid).await;
    assert_eq!(e["ade"]["serial_number"], serials[0].as_str());
}

/// `n` new iPads and iPhones in ABM, assigned to `server` (applesim plays no Apple TV).
fn devices(s: &TestServer, server: applesim::ServerId, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let family = if i % 2 == 0 {
            DeviceFamily::IPad
        } else {
            DeviceFamily::IPhone
        };
        out.extend(s.sim.add_devices(s.org, 1, DeviceSpec { family: Some(family) }));
    }
    s.sim.assign_devices(server, &out).unwrap();
    out
}

/// The enroll and sign-in URLs of a profile.
async fn urls(s: &TestServer, pid: i64) -> (String, Option<String>) {
    let p = s
        .json(s.req(Method::GET, &format!("/api/v1/profiles/{pid}")), StatusCode::OK)
        .await;
    (
        p["enroll_url"].as_str().unwrap().to_string(),
        p["sign_in_url"].as_str().map(str::to_string),
    )
}

async fn post_machine_info(s: &TestServer, url: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let r = s
        .http
        .post(url)
        .header("content-type", "application/pkcs7-signature")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
