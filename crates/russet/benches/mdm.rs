//! The MDM core at scale, against applesim's APNs:
//!
//! - RUSSET_BENCH_MDM_DEVICES enrolled devices (default 10,000) each doing a signed connect
//!   round trip (Idle → DeviceInformation → Acknowledged with its answers): MDM requests per
//!   second (target ≥ 5,000 on SQLite) and p50/p99 latency (target p99 < 50 ms);
//! - their Authenticate and TokenUpdate check-ins (the enrollment without SCEP);
//! - RUSSET_BENCH_PUSHES pushes (default 100,000: commands queued for every device, each
//!   queue pushed) until applesim's APNs has accepted them all (target ≤ 10 s);
//! - the largest resident memory of the `russet serve` process (target < 200 MB).
//!
//! SQLite, and PostgreSQL too when RUSSET_TEST_POSTGRES_URL is set. Run with
//! `cargo bench -p russet --bench mdm`; RUSSET_BENCH_MDM_CONCURRENCY sets the simulated
//! devices talking at once (default 64).
//!
//! The device identities are issued by Russet's CA directly through the store (this bench does
//! not measure SCEP), for one shared RSA-2048 key as devices use. Russet verifies every
//! signature, chain and pin as it does for any device. An RSA-2048 signature costs the client
//! about 0.7 ms, which would take most of the two cores the server is measured on; so the
//! measured requests are signed before the clock starts (on all cores), and the client only
//! sends them. The first connect round (answering the DeviceInformation every enrollment
//! queues) signs as it goes and is reported as such.

use std::time::{Duration, Instant};

use applesim::AppleSim;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::Russet;
use futures::StreamExt;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::{X509, X509NameBuilder, X509ReqBuilder};
use russet_store::crypto::MasterKey;
use russet_store::mdm::CertRecord;
use russet_store::{Store, StoreOptions};
use russet_testkit::TestDb;
use secrecy::ExposeSecret;
use serde_json::json;

mod common;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Device {
    udid: String,
    cert: X509,
}

fn sign(cert: &X509, key: &PKey<Private>, body: &[u8]) -> String {
    let p7 = Pkcs7::sign(
        cert,
        key,
        &Stack::new().expect("stack"),
        body,
        Pkcs7Flags::DETACHED | Pkcs7Flags::BINARY,
    )
    .expect("signature");
    STANDARD.encode(p7.to_der().expect("DER"))
}

fn plist(entries: &[(&str, String)]) -> Vec<u8> {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n",
    );
    for (k, v) in entries {
        s.push_str(&format!("\t<key>{k}</key>\n\t{v}\n"));
    }
    s.push_str("</dict>\n</plist>\n");
    s.into_bytes()
}

fn string(v: &str) -> String {
    format!("<string>{v}</string>")
}

fn asn1_secs(t: &openssl::asn1::Asn1TimeRef) -> i64 {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).expect("epoch");
    let d = epoch.diff(t).expect("diff");
    i64::from(d.days) * 86_400 + i64::from(d.secs)
}

/// Issues `n` device identities from Russet's CA (read from the store with the master key)
/// for one shared P-256 key, recorded as SCEP would record them.
async fn identities(russet: &Russet, db: &TestDb, n: usize, key: &PKey<Private>) -> Vec<Device> {
    // The CA is made on first use.
    russet
        .http
        .get(format!("{}/scep?operation=GetCACert", russet.url))
        .send()
        .await
        .expect("GetCACert");
    let master = MasterKey::load_or_create(&russet.data.join("master.key")).expect("master key");
    let store = Store::open(&StoreOptions::new(&db.url), master).await.expect("store");
    let (ca_pem, ca_key) = store.mdm_ca_get().await.expect("CA").expect("CA exists");
    let ca = X509::from_pem(ca_pem.as_bytes()).expect("CA PEM");
    let ca_key = PKey::private_key_from_pem(ca_key.expose_secret().as_bytes()).expect("CA key");
    let now = time::OffsetDateTime::now_utc();
    let threads = 2;
    let per = n.div_ceil(threads);
    let mut handles = Vec::new();
    for t in 0..threads {
        let (ca, ca_key, key) = (ca.clone(), ca_key.clone(), key.clone());
        handles.push(std::thread::spawn(move || {
            let mut out = Vec::new();
            for i in t * per..((t + 1) * per).min(n) {
                let mut name = X509NameBuilder::new().expect("name");
                name.append_entry_by_nid(Nid::COMMONNAME, &format!("bench-device-{i}"))
                    .expect("CN");
                let mut req = X509ReqBuilder::new().expect("req");
                req.set_subject_name(&name.build()).expect("subject");
                req.set_pubkey(&key).expect("key");
                req.sign(&key, MessageDigest::sha256()).expect("sign");
                let cert = russet_apple::scep::issue_identity(
                    &req.build(),
                    &ca,
                    &ca_key,
                    &russet_apple::scep::IssueParams::new(now - time::Duration::minutes(5), time::Duration::days(365)),
                )
                .expect("issue");
                out.push((i, cert));
            }
            out
        }));
    }
    let mut devices = Vec::with_capacity(n);
    for h in handles {
        for (i, cert) in h.join().expect("issuing thread") {
            let record = CertRecord {
                sha256: hex::encode(cert.digest(MessageDigest::sha256()).expect("digest")),
                serial: cert
                    .serial_number()
                    .to_bn()
                    .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
                    .expect("serial"),
                subject: format!("CN=bench-device-{i}"),
                not_before: time::OffsetDateTime::from_unix_timestamp(asn1_secs(cert.not_before())).expect("time"),
                not_after: time::OffsetDateTime::from_unix_timestamp(asn1_secs(cert.not_after())).expect("time"),
                issued_at: now,
                challenge_id: None,
                renewed_from: None,
                enrollment_id: None,
            };
            store.mdm_certificate_record(&record).await.expect("record");
            devices.push(Device {
                udid: format!("00008030-{i:016X}"),
                cert,
            });
        }
    }
    store.close().await;
    devices
}

fn idle(udid: &str) -> Vec<u8> {
    plist(&[("UDID", string(udid)), ("Status", string("Idle"))])
}

fn acknowledged(udid: &str, uuid: &str) -> Vec<u8> {
    plist(&[
        ("UDID", string(udid)),
        ("Status", string("Acknowledged")),
        ("CommandUUID", string(uuid)),
        (
            "QueryResponses",
            format!(
                "<dict><key>DeviceName</key><string>Bench {udid}</string><key>OSVersion</key>\
                 <string>18.1</string><key>ModelName</key><string>iPhone</string></dict>"
            ),
        ),
    ])
}

/// Signs every body (on all cores): (certificate, body, Mdm-Signature).
fn presign(bodies: Vec<(X509, Vec<u8>)>, key: &PKey<Private>) -> Vec<(X509, Vec<u8>, String)> {
    let t = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = bodies.len().div_ceil(threads).max(1);
    let count = bodies.len();
    let mut chunks = Vec::new();
    let mut rest = bodies;
    while !rest.is_empty() {
        let tail = rest.split_off(per.min(rest.len()));
        chunks.push(rest);
        rest = tail;
    }
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let key = key.clone();
            std::thread::spawn(move || {
                chunk
                    .into_iter()
                    .map(|(cert, body)| {
                        let sig = sign(&cert, &key, &body);
                        (cert, body, sig)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let out: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("signing thread"))
        .collect();
    println!(
        "  ({count} requests signed in advance in {:.1} s, not measured)",
        t.elapsed().as_secs_f64()
    );
    out
}

fn report_connects(label: &str, how: &str, n: usize, secs: f64, mut lat: Vec<u64>) {
    lat.sort_unstable();
    println!(
        "[{label}] connect round trips ({how}): {} MDM requests from {n} devices in {secs:.2} s = {:.0} requests/s \
         (target >= 5,000), p50 {:.1} ms, p99 {:.1} ms (target < 50)",
        lat.len(),
        lat.len() as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
}

/// Percentile of sorted microseconds, as milliseconds.
fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn run(label: &str, db: TestDb, n: usize, pushes: usize, concurrency: usize) {
    let sim = AppleSim::new();
    let apple = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("applesim serves");
    let (russet, topic) = Russet::start_with_push_cert(&db, &sim, &apple.apns_url, &[]).await;

    let device_key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("rsa")).expect("pkey");
    let t = Instant::now();
    let devices = identities(&russet, &db, n, &device_key).await;
    println!(
        "[{label}] {n} device identities issued and recorded in {:.1} s (setup, not measured)",
        t.elapsed().as_secs_f64()
    );

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let url = russet.url.clone();
    let rss = russet.sample_peak_rss();
    // Sends a request with its signature (made here when not given).
    let send = |path: &'static str, body: Vec<u8>, checkin: bool, cert: X509, sig: Option<String>| {
        let http = http.clone();
        let url = url.clone();
        let key = device_key.clone();
        async move {
            let sig = sig.unwrap_or_else(|| sign(&cert, &key, &body));
            let mut req = http.put(format!("{url}{path}")).header("mdm-signature", sig).body(body);
            if checkin {
                req = req.header("content-type", "application/x-apple-aspen-mdm-checkin");
            }
            let started = Instant::now();
            let resp = req.send().await.expect("request");
            let status = resp.status();
            let bytes = resp.bytes().await.expect("body");
            assert!(
                status.is_success(),
                "{path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
            (started.elapsed().as_micros() as u64, bytes)
        }
    };

    // Enrollment check-ins (Authenticate, TokenUpdate). Each first TokenUpdate queues the
    // first DeviceInformation and pushes the device.
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        tokens.push(sim.register_push_token(&topic));
    }
    let bodies: Vec<(X509, Vec<u8>)> = devices
        .iter()
        .zip(&tokens)
        .flat_map(|(d, tok)| {
            let auth = plist(&[
                ("MessageType", string("Authenticate")),
                ("UDID", string(&d.udid)),
                ("Topic", string(&topic)),
                ("SerialNumber", string(&format!("BENCH{}", &d.udid[9..]))),
            ]);
            let update = plist(&[
                ("MessageType", string("TokenUpdate")),
                ("UDID", string(&d.udid)),
                ("Topic", string(&topic)),
                ("Token", format!("<data>{}</data>", STANDARD.encode(&tok.token))),
                ("PushMagic", string(&format!("magic-{}", d.udid))),
            ]);
            [(d.cert.clone(), auth), (d.cert.clone(), update)]
        })
        .collect();
    let signed = presign(bodies, &device_key);
    let t = Instant::now();
    let enroll_lat: Vec<u64> = futures::stream::iter(signed.chunks(2).map(|c| c.to_vec()))
        .map(|pair| {
            let send = &send;
            async move {
                let mut out = [0u64; 2];
                for (i, (cert, body, sig)) in pair.into_iter().enumerate() {
                    out[i] = send("/mdm/checkin", body, true, cert, Some(sig)).await.0;
                }
                out
            }
        })
        .buffer_unordered(concurrency)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    let secs = t.elapsed().as_secs_f64();
    let mut sorted = enroll_lat;
    sorted.sort_unstable();
    println!(
        "[{label}] enrollment check-ins (Authenticate, TokenUpdate; pre-signed): {} requests in {secs:.2} s = {:.0}/s, \
         p50 {:.1} ms, p99 {:.1} ms",
        sorted.len(),
        sorted.len() as f64 / secs,
        pct(&sorted, 0.5),
        pct(&sorted, 0.99)
    );

    // First connect round: Idle → the DeviceInformation queued at enrollment → Acknowledged →
    // empty, signing as the devices go (the client's signatures share the two cores).
    let t = Instant::now();
    let lat: Vec<u64> = futures::stream::iter(devices.iter())
        .map(|d| {
            let send = &send;
            let udid = d.udid.clone();
            let cert = d.cert.clone();
            async move {
                let (a, cmd) = send("/mdm/connect", idle(&udid), false, cert.clone(), None).await;
                let text = String::from_utf8_lossy(&cmd).into_owned();
                let uuid = text
                    .split("<key>CommandUUID</key>")
                    .nth(1)
                    .and_then(|r| r.split("<string>").nth(1))
                    .and_then(|r| r.split("</string>").next())
                    .expect("a DeviceInformation command was waiting")
                    .to_string();
                let (b, rest) = send("/mdm/connect", acknowledged(&udid, &uuid), false, cert, None).await;
                assert!(rest.is_empty(), "nothing else queued");
                [a, b]
            }
        })
        .buffer_unordered(concurrency)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    report_connects(
        label,
        "first round, signing as they go",
        n,
        t.elapsed().as_secs_f64(),
        lat,
    );

    // The measured round: a DeviceInformation for every device, its requests signed in advance.
    let udids: Vec<String> = devices.iter().map(|d| d.udid.clone()).collect();
    let queued = russet
        .call(
            reqwest::Method::POST,
            "/api/v1/commands",
            Some(json!({ "targets": { "udids": udids }, "command": { "request_type": "DeviceInformation" } })),
        )
        .await;
    let uuid = queued["command_uuid"].as_str().expect("command uuid").to_string();
    let bodies: Vec<(X509, Vec<u8>)> = devices
        .iter()
        .flat_map(|d| {
            [
                (d.cert.clone(), idle(&d.udid)),
                (d.cert.clone(), acknowledged(&d.udid, &uuid)),
            ]
        })
        .collect();
    let signed = presign(bodies, &device_key);
    let t = Instant::now();
    let lat: Vec<u64> = futures::stream::iter(signed.chunks(2).map(|c| c.to_vec()))
        .map(|pair| {
            let send = &send;
            let uuid = uuid.clone();
            async move {
                let mut pair = pair.into_iter();
                let (Some((cert, idle, idle_sig)), Some((_, ack, ack_sig))) = (pair.next(), pair.next()) else {
                    unreachable!("pairs")
                };
                let (a, cmd) = send("/mdm/connect", idle, false, cert.clone(), Some(idle_sig)).await;
                assert!(
                    String::from_utf8_lossy(&cmd).contains(&uuid),
                    "the queued DeviceInformation is sent"
                );
                let (b, rest) = send("/mdm/connect", ack, false, cert, Some(ack_sig)).await;
                assert!(rest.is_empty(), "nothing else queued");
                [a, b]
            }
        })
        .buffer_unordered(concurrency)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    report_connects(label, "measured, signed in advance", n, t.elapsed().as_secs_f64(), lat);

    // Pushes: commands for every device, each enqueue pushing them all.
    let rounds = pushes.div_ceil(n.max(1));
    let before = sim.apns_stats().delivered;
    let t = Instant::now();
    for _ in 0..rounds {
        russet
            .call(
                reqwest::Method::POST,
                "/api/v1/commands",
                Some(json!({ "targets": { "udids": udids }, "command": { "request_type": "SecurityInfo" } })),
            )
            .await;
    }
    let target = before + (rounds * n) as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while sim.apns_stats().delivered < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let done = sim.apns_stats().delivered - before;
    println!(
        "[{label}] pushes: {done} accepted by applesim's APNs in {secs:.2} s = {:.0}/s (target: 100,000 in <= 10 s)",
        done as f64 / secs
    );
    println!("[{label}] russet peak RSS {:.1} MiB (target < 200)", rss.peak_mib());
    drop(russet);
    apple.shutdown().await;
}

#[tokio::main]
async fn main() {
    let n = env_usize("RUSSET_BENCH_MDM_DEVICES", 10_000);
    let pushes = env_usize("RUSSET_BENCH_PUSHES", 100_000);
    let concurrency = env_usize("RUSSET_BENCH_MDM_CONCURRENCY", 64);
    run("sqlite", TestDb::sqlite(), n, pushes, concurrency).await;
    if let Some(db) = TestDb::postgres("bench mdm (postgres)").await {
        run("postgres", db, n, pushes, concurrency).await;
    }
}
