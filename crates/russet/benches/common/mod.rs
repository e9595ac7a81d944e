//! What the benchmarks share: a `russet serve` release process of its own (so its memory is
//! measured alone) on a test database, with the admin key it wrote.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use russet_testkit::TestDb;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_russet");

pub struct Russet {
    pub data: std::path::PathBuf,
    pub child: Child,
    pub url: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Drop for Russet {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Russet {
    /// Starts `russet serve` with extra command-line arguments and environment variables.
    pub fn start(db: &TestDb, args: &[&str], envs: &[(&str, String)]) -> Russet {
        let data = db.path().join("data");
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-level",
                &std::env::var("RUSSET_BENCH_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            ])
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .arg("--database-url")
            .arg(&db.url)
            .env("RUSSET_SYNC_ENABLED", "false")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("russet serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let url = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("russet logs that it serves");
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["message"] == "russet is serving" {
                break format!("http://{}", v["listen"].as_str().expect("listen"));
            }
        };
        // Keep draining the log; RUSSET_BENCH_LOG=FILE keeps it for inspection.
        let keep = std::env::var("RUSSET_BENCH_LOG").ok();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = keep.and_then(|p| std::fs::File::create(p).ok());
            while let Ok(line) = rx.recv() {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        let key = std::fs::read_to_string(data.join("admin-api-key"))
            .expect("admin key")
            .trim()
            .to_string();
        Russet {
            data,
            child,
            url,
            key,
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next().and_then(|kb| kb.parse::<f64>().ok()))
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }

    /// Polls a job to its end, sampling memory; returns (job, seconds, peak RSS MiB).
    pub async fn follow(&self, id: i64) -> (Value, f64, f64) {
        let started = Instant::now();
        let mut peak = self.rss_mib();
        loop {
            let job = self
                .call(reqwest::Method::GET, &format!("/api/v1/jobs/{id}"), None)
                .await;
            peak = peak.max(self.rss_mib());
            if job["status"] != "running" {
                return (job, started.elapsed().as_secs_f64(), peak);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Russet {
    /// Starts `russet serve` pushing to applesim's APNs at `apns_url`, with a vendor identity
    /// applesim issued and a push certificate from applesim's portal (requested by Russet,
    /// uploaded back): an MDM server ready for devices. Returns it with the push topic.
    /// The real path for an ADE token: create it, upload its public key to applesim's MDM
    /// server, download the server token there and upload it. Returns the token's id.
    pub async fn connect_ade_token(&self, sim: &applesim::AppleSim, server: applesim::ServerId) -> i64 {
        let token = self
            .call(
                reqwest::Method::POST,
                "/api/v1/ade-tokens",
                Some(serde_json::json!({ "name": "Bench" })),
            )
            .await;
        let id = token["id"].as_i64().expect("id");
        let pem = self
            .http
            .get(format!("{}/api/v1/ade-tokens/{id}/public-key", self.url))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("public key")
            .text()
            .await
            .expect("pem");
        sim.upload_public_key(server, &pem).expect("upload key");
        let p7m = sim.download_token(server).expect("token");
        let resp = self
            .http
            .put(format!(
                "{}/api/v1/ade-tokens/{id}/server-token?apple_id=bench@example.com",
                self.url
            ))
            .bearer_auth(&self.key)
            .body(p7m)
            .send()
            .await
            .expect("upload");
        assert!(
            resp.status().is_success(),
            "upload: {}",
            resp.text().await.unwrap_or_default()
        );
        id
    }

    pub async fn start_with_push_cert(
        db: &TestDb,
        sim: &applesim::AppleSim,
        apns_url: &str,
        envs: &[(&str, String)],
    ) -> (Russet, String) {
        use openssl::hash::MessageDigest;
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        use openssl::x509::{X509NameBuilder, X509ReqBuilder};

        let dir = db.path().to_path_buf();
        let vendor_rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("rsa")).expect("pkey");
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_nid(Nid::COMMONNAME, "MDM Vendor: bench")
            .expect("CN");
        let mut req = X509ReqBuilder::new().expect("req");
        req.set_subject_name(&name.build()).expect("subject");
        req.set_pubkey(&vendor_rsa).expect("key");
        req.sign(&vendor_rsa, MessageDigest::sha256()).expect("sign");
        let csr = String::from_utf8(req.build().to_pem().expect("pem")).expect("utf8");
        let write = |f: &str, bytes: &[u8]| std::fs::write(dir.join(f), bytes).expect("write");
        write(
            "vendor.pem",
            sim.issue_vendor_certificate(&csr).expect("vendor cert").as_bytes(),
        );
        write("vendor.key", &vendor_rsa.private_key_to_pem_pkcs8().expect("pem"));
        write("vendor-chain.pem", sim.vendor_chain_pem().as_bytes());
        write("apns-ca.pem", sim.apns_ca_pem().as_bytes());
        let path = |f: &str| dir.join(f).display().to_string();
        let mut all = vec![
            ("RUSSET_APPLE_APNS_URL", apns_url.to_string()),
            ("RUSSET_APPLE_APNS_CA_FILE", path("apns-ca.pem")),
            ("RUSSET_MDM_VENDOR_CERTIFICATE_FILE", path("vendor.pem")),
            ("RUSSET_MDM_VENDOR_KEY_FILE", path("vendor.key")),
            ("RUSSET_MDM_VENDOR_CHAIN_FILE", path("vendor-chain.pem")),
        ];
        all.extend(envs.iter().cloned());
        let russet = Russet::start(db, &[], &all);
        let csr = russet.call(reqwest::Method::POST, "/api/v1/push-cert/csr", None).await;
        let issued = sim
            .push_portal_create(
                "bench@example.com",
                csr["signed_request"].as_str().expect("signed request"),
            )
            .expect("portal");
        let resp = russet
            .http
            .put(format!("{}/api/v1/push-cert?apple_id=bench@example.com", russet.url))
            .bearer_auth(&russet.key)
            .body(issued.certificate_pem.clone())
            .send()
            .await
            .expect("upload");
        assert!(resp.status().is_success(), "push certificate upload: {}", resp.status());
        (russet, issued.topic)
    }
}

/// The largest resident memory of a process, sampled every 100 ms until dropped.
pub struct PeakRss {
    peak_kib: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    pub fn peak_mib(&self) -> f64 {
        self.peak_kib.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Russet {
    /// Starts sampling this process's resident memory.
    pub fn sample_peak_rss(&self) -> PeakRss {
        let pid = self.child.id();
        let peak_kib = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let peak = peak_kib.clone();
        let task = tokio::spawn(async move {
            loop {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kb) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next().and_then(|kb| kb.parse::<u64>().ok()))
                {
                    peak.fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        PeakRss { peak_kib, task }
    }
}
