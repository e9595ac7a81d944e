//! Automated Device Enrollment at scale: RUSSET_BENCH_ADE_DEVICES (default 5,000) of
//! applesim's ABM devices (iPhones, iPads, Macs), synced and assigned a profile that awaits
//! configuration, activate at once as in Setup Assistant: signed MachineInfo to the profile's
//! URL, enrollment profile, SCEP, Authenticate, TokenUpdate, then the first commands and
//! DeviceConfigured, which releases them.
//!
//! Target: all enrolled and released within 60 s on this 2-core machine, devices and server
//! together, no request failing. The devices' RSA-2048 keys (identity and hardware) come from
//! a pool of RUSSET_BENCH_ADE_KEYS (default 64) made before the clock starts;
//! RUSSET_BENCH_ADE_CONCURRENCY (default 64) devices are in Setup Assistant at once. SQLite,
//! and PostgreSQL too when RUSSET_TEST_POSTGRES_URL is set. Run with
//! `cargo bench -p russet --bench ade`.

use std::time::{Duration, Instant};

use applesim::devices::{ActivationOptions, Configured, Fleet, FleetOptions};
use applesim::{AppleSim, DeviceFamily, DeviceSpec, OrgKind};
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
    let org = sim.create_org("Bench Org", OrgKind::Business);
    let server = sim.create_mdm_server(org, "Russet bench");
    // One more device than measured: the first activation makes the key pool.
    let mut serials = Vec::new();
    for (i, family) in [DeviceFamily::Mac, DeviceFamily::IPhone, DeviceFamily::IPad]
        .into_iter()
        .enumerate()
    {
        let count = (n + 1) / 3 + usize::from(i < (n + 1) % 3);
        serials.extend(sim.add_devices(org, count, DeviceSpec { family: Some(family) }));
    }
    sim.assign_devices(server, &serials).expect("assign in ABM");
    let ca = db.path().join("device-ca.pem");
    std::fs::write(&ca, sim.device_ca_root_pem()).expect("device CA");
    let (russet, _topic) = Russet::start_with_push_cert(
        &db,
        &sim,
        &apple.apns_url,
        &[
            ("RUSSET_APPLE_DEP_URL", apple.base_url.clone()),
            ("RUSSET_APPLE_DEVICE_CA_FILE", ca.display().to_string()),
        ],
    )
    .await;

    // The token, its sync, a profile awaiting configuration assigned to every device.
    let id = russet.connect_ade_token(&sim, server).await;
    let job = russet
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/ade-tokens/{id}/sync"),
            Some(json!({ "full": true })),
        )
        .await;
    let (job, _, _) = russet.follow(job["id"].as_i64().expect("job id")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let profile = russet
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/ade-tokens/{id}/profiles"),
            Some(json!({ "name": "Bench ADE", "user_affinity": false, "await_device_configured": true })),
        )
        .await;
    let pid = profile["id"].as_i64().expect("profile id");
    let job = russet
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/profiles/{pid}/assign"),
            Some(json!({ "serials": serials })),
        )
        .await;
    let (job, _, _) = russet.follow(job["id"].as_i64().expect("job id")).await;
    assert_eq!(job["status"], "succeeded", "{job}");

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
    let opts = ActivationOptions {
        wait_configured: Some(Duration::from_secs(300)),
        ..ActivationOptions::default()
    };
    let t = Instant::now();
    let first = fleet.activate(&serials[..1], &opts).await;
    assert_eq!(first.configured(), 1, "first device: {}", first.outcomes[0]);
    println!(
        "[{label}] {} ABM devices synced and assigned; key pool of {keys} made and a first device activated in {:.1} s \
         (setup, not measured)",
        serials.len(),
        t.elapsed().as_secs_f64()
    );

    let rss = russet.sample_peak_rss();
    let t = Instant::now();
    let report = fleet.activate(&serials[1..], &opts).await;
    let secs = t.elapsed().as_secs_f64();
    let failed: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| {
            !matches!(
                o,
                applesim::devices::ActivationOutcome::Enrolled {
                    configured: Configured::At(_),
                    ..
                }
            )
        })
        .map(|o| o.to_string())
        .collect();
    let stats = fleet.stats();
    println!(
        "[{label}] {n} devices activated through ADE (MachineInfo, profile, SCEP, Authenticate, TokenUpdate, \
         DeviceConfigured) in {secs:.1} s = {:.0}/s (target: 5,000 in <= 60 s); {} not released, {} device errors; \
         russet peak RSS {:.1} MiB",
        n as f64 / secs,
        failed.len(),
        stats.errors,
        rss.peak_mib()
    );
    assert!(
        failed.is_empty(),
        "first failures: {:#?}",
        &failed[..failed.len().min(5)]
    );
    fleet.shutdown();
    drop(russet);
    apple.shutdown().await;
}

#[tokio::main]
async fn main() {
    let n = env_usize("RUSSET_BENCH_ADE_DEVICES", 5_000);
    let keys = env_usize("RUSSET_BENCH_ADE_KEYS", 64);
    let concurrency = env_usize("RUSSET_BENCH_ADE_CONCURRENCY", 64);
    run("sqlite", TestDb::sqlite(), n, keys, concurrency).await;
    if let Some(db) = TestDb::postgres("bench ade (postgres)").await {
        run("postgres", db, n, keys, concurrency).await;
    }
}
