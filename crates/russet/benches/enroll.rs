//! Enrolling devices through an enrollment link, as devices do it, against applesim's
//! simulated fleet: each device downloads the profile (a fresh SCEP challenge), gets its
//! identity from Russet's SCEP service (RSA key, AES envelope, SHA-256), signs Authenticate
//! and TokenUpdate, and answers the DeviceInformation Russet queues and pushes at once.
//!
//! Target: RUSSET_BENCH_ENROLL_DEVICES (default 10,000) enrolled in at most 60 s on this
//! 2-core machine, client and server together. The devices take their RSA-2048 keys from a
//! pool of RUSSET_BENCH_ENROLL_KEYS (default 64) made before the clock starts (making 10,000
//! keys takes minutes); every device still gets its own certificate, and all the RSA work of a
//! real enrollment (the device's signatures and decryption, the CA's decryption and two
//! signatures) is done per device. RUSSET_BENCH_ENROLL_CONCURRENCY (default 32) devices
//! enroll at once. SQLite, and PostgreSQL too when RUSSET_TEST_POSTGRES_URL is set. Run with
//! `cargo bench -p russet --bench enroll`.

use std::time::{Duration, Instant};

use applesim::AppleSim;
use applesim::devices::{Fleet, FleetOptions};
use common::Russet;
use russet_testkit::TestDb;
use serde_json::json;

mod common;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn run(label: &str, db: TestDb, n: usize, keys: usize, concurrency: usize) {
    let sim = AppleSim::new();
    let apple = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("applesim serves");
    let (russet, _topic) = Russet::start_with_push_cert(&db, &sim, &apple.apns_url, &[]).await;
    let link = russet
        .call(
            reqwest::Method::POST,
            "/api/v1/enrollment-links",
            Some(json!({ "name": "Bench fleet" })),
        )
        .await;
    let link = link["url"].as_str().expect("link URL").to_string();
    let fleet = Fleet::new(
        sim.clone(),
        FleetOptions {
            key_pool: Some(keys),
            concurrency,
            request_timeout: Duration::from_secs(120),
            ..FleetOptions::default()
        },
    )
    .expect("fleet");

    // The key pool is made by the first enrollment; the CA exists by then too.
    let t = Instant::now();
    let first = fleet.enroll(&link, 1).await;
    assert!(first.failed.is_empty(), "first device: {:?}", first.failed);
    println!(
        "[{label}] key pool of {keys} made and a first device enrolled in {:.1} s (setup, not measured)",
        t.elapsed().as_secs_f64()
    );

    let rss = russet.sample_peak_rss();
    let cpu = |pid: u32| -> f64 {
        // utime + stime, in clock ticks (fields 14 and 15 of /proc/PID/stat).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after_comm = stat.rsplit(')').next().unwrap_or_default();
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks: u64 = fields
            .get(11..13)
            .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
        ticks as f64 / 100.0
    };
    let (server_cpu0, client_cpu0) = (cpu(russet.child.id()), cpu(std::process::id()));
    let t = Instant::now();
    let report = fleet.enroll(&link, n).await;
    let enrolled_secs = t.elapsed().as_secs_f64();
    assert!(
        report.failed.is_empty(),
        "{} enrollments failed, first: {:?}",
        report.failed.len(),
        report.failed.first()
    );
    // Every device answers the DeviceInformation queued at its enrollment.
    let deadline = Instant::now() + Duration::from_secs(300);
    let answered = |f: &Fleet| f.stats().commands.get("Acknowledged").copied().unwrap_or(0);
    while answered(&fleet) < (n + 1) as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let inventoried_secs = t.elapsed().as_secs_f64();
    let server_cpu = cpu(russet.child.id()) - server_cpu0;
    let client_cpu = cpu(std::process::id()) - client_cpu0;
    let stats = fleet.stats();
    println!(
        "[{label}] {n} devices enrolled (profile, SCEP, Authenticate, TokenUpdate) in {enrolled_secs:.1} s = {:.0}/s \
         (target: 10,000 in <= 60 s); first inventory answered by all in {inventoried_secs:.1} s; \
         {} connects, {} errors; russet peak RSS {:.1} MiB",
        n as f64 / enrolled_secs,
        stats.connects,
        stats.errors,
        rss.peak_mib()
    );
    let (mut listed, mut after) = (0, String::new());
    loop {
        let page = russet
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/enrollments?limit=1000&after={after}"),
                None,
            )
            .await;
        let items = page["enrollments"].as_array().cloned().unwrap_or_default();
        let Some(last) = items.last() else { break };
        listed += items.len();
        after = last["id"].as_str().expect("id").to_string();
    }
    assert_eq!(listed, n + 1, "Russet lists every enrolled device");
    println!(
        "[{label}] CPU while enrolling: russet {server_cpu:.1} s = {:.1} ms per device (so 2 cores serve {:.0} \
         enrollments/s when the devices are elsewhere); the simulated devices {client_cpu:.1} s = {:.1} ms per device",
        server_cpu * 1000.0 / n as f64,
        2.0 * n as f64 / server_cpu,
        client_cpu * 1000.0 / n as f64
    );
    fleet.shutdown();
    drop(russet);
    apple.shutdown().await;
}

#[tokio::main]
async fn main() {
    let n = env_usize("RUSSET_BENCH_ENROLL_DEVICES", 10_000);
    let keys = env_usize("RUSSET_BENCH_ENROLL_KEYS", 64);
    let concurrency = env_usize("RUSSET_BENCH_ENROLL_CONCURRENCY", 32);
    run("sqlite", TestDb::sqlite(), n, keys, concurrency).await;
    if let Some(db) = TestDb::postgres("bench enroll (postgres)").await {
        run("postgres", db, n, keys, concurrency).await;
    }
}
