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
