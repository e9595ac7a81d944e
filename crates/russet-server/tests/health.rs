//! Credential health with an injected clock: the push certificate, an ADE token and an Apps
//! and Books token cross 30 days, 7 days and expiry; a webhook receiver in the test sees
//! exactly one signed notification per crossing (and one per renewal), a failed delivery is
//! retried, and `/metrics` shows the credentials. SQLite and (when configured) PostgreSQL.

mod common;

use std::sync::{Arc, Mutex};

use applesim::VppAssetSpec;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use common::{TestServer, mdm};
use reqwest::{Method, StatusCode};
use russet_core::Clock;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const SECRET: &str = "webhook-secret-0123456789";
const METRICS_TOKEN: &str = "scrape-me";

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    /// Answer 500 to this many requests first.
    fail: Arc<Mutex<u32>>,
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                state.got.lock().unwrap().push((headers, body));
                let mut fail = state.fail.lock().unwrap();
                if *fail > 0 {
                    *fail -= 1;
                    AxStatus::INTERNAL_SERVER_ERROR
                } else {
                    AxStatus::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

/// Checks the signature header the way a receiver would; returns the parsed body.
fn verified(headers: &HeaderMap, body: &[u8]) -> Value {
    let sig = headers["x-russet-signature"].to_str().unwrap();
    let (t, v1) = sig.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let key = openssl::pkey::PKey::hmac(SECRET.as_bytes()).unwrap();
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    signer.update(format!("{t}.").as_bytes()).unwrap();
    signer.update(body).unwrap();
    assert_eq!(
        hex::encode(signer.sign_to_vec().unwrap()),
        v1,
        "valid HMAC-SHA256 signature"
    );
    let json: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(headers["x-russet-event"].to_str().unwrap(), json["event"]);
    assert_eq!(headers["x-russet-delivery"].to_str().unwrap(), json["event_id"]);
    json
}

impl TestServer {
    async fn check(&self) -> Value {
        self.json(self.req(Method::POST, "/api/v1/health/check"), StatusCode::OK)
            .await
    }

    fn expiry_of(report: &Value, kind: &str) -> OffsetDateTime {
        let c = report["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} in {report}"));
        OffsetDateTime::parse(c["expires_at"].as_str().unwrap(), &Rfc3339).unwrap()
    }

    /// Syncs both tokens, as the scheduler would, so only expiry drives their status.
    async fn sync_tokens(&self, ade: i64, vpp: i64) {
        self.sync(ade, false).await;
        self.wait_job_of(ade).await;
        self.json(
            self.req(Method::POST, &format!("/api/v1/vpp-tokens/{vpp}/sync")),
            StatusCode::OK,
        )
        .await;
    }

    async fn wait_job_of(&self, token: i64) {
        let jobs = self
            .json(
                self.req(Method::GET, &format!("/api/v1/jobs?token_id={token}")),
                StatusCode::OK,
            )
            .await;
        if let Some(id) = jobs["jobs"]
            .as_array()
            .and_then(|j| j.first())
            .and_then(|j| j["id"].as_i64())
        {
            self.wait_job(id).await;
        }
    }
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn all(status: &str) -> Vec<(String, String)> {
    ["ade_token", "push_certificate", "vpp_token"]
        .iter()
        .map(|k| (k.to_string(), status.to_string()))
        .collect()
}

#[tokio::test]
async fn one_signed_notification_per_crossing() {
    let (rx, url) = receiver().await;
    let servers = mdm::start_with_sim("health::crossings", |c, _, run| {
        c.apple.vpp_url = run.vpp_url.clone();
        c.health.webhook_url = Some(url.clone());
        c.health.webhook_secret = Some(SECRET.into());
        c.metrics.token = Some(METRICS_TOKEN.into());
    })
    .await;
    for s in servers {
        rx.got.lock().unwrap().clear();
        mdm::install_push_cert(&s).await;
        let (ade, server) = s.connect("Head office").await;
        s.abm_devices(server, 3);
        let loc = s.sim.create_vpp_location(s.org, "Paris");
        s.sim.add_vpp_asset(loc, VppAssetSpec::app("361309726", 10)).unwrap();
        let file = s.sim.download_vpp_token(loc).unwrap();
        let out = s
            .json(
                s.req(Method::POST, "/api/v1/vpp-tokens")
                    .query(&[("apple_id", "apps@example.com")])
                    .body(file),
                StatusCode::CREATED,
            )
            .await;
        let vpp = out["token"]["id"].as_i64().unwrap();
        s.sync_tokens(ade, vpp).await;

        // First sight, all fine: recorded, nothing sent.
        let first = s.check().await;
        assert_eq!(statuses(&first["report"]), all("ok"), "{first}");
        assert_eq!(first["changes"], 3);
        assert_eq!(first["notifications_queued"], 0);
        let report = &first["report"];
        let latest = ["ade_token", "push_certificate", "vpp_token"]
            .iter()
            .map(|k| TestServer::expiry_of(report, k))
            .max()
            .unwrap();

        let mut expected = 0;
        for (at, status, severity) in [
            (latest - Duration::days(30) + Duration::minutes(1), "warning", "warning"),
            (
                latest - Duration::days(7) + Duration::minutes(1),
                "critical",
                "critical",
            ),
            (latest + Duration::minutes(1), "expired", "failed"),
        ] {
            s.set_time(at);
            if status != "expired" {
                s.sync_tokens(ade, vpp).await;
            }
            let out = s.check().await;
            assert_eq!(statuses(&out["report"]), all(status), "{out}");
            assert_eq!(out["report"]["severity"], severity);
            assert_eq!(out["notifications_queued"], 3, "one per credential: {out}");
            assert_eq!(out["notifications_delivered"], 3);
            expected += 3;
            // Checked again, and an hour later: the same status sends nothing new.
            assert_eq!(s.check().await["notifications_queued"], 0);
            s.advance(Duration::hours(1));
            if status != "expired" {
                s.sync_tokens(ade, vpp).await;
            }
            assert_eq!(s.check().await["notifications_queued"], 0);
            let got = rx.got.lock().unwrap().clone();
            assert_eq!(got.len(), expected, "exactly one notification per crossing");
            for (headers, body) in &got[expected - 3..] {
                let n = verified(headers, body);
                assert_eq!(n["event"], "credential.status_changed");
                assert_eq!(n["credential"]["status"], status);
                assert!(n["previous"]["status"].is_string());
            }
        }

        // A renewal is news once: the Apps and Books token renewed with a new file.
        let fresh = s.sim.download_vpp_token(loc).unwrap();
        s.json(
            s.req(Method::PUT, &format!("/api/v1/vpp-tokens/{vpp}/token"))
                .body(fresh),
            StatusCode::OK,
        )
        .await;
        let out = s.check().await;
        assert_eq!(out["notifications_queued"], 1, "{out}");
        let got = rx.got.lock().unwrap().clone();
        let renewed = verified(&got[expected].0, &got[expected].1);
        assert_eq!(renewed["event"], "credential.renewed");
        assert_eq!(renewed["credential"]["kind"], "vpp_token");
        assert_eq!(renewed["previous"]["status"], "expired");
        expected += 1;

        // A delivery that fails is retried with backoff, as the same notification.
        *rx.fail.lock().unwrap() = 1;
        let consumer_key = s.sim.current_credentials(server).unwrap().consumer_key;
        let expiry = (s.clock.now() + Duration::days(365)).format(&Rfc3339).unwrap();
        let p7m = s.abm_token(ade, &consumer_key, "renewed", &expiry).await;
        s.json(s.upload(ade, p7m, &[("apple_id", "it@example.com")]), StatusCode::OK)
            .await;
        let out = s.check().await;
        assert_eq!(
            (
                out["notifications_queued"].as_i64(),
                out["notifications_delivered"].as_i64()
            ),
            (Some(1), Some(0))
        );
        let list = s
            .json(s.req(Method::GET, "/api/v1/health/notifications"), StatusCode::OK)
            .await;
        let last = &list["notifications"][0];
        assert_eq!(
            (last["status"].as_str(), last["attempts"].as_i64()),
            (Some("pending"), Some(1))
        );
        assert_eq!(last["last_status_code"], 500);
        assert_eq!(
            s.check().await["notifications_delivered"],
            0,
            "not before its retry time"
        );
        s.advance(Duration::seconds(31));
        assert_eq!(s.check().await["notifications_delivered"], 1);
        let got = rx.got.lock().unwrap().clone();
        assert_eq!(got.len(), expected + 2);
        assert_eq!(
            got[expected].0["x-russet-delivery"],
            got[expected + 1].0["x-russet-delivery"],
            "the retry is the same notification"
        );
        assert_eq!(
            verified(&got[expected + 1].0, &got[expected + 1].1)["event"],
            "credential.renewed"
        );
        let list = s
            .json(s.req(Method::GET, "/api/v1/health/notifications"), StatusCode::OK)
            .await;
        assert!(
            list["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["status"] == "delivered")
        );

        // Metrics: the scrape token is required; the credentials and counters are there.
        let plain = s.http.get(format!("{}/metrics", s.url)).send().await.unwrap();
        assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
        let text = s
            .http
            .get(format!("{}/metrics", s.url))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for needle in [
            "russet_credential_expiry_seconds{kind=\"vpp_token\"",
            "russet_credential_expiry_seconds{kind=\"push_certificate\"",
            "russet_credential_health{kind=\"ade_token\"",
            "russet_token_last_successful_sync_timestamp_seconds{kind=\"ade_token\"",
            "russet_ade_devices{token_id=\"",
            "russet_mdm_queue_depth",
            "russet_apns_pushes_total{result=\"sent\"}",
            "russet_http_requests_total{method=\"POST\",route=\"/api/v1/health/check\",status=\"200\"}",
            "russet_http_request_duration_seconds_bucket",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        s.stop().await;
    }
}
