//! How long committing one sync page of 1000 devices takes (SQLite, or PostgreSQL with
//! RUSSET_TEST_POSTGRES_URL): `cargo run --release -p russet-store --example page_write`.
//! `PAGES=n` pages (100), `BATCH=n` pages per transaction (1; the sync commits ten at once
//! on SQLite), `PRAGMAS="PRAGMA …; …"` settings to try.

use std::time::Instant;

use base64::Engine;
use russet_store::crypto::{MasterKey, MasterKeySource};
use russet_store::devices::DeviceUpsert;
use russet_store::sync::SyncPage;
use russet_store::{Store, StoreOptions};
use secrecy::SecretString;

#[tokio::main]
async fn main() {
    let db = match std::env::var("RUSSET_TEST_POSTGRES_URL") {
        Ok(_) => russet_testkit::TestDb::postgres("page_write").await.unwrap(),
        Err(_) => russet_testkit::TestDb::sqlite(),
    };
    let key = MasterKey::from_base64(
        &base64::engine::general_purpose::STANDARD.encode([1u8; 32]),
        MasterKeySource::Environment,
    )
    .unwrap();
    let store = Store::open(&StoreOptions::new(&db.url), key).await.unwrap();
    if let Ok(pragmas) = std::env::var("PRAGMAS") {
        // Diagnostics: try settings on the pool's connections (one statement per setting).
        for p in pragmas.split(';').filter(|p| !p.trim().is_empty()) {
            store.debug_exec(p.trim()).await;
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let actor = russet_store::audit::Actor::system();
    let audit = russet_store::audit::NewAuditEntry::new(now, &actor, "x", "x", "x".into());
    let t = store
        .ade_token_create("bench", &SecretString::from("k"), "c", now, audit.clone())
        .await
        .unwrap();
    let job = store
        .job_create(
            &russet_store::jobs::NewJob {
                kind: "sync",
                token_id: t.id,
                profile_id: None,
                origin: "x",
                mode: None,
                requested_by: "x",
                message: None,
            },
            now,
            None,
        )
        .await
        .unwrap();
    let progress = serde_json::json!({});
    assert!(
        store
            .lease_acquire("bench", "me", now, time::Duration::hours(1))
            .await
            .unwrap()
    );
    let pages: usize = std::env::var("PAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let batch: usize = std::env::var("BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut prepared = None;
    let started = Instant::now();
    for p in 0..pages {
        let devices: Vec<DeviceUpsert> = (0..1000)
            .map(|i| DeviceUpsert {
                // Random, like real serial numbers: each lands on a different leaf of the index.
                serial_number: {
                    let mut b = [0u8; 8];
                    russet_store::crypto::random_bytes(&mut b).unwrap();
                    let _ = (p, i);
                    format!("{:012X}", u64::from_le_bytes(b) >> 16)
                },
                model: Some("MacBook Pro".into()),
                description: Some("MBP 14.2 SPACE GRAY/M3/16GB/512GB".into()),
                color: Some("SPACE GRAY".into()),
                os: Some("OSX".into()),
                device_family: Some("Mac".into()),
                profile_status: Some("empty".into()),
                device_assigned_date: Some(now),
                device_assigned_by: Some("admin@example.com".into()),
                op_type: "fetched".into(),
                ..Default::default()
            })
            .collect();
        let t0 = Instant::now();
        let page = SyncPage {
            token_id: t.id,
            upserts: &devices,
            removals: &[],
            new_only: false,
            default_profile_id: None,
            cursor: "c",
            phase: "fetch",
            job_id: job.id,
            progress: &progress,
            seen_at: now,
            now,
            lease: ("bench", "me"),
            lease_until: now + time::Duration::hours(1),
        };
        // BATCH=n: n pages per transaction, as the sync writes them on SQLite.
        match prepared.take() {
            None => prepared = Some(store.sync_page_begin(&page).await.unwrap()),
            Some(mut open) => {
                open.add(&page).await.unwrap();
                prepared = Some(open);
            }
        }
        if (p + 1) % batch == 0 || p + 1 == pages {
            if let Some(open) = prepared.take() {
                open.commit(&progress).await.unwrap();
            }
        }
        if p % 50 == 0 {
            println!("page {p}: {:.1} ms", t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:?}: {} devices in {secs:.2} s = {:.0}/s",
        store.backend(),
        pages * 1000,
        (pages * 1000) as f64 / secs
    );
}
