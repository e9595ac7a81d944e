//! What the MDM tests share: Russet with an MDM vendor identity issued by applesim, pushing to
//! applesim's APNs, its push certificate from applesim's portal, and enrollment links.

use std::path::{Path, PathBuf};

use openssl::pkey::PKey;
use openssl::x509::{X509NameBuilder, X509ReqBuilder};
use reqwest::{Method, StatusCode};
use russet_testkit::TestDb;
use serde_json::json;

use super::{Options, TestServer};

pub const APPLE_ID: &str = "mdm-admin@example.com";

/// The MDM vendor's identity (as Apple would have issued it) in files, for Russet's config.
pub fn vendor_files(sim: &applesim::AppleSim, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(openssl::nid::Nid::COMMONNAME, "MDM Vendor: Russet tests")
        .unwrap();
    let mut req = X509ReqBuilder::new().unwrap();
    req.set_subject_name(&name.build()).unwrap();
    req.set_pubkey(&key).unwrap();
    req.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
    let csr = String::from_utf8(req.build().to_pem().unwrap()).unwrap();
    let cert = sim.issue_vendor_certificate(&csr).unwrap();
    let paths = (
        dir.join("vendor.pem"),
        dir.join("vendor.key"),
        dir.join("vendor-chain.pem"),
    );
    std::fs::write(&paths.0, cert).unwrap();
    std::fs::write(&paths.1, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(&paths.2, sim.vendor_chain_pem()).unwrap();
    paths
}

pub async fn start(test: &str) -> Vec<TestServer> {
    start_with(test, |_, _| {}).await
}

/// Russet with a vendor identity, pushing to applesim's APNs; `more` adjusts the config.
pub async fn start_with(test: &str, more: impl Fn(&mut russet_server::config::Config, &Path)) -> Vec<TestServer> {
    start_with_sim(test, |c, dir, _| more(c, dir)).await
}

/// Like [`start_with`], with applesim's running listeners given to `more` too.
pub async fn start_with_sim(
    test: &str,
    more: impl Fn(&mut russet_server::config::Config, &Path, &applesim::RunningSim),
) -> Vec<TestServer> {
    let mut out = Vec::new();
    for db in TestDb::all(test).await {
        let dir = db.path().to_path_buf();
        out.push(
            TestServer::start_configured(db, Options::default(), |c, sim, run| {
                let (cert, key, chain) = vendor_files(sim, &dir);
                c.mdm.vendor_certificate_file = Some(cert);
                c.mdm.vendor_key_file = Some(key);
                c.mdm.vendor_chain_file = Some(chain);
                c.mdm.organization = "Example Org".into();
                // Debian's scepclient 2.1 only speaks single DES.
                c.mdm.scep_allow_single_des = true;
                // applesim's device CA, for tests that set apple.device_ca_file to it.
                std::fs::write(dir.join("device-ca.pem"), sim.device_ca_root_pem()).unwrap();
                let ca = dir.join("apns-ca.pem");
                std::fs::write(&ca, sim.apns_ca_pem()).unwrap();
                c.apple.apns_url = run.apns_url.clone();
                c.apple.apns_ca_file = Some(ca);
                more(c, &dir, run);
            })
            .await,
        );
    }
    out
}

/// CSR in Russet, signed request to applesim's portal, certificate back into Russet.
pub async fn install_push_cert(s: &TestServer) -> String {
    let csr = s
        .json(s.req(Method::POST, "/api/v1/push-cert/csr"), StatusCode::CREATED)
        .await;
    let request = csr["signed_request"]
        .as_str()
        .expect("the vendor identity signs the request");
    let issued = s
        .sim
        .push_portal_create(APPLE_ID, request)
        .expect("Apple's portal accepts Russet's request");
    let cert = s
        .json(
            s.req(Method::PUT, "/api/v1/push-cert")
                .query(&[("apple_id", APPLE_ID)])
                .body(issued.certificate_pem.clone()),
            StatusCode::OK,
        )
        .await;
    assert_eq!(cert["topic"], issued.topic);
    issued.topic
}

pub async fn new_link(s: &TestServer, single_use: bool) -> String {
    let link = s
        .json(
            s.req(Method::POST, "/api/v1/enrollment-links")
                .json(&json!({ "name": "Test devices", "single_use": single_use })),
            StatusCode::CREATED,
        )
        .await;
    link["url"].as_str().unwrap().to_string()
}
