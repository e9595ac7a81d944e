//! How fast the DEP client fetches and parses 1000-device pages from applesim:
//! `cargo run --release -p russet-apple --example fetch_pages`.

use std::time::Instant;

use applesim::{AppleSim, DeviceSpec, OrgKind};
use russet_apple::dep::{DepClient, DepConfig, OAuthCredentials};

#[tokio::main]
async fn main() {
    let sim = AppleSim::new();
    let run = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let org = sim.create_org("o", OrgKind::Business);
    let server = sim.create_mdm_server(org, "s");
    let serials = sim.add_devices(org, 100_000, DeviceSpec::default());
    sim.assign_devices(server, &serials).unwrap();
    let creds = sim.current_credentials(server).unwrap_or_else(|| {
        let c = applesim::SimCredentials {
            consumer_key: "CK_x".into(),
            consumer_secret: "CS_x".into(),
            access_token: "AT_x".into(),
            access_secret: "AS_x".into(),
            access_token_expiry: time::OffsetDateTime::now_utc() + time::Duration::days(300),
        };
        sim.register_credentials(server, c.clone());
        c
    });
    let client = DepClient::new(
        DepConfig {
            base_url: run.base_url.clone(),
            ..DepConfig::default()
        },
        OAuthCredentials {
            consumer_key: creds.consumer_key.clone(),
            consumer_secret: creds.consumer_secret.clone().into(),
            access_token: creds.access_token.clone().into(),
            access_secret: creds.access_secret.clone().into(),
        },
    )
    .unwrap();
    let mut cursor: Option<String> = None;
    let started = Instant::now();
    let mut n = 0;
    loop {
        let t = Instant::now();
        let page = client.fetch_devices(cursor.as_deref(), 1000).await.unwrap();
        n += page.devices.len();
        if n % 25_000 == 0 {
            println!(
                "page of {} in {:.1} ms",
                page.devices.len(),
                t.elapsed().as_secs_f64() * 1000.0
            );
        }
        if !page.more_to_follow {
            break;
        }
        cursor = Some(page.cursor);
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{n} devices in {secs:.2} s = {:.0}/s", n as f64 / secs);
}
