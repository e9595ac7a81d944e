//! Interoperability with independent tools: the vendor's signature made by the `openssl`
//! command line, and pushes sent by `curl` (HTTP/2 through nghttp2). The tools' paths come
//! from `APPLESIM_TEST_OPENSSL` and `APPLESIM_TEST_CURL`; without them the test is skipped
//! with a notice.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::pushkit::*;

// `writeln!(stderr())` rather than `eprintln!`: the harness captures `eprintln!`, and a
// skipped test must be visible in the output.
#[allow(clippy::explicit_write)]
fn tool(var: &str, test: &str) -> Option<PathBuf> {
    let why = match std::env::var_os(var) {
        None => format!("{var} is not set (the path of the tool)"),
        Some(p) => {
            let p = PathBuf::from(p);
            if p.is_file() {
                return Some(p);
            }
            format!("{var}={} does not exist", p.display())
        }
    };
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {why} ***");
    None
}

async fn run(program: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program).args(args).output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn openssl_cli_vendor_and_curl_http2_pushes() {
    const TEST: &str = "interop::openssl_cli_vendor_and_curl_http2_pushes";
    let (Some(openssl), Some(curl)) = (tool("APPLESIM_TEST_OPENSSL", TEST), tool("APPLESIM_TEST_CURL", TEST)) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("applesim-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let w = ApnsWorld::new().await;

    // The vendor, with the openssl command line: key and CSR, certificate from "Apple".
    let (ok, _, err) = run(
        &openssl,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("vendor.key"),
            "-subj",
            "/C=US/O=CLI Vendor/CN=CLI Vendor",
            "-out",
            &p("vendor.csr"),
        ],
    )
    .await;
    assert!(ok, "{err}");
    let vendor_csr = std::fs::read_to_string(p("vendor.csr")).unwrap();
    let vendor_pem = w.sim.issue_vendor_certificate(&vendor_csr).unwrap();

    // The customer's CSR (DER) and the vendor's SHA256withRSA signature over it.
    let (ok, _, err) = run(
        &openssl,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("push.key"),
            "-subj",
            "/C=US/CN=CLI Customer/emailAddress=it@example.com",
            "-outform",
            "DER",
            "-out",
            &p("push.csr"),
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        &openssl,
        &[
            "dgst",
            "-sha256",
            "-sign",
            &p("vendor.key"),
            "-out",
            &p("sig.bin"),
            &p("push.csr"),
        ],
    )
    .await;
    assert!(ok, "{err}");
    let csr_der = std::fs::read(p("push.csr")).unwrap();
    let sig = std::fs::read(p("sig.bin")).unwrap();
    let request = request_from_parts(&csr_der, &format!("{vendor_pem}{}", w.sim.vendor_chain_pem()), &sig);
    let issued = w.sim.push_portal_create("cli@example.com", &request).unwrap();
    std::fs::write(p("push.pem"), &issued.certificate_pem).unwrap();
    std::fs::write(p("apns-ca.pem"), w.sim.apns_ca_pem()).unwrap();
    // The CLI agrees the key and certificate belong together.
    let (ok, cert_mod, _) = run(&openssl, &["x509", "-noout", "-modulus", "-in", &p("push.pem")]).await;
    assert!(ok);
    let (ok, key_mod, _) = run(&openssl, &["rsa", "-noout", "-modulus", "-in", &p("push.key")]).await;
    assert!(ok);
    assert_eq!(cert_mod, key_mod);

    // curl pushes over HTTP/2 with the push certificate; the device wakes.
    let mut device = w.sim.register_push_token(&issued.topic);
    let url = format!("{}/3/device/{}", w.running.apns_url, device.token_hex);
    let topic_header = format!("apns-topic: {}", issued.topic);
    let curl_push = |extra: Vec<String>| {
        let mut args: Vec<String> = [
            "-sS",
            "--http2",
            "--cacert",
            &p("apns-ca.pem"),
            "-H",
            "apns-push-type: mdm",
            "-D",
            "-",
            "-d",
            r#"{"mdm":"CLI-MAGIC"}"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra);
        args
    };
    let args = curl_push(vec![
        "--cert".into(),
        p("push.pem"),
        "--key".into(),
        p("push.key"),
        "-H".into(),
        topic_header.clone(),
        url.clone(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = run(&curl, &args).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(out.to_ascii_lowercase().contains("apns-id: "), "{out}");
    let wake = tokio::time::timeout(Duration::from_secs(5), device.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wake.push_magic, "CLI-MAGIC");

    // An error answer as curl sees it.
    let bad_url = format!("{}/3/device/{}", w.running.apns_url, "00".repeat(32));
    let args = curl_push(vec![
        "--cert".into(),
        p("push.pem"),
        "--key".into(),
        p("push.key"),
        bad_url,
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = run(&curl, &args).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("HTTP/2 400"), "{out}");
    assert!(out.ends_with(r#"{"reason":"BadDeviceToken"}"#), "{out}");

    // Without the client certificate curl cannot get through.
    let args = curl_push(vec![url]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, _) = run(&curl, &args).await;
    assert!(!ok, "{out}");

    let log = w.sim.pushes();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].push_magic.as_deref(), Some("CLI-MAGIC"));
    let _ = std::fs::remove_dir_all(&dir);
}
