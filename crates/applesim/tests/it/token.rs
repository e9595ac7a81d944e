//! The server token (.p7m) made like Apple's, checked with the openssl crate and CLI.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use applesim::{AppleSim, OrgKind, SimCredentials, SimError};
use base64::Engine as _;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};

const APPLE_DIR: &str = "/work/shared/fixtures/abm-server-token";
const HEADER: &str = "Content-Type: application/pkcs7-mime; name=\"smime.p7m\"; smime-type=enveloped-data\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"smime.p7m\"\nContent-Description: S/MIME Encrypted Message\n\n";

fn pem(cert: &openssl::x509::X509) -> String {
    String::from_utf8(cert.to_pem().unwrap()).unwrap()
}

fn body_der(p7m: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(p7m).unwrap();
    let body = text.split_once("\n\n").unwrap().1;
    base64::engine::general_purpose::STANDARD
        .decode(body.replace('\n', ""))
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("applesim-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// `writeln!(stderr())` rather than `eprintln!`: the test harness captures `eprintln!`, and a
// skipped check must be visible in the output.
#[allow(clippy::explicit_write)]
fn openssl_cli() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        writeln!(
            std::io::stderr(),
            "SKIPPED: the `openssl` command is missing; CLI checks of the token not run"
        )
        .unwrap();
    }
    ok
}

fn asn1parse(der_path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(der_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The structural lines of an asn1parse dump: depth, definite or not, and the type (with
/// OIDs' names), without offsets, lengths and values.
fn shape(dump: &str) -> Vec<String> {
    dump.lines()
        .map(|l| {
            let depth = l
                .split("d=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or("");
            let inf = l.contains("l=inf");
            let at = l.find("prim:").or_else(|| l.find("cons:")).unwrap();
            let rest = &l[at..];
            let (kind, value) = rest[5..].split_once(':').unwrap_or((&rest[5..], ""));
            let kind = kind.trim();
            let value = if kind == "OBJECT" { value.trim() } else { "" };
            format!("d={depth} inf={inf} {} {kind} {value}", &rest[..4])
        })
        .collect()
}

#[test]
fn upload_rules() {
    let sim = AppleSim::new();
    let org = sim.create_org("Org", OrgKind::Business);
    let server = sim.create_mdm_server(org, "MDM");
    assert_eq!(sim.download_token(server), Err(SimError::NoPublicKey(server)));
    let (key, cert) = test_key();
    assert!(matches!(
        sim.upload_public_key(server, "hello"),
        Err(SimError::InvalidCertificate(_))
    ));
    let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    assert!(matches!(
        sim.upload_public_key(server, &key_pem),
        Err(SimError::InvalidCertificate(_))
    ));
    let broken = pem(cert).replace("A", "B");
    assert!(matches!(
        sim.upload_public_key(server, &broken),
        Err(SimError::InvalidCertificate(_))
    ));
    sim.upload_public_key(server, &pem(cert)).unwrap();
    assert!(sim.download_token(server).is_ok());
    assert!(matches!(
        sim.upload_public_key(applesim::ServerId(99), &pem(cert)),
        Err(SimError::UnknownServer(_))
    ));
}

#[test]
fn token_is_made_like_apples() {
    let sim = AppleSim::new();
    let org = sim.create_org("Org", OrgKind::Business);
    let server = sim.create_mdm_server(org, "MDM");
    let (key, cert) = test_key();
    sim.upload_public_key(server, &pem(cert)).unwrap();
    let p7m = sim.download_token(server).unwrap();
    let text = std::str::from_utf8(&p7m).unwrap();

    // Exactly Apple's header block, then 76-column base64.
    assert!(text.starts_with(HEADER), "{}", &text[..300]);
    let apple = std::fs::read_to_string(format!("{APPLE_DIR}/apple-mdm-client-tests-1-server-token.p7m")).unwrap();
    assert_eq!(apple.split_once("\n\n").unwrap().0, text.split_once("\n\n").unwrap().0);
    let lines: Vec<&str> = text.split_once("\n\n").unwrap().1.lines().collect();
    assert!(lines[..lines.len() - 1].iter().all(|l| l.len() == 76));
    assert!(!lines.last().unwrap().is_empty() && lines.last().unwrap().len() <= 76);
    assert!(text.ends_with('\n') && !text.contains('\r'));
    assert!(lines[0].starts_with("MIAGCSqGSIb3DQEHA6CAMIACAQAx"), "{}", lines[0]);

    // BER with indefinite lengths at the top, like Apple's.
    let der = body_der(&p7m);
    assert_eq!(&der[..2], &[0x30, 0x80]);

    // Decrypts with the matching key (openssl crate), to Apple's plaintext layout.
    let (p7, _) = Pkcs7::from_smime(&p7m).unwrap();
    let plain = p7.decrypt(key, cert, Pkcs7Flags::empty()).unwrap();
    let plain = String::from_utf8(plain).unwrap();
    assert!(plain.starts_with(
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n-----BEGIN MESSAGE-----\n{\"consumer_key\":\"CK_"
    ));
    assert!(plain.ends_with("}\n-----END MESSAGE-----\n"));
    let v = token_json(plain.as_bytes());
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5);
    let creds: SimCredentials = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(Some(&creds), sim.current_credentials(server).as_ref());
    assert_eq!(creds.consumer_key.len(), 99);
    assert!(creds.consumer_key[3..].chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(creds.consumer_secret.len(), 43);
    assert_eq!(creds.access_secret.len(), 43);
    assert!(creds.access_token.starts_with("AT_O"));
    assert_eq!(creds.access_token.matches('O').count(), 3);
    let expiry = v["access_token_expiry"].as_str().unwrap();
    assert_eq!(expiry.len(), 20, "{expiry}");
    assert!(expiry.ends_with('Z'));
    let now = sim.clock().now();
    let left = creds.access_token_expiry - now;
    assert!(
        left > time::Duration::days(364) && left <= time::Duration::days(366),
        "{left}"
    );
    // The epoch-ms inside the access token is the download time.
    let ms: i64 = creds.access_token.rsplit('O').next().unwrap().parse().unwrap();
    assert!((ms / 1000 - now.unix_timestamp()).abs() < 5);

    // A wrong key cannot decrypt it.
    let (other_key, other_cert) = make_key("other");
    assert!(p7.decrypt(&other_key, &other_cert, Pkcs7Flags::empty()).is_err());

    // A new download gives new credentials.
    let again = sim.download_token(server).unwrap();
    let (p7b, _) = Pkcs7::from_smime(&again).unwrap();
    let v2 = token_json(&p7b.decrypt(key, cert, Pkcs7Flags::empty()).unwrap());
    assert_ne!(v2["consumer_key"], v["consumer_key"]);
    assert_ne!(v2["access_token"], v["access_token"]);
}

#[test]
fn openssl_command_line_decrypts_and_shows_indefinite_lengths() {
    if !openssl_cli() {
        return;
    }
    let sim = AppleSim::new();
    let org = sim.create_org("Org", OrgKind::Business);
    let server = sim.create_mdm_server(org, "MDM");
    let (key, cert) = test_key();
    sim.upload_public_key(server, &pem(cert)).unwrap();
    let p7m = sim.download_token(server).unwrap();
    let dir = scratch("cli");
    let token = dir.join("token_smime.p7m");
    let key_path = dir.join("key.pem");
    std::fs::write(&token, &p7m).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();

    // What zentral and apple_dep_client do: openssl smime -decrypt -in token -inkey key.
    let out = Command::new("openssl")
        .args(["smime", "-decrypt", "-in"])
        .arg(&token)
        .arg("-inkey")
        .arg(&key_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = token_json(&out.stdout);
    let creds = sim.current_credentials(server).unwrap();
    assert_eq!(v["consumer_key"], creds.consumer_key.as_str());
    assert_eq!(v["access_secret"], creds.access_secret.as_str());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Content-Type: text/plain;charset=UTF-8\r\n"));

    // asn1parse: indefinite lengths like Apple's real token, same structure.
    let der = dir.join("token.der");
    std::fs::write(&der, body_der(&p7m)).unwrap();
    let ours = asn1parse(&der);
    let first = ours.lines().next().unwrap();
    assert!(first.contains("l=inf") && first.contains("SEQUENCE"), "{first}");
    assert!(ours.contains(":pkcs7-envelopedData"));
    assert!(ours.contains(":rsaEncryption"));
    assert!(ours.contains(":aes-128-cbc"));
    assert!(
        ours.contains(":70FEDDC7"),
        "recipient serial of the uploaded certificate"
    );
    assert!(ours.matches("l=inf").count() >= 5, "{ours}");
    assert!(ours.contains("EOC"));

    let apple_der = dir.join("apple.der");
    let apple = std::fs::read(format!("{APPLE_DIR}/apple-mdm-client-tests-1-server-token.p7m")).unwrap();
    std::fs::write(&apple_der, body_der(&apple)).unwrap();
    let theirs = asn1parse(&apple_der);
    let strip_issuer = |s: Vec<String>| -> Vec<String> {
        // Issuer names differ in their attributes; compare everything outside the issuer DN.
        s.into_iter()
            .filter(|l| {
                !l.starts_with("d=6") && !l.starts_with("d=7") && !l.starts_with("d=8") && !l.starts_with("d=9")
            })
            .collect()
    };
    assert_eq!(
        strip_issuer(shape(&ours)),
        strip_issuer(shape(&theirs)),
        "\nours:\n{ours}\napple:\n{theirs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn downloaded_token_logs_in_and_admin_api_serves_it() {
    let w = World::new().await;
    let (key, cert) = test_key();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = &w.run.base_url;
    let r = http
        .put(format!("{base}/abm/servers/{}/public-key", w.server.0))
        .body(pem(cert))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .post(format!("{base}/abm/servers/{}/token", w.server.0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pkcs7-mime");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("_smime.p7m")
    );
    let p7m = r.bytes().await.unwrap();
    let (p7, _) = Pkcs7::from_smime(&p7m).unwrap();
    let creds: SimCredentials =
        serde_json::from_value(token_json(&p7.decrypt(key, cert, Pkcs7Flags::empty()).unwrap())).unwrap();
    let mut d = Dep::new(base, creds.clone());
    d.login().await;
    assert_eq!(d.get("/account").await.status, 200);
    let r = http
        .get(format!("{base}/abm/servers/{}/credentials", w.server.0))
        .send()
        .await
        .unwrap();
    let served: SimCredentials = r.json().await.unwrap();
    assert_eq!(served, creds);
}
