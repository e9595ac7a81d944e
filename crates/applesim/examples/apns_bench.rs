//! APNs throughput: get a push certificate from the simulated portal, register device
//! tokens, then push N notifications (default 100,000) over a few HTTP/2 connections with
//! many streams in flight, and report the rate and latency percentiles.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-apns cargo run --release -p applesim --example apns_bench [-- PUSHES CONNECTIONS STREAMS_PER_CONNECTION]
//! ```
//!
//! The client (hyper's HTTP/2 client over OpenSSL) runs in the same process as the server,
//! so on a 2-core machine they share the cores.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use applesim::AppleSim;
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::ssl::{SslConnector, SslMethod};
use openssl::x509::{X509, X509NameBuilder, X509Req, X509ReqBuilder};

fn csr(key: &PKey<Private>, cn: &str) -> X509Req {
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("cn");
    let mut b = X509ReqBuilder::new().expect("csr");
    b.set_subject_name(&name.build()).expect("subject");
    b.set_pubkey(key).expect("key");
    b.sign(key, MessageDigest::sha256()).expect("sign");
    b.build()
}

/// The vendor's side: sign the customer's CSR and wrap it as the portal expects.
fn push_request(sim: &AppleSim, customer: &PKey<Private>) -> String {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let vendor = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key");
    let vendor_csr = String::from_utf8(csr(&vendor, "Bench Vendor").to_pem().expect("pem")).expect("utf8");
    let vendor_cert = sim.issue_vendor_certificate(&vendor_csr).expect("vendor certificate");
    let csr_der = csr(customer, "Bench Customer").to_der().expect("der");
    let mut signer = Signer::new(MessageDigest::sha256(), &vendor).expect("signer");
    signer.update(&csr_der).expect("update");
    let sig = signer.sign_to_vec().expect("sign");
    let plist = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
         <key>PushCertRequestCSR</key><string>{}</string>\
         <key>PushCertCertificateChain</key><string>{}{}</string>\
         <key>PushCertSignature</key><string>{}</string></dict></plist>",
        b64(&csr_der),
        vendor_cert,
        sim.vendor_chain_pem(),
        b64(&sig)
    );
    b64(plist.as_bytes())
}

async fn connect(url: &str, ca_pem: &str, cert_pem: &str, key: &PKey<Private>) -> SendRequest<Full<Bytes>> {
    let authority = url.trim_start_matches("https://").to_owned();
    let mut b = SslConnector::builder(SslMethod::tls_client()).expect("tls");
    b.cert_store_mut()
        .add_cert(X509::from_pem(ca_pem.as_bytes()).expect("ca"))
        .expect("trust");
    b.set_alpn_protos(b"\x02h2").expect("alpn");
    b.set_certificate(&X509::from_pem(cert_pem.as_bytes()).expect("cert"))
        .expect("cert");
    b.set_private_key(key).expect("key");
    let ssl = b
        .build()
        .configure()
        .expect("configure")
        .into_ssl("127.0.0.1")
        .expect("ssl");
    let tcp = tokio::net::TcpStream::connect(&authority).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).expect("stream");
    Pin::new(&mut tls).connect().await.expect("TLS handshake");
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let arg =
        |i: usize, default: usize| -> usize { std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default) };
    let total = arg(1, 100_000);
    let connections = arg(2, 4).max(1);
    let streams = arg(3, 100).max(1);

    let t = Instant::now();
    let sim = AppleSim::new();
    let customer = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key");
    let issued = sim
        .push_portal_create("bench@example.com", &push_request(&sim, &customer))
        .expect("push certificate");
    let run = sim.serve("127.0.0.1:0".parse().expect("addr")).await.expect("serve");
    let ca = sim.apns_ca_pem();
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..10_000)
            .map(|_| sim.register_push_token(&issued.topic).token_hex)
            .collect(),
    );
    println!("setup (keys, certificates, 10,000 tokens): {:.2?}", t.elapsed());

    let mut senders = Vec::new();
    for _ in 0..connections {
        senders.push(connect(&run.apns_url, &ca, &issued.certificate_pem, &customer).await);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for sender in &senders {
        for _ in 0..streams {
            let mut sender = sender.clone();
            let next = next.clone();
            let tokens = tokens.clone();
            let authority = run.apns_url.clone();
            tasks.spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return lat;
                    }
                    let req = hyper::Request::post(format!("{authority}/3/device/{}", tokens[i % tokens.len()]))
                        .header("apns-push-type", "mdm")
                        .body(Full::new(Bytes::from_static(
                            br#"{"mdm":"5B3C5A30-6C1B-4D43-9D24-61A2B17C1F7E"}"#,
                        )))
                        .expect("request");
                    let t = Instant::now();
                    sender.ready().await.expect("connection ready");
                    let resp = sender.send_request(req).await.expect("push");
                    let status = resp.status();
                    let _ = resp.into_body().collect().await;
                    assert_eq!(status, 200);
                    lat.push(t.elapsed());
                }
            });
        }
    }
    let mut lat = Vec::with_capacity(total);
    while let Some(r) = tasks.join_next().await {
        lat.extend(r.expect("task"));
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let stats = sim.apns_stats();
    assert_eq!(stats.delivered as usize, total);
    println!(
        "{total} pushes over {connections} connections x {streams} streams: {secs:.2} s, {:.0} pushes/s",
        total as f64 / secs
    );
    println!(
        "latency p50 {:.2?}, p90 {:.2?}, p99 {:.2?}, max {:.2?}",
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    println!("server counters: {stats:?}");
}
