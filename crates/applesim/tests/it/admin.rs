//! The admin HTTP API under /abm.

use crate::common::*;
use applesim::AppleSim;
use serde_json::{Value, json};

struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, format!("{}/abm{path}", self.base));
        if let Some(b) = body {
            rb = rb.header("Content-Type", "application/json").body(b.to_string());
        }
        read(rb.send().await.unwrap()).await
    }
}

#[tokio::test]
async fn admin_routes_drive_the_world() {
    let sim = AppleSim::new();
    let run = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let a = Admin {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        base: run.base_url.clone(),
    };

    let r = a
        .call("POST", "/orgs", Some(json!({"name": "Acme", "kind": "education"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let org = r.json()["org_id"].as_u64().unwrap();
    let r = a
        .call("POST", &format!("/orgs/{org}/servers"), Some(json!({"name": "Russet"})))
        .await;
    assert_eq!(r.status, 201);
    let server = r.json()["server_id"].as_u64().unwrap();
    assert_eq!(r.json()["server_uuid"].as_str().unwrap().len(), 36);
    let r = a.call("POST", "/orgs/77/servers", Some(json!({"name": "x"}))).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());

    let r = a
        .call(
            "POST",
            &format!("/orgs/{org}/devices"),
            Some(json!({"count": 4, "family": "iPhone"})),
        )
        .await;
    let serials: Vec<String> = serde_json::from_value(r.json()["serials"].clone()).unwrap();
    assert_eq!(serials.len(), 4);
    let r = a
        .call(
            "POST",
            &format!("/orgs/{org}/devices"),
            Some(json!({"count": 1, "family": "Toaster"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = a.call("GET", &format!("/orgs/{org}/devices/unassigned"), None).await;
    assert_eq!(r.json()["serials"].as_array().unwrap().len(), 4);

    let r = a
        .call(
            "POST",
            &format!("/servers/{server}/devices"),
            Some(json!({"serials": serials})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = a.call("GET", &format!("/servers/{server}/devices?limit=2"), None).await;
    let devs = r.json();
    assert_eq!(devs.as_array().unwrap().len(), 2);
    assert_eq!(devs[0]["device_family"], "iPhone");
    assert_eq!(devs[0]["server_id"], server);
    let r = a.call("GET", &format!("/devices/{}", serials[0]), None).await;
    assert_eq!(r.json()["os"], "iOS");
    assert_eq!(a.call("GET", "/devices/NOPE", None).await.status, 404);

    let r = a
        .call(
            "POST",
            "/devices/modify",
            Some(json!({"serials": [serials[0]], "asset_tag": "A-1"})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(sim.device(&serials[0]).unwrap().asset_tag.as_deref(), Some("A-1"));
    let r = a
        .call("POST", "/devices/release", Some(json!({"serials": [serials[1]]})))
        .await;
    assert_eq!(r.status, 204);
    assert!(sim.device(&serials[1]).is_none());
    let r = a
        .call("POST", "/devices/release", Some(json!({"serials": ["NOPE"]})))
        .await;
    assert_eq!(r.status, 404);

    let r = a.call("GET", &format!("/servers/{server}"), None).await.json();
    assert_eq!(r["device_count"], 3);
    assert_eq!(r["change_count"], 6);
    assert_eq!(r["has_token"], false);

    // Credentials registered over HTTP work for /session.
    let creds = test_credentials(sim.clock().now());
    let r = a
        .call(
            "PUT",
            &format!("/servers/{server}/credentials"),
            Some(serde_json::to_value(&creds).unwrap()),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let mut d = Dep::new(&run.base_url, creds);
    d.login().await;
    assert_eq!(d.get("/account").await.json()["org_type"], "edu");

    // Terms.
    let r = a
        .call("PUT", &format!("/orgs/{org}/terms"), Some(json!({"pending": true})))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(d.get("/account").await.status, 403);
    a.call("PUT", &format!("/orgs/{org}/terms"), Some(json!({"pending": false})))
        .await;

    // Clock.
    let before = a.call("GET", "/clock", None).await.json()["unix"].as_i64().unwrap();
    let r = a
        .call("POST", "/clock", Some(json!({"advance_seconds": 86400})))
        .await
        .json();
    assert!(r["unix"].as_i64().unwrap() - before >= 86400);
    let r = a
        .call("POST", "/clock", Some(json!({"set": "2030-01-02T03:04:05Z"})))
        .await
        .json();
    assert!(r["now"].as_str().unwrap().starts_with("2030-01-02T03:04:0"));
    assert_eq!(
        a.call("POST", "/clock", Some(json!({"set": "yesterday"}))).await.status,
        400
    );
    a.call("POST", "/clock", Some(json!({"set": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()}))).await;

    // Faults.
    let r = a
        .call(
            "POST",
            "/faults",
            Some(json!({"endpoint": "account", "faults": [
                {"count": 1, "kind": "too_many_requests", "retry_after_seconds": 7},
                {"kind": "bad_request", "code": "SOMETHING"}]})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let listed = a.call("GET", "/faults", None).await.json();
    assert_eq!(listed["account"].as_array().unwrap().len(), 2);
    d.login().await;
    let r = d.get("/account").await;
    assert_eq!((r.status, r.header("retry-after").as_deref()), (429, Some("7")));
    assert_eq!(d.get("/account").await.text, "SOMETHING");
    let r = a
        .call(
            "POST",
            "/faults",
            Some(json!({"endpoint": "account", "faults": [{"kind": "nope"}]})),
        )
        .await;
    assert_eq!(r.status, 400);
    a.call(
        "POST",
        "/faults",
        Some(json!({"endpoint": "account", "faults": [{"kind": "forbidden"}]})),
    )
    .await;
    assert_eq!(a.call("DELETE", "/faults", None).await.status, 204);
    assert_eq!(d.get("/account").await.status, 200);

    // Styles, session policy, throttle, move style.
    assert_eq!(
        a.call("PUT", "/error-style", Some(json!({"style": "json"})))
            .await
            .status,
        204
    );
    assert_eq!(
        d.post("/devices/sync", json!({})).await.json()["code"],
        "CURSOR_REQUIRED"
    );
    assert_eq!(
        a.call("PUT", "/error-style", Some(json!({"style": "weird"})))
            .await
            .status,
        400
    );
    let r = a
        .call(
            "PUT",
            "/session-policy",
            Some(json!({"lifetime_seconds": 60, "rotate_every": 2})),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = a
        .call(
            "PUT",
            &format!("/servers/{server}/throttle"),
            Some(json!({"devices_per_window": 1, "window_seconds": 60, "retry_after_seconds": 5})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        a.call("GET", &format!("/servers/{server}"), None).await.json()["throttle"]["retry_after_seconds"],
        5
    );
    assert_eq!(
        a.call("DELETE", &format!("/servers/{server}/throttle"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        a.call("PUT", "/move-style", Some(json!({"style": "modified"})))
            .await
            .status,
        204
    );

    // Profiles and requests.
    let r = d
        .post("/profile", json!({"profile_name": "p", "url": "https://x.example/e"}))
        .await
        .json();
    let uuid = r["profile_uuid"].as_str().unwrap();
    let r = a.call("GET", &format!("/profiles/{uuid}"), None).await;
    assert_eq!(r.json()["profile_name"], "p");
    let r = a.call("GET", "/requests?last=2", None).await.json();
    assert_eq!(r.as_array().unwrap().len(), 2);
    assert_eq!(r[1]["endpoint"], "define_profile");
    assert_eq!(a.call("DELETE", "/requests", None).await.status, 204);
    assert!(sim.requests().is_empty());

    let orgs = a.call("GET", "/orgs", None).await.json();
    assert_eq!(orgs[0]["servers"], json!([server]));
    assert_eq!(a.call("POST", "/orgs", Some(json!({"nom": 1}))).await.status, 400);
    run.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let sim = AppleSim::new();
    let run = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert!(run.base_url.starts_with("http://127.0.0.1:") && !run.base_url.ends_with('/'));
    let addr = run.addr;
    run.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
