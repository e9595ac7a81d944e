//! Device sync and profile assignment at scale, against applesim:
//!
//! - a full sync of RUSSET_BENCH_DEVICES devices (default 1,000,000; 1000 per page) into
//!   SQLite, and into PostgreSQL when RUSSET_TEST_POSTGRES_URL is set: devices per second
//!   and the largest resident memory of the `russet serve` process while it syncs;
//! - assigning a profile to RUSSET_BENCH_ASSIGN devices (default 100,000) by serial number.
//!
//! Run with `cargo bench -p russet --bench abm`. RUSSET_BENCH_LOG=FILE keeps Russet's log,
//! RUSSET_BENCH_LOG_LEVEL sets its filter (e.g. `info,russet_core=debug` for per-round timings). Russet runs as its own process (the
//! release binary), so its memory is measured alone; applesim runs in this one.

use std::time::Instant;

use applesim::{AppleSim, DeviceSpec, OrgKind};
use common::Russet;
use russet_testkit::TestDb;
use serde_json::json;

mod common;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn run(label: &str, db: TestDb, devices: usize, assign: usize) {
    let sim = AppleSim::new();
    let run = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("applesim serves");
    let org = sim.create_org("Bench Org", OrgKind::Business);
    let server = sim.create_mdm_server(org, "Russet bench");
    let t = Instant::now();
    let serials = sim.add_devices(org, devices, DeviceSpec::default());
    sim.assign_devices(server, &serials).expect("assign in ABM");
    println!(
        "[{label}] applesim: {devices} devices created and assigned in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let russet = Russet::start(&db, &["--apple-dep-url", &run.base_url], &[]);
    let idle = russet.rss_mib();
    let id = russet.connect_ade_token(&sim, server).await;

    let job = russet
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/ade-tokens/{id}/sync"),
            Some(json!({ "full": true })),
        )
        .await;
    let (job, secs, peak) = russet.follow(job["id"].as_i64().expect("job id")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let received = job["progress"]["received"].as_f64().unwrap_or(0.0);
    println!(
        "[{label}] full sync: {received} devices in {secs:.2} s = {:.0} devices/s (target >= 50,000); russet RSS idle {idle:.1} MiB, peak {peak:.1} MiB (target < 200)",
        received / secs
    );

    let profile = russet
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/ade-tokens/{id}/profiles"),
            Some(json!({ "name": "Bench profile" })),
        )
        .await;
    let pid = profile["id"].as_i64().expect("profile id");
    let chosen: Vec<&String> = serials.iter().take(assign).collect();
    let started = Instant::now();
    let job = russet
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/profiles/{pid}/assign"),
            Some(json!({ "serials": chosen })),
        )
        .await;
    let (job, _, peak) = russet.follow(job["id"].as_i64().expect("job id")).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(job["status"], "succeeded", "{job}");
    let requests = sim.requests().iter().filter(|r| r.path == "/profile/devices").count();
    println!(
        "[{label}] assign: {} devices in {secs:.2} s (target <= 10 s), {requests} requests to Apple, peak RSS {peak:.1} MiB; {}",
        assign,
        job["message"].as_str().unwrap_or("")
    );
    drop(russet);
    run.shutdown().await;
}

#[tokio::main]
async fn main() {
    let devices = env_usize("RUSSET_BENCH_DEVICES", 1_000_000);
    let assign = env_usize("RUSSET_BENCH_ASSIGN", 100_000).min(devices);
    run("sqlite", TestDb::sqlite(), devices, assign).await;
    if let Some(db) = TestDb::postgres("bench abm (postgres)").await {
        run("postgres", db, devices, assign).await;
    }
}
