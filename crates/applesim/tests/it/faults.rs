//! Fault injection and error body styles.

use std::time::{Duration, Instant, SystemTime};

use crate::common::*;
use applesim::{Endpoint, ErrorStyle, Fault, FaultKind, RetryAfter};
use serde_json::json;

#[tokio::test]
async fn each_fault_kind() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    let cases: Vec<(FaultKind, u16, &str)> = vec![
        (FaultKind::Unauthorized, 401, "UNAUTHORIZED"),
        (FaultKind::Forbidden, 403, "FORBIDDEN"),
        (FaultKind::AccessDenied, 403, "ACCESS_DENIED"),
        (FaultKind::TermsNotSigned, 403, "T_C_NOT_SIGNED"),
        (
            FaultKind::TooManyRequests { retry_after: None },
            429,
            "TOO_MANY_REQUESTS",
        ),
        (
            FaultKind::ServiceUnavailable { retry_after: None },
            503,
            "SERVICE_UNAVAILABLE",
        ),
        (FaultKind::InternalError, 500, "INTERNAL_SERVER_ERROR"),
        (
            FaultKind::BadRequest("MALFORMED_REQUEST_BODY".into()),
            400,
            "MALFORMED_REQUEST_BODY",
        ),
    ];
    for (kind, status, body) in cases {
        w.sim
            .push_faults(Endpoint::FetchDevices, vec![Fault::new(2, kind.clone())]);
        for _ in 0..2 {
            let r = d.post("/server/devices", json!({})).await;
            assert_eq!((r.status, r.text.as_str()), (status, body), "{kind:?}");
            assert!(r.header("retry-after").is_none());
        }
        // Used up: normal again. Other endpoints were never affected.
        assert_eq!(d.post("/server/devices", json!({})).await.status, 200);
        let rec = w.sim.requests();
        let faulted = &rec[rec.len() - 2];
        assert_eq!(faulted.status, Some(status));
        assert!(faulted.fault.is_some());
        assert!(rec.last().unwrap().fault.is_none());
    }
    // Faults apply before authentication and the User-Agent check.
    w.sim
        .push_faults(Endpoint::Account, vec![Fault::new(1, FaultKind::AccessDenied)]);
    d.user_agent = None;
    assert_eq!(d.get("/account").await.status, 403);
    assert_eq!(d.get("/account").await.status, 400);
}

#[tokio::test]
async fn fault_lists_are_consumed_in_order_and_can_be_cleared() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    w.sim.push_faults(
        Endpoint::Account,
        vec![
            Fault::new(1, FaultKind::InternalError),
            Fault::new(2, FaultKind::Pass),
            Fault::new(1, FaultKind::Forbidden),
        ],
    );
    let statuses = [
        d.get("/account").await.status,
        d.get("/account").await.status,
        d.get("/account").await.status,
    ];
    assert_eq!(statuses, [500, 200, 200]);
    assert_eq!(
        w.sim.pending_faults(Endpoint::Account),
        vec![Fault::new(1, FaultKind::Forbidden)]
    );
    w.sim.clear_faults();
    assert_eq!(d.get("/account").await.status, 200);
}

#[tokio::test]
async fn retry_after_seconds_and_http_date() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    w.sim.push_faults(
        Endpoint::SyncDevices,
        vec![
            Fault::new(
                1,
                FaultKind::TooManyRequests {
                    retry_after: Some(RetryAfter::Seconds(120)),
                },
            ),
            Fault::new(
                1,
                FaultKind::ServiceUnavailable {
                    retry_after: Some(RetryAfter::HttpDateIn(300)),
                },
            ),
            Fault::new(
                1,
                FaultKind::ServiceUnavailable {
                    retry_after: Some(RetryAfter::HttpDate(
                        SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480),
                    )),
                },
            ),
        ],
    );
    let r = d.post("/devices/sync", json!({"cursor": "x"})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after").as_deref(), Some("120"));

    let r = d.post("/devices/sync", json!({"cursor": "x"})).await;
    assert_eq!(r.status, 503);
    let date = r.header("retry-after").unwrap();
    let at = httpdate::parse_http_date(&date).unwrap();
    let secs = at.duration_since(SystemTime::now()).unwrap().as_secs();
    assert!((295..=301).contains(&secs), "{date} is {secs}s away");

    let r = d.post("/devices/sync", json!({"cursor": "x"})).await;
    assert_eq!(
        r.header("retry-after").as_deref(),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );
}

#[tokio::test]
async fn slow_answers_after_the_delay() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    w.sim.push_faults(
        Endpoint::Account,
        vec![Fault::new(1, FaultKind::Slow(Duration::from_millis(400)))],
    );
    let t = Instant::now();
    let r = d.get("/account").await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(400));
    let t = Instant::now();
    d.get("/account").await;
    assert!(t.elapsed() < Duration::from_millis(400));
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    w.sim
        .push_faults(Endpoint::FetchDevices, vec![Fault::new(1, FaultKind::DropConnection)]);
    let err = d
        .http
        .post(format!("{}/server/devices", w.run.base_url))
        .header("User-Agent", "t/1")
        .header("X-ADM-Auth-Session", d.session.clone().unwrap())
        .body("{}")
        .send()
        .await
        .expect_err("the connection must close without a response");
    assert!(err.status().is_none(), "{err:?}");
    assert!(
        err.is_request() || err.is_connect() || format!("{err:?}").contains("closed"),
        "{err:?}"
    );
    let rec = w.sim.requests();
    let last = rec.last().unwrap();
    assert_eq!(last.endpoint, Some(Endpoint::FetchDevices));
    assert_eq!(last.status, None);
    // The server keeps serving.
    assert_eq!(d.post("/server/devices", json!({})).await.status, 200);
}

#[tokio::test]
async fn go_away_answers_503_and_closes_the_connection() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    w.sim
        .push_faults(Endpoint::Account, vec![Fault::new(1, FaultKind::GoAway)]);
    let r = d.get("/account").await;
    assert_eq!((r.status, r.text.as_str()), (503, "SERVICE_UNAVAILABLE"));
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(w.sim.requests().last().unwrap().fault.as_deref() == Some("GoAway"));
    // The client reconnects and carries on.
    assert_eq!(d.get("/account").await.status, 200);
}

#[tokio::test]
async fn error_body_styles() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    let r = d.post("/devices/sync", json!({})).await;
    assert_eq!(r.text, "CURSOR_REQUIRED");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));

    w.sim.set_error_style(ErrorStyle::Quoted);
    let r = d.post("/devices/sync", json!({})).await;
    assert_eq!(r.text, "\"CURSOR_REQUIRED\"");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json;charset=UTF8")
    );
    w.sim
        .push_faults(Endpoint::Account, vec![Fault::new(1, FaultKind::TermsNotSigned)]);
    assert_eq!(d.get("/account").await.text, "\"T_C_NOT_SIGNED\"");

    w.sim.set_error_style(ErrorStyle::Json);
    let r = d.post("/devices/sync", json!({})).await;
    let v = r.json();
    assert_eq!(v["code"], "CURSOR_REQUIRED");
    assert!(v["message"].as_str().unwrap().len() > 5);
    let r = d
        .session_raw(Some(d.signed_header().replace("HMAC-SHA1", "RSA-SHA1")))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "BAD_REQUEST");

    w.sim.set_error_style(ErrorStyle::Bare);
    let r = d.post("/devices/sync", json!({})).await;
    assert_eq!(r.text, "CURSOR_REQUIRED");
}

#[tokio::test]
async fn request_records() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    d.version = Some(9);
    d.post("/devices", json!({"devices": ["A", "B", "C"]})).await;
    let rec = w.sim.requests();
    assert_eq!(rec.len(), 2);
    assert_eq!(rec[0].endpoint, Some(Endpoint::Session));
    assert_eq!(rec[0].path, "/session");
    assert_eq!(rec[0].method, "GET");
    assert_eq!(rec[0].protocol_version.as_deref(), Some("10"));
    let r = &rec[1];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/devices"));
    assert_eq!(r.protocol_version.as_deref(), Some("9"));
    assert_eq!(r.user_agent.as_deref(), Some("applesim-tests/1.0"));
    assert_eq!(r.serials, Some(3));
    assert_eq!(r.status, Some(200));
    assert!((w.sim.clock().now() - r.time).abs() < time::Duration::seconds(5));
    w.sim.clear_requests();
    assert!(w.sim.requests().is_empty());
}
