//! `/account`, fetch, sync, details, disown.

use std::collections::HashSet;

use crate::common::*;
use applesim::{DeviceChange, DeviceFamily, DeviceSpec, MoveStyle, OrgKind};
use base64::Engine as _;
use serde_json::{Value, json};

fn serials_of(page: &Value) -> Vec<String> {
    page["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial_number"].as_str().unwrap().to_owned())
        .collect()
}

/// Fetch everything; returns (serials in order, last cursor, page count).
async fn fetch_all(d: &mut Dep, limit: u32) -> (Vec<String>, String, usize) {
    let mut cursor: Option<String> = None;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let mut body = json!({ "limit": limit });
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let r = d.post("/server/devices", body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        pages += 1;
        all.extend(serials_of(&v));
        assert!(v["fetched_until"].as_str().unwrap().ends_with('Z'));
        cursor = Some(v["cursor"].as_str().unwrap().to_owned());
        if !v["more_to_follow"].as_bool().unwrap() {
            break;
        }
    }
    (all, cursor.unwrap(), pages)
}

async fn sync(d: &mut Dep, cursor: &str) -> (Vec<(String, String)>, String, bool) {
    let r = d.post("/devices/sync", json!({ "cursor": cursor })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let ev = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert!(d["op_date"].as_str().unwrap().ends_with('Z'));
            (
                d["serial_number"].as_str().unwrap().to_owned(),
                d["op_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (
        ev,
        v["cursor"].as_str().unwrap().to_owned(),
        v["more_to_follow"].as_bool().unwrap(),
    )
}

#[tokio::test]
async fn account_details_by_version() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    let v = d.get("/account").await.json();
    assert_eq!(v["server_name"], "Test MDM");
    assert_eq!(v["org_name"], "Test Org");
    assert_eq!(v["org_type"], "org");
    assert!(v["admin_id"].as_str().unwrap().contains('@'));
    for k in [
        "server_uuid",
        "facilitator_id",
        "org_email",
        "org_phone",
        "org_address",
        "org_id",
        "org_id_hash",
    ] {
        assert!(v[k].is_string(), "{k} missing: {v}");
    }
    let urls = v["urls"].as_array().unwrap();
    let fetch = urls.iter().find(|u| u["uri"] == "/server/devices").unwrap();
    assert_eq!(fetch["limit"]["maximum"], 1000);
    assert_eq!(fetch["http_method"], json!(["POST"]));
    let assign = urls.iter().find(|u| u["uri"] == "/profile/devices").unwrap();
    assert_eq!(assign["http_method"], json!(["DELETE", "POST", "PUT"]));

    d.version = Some(2);
    let v = d.get("/account").await.json();
    assert!(v.get("org_type").is_none() && v.get("urls").is_none(), "{v}");

    // Education organisation.
    let edu = w.sim.create_org("School", OrgKind::Education);
    let srv = w.sim.create_mdm_server(edu, "School MDM");
    let creds = test_credentials(w.sim.clock().now());
    w.sim.register_credentials(srv, creds.clone());
    let mut e = Dep::new(&w.run.base_url, creds);
    e.login().await;
    assert_eq!(e.get("/account").await.json()["org_type"], "edu");
}

#[tokio::test]
async fn fetch_pages_through_everything_then_exhausts() {
    let w = World::new().await;
    let assigned = w.devices(250);
    // Some devices of the org that are not assigned must not show up.
    w.sim.add_devices(w.org, 7, DeviceSpec::default());
    let mut d = w.logged_in().await;
    let (all, last, pages) = fetch_all(&mut d, 100).await;
    assert_eq!(pages, 3);
    assert_eq!(all, assigned, "fetch returns the server's devices in purchase order");
    let r = d.post("/server/devices", json!({ "cursor": last, "limit": 100 })).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text, "EXHAUSTED_CURSOR");

    // Exactly one full page: more_to_follow false on it.
    let (all, _, pages) = fetch_all(&mut d, 250).await;
    assert_eq!((all.len(), pages), (250, 1));
    // Default limit 100; limit above 1000 is clamped.
    let r = d.post("/server/devices", json!({})).await.json();
    assert_eq!(r["devices"].as_array().unwrap().len(), 100);
    assert_eq!(r["more_to_follow"], true);
    let r = d.call("POST", "/server/devices", None).await.json();
    assert_eq!(r["devices"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn limit_is_clamped_to_1000() {
    let w = World::new().await;
    w.devices(1200);
    let mut d = w.logged_in().await;
    let r = d.post("/server/devices", json!({ "limit": 5000 })).await.json();
    assert_eq!(r["devices"].as_array().unwrap().len(), 1000);
    assert_eq!(r["more_to_follow"], true);
    let r = d
        .post("/devices/sync", json!({ "cursor": r["cursor"], "limit": 5000 }))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn device_fields_and_protocol_versions() {
    let w = World::new().await;
    let ipads = w.sim.add_devices(
        w.org,
        3,
        DeviceSpec {
            family: Some(DeviceFamily::IPad),
        },
    );
    w.sim.assign_devices(w.server, &ipads).unwrap();
    let mut d = w.logged_in().await;
    let v = d.post("/server/devices", json!({})).await.json();
    let dev = &v["devices"][0];
    assert_eq!(dev["os"], "iPadOS");
    assert_eq!(dev["device_family"], "iPad");
    assert_eq!(dev["profile_status"], "empty");
    assert!(dev["model"].as_str().unwrap().starts_with("iPad"));
    assert!(dev["description"].as_str().unwrap().starts_with("IPAD"));
    assert!(dev["color"].is_string());
    assert!(dev["device_assigned_date"].as_str().unwrap().ends_with('Z'));
    assert!(dev["device_assigned_by"].as_str().unwrap().contains('@'));
    assert!(dev.get("op_type").is_none(), "fetch carries no op_type");
    // Truth agrees with the API.
    let truth = serde_json::to_value(w.sim.device(dev["serial_number"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(&truth, dev);

    d.version = Some(6);
    let v = d.post("/server/devices", json!({})).await.json();
    assert_eq!(v["devices"][0]["os"], "iOS");
    d.version = None;
    let v = d.post("/server/devices", json!({})).await.json();
    assert!(v["devices"][0].get("os").is_none() && v["devices"][0].get("device_family").is_none());
}

#[tokio::test]
async fn realistic_device_mix() {
    let w = World::new().await;
    let serials = w.sim.add_devices(w.org, 500, DeviceSpec::default());
    let uniq: HashSet<_> = serials.iter().collect();
    assert_eq!(uniq.len(), 500);
    let mut families = HashSet::new();
    for s in &serials {
        let dev = w.sim.device(s).unwrap();
        assert!(s.len() == 10 || s.len() == 12, "{s}");
        assert!(s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()), "{s}");
        let expected_os = match dev.device_family.as_str() {
            "Mac" => "OSX",
            "iPhone" => "iOS",
            "iPad" => "iPadOS",
            "AppleTV" => "tvOS",
            "Vision" => "visionOS",
            other => panic!("family {other}"),
        };
        assert_eq!(dev.os, expected_os);
        assert!(
            dev.description.contains(&dev.color),
            "{} / {}",
            dev.description,
            dev.color
        );
        assert_eq!(dev.server, None);
        families.insert(dev.device_family);
    }
    assert!(families.len() >= 4, "{families:?}");
    let macs = w.sim.add_devices(
        w.org,
        200,
        DeviceSpec {
            family: Some(DeviceFamily::Mac),
        },
    );
    assert!(macs.iter().any(|s| s.len() == 12) && macs.iter().any(|s| s.len() == 10));
}

#[tokio::test]
async fn sync_reports_changes_in_order() {
    let w = World::new().await;
    let initial = w.devices(5);
    let mut d = w.logged_in().await;
    let (_, cursor, _) = fetch_all(&mut d, 100).await;

    // Nothing changed yet.
    let (ev, cursor, more) = sync(&mut d, &cursor).await;
    assert!(ev.is_empty() && !more);

    // Another server to move devices to and from.
    let other = w.sim.create_mdm_server(w.org, "Other MDM");
    let other_devs = w.sim.add_devices(w.org, 2, DeviceSpec::default());
    w.sim.assign_devices(other, &other_devs).unwrap();

    let fresh = w.sim.add_devices(w.org, 2, DeviceSpec::default());
    w.sim.assign_devices(w.server, &fresh).unwrap(); // added ×2
    w.sim
        .modify_devices(
            &initial[0..1],
            DeviceChange {
                asset_tag: Some("TAG-1".into()),
                ..Default::default()
            },
        )
        .unwrap(); // modified
    w.sim.release_devices(&initial[1..2]).unwrap(); // deleted
    w.sim.assign_devices(other, &initial[2..3]).unwrap(); // moved away: deleted
    w.sim.assign_devices(w.server, &other_devs[0..1]).unwrap(); // moved here: added
    w.sim
        .modify_devices(
            &initial[0..1],
            DeviceChange {
                color: Some("GOLD".into()),
                ..Default::default()
            },
        )
        .unwrap();

    let (ev, cursor2, more) = sync(&mut d, &cursor).await;
    assert!(!more);
    let expected: Vec<(String, String)> = vec![
        (fresh[0].clone(), "added".into()),
        (fresh[1].clone(), "added".into()),
        (initial[0].clone(), "modified".into()),
        (initial[1].clone(), "deleted".into()),
        (initial[2].clone(), "deleted".into()),
        (other_devs[0].clone(), "added".into()),
        (initial[0].clone(), "modified".into()),
    ];
    assert_eq!(ev, expected);

    // Syncing again from the new cursor: nothing; from the old cursor: the same again.
    let (ev2, _, _) = sync(&mut d, &cursor2).await;
    assert!(ev2.is_empty());
    let (again, _, _) = sync(&mut d, &cursor).await;
    assert_eq!(again, expected);

    // The moved device's old server sees it too; attributes of a modified device are current.
    let r = d.post("/devices/sync", json!({ "cursor": cursor })).await.json();
    let first_mod = &r["devices"][2];
    assert_eq!(first_mod["asset_tag"], "TAG-1");
    assert_eq!(first_mod["color"], "GOLD");
    let deleted = &r["devices"][3];
    assert!(
        deleted.get("profile_status").is_none(),
        "deleted records carry no profile fields: {deleted}"
    );

    // Moves reported as modified when chosen.
    w.sim.set_move_style(MoveStyle::Modified);
    w.sim.assign_devices(w.server, &other_devs[1..2]).unwrap();
    let (ev, _, _) = sync(&mut d, &cursor2).await;
    assert_eq!(ev, vec![(other_devs[1].clone(), "modified".to_owned())]);

    // The truth view matches.
    assert_eq!(w.sim.device(&initial[1]), None);
    assert_eq!(w.sim.device(&initial[2]).unwrap().server, Some(other));
    assert_eq!(w.sim.server_devices(w.server).len(), 7);
}

#[tokio::test]
async fn sync_pages_and_fetch_cursor_picks_up_changes_made_during_the_fetch() {
    let w = World::new().await;
    w.devices(30);
    let mut d = w.logged_in().await;
    let r = d.post("/server/devices", json!({ "limit": 10 })).await.json();
    let mid_cursor = r["cursor"].as_str().unwrap().to_owned();
    // Changes while the fetch is under way.
    let more = w.devices(25);
    let (ev, c, has_more) = {
        let r = d
            .post("/devices/sync", json!({ "cursor": mid_cursor, "limit": 10 }))
            .await
            .json();
        (
            r["devices"].as_array().unwrap().len(),
            r["cursor"].as_str().unwrap().to_owned(),
            r["more_to_follow"].clone(),
        )
    };
    assert_eq!((ev, has_more), (10, json!(true)));
    let r = d
        .post("/devices/sync", json!({ "cursor": c, "limit": 10 }))
        .await
        .json();
    assert_eq!(r["more_to_follow"], true);
    let r = d
        .post("/devices/sync", json!({ "cursor": r["cursor"], "limit": 10 }))
        .await
        .json();
    assert_eq!(r["more_to_follow"], false);
    assert_eq!(serials_of(&r), more[20..].to_vec());
    // Sync may return the same serial more than once.
    let s = &more[0];
    for tag in ["A", "B"] {
        w.sim
            .modify_devices(
                std::slice::from_ref(s),
                DeviceChange {
                    asset_tag: Some(tag.into()),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let (ev, _, _) = sync(&mut d, r["cursor"].as_str().unwrap()).await;
    assert_eq!(ev, vec![(s.clone(), "modified".into()), (s.clone(), "modified".into())]);
}

#[tokio::test]
async fn cursor_errors() {
    let w = World::new().await;
    w.devices(3);
    let mut d = w.logged_in().await;
    let (_, cursor, _) = fetch_all(&mut d, 100).await;

    // Sync without cursor.
    for body in [json!({}), json!({"cursor": ""}), json!({"limit": 5})] {
        let r = d.post("/devices/sync", body).await;
        assert_eq!((r.status, r.text.as_str()), (400, "CURSOR_REQUIRED"));
    }
    // Tampered cursors.
    let b64 = &base64::engine::general_purpose::STANDARD;
    let text = String::from_utf8(b64.decode(&cursor).unwrap()).unwrap();
    // Change one character of the authenticator…
    let mut flipped = text.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    // …or a number in the payload.
    let mut fields: Vec<String> = text.split(':').map(str::to_owned).collect();
    assert!(fields.len() > 4, "{text}");
    fields[3] = (fields[3].parse::<u64>().unwrap() + 1).to_string();
    let shifted = fields.join(":");
    let tampered1 = b64.encode(flipped);
    let tampered2 = b64.encode(shifted);
    for bad in [
        tampered1.as_str(),
        &tampered2,
        "MTY1NzI2ODE5Ny0x",
        "not base64 at all!",
        &cursor[..cursor.len() - 4],
    ] {
        let r = d.post("/devices/sync", json!({ "cursor": bad })).await;
        assert_eq!((r.status, r.text.as_str()), (400, "INVALID_CURSOR"), "{bad}");
        let r = d.post("/server/devices", json!({ "cursor": bad })).await;
        assert_eq!((r.status, r.text.as_str()), (400, "INVALID_CURSOR"), "{bad}");
    }
    // A cursor of another MDM server is foreign.
    let other = w.sim.create_mdm_server(w.org, "Other");
    let creds = test_credentials(w.sim.clock().now());
    w.sim.register_credentials(other, creds.clone());
    let mut o = Dep::new(&w.run.base_url, creds);
    o.login().await;
    let r = o.post("/devices/sync", json!({ "cursor": cursor })).await;
    assert_eq!((r.status, r.text.as_str()), (400, "INVALID_CURSOR"));
    // Wrong types.
    let r = d.post("/devices/sync", json!({ "cursor": 5 })).await;
    assert_eq!((r.status, r.text.as_str()), (400, "MALFORMED_REQUEST_BODY"));
}

#[tokio::test]
async fn cursor_expires_after_seven_sim_days() {
    let w = World::new().await;
    w.devices(3);
    let mut d = w.logged_in().await;
    let (_, cursor, _) = fetch_all(&mut d, 100).await;
    w.sim.clock().advance(time::Duration::days(6));
    d.login().await;
    let (_, fresh, _) = sync(&mut d, &cursor).await;
    w.sim
        .clock()
        .advance(time::Duration::days(1) + time::Duration::hours(1));
    d.login().await;
    let r = d.post("/devices/sync", json!({ "cursor": cursor })).await;
    assert_eq!((r.status, r.text.as_str()), (400, "EXPIRED_CURSOR"));
    // The cursor issued a day ago is still good.
    let r = d.post("/devices/sync", json!({ "cursor": fresh })).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn details_and_disown() {
    let w = World::new().await;
    let mine = w.devices(3);
    let other = w.sim.create_mdm_server(w.org, "Other");
    let theirs = w.sim.add_devices(w.org, 1, DeviceSpec::default());
    w.sim.assign_devices(other, &theirs).unwrap();
    let mut d = w.logged_in().await;

    let r = d
        .post(
            "/devices",
            json!({ "devices": [mine[0], theirs[0], "NOSUCHSERIAL", mine[0]] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let m = v["devices"].as_object().unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[&mine[0]]["response_status"], "SUCCESS");
    assert_eq!(m[&mine[0]]["serial_number"], mine[0].as_str());
    assert!(m[&mine[0]]["model"].is_string());
    assert_eq!(m[&theirs[0]]["response_status"], "NOT_FOUND");
    assert_eq!(m["NOSUCHSERIAL"]["response_status"], "NOT_FOUND");
    assert_eq!(w.sim.requests().last().unwrap().serials, Some(4));

    for body in [json!({}), json!({"devices": []})] {
        let r = d.post("/devices", body).await;
        assert_eq!((r.status, r.text.as_str()), (400, "DEVICE_ID_REQUIRED"));
    }
    let too_many: Vec<String> = (0..1001).map(|i| format!("X{i}")).collect();
    let r = d.post("/devices", json!({ "devices": too_many })).await;
    assert_eq!((r.status, r.text.as_str()), (400, "MALFORMED_REQUEST_BODY"));

    let (_, cursor, _) = fetch_all(&mut d, 100).await;
    let r = d
        .post("/devices/disown", json!({ "devices": [mine[1], theirs[0]] }))
        .await;
    assert_eq!(
        r.json(),
        json!({"devices": {mine[1].as_str(): "SUCCESS", theirs[0].as_str(): "NOT_ACCESSIBLE"}})
    );
    assert!(w.sim.device(&mine[1]).is_none());
    assert!(w.sim.device(&theirs[0]).is_some());
    let (ev, _, _) = sync(&mut d, &cursor).await;
    assert_eq!(ev, vec![(mine[1].clone(), "deleted".into())]);
    let r = d.post("/devices", json!({ "devices": [mine[1]] })).await.json();
    assert_eq!(r["devices"][&mine[1]]["response_status"], "NOT_FOUND");
}

#[tokio::test]
async fn malformed_bodies_and_methods() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    let url = format!("{}/server/devices", w.run.base_url);
    let r = read(
        d.http
            .post(&url)
            .header("User-Agent", "t/1")
            .header("X-ADM-Auth-Session", d.session.clone().unwrap())
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (400, "MALFORMED_REQUEST_BODY"));
    let r = d.post("/server/devices", json!([1, 2])).await;
    assert_eq!(r.status, 400);
    let r = d.post("/server/devices", json!({"limit": "ten"})).await;
    assert_eq!(r.status, 400);
    // Wrong method on a known path: 405; unknown path: 404.
    assert_eq!(d.get("/server/devices").await.status, 405);
    assert_eq!(d.call("PATCH", "/profile/devices", None).await.status, 405);
    assert_eq!(d.get("/nope").await.status, 404);
}
