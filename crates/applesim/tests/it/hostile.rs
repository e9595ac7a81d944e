//! A hostile client must not crash or wedge the simulator.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn garbage_in_does_not_break_the_simulator() {
    let w = World::new().await;
    w.devices(3);
    let mut d = w.logged_in().await;
    let base = w.run.base_url.clone();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let session = d.session.clone().unwrap();

    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies: Vec<Vec<u8>> = vec![
        nested.into_bytes(),
        vec![0xff, 0xfe, 0x00, 0x01],
        json!({"cursor": "A".repeat(100_000)}).to_string().into_bytes(),
        json!({"limit": -5}).to_string().into_bytes(),
        json!({"limit": 1e300}).to_string().into_bytes(),
        json!({"limit": i64::MAX}).to_string().into_bytes(),
        json!({"devices": [null, 1, {"a": 2}]}).to_string().into_bytes(),
        json!({"devices": ["\u{0000}", "ÄÖÜ€", "x".repeat(10_000)]})
            .to_string()
            .into_bytes(),
        json!({"profile_uuid": ["x"], "devices": "SN"}).to_string().into_bytes(),
        json!({"profile_name": 5, "url": true}).to_string().into_bytes(),
    ];
    for path in [
        "/server/devices",
        "/devices/sync",
        "/devices",
        "/devices/disown",
        "/profile",
        "/profile/devices",
    ] {
        for body in &bodies {
            let r = http
                .post(format!("{base}{path}"))
                .header("User-Agent", "evil/1")
                .header("X-Server-Protocol-Version", "99999999999999999999")
                .header("X-ADM-Auth-Session", &session)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(r.status().as_u16() < 500, "{path}: {}", r.status());
        }
    }
    // Garbage authorisation headers.
    for auth in [
        "OAuth",
        "OAuth ,,,,",
        "OAuth oauth_consumer_key",
        "OAuth oauth_consumer_key=\"%ZZ\"",
        "OAuth oauth_consumer_key=\"a\", oauth_consumer_key=\"b\"",
        "oauth",
    ] {
        let r = d.session_raw(Some(auth.to_owned())).await;
        assert!(r.status == 400 || r.status == 401, "{auth}: {}", r.status);
    }
    let r = http
        .get(format!("{base}/session"))
        .header("User-Agent", "evil/1")
        .header(
            "Authorization",
            reqwest::header::HeaderValue::from_bytes(b"OAuth \xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Absurd admin values saturate instead of panicking.
    w.sim.set_session_policy(time::Duration::MAX, Some(u32::MAX));
    d.login().await;
    w.sim.set_session_policy(time::Duration::minutes(30), None);
    w.sim.set_assign_throttle(
        w.server,
        Some(applesim::ThrottlePolicy {
            devices_per_window: 0,
            window: time::Duration::MAX,
            retry_after_seconds: 1,
        }),
    );
    let uuid = d
        .post("/profile", json!({"profile_name": "p", "url": "https://e.example/x"}))
        .await
        .json()["profile_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = d
        .post("/profile/devices", json!({"profile_uuid": uuid, "devices": ["X"]}))
        .await;
    assert_eq!(r.status, 200);

    // Still healthy.
    let r = d.post("/server/devices", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["devices"].as_array().unwrap().len(), 3);
}
