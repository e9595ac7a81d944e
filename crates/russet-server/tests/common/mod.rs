//! Test harness: a Russet server over real HTTP on 127.0.0.1 with its own database, talking
//! to its own applesim (Apple's side), with injected clocks on both sides.
#![allow(dead_code)]

pub mod mdm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use applesim::{AppleSim, DeviceSpec, OrgId, OrgKind, RunningSim, ServerId, SimCredentials};
use reqwest::{Method, RequestBuilder, StatusCode};
use russet_core::ManualClock;
use russet_server::config::Config;
use russet_server::serve::{RunningServer, StartOptions, start};
use russet_testkit::{SmimeForm, TestDb, apple_token_payload, smime_encrypt};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;

pub const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
pub const EXPIRY: &str = "2027-06-01T12:00:00Z";

#[derive(Clone, Copy)]
pub struct Options {
    /// Background work (scheduler, sync after upload).
    pub sync_enabled: bool,
    pub page_size: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync_enabled: false,
            page_size: 1000,
        }
    }
}

pub struct TestServer {
    pub server: RunningServer,
    pub url: String,
    pub key: String,
    pub http: reqwest::Client,
    pub clock: ManualClock,
    pub db: TestDb,
    pub sim: AppleSim,
    pub sim_run: Option<RunningSim>,
    pub org: OrgId,
    /// The sim MDM server holding each consumer key registered by `abm_token`.
    servers: Mutex<HashMap<String, ServerId>>,
}

pub fn config_for(db: &TestDb, sim_url: &str, opts: Options) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: db.path().join("data"),
        database_url: Some(db.url.clone()),
        ..Config::default()
    };
    c.apple.dep_url = sim_url.to_string();
    c.sync.enabled = opts.sync_enabled;
    c.sync.page_size = opts.page_size;
    // Batches of two pages, so that tests cover pages committed together.
    c.sync.batch_devices = 2 * opts.page_size;
    c
}

pub async fn start_sim() -> (AppleSim, RunningSim, OrgId) {
    let sim = AppleSim::new();
    sim.clock().set(NOW);
    let run = sim
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("applesim serves");
    let org = sim.create_org("Example Org", OrgKind::Business);
    (sim, run, org)
}

impl TestServer {
    pub async fn start(db: TestDb, opts: Options) -> TestServer {
        Self::start_configured(db, opts, |_, _, _| {}).await
    }

    /// Starts with the configuration adjusted by `adjust` (which sees applesim).
    pub async fn start_configured(
        db: TestDb,
        opts: Options,
        adjust: impl FnOnce(&mut Config, &AppleSim, &RunningSim),
    ) -> TestServer {
        let (sim, run, org) = start_sim().await;
        let clock = ManualClock::new(NOW);
        let mut config = config_for(&db, &run.base_url, opts);
        adjust(&mut config, &sim, &run);
        let server = start(
            &config,
            StartOptions {
                master_key: None,
                clock: Arc::new(clock.clone()),
            },
        )
        .await
        .expect("server starts");
        let key =
            std::fs::read_to_string(config.data_dir.join("admin-api-key")).expect("first start writes the admin key");
        TestServer {
            url: format!("http://{}", server.local_addr),
            server,
            key: key.trim().to_string(),
            http: reqwest::Client::new(),
            clock,
            db,
            sim,
            sim_run: Some(run),
            org,
            servers: Mutex::new(HashMap::new()),
        }
    }

    pub async fn stop(mut self) {
        if let Some(run) = self.sim_run.take() {
            run.shutdown().await;
        }
        self.server.shutdown().await.unwrap();
    }

    /// Moves both clocks.
    pub fn set_time(&self, t: OffsetDateTime) {
        self.clock.set(t);
        self.sim.clock().set(t);
    }

    pub fn advance(&self, d: time::Duration) {
        self.clock.advance(d);
        self.sim.clock().advance(d);
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key)
    }

    pub async fn json(&self, req: RequestBuilder, expect: StatusCode) -> Value {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, expect, "unexpected status; body: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn create(&self, name: &str) -> Value {
        self.json(
            self.req(Method::POST, "/api/v1/ade-tokens")
                .json(&json!({ "name": name })),
            StatusCode::CREATED,
        )
        .await
    }

    pub async fn token(&self, id: i64) -> Value {
        self.json(
            self.req(Method::GET, &format!("/api/v1/ade-tokens/{id}")),
            StatusCode::OK,
        )
        .await
    }

    pub async fn public_key(&self, id: i64) -> String {
        let resp = self
            .req(Method::GET, &format!("/api/v1/ade-tokens/{id}/public-key"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }

    /// The sim MDM server for a consumer key (created on first use).
    pub fn sim_server_for(&self, consumer_key: &str) -> ServerId {
        let mut map = self.servers.lock().unwrap();
        let n = map.len() + 1;
        *map.entry(consumer_key.to_string())
            .or_insert_with(|| self.sim.create_mdm_server(self.org, &format!("MDM server {n}")))
    }

    /// A server token for token `id` made like ABM makes it (openssl, S/MIME stream), whose
    /// credentials Apple (the sim) accepts as the current token of the MDM server of
    /// `consumer_key`.
    pub async fn abm_token(&self, id: i64, consumer_key: &str, tag: &str, expiry: &str) -> Vec<u8> {
        self.abm_token_with(id, consumer_key, tag, expiry, "-aes128", SmimeForm::SmimeStream)
            .await
    }

    pub async fn abm_token_with(
        &self,
        id: i64,
        consumer_key: &str,
        tag: &str,
        expiry: &str,
        cipher: &str,
        form: SmimeForm,
    ) -> Vec<u8> {
        let server = self.sim_server_for(consumer_key);
        self.sim.register_credentials(
            server,
            SimCredentials {
                consumer_key: consumer_key.to_string(),
                consumer_secret: format!("CS_secret{tag}"),
                access_token: format!("AT_token{tag}"),
                access_secret: format!("AS_secret{tag}"),
                access_token_expiry: OffsetDateTime::parse(expiry, &Rfc3339).unwrap(),
            },
        );
        let cert = self.public_key(id).await;
        smime_encrypt(&cert, &apple_token_payload(consumer_key, tag, expiry), cipher, form)
    }

    pub fn upload(&self, id: i64, file: Vec<u8>, query: &[(&str, &str)]) -> RequestBuilder {
        self.req(Method::PUT, &format!("/api/v1/ade-tokens/{id}/server-token"))
            .query(query)
            .header("content-type", "application/pkcs7-mime")
            .body(file)
    }

    /// The real path: create a token, upload its public key to a new MDM server in ABM,
    /// download the server token there and upload it to Russet. Returns (token id, sim server).
    pub async fn connect(&self, name: &str) -> (i64, ServerId) {
        let id = self.create(name).await["id"].as_i64().unwrap();
        let server = self.sim.create_mdm_server(self.org, &format!("Russet {name}"));
        self.sim.upload_public_key(server, &self.public_key(id).await).unwrap();
        let p7m = self.sim.download_token(server).unwrap();
        let out = self
            .json(self.upload(id, p7m, &[("apple_id", "it@example.com")]), StatusCode::OK)
            .await;
        assert_eq!(out["result"], "activated");
        (id, server)
    }

    /// `n` new devices in the org, assigned to `server` in ABM.
    pub fn abm_devices(&self, server: ServerId, n: usize) -> Vec<String> {
        let serials = self.sim.add_devices(self.org, n, DeviceSpec::default());
        self.sim.assign_devices(server, &serials).unwrap();
        serials
    }

    /// Runs a sync of a token to its end (as the scheduler does: no manual-sync limit).
    pub async fn sync(&self, id: i64, full: bool) -> russet_core::jobs::Job {
        self.server
            .core
            .ade_sync_now(id, russet_core::sync::SyncOrigin::Scheduled, full)
            .await
            .expect("sync starts")
            .into()
    }

    pub async fn audit(&self) -> Vec<Value> {
        let page = self
            .json(self.req(Method::GET, "/api/v1/audit?limit=500"), StatusCode::OK)
            .await;
        page["entries"].as_array().cloned().unwrap()
    }

    /// Polls a job until it is no longer running.
    pub async fn wait_job(&self, id: i64) -> Value {
        for _ in 0..600 {
            let job = self
                .json(self.req(Method::GET, &format!("/api/v1/jobs/{id}")), StatusCode::OK)
                .await;
            if job["status"] != "running" {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish in 30 s");
    }

    /// Every device of a token in Russet (serial → record), following all pages.
    pub async fn devices(&self, token_id: i64, include_removed: bool) -> HashMap<String, Value> {
        let mut out = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = vec![("token_id", token_id.to_string()), ("limit", "1000".into())];
            if include_removed {
                q.push(("include_removed", "true".into()));
            }
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page = self
                .json(self.req(Method::GET, "/api/v1/devices").query(&q), StatusCode::OK)
                .await;
            for d in page["devices"].as_array().unwrap() {
                out.insert(d["serial_number"].as_str().unwrap().to_string(), d.clone());
            }
            cursor = page["next_cursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                return out;
            }
        }
    }

    /// Russet's devices of a token equal Apple's truth for its MDM server: same serials, same fields.
    pub async fn assert_matches_abm(&self, token_id: i64, server: ServerId) {
        let ours = self.devices(token_id, false).await;
        let truth = self.sim.server_devices(server);
        let mut missing: Vec<&str> = truth
            .iter()
            .filter(|d| !ours.contains_key(&d.serial_number))
            .map(|d| d.serial_number.as_str())
            .collect();
        missing.truncate(10);
        assert!(missing.is_empty(), "devices in ABM but not in Russet: {missing:?}");
        assert_eq!(
            ours.len(),
            truth.len(),
            "Russet has devices ABM does not assign to the server"
        );
        for d in &truth {
            let o = &ours[&d.serial_number];
            assert_eq!(o["model"], d.model, "{}", d.serial_number);
            assert_eq!(o["os"], d.os, "{}", d.serial_number);
            assert_eq!(o["device_family"], d.device_family, "{}", d.serial_number);
            assert_eq!(o["color"], d.color, "{}", d.serial_number);
            assert_eq!(o["description"], d.description, "{}", d.serial_number);
            assert_eq!(o["asset_tag"].as_str(), d.asset_tag.as_deref(), "{}", d.serial_number);
        }
    }
}

pub async fn servers(test: &str, opts: Options) -> Vec<TestServer> {
    let mut out = Vec::new();
    for db in TestDb::all(test).await {
        out.push(TestServer::start(db, opts).await);
    }
    out
}

pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

pub fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}
