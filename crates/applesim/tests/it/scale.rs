//! Scale: many devices paged through the HTTP API with limit 1000.
//! The 1,000,000-device run is `#[ignore]`d in debug builds (run it with `--ignored`, or
//! use the release-mode `million` example, which also reports latency percentiles).

use std::collections::HashSet;
use std::time::Instant;

use crate::common::*;
use serde::Deserialize;
use serde_json::json;

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
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

async fn page_through(n: usize) {
    let w = World::new().await;
    let t = Instant::now();
    let serials = w.sim.add_devices(w.org, n, applesim::DeviceSpec::default());
    w.sim.assign_devices(w.server, &serials).unwrap();
    let load = t.elapsed();
    drop(serials);
    let mut d = w.logged_in().await;
    let t = Instant::now();
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::with_capacity(n);
    let mut pages = 0;
    loop {
        let mut body = json!({"limit": 1000});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let r = d.post("/server/devices", body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page: Page = serde_json::from_str(&r.text).unwrap();
        assert!(page.devices.len() <= 1000);
        pages += 1;
        for dev in page.devices {
            assert!(seen.insert(dev.serial_number), "a device came twice");
        }
        cursor = Some(page.cursor);
        if !page.more_to_follow {
            break;
        }
    }
    let fetch = t.elapsed();
    assert_eq!(seen.len(), n);
    assert_eq!(pages, n.div_ceil(1000));
    eprintln!(
        "scale: {n} devices loaded in {load:.2?}, fetched in {pages} pages in {fetch:.2?} ({:.0}/s), RSS {:.0} MiB",
        n as f64 / fetch.as_secs_f64(),
        rss_mib()
    );
}

#[tokio::test]
async fn twenty_thousand_devices_page_through() {
    page_through(20_000).await;
}

#[tokio::test]
#[ignore = "1M devices: slow in debug builds; see also `cargo run --release --example million`"]
async fn one_million_devices_page_through() {
    page_through(1_000_000).await;
}
