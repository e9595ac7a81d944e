//! Russet against applesim's simulated devices, end to end over real HTTP, on SQLite and
//! (when `RUSSET_TEST_POSTGRES_URL` is set) PostgreSQL: a fleet of iPhones, iPads and Macs
//! enrolls through a link with applesim's own SCEP client, is woken by pushes through
//! applesim's APNs, answers commands (some NotNow at first), one device checks out, one
//! renews its identity by SCEP and keeps working.

mod common;

use std::collections::HashMap;

use std::time::Duration;

use applesim::devices::{DeviceKind, Fleet, FleetOptions, Status};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::mdm::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const NEW_NAME: &str = "Renamed by Russet";

fn random_uuid() -> String {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).unwrap();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

async fn enqueue(s: &TestServer, udids: &[String], body: Value) -> String {
    let mut req = body;
    req["targets"] = json!({ "udids": udids });
    let queued = s
        .json(s.req(Method::POST, "/api/v1/commands").json(&req), StatusCode::CREATED)
        .await;
    assert_eq!(queued["queued"], udids.len(), "{queued}");
    queued["command_uuid"].as_str().unwrap().to_string()
}

/// Polls a command until every device reached Acknowledged, Error or CommandFormatError.
async fn settled(s: &TestServer, uuid: &str, devices: usize) -> Value {
    let mut last = Value::Null;
    for _ in 0..1200 {
        last = s
            .json(s.req(Method::GET, &format!("/api/v1/commands/{uuid}")), StatusCode::OK)
            .await;
        let done = last["devices"]
            .as_array()
            .map(|d| {
                d.len() == devices
                    && d.iter().all(|x| {
                        matches!(
                            x["status"].as_str(),
                            Some("Acknowledged" | "Error" | "CommandFormatError")
                        )
                    })
            })
            .unwrap_or(false);
        if done {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("command {uuid} did not settle in 60 s: {last:#}");
}

async fn enrollments(s: &TestServer) -> HashMap<String, Value> {
    let page = s
        .json(
            s.req(Method::GET, "/api/v1/enrollments").query(&[("limit", "1000")]),
            StatusCode::OK,
        )
        .await;
    page["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn wifi_profile() -> Vec<u8> {
    br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.fleet.wifi</string>
<key>PayloadUUID</key><string>5B1D3C3A-7E0B-4C43-9C59-1A8E2B6F0D11</string>
<key>PayloadDisplayName</key><string>Office Wi-Fi</string>
<key>PayloadContent</key><array><dict>
<key>PayloadType</key><string>com.apple.wifi.managed</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.fleet.wifi.1</string>
<key>PayloadUUID</key><string>0E6A9F35-2C1B-4D0F-8E55-3B4A7C2D1E09</string>
<key>SSID_STR</key><string>Office</string>
<key>EncryptionType</key><string>WPA2</string>
</dict></array>
</dict></plist>"#
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_fleet_enrolls_answers_checks_out_and_renews() {
    const N: usize = 20;
    // No single DES: applesim's SCEP client uses AES.
    for s in start_with("sim_devices::fleet", |c, _| c.mdm.scep_allow_single_des = false).await {
        let topic = install_push_cert(&s).await;
        let link = new_link(&s, false).await;
        let fleet = Fleet::new(
            s.sim.clone(),
            FleetOptions {
                mix: vec![(DeviceKind::IPhone, 2), (DeviceKind::IPad, 1), (DeviceKind::Mac, 1)],
                not_now_rate: 0.3,
                not_now_retry: Duration::from_millis(200),
                key_pool: Some(6),
                concurrency: 8,
                ..FleetOptions::default()
            },
        )
        .unwrap();

        // Enrollment: profile, SCEP, Authenticate, TokenUpdate for every device.
        let report = fleet.enroll(&link, N).await;
        assert!(report.failed.is_empty(), "enrollment failures: {:#?}", report.failed);
        assert_eq!(report.enrolled.len(), N);
        let udids: Vec<String> = fleet.devices().iter().map(|d| d.udid().to_string()).collect();
        let listed = enrollments(&s).await;
        for d in fleet.devices() {
            let e = listed
                .get(d.udid())
                .unwrap_or_else(|| panic!("{} not listed by Russet", d.udid()));
            assert_eq!(e["serial_number"], d.serial_number());
            assert_eq!(e["enabled"], true);
            assert_eq!(d.topic().as_deref(), Some(topic.as_str()));
            assert!(d.identity_certificate().is_some());
        }
        let kinds: Vec<DeviceKind> = fleet.devices().iter().map(|d| d.kind()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == DeviceKind::IPhone).count(), N / 2);
        assert_eq!(kinds.iter().filter(|k| **k == DeviceKind::Mac).count(), N / 4);

        // Commands to all; pushes wake the devices; NotNow'd ones come back.
        let info = enqueue(
            &s,
            &udids,
            json!({ "command": { "request_type": "DeviceInformation" } }),
        )
        .await;
        let list = enqueue(&s, &udids, json!({ "command": { "request_type": "ProfileList" } })).await;
        let install = enqueue(
            &s,
            &udids,
            json!({ "command": { "request_type": "InstallProfile", "payload": STANDARD.encode(wifi_profile()) } }),
        )
        .await;
        let settings = enqueue(
            &s,
            &udids,
            json!({ "command": { "request_type": "Settings",
                "settings": [{ "item": "DeviceName", "device_name": NEW_NAME }] } }),
        )
        .await;
        let unknown_uuid = random_uuid();
        let unknown = enqueue(
            &s,
            &udids,
            json!({ "raw_plist": format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
                 <key>CommandUUID</key><string>{unknown_uuid}</string>\
                 <key>Command</key><dict><key>RequestType</key><string>CertificateList</string></dict>\
                 </dict></plist>") }),
        )
        .await;
        assert_eq!(unknown, unknown_uuid);
        for uuid in [&info, &list, &install, &settings] {
            let st = settled(&s, uuid, N).await;
            for d in st["devices"].as_array().unwrap() {
                assert_eq!(d["status"], "Acknowledged", "{uuid}: {d:#}");
            }
        }
        let st = settled(&s, &unknown, N).await;
        for d in st["devices"].as_array().unwrap() {
            assert_eq!(d["status"], "Error", "{d:#}");
            let chain = d["error_chain"].to_string();
            assert!(chain.contains("12021") && chain.contains("MCMDMErrorDomain"), "{chain}");
        }
        // NotNow happened and Russet offered the commands again.
        let stats = fleet.stats();
        assert!(stats.commands_with(Status::NotNow) > 0, "{stats:?}");
        let mut not_nows = 0;
        for uuid in [&install, &settings] {
            let st = settled(&s, uuid, N).await;
            not_nows += st["devices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["not_now_count"].as_i64().unwrap_or(0))
                .sum::<i64>();
        }
        assert!(not_nows > 0, "Russet recorded no NotNow");
        assert!(stats.recent_errors.is_empty(), "{:#?}", stats.recent_errors);

        // What the devices hold now, and what Russet's inventory says.
        for d in fleet.devices() {
            assert_eq!(d.name(), NEW_NAME);
            let ids: Vec<String> = d.profiles().iter().map(|p| p.identifier.clone()).collect();
            assert_eq!(ids.len(), 2, "{ids:?}");
            assert!(ids.contains(&"com.example.fleet.wifi".to_string()));
            let log = d.commands();
            assert!(
                log.iter()
                    .any(|c| c.request_type == "ProfileList" && c.status == Status::Acknowledged)
            );
        }
        let again = enqueue(
            &s,
            &udids,
            json!({ "command": { "request_type": "DeviceInformation", "queries": ["DeviceName", "OSVersion", "SerialNumber"] } }),
        )
        .await;
        settled(&s, &again, N).await;
        let listed = enrollments(&s).await;
        for d in fleet.devices() {
            let e = &listed[d.udid()];
            assert_eq!(e["device_name"], NEW_NAME, "{e:#}");
            assert_eq!(e["os_version"], d.info().os_version.as_str());
            assert!(!e["inventory"].is_null(), "{e:#}");
        }

        // A renewal through SCEP keeps the device working.
        let before = fleet.device(1).unwrap().identity_certificate().unwrap();
        let after = fleet.renew(1).await.expect("renewal by SCEP");
        assert_ne!(before.to_der().unwrap(), after.to_der().unwrap());
        let udid1 = udids[1].clone();
        let cmd = enqueue(
            &s,
            std::slice::from_ref(&udid1),
            json!({ "command": { "request_type": "ProfileList" } }),
        )
        .await;
        let st = settled(&s, &cmd, 1).await;
        assert_eq!(st["devices"][0]["status"], "Acknowledged", "{st:#}");

        // One device checks out: Russet shows it unenrolled and sends it nothing more.
        fleet.checkout(0).await.expect("checkout");
        let e = s
            .json(
                s.req(Method::GET, &format!("/api/v1/enrollments/{}", udids[0])),
                StatusCode::OK,
            )
            .await;
        assert_eq!(e["enabled"], false, "{e:#}");
        assert!(!e["checked_out_at"].is_null(), "{e:#}");
        let refused = s
            .json(
                s.req(Method::POST, "/api/v1/commands").json(&json!({
                    "targets": { "udids": [udids[0]] },
                    "command": { "request_type": "ProfileList" }
                })),
                StatusCode::NOT_FOUND,
            )
            .await;
        assert_eq!(code(&refused), "no_enrolled_targets");
        assert!(!fleet.device(0).unwrap().is_enrolled());

        let stats = fleet.stats();
        assert_eq!(stats.enrolled, (N - 1) as u64);
        assert_eq!(stats.checkouts, 1);
        assert_eq!(stats.renewals, 1);
        assert!(stats.recent_errors.is_empty(), "{:#?}", stats.recent_errors);
        fleet.shutdown();
        s.stop().await;
    }
}
