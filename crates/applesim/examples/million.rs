//! Scale benchmark: N devices (default 1,000,000) assigned to one MDM server, then a full
//! fetch through the HTTP DEP API with `limit` 1000, timing every page.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-applesim cargo run --release -p applesim --example million [-- DEVICES]
//! ```

use std::collections::HashSet;
use std::time::{Duration, Instant};

use applesim::{AppleSim, DeviceSpec, OrgKind, SimCredentials};
use serde::Deserialize;

#[derive(Deserialize)]
struct Page {
    cursor: String,
    more_to_follow: bool,
    devices: Vec<Dev>,
}

#[derive(Deserialize)]
struct Dev {
    serial_number: String,
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rss0 = rss_mib();
    let sim = AppleSim::new();
    let org = sim.create_org("Scale Org", OrgKind::Business);
    let server = sim.create_mdm_server(org, "Scale MDM");
    let now = sim.clock().now();
    let creds = SimCredentials {
        consumer_key: "CK_bench".into(),
        consumer_secret: "CS_bench".into(),
        access_token: "AT_bench".into(),
        access_secret: "AS_bench".into(),
        access_token_expiry: now + time::Duration::days(365),
    };
    sim.register_credentials(server, creds.clone());

    let t = Instant::now();
    let serials = sim.add_devices(org, n, DeviceSpec::default());
    let t_add = t.elapsed();
    let t = Instant::now();
    sim.assign_devices(server, &serials).expect("assign");
    let t_assign = t.elapsed();
    drop(serials);
    let rss_loaded = rss_mib();
    println!("devices: {n}");
    println!("add_devices: {t_add:.2?}, assign_devices: {t_assign:.2?}");
    println!("RSS: {rss0:.1} MiB at start, {rss_loaded:.1} MiB with {n} devices assigned");

    let run = sim.serve("127.0.0.1:0".parse().expect("addr")).await.expect("serve");
    let base = run.base_url.clone();
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let auth = applesim::oauth::authorization_header(&creds, "GET", &format!("{base}/session"), "bench-nonce", ts)
        .expect("header");
    let v: serde_json::Value = http
        .get(format!("{base}/session"))
        .header("Authorization", auth)
        .header("User-Agent", "applesim-bench/1")
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("session json");
    let session = v["auth_session_token"].as_str().expect("token").to_owned();

    let mut cursor: Option<String> = None;
    let mut seen: HashSet<String> = HashSet::with_capacity(n);
    let mut latencies = Vec::new();
    let mut bytes_total = 0usize;
    let t_all = Instant::now();
    loop {
        let body = match &cursor {
            Some(c) => serde_json::json!({"cursor": c, "limit": 1000}),
            None => serde_json::json!({"limit": 1000}),
        };
        let t = Instant::now();
        let resp = http
            .post(format!("{base}/server/devices"))
            .header("User-Agent", "applesim-bench/1")
            .header("X-Server-Protocol-Version", "10")
            .header("X-ADM-Auth-Session", &session)
            .body(body.to_string())
            .send()
            .await
            .expect("fetch");
        assert_eq!(resp.status(), 200);
        let bytes = resp.bytes().await.expect("body");
        latencies.push(t.elapsed());
        bytes_total += bytes.len();
        let page: Page = serde_json::from_slice(&bytes).expect("page json");
        for d in page.devices {
            seen.insert(d.serial_number);
        }
        cursor = Some(page.cursor);
        if !page.more_to_follow {
            break;
        }
    }
    let total = t_all.elapsed();
    assert_eq!(seen.len(), n, "every device exactly once");
    latencies.sort();
    let pages = latencies.len();
    println!(
        "fetched {} devices in {pages} pages in {total:.2?} ({:.0} devices/s including client-side JSON parsing), {:.1} MiB of JSON",
        seen.len(),
        n as f64 / total.as_secs_f64(),
        bytes_total as f64 / 1024.0 / 1024.0
    );
    println!(
        "page latency (request sent → full body received): p50 {:.2?}, p90 {:.2?}, p99 {:.2?}, max {:.2?}",
        pct(&latencies, 0.5),
        pct(&latencies, 0.9),
        pct(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    drop(seen);
    println!(
        "RSS after the fetch: {:.1} MiB (simulator and client in one process)",
        rss_mib()
    );
    run.shutdown().await;
}
