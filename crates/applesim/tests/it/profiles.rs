//! Profiles: define, get, assign (POST and PUT), throttling, remove.

use crate::common::*;
use applesim::{DeviceSpec, ThrottlePolicy};
use serde_json::{Value, json};

fn profile() -> Value {
    json!({
        "profile_name": "Russet enrolment",
        "url": "https://mdm.example.com/enroll",
        "is_supervised": true,
        "is_mdm_removable": false,
        "department": "IT",
        "support_phone_number": "+1 408 555 0100",
        "support_email_address": "it@example.com",
        "org_magic": "913FABBB-0032-4E13-9966-D6BBAC900331",
        "language": "en",
        "region": "US",
        "skip_setup_items": ["Location", "Siri"],
        "anchor_certs": [],
    })
}

async fn define(d: &mut Dep, body: Value) -> String {
    let r = d.post("/profile", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["profile_uuid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn define_and_get() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    let uuid = define(&mut d, profile()).await;
    assert_eq!(uuid.len(), 32);
    assert!(
        uuid.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "{uuid}"
    );
    let r = d.get(&format!("/profile?profile_uuid={uuid}")).await;
    assert_eq!(r.status, 200);
    let mut expected = profile();
    expected["profile_uuid"] = json!(uuid);
    assert_eq!(r.json(), expected);
    assert_eq!(w.sim.profile(&uuid), Some(expected));

    let r = d.get("/profile").await;
    assert_eq!((r.status, r.text.as_str()), (400, "PROFILE_UUID_REQUIRED"));
    let r = d.get("/profile?profile_uuid=").await;
    assert_eq!((r.status, r.text.as_str()), (400, "PROFILE_UUID_REQUIRED"));
    let r = d.get("/profile?profile_uuid=0123456789ABCDEF0123456789ABCDEF").await;
    assert_eq!((r.status, r.text.as_str()), (404, "PROFILE_NOT_FOUND"));

    // Another server's profile is not found.
    let other = w.sim.create_mdm_server(w.org, "Other");
    let creds = test_credentials(w.sim.clock().now());
    w.sim.register_credentials(other, creds.clone());
    let mut o = Dep::new(&w.run.base_url, creds);
    o.login().await;
    assert_eq!(o.get(&format!("/profile?profile_uuid={uuid}")).await.status, 404);
}

#[tokio::test]
async fn define_validation_errors() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("profile_name", Value::Null, "CONFIG_NAME_REQUIRED"),
        ("profile_name", json!(""), "CONFIG_NAME_REQUIRED"),
        ("profile_name", json!(long(126)), "CONFIG_NAME_INVALID"),
        ("url", Value::Null, "CONFIG_URL_REQUIRED"),
        ("url", json!("not a url"), "CONFIG_URL_INVALID"),
        (
            "url",
            json!(format!("https://example.com/{}", long(2000))),
            "CONFIG_URL_INVALID",
        ),
        ("configuration_web_url", json!("::::"), "CONFIG_URL_INVALID"),
        ("department", json!(long(126)), "DEPARTMENT_INVALID"),
        ("support_phone_number", json!(long(51)), "SUPPORT_PHONE_INVALID"),
        ("support_email_address", json!("not-an-email"), "SUPPORT_EMAIL_INVALID"),
        (
            "support_email_address",
            json!(format!("{}@example.com", long(240))),
            "SUPPORT_EMAIL_INVALID",
        ),
        ("org_magic", json!(long(257)), "MAGIC_INVALID"),
        ("is_supervised", json!(false), "FLAGS_INVALID"),
        ("language", json!("english"), "LOCALE_INVALID"),
        ("region", json!("USA"), "LOCALE_INVALID"),
        ("region", json!("1A"), "LOCALE_INVALID"),
    ];
    for (key, value, code) in cases {
        let mut body = profile();
        if value.is_null() {
            body.as_object_mut().unwrap().remove(key);
        } else {
            body[key] = value;
        }
        let r = d.post("/profile", body).await;
        assert_eq!((r.status, r.text.as_str()), (400, code), "{key}");
    }
    // Limits are inclusive, and is_mdm_removable=false without is_supervised is what FLAGS_INVALID is about.
    let mut ok = profile();
    ok["profile_name"] = json!(long(125));
    ok["department"] = json!(long(125));
    ok["support_phone_number"] = json!(long(50));
    ok["org_magic"] = json!(long(256));
    define(&mut d, ok).await;
    let mut unsup = profile();
    unsup.as_object_mut().unwrap().remove("is_supervised");
    let r = d.post("/profile", unsup.clone()).await;
    assert_eq!(r.text, "FLAGS_INVALID");
    unsup["is_mdm_removable"] = json!(true);
    define(&mut d, unsup).await;
}

#[tokio::test]
async fn define_with_devices_assigns_them() {
    let w = World::new().await;
    let mine = w.devices(2);
    let mut d = w.logged_in().await;
    let mut body = profile();
    body["devices"] = json!([mine[0], "UNKNOWN1"]);
    let r = d.post("/profile", body).await.json();
    let uuid = r["profile_uuid"].as_str().unwrap();
    assert_eq!(
        r["devices"],
        json!({mine[0].as_str(): "SUCCESS", "UNKNOWN1": "NOT_ACCESSIBLE"})
    );
    assert!(w.sim.profile(uuid).unwrap().get("devices").is_none());
    let dev = w.sim.device(&mine[0]).unwrap();
    assert_eq!(dev.profile_uuid.as_deref(), Some(uuid));
    assert_eq!(dev.profile_status, "assigned");
}

#[tokio::test]
async fn assign_post_and_put_then_remove() {
    let w = World::new().await;
    let mine = w.devices(4);
    let other = w.sim.create_mdm_server(w.org, "Other");
    let theirs = w.sim.add_devices(w.org, 1, DeviceSpec::default());
    w.sim.assign_devices(other, &theirs).unwrap();
    let unassigned = w.sim.add_devices(w.org, 1, DeviceSpec::default());
    let mut d = w.logged_in().await;
    let uuid = define(&mut d, profile()).await;
    let r = d.post("/server/devices", json!({})).await.json();
    let cursor = r["cursor"].as_str().unwrap().to_owned();

    let r = d
        .post(
            "/profile/devices",
            json!({"profile_uuid": uuid, "devices": [mine[0], theirs[0], unassigned[0]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"profile_uuid": uuid, "devices": {
            mine[0].as_str(): "SUCCESS", theirs[0].as_str(): "NOT_ACCESSIBLE", unassigned[0].as_str(): "NOT_ACCESSIBLE"}})
    );
    let r = d
        .call(
            "PUT",
            "/profile/devices",
            Some(json!({"profile_uuid": uuid, "devices": [mine[1]]})),
        )
        .await;
    assert_eq!(r.json()["devices"], json!({mine[1].as_str(): "SUCCESS"}));
    let dev = w.sim.device(&mine[1]).unwrap();
    assert_eq!(dev.profile_status, "assigned");
    assert_eq!(dev.profile_uuid.as_deref(), Some(uuid.as_str()));
    assert!(dev.profile_assign_time.is_some());

    // Errors.
    let r = d.post("/profile/devices", json!({"devices": [mine[0]]})).await;
    assert_eq!((r.status, r.text.as_str()), (400, "PROFILE_UUID_REQUIRED"));
    let r = d.post("/profile/devices", json!({"profile_uuid": uuid})).await;
    assert_eq!((r.status, r.text.as_str()), (400, "DEVICE_ID_REQUIRED"));
    let r = d
        .post(
            "/profile/devices",
            json!({"profile_uuid": "ABCDEF", "devices": [mine[0]]}),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (404, "PROFILE_NOT_FOUND"));

    // The assignments show up as modified on sync, with the profile.
    let r = d.post("/devices/sync", json!({"cursor": cursor})).await.json();
    let ev: Vec<(&str, &str)> = r["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["serial_number"].as_str().unwrap(), d["op_type"].as_str().unwrap()))
        .collect();
    assert_eq!(ev, vec![(mine[0].as_str(), "modified"), (mine[1].as_str(), "modified")]);
    assert_eq!(r["devices"][0]["profile_uuid"], uuid.as_str());
    assert_eq!(r["devices"][0]["profile_status"], "assigned");
    let cursor = r["cursor"].as_str().unwrap().to_owned();

    // Remove.
    let r = d
        .call(
            "DELETE",
            "/profile/devices",
            Some(json!({"devices": [mine[0], mine[2], theirs[0]]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"devices": {mine[0].as_str(): "SUCCESS", mine[2].as_str(): "SUCCESS", theirs[0].as_str(): "NOT_ACCESSIBLE"}})
    );
    let dev = w.sim.device(&mine[0]).unwrap();
    assert_eq!(dev.profile_status, "removed");
    assert_eq!(dev.profile_uuid, None);
    let r = d.call("DELETE", "/profile/devices", Some(json!({}))).await;
    assert_eq!((r.status, r.text.as_str()), (400, "DEVICE_ID_REQUIRED"));
    // Only the device that had a profile changed.
    let r = d.post("/devices/sync", json!({"cursor": cursor})).await.json();
    assert_eq!(r["devices"].as_array().unwrap().len(), 1);
    assert_eq!(r["devices"][0]["profile_status"], "removed");

    // A device downloading its profile becomes "pushed".
    w.sim.simulate_profile_fetch(&mine[1..2]).unwrap();
    let dev = w.sim.device(&mine[1]).unwrap();
    assert_eq!(dev.profile_status, "pushed");
    assert!(dev.profile_push_time.is_some());
}

async fn throttled_run(version: Option<u32>) -> (Value, Vec<String>) {
    let w = World::new().await;
    let mine = w.devices(5);
    w.sim.set_assign_throttle(
        w.server,
        Some(ThrottlePolicy {
            devices_per_window: 3,
            window: time::Duration::minutes(10),
            retry_after_seconds: 42,
        }),
    );
    let mut d = w.logged_in().await;
    d.version = version;
    let uuid = define(&mut d, profile()).await;
    let r = d
        .post("/profile/devices", json!({"profile_uuid": uuid, "devices": mine}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let first = r.json();
    // Still throttled in the same window; free again in the next one.
    let r = d
        .post("/profile/devices", json!({"profile_uuid": uuid, "devices": [mine[4]]}))
        .await
        .json();
    assert_ne!(r["devices"][&mine[4]], "SUCCESS");
    w.sim.clock().advance(time::Duration::minutes(11));
    d.login().await;
    let r = d
        .post(
            "/profile/devices",
            json!({"profile_uuid": uuid, "devices": [mine[3], mine[4]]}),
        )
        .await
        .json();
    assert_eq!(
        r["devices"],
        json!({mine[3].as_str(): "SUCCESS", mine[4].as_str(): "SUCCESS"})
    );
    assert!(r.get("retry_after_seconds").is_none());
    (first, mine)
}

#[tokio::test]
async fn throttling_v10_has_retry_after() {
    let (r, mine) = throttled_run(Some(10)).await;
    let results: Vec<&str> = mine.iter().map(|s| r["devices"][s].as_str().unwrap()).collect();
    assert_eq!(results, ["SUCCESS", "SUCCESS", "SUCCESS", "THROTTLED", "THROTTLED"]);
    assert_eq!(r["retry_after_seconds"], 42);
}

#[tokio::test]
async fn throttling_v9_has_no_retry_after() {
    let (r, mine) = throttled_run(Some(9)).await;
    let results: Vec<&str> = mine.iter().map(|s| r["devices"][s].as_str().unwrap()).collect();
    assert_eq!(results, ["SUCCESS", "SUCCESS", "SUCCESS", "THROTTLED", "THROTTLED"]);
    assert!(r.get("retry_after_seconds").is_none(), "{r}");
}

#[tokio::test]
async fn throttling_before_v9_is_failed() {
    let (r, mine) = throttled_run(Some(7)).await;
    let results: Vec<&str> = mine.iter().map(|s| r["devices"][s].as_str().unwrap()).collect();
    assert_eq!(results, ["SUCCESS", "SUCCESS", "SUCCESS", "FAILED", "FAILED"]);
    assert!(r.get("retry_after_seconds").is_none());
}
