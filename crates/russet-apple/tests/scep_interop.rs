//! SCEP against independent clients: a minimal SCEP server (axum on 127.0.0.1:0) wrapping
//! `russet_apple::scep` the way Russet's `/scep` endpoint does, driven by Debian's
//! `scepclient` (micromdm's Go client; `RUSSET_TEST_SCEPCLIENT`, the binary's path) and
//! strongSwan's `pki --scep` (`RUSSET_TEST_STRONGSWAN_PKI`, the `pki` binary's path).
//!
//! Each client obtains a certificate with the right challenge (checked for clientAuth and
//! against the CA with OpenSSL, and with the `openssl verify` command when installed), is
//! refused with a wrong one, and renews with its current identity. scepclient runs over GET
//! and POST, and shows that single DES (all it speaks) is refused unless allowed; strongSwan
//! also runs with other digests and ciphers and with PSS signatures. When a variable is
//! unset or the tool cannot be run, the test says so loudly on stderr and passes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509ExtendedKeyUsage, X509StoreContext, X509VerifyResult};
use russet_apple::scep::{
    self, ContentCipher, DecodeOptions, DigestAlgorithm, FailInfo, IssueParams, MessageType, Operation,
};
use time::OffsetDateTime;

const CHALLENGE: &str = "Interop-Challenge-42";
const SCEPCLIENT_ENV: &str = "RUSSET_TEST_SCEPCLIENT";
const PKI_ENV: &str = "RUSSET_TEST_STRONGSWAN_PKI";
/// No client run may take longer than this.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// The test server

fn ca() -> &'static (X509, PKey<Private>) {
    static CA: OnceLock<(X509, PKey<Private>)> = OnceLock::new();
    CA.get_or_init(|| {
        scep::new_ca(
            "Russet Interop CA",
            "Russet Tests",
            OffsetDateTime::now_utc(),
            2,
            scep::CaKeyType::Rsa3072,
        )
        .unwrap()
    })
}

/// What the server did with one PKIOperation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Issued {
        message_type: MessageType,
        digest: DigestAlgorithm,
        cipher: ContentCipher,
    },
    Refused(FailInfo),
    BadRequest,
}

#[derive(Clone, Copy)]
struct Config {
    /// Advertise POSTPKIOperation (and SCEPStandard); without them clients use GET.
    post: bool,
    allow_single_des: bool,
}

struct AppState {
    config: Config,
    log: Mutex<Vec<Outcome>>,
    get_operations: Mutex<Vec<String>>,
}

struct TestServer {
    url: String,
    state: Arc<AppState>,
}

impl TestServer {
    async fn start(config: Config) -> TestServer {
        let state = Arc::new(AppState {
            config,
            log: Mutex::new(Vec::new()),
            get_operations: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/scep", axum::routing::get(scep_endpoint).post(scep_endpoint))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestServer {
            url: format!("http://{addr}/scep"),
            state,
        }
    }

    fn outcomes(&self) -> Vec<Outcome> {
        self.state.log.lock().unwrap().clone()
    }

    fn pki_operations_over_get(&self) -> usize {
        self.state
            .get_operations
            .lock()
            .unwrap()
            .iter()
            .filter(|op| *op == "PKIOperation")
            .count()
    }
}

async fn scep_endpoint(
    State(state): State<Arc<AppState>>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let operation = query.get("operation").map(String::as_str).unwrap_or_default();
    if method == Method::GET {
        state.get_operations.lock().unwrap().push(operation.to_owned());
    }
    let (ca_cert, ca_key) = ca();
    match Operation::parse(operation) {
        Some(Operation::GetCaCaps) => {
            // Without POSTPKIOperation (and SCEPStandard, which implies it) clients use GET.
            let caps = if state.config.post {
                scep::caps().to_owned()
            } else {
                "Renewal\nSHA-256\nSHA-384\nAES".to_owned()
            };
            ([(header::CONTENT_TYPE, scep::CONTENT_TYPE_CAPS)], caps).into_response()
        }
        Some(Operation::GetCaCert) => match scep::ca_cert_der(ca_cert) {
            Ok(der) => ([(header::CONTENT_TYPE, scep::CONTENT_TYPE_CA_CERT)], der).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        Some(Operation::PkiOperation) => {
            let message = if method == Method::POST {
                Ok(body.to_vec())
            } else {
                scep::decode_message_param(query.get("message").map(String::as_str).unwrap_or_default())
            };
            let (outcome, response) = match message {
                Ok(message) => pki_operation(&state.config, &message, ca_cert, ca_key),
                Err(e) => (Outcome::BadRequest, Err(e)),
            };
            state.log.lock().unwrap().push(outcome);
            match response {
                Ok(der) => ([(header::CONTENT_TYPE, scep::CONTENT_TYPE_PKI_MESSAGE)], der).into_response(),
                Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            }
        }
        Some(Operation::GetNextCaCert) | None => {
            (StatusCode::BAD_REQUEST, format!("unsupported operation {operation:?}")).into_response()
        }
    }
}

/// The decisions Russet's endpoint makes: a first enrollment needs the challenge, a renewal
/// needs a still-valid identity from this CA.
fn pki_operation(
    config: &Config,
    message: &[u8],
    ca_cert: &X509,
    ca_key: &PKey<Private>,
) -> (Outcome, Result<Vec<u8>, scep::ScepError>) {
    let options = DecodeOptions {
        allow_single_des: config.allow_single_des,
    };
    let req = match scep::decode_request_with(message, ca_cert, ca_key, &options) {
        Ok(req) => req,
        Err(e) => {
            eprintln!("test server: request refused: {e}");
            return match (e.reply_to(), e.fail_info()) {
                (Some(to), Some(info)) => (
                    Outcome::Refused(info),
                    scep::cert_rep_failure(to, info, ca_cert, ca_key),
                ),
                _ => (Outcome::BadRequest, Err(e)),
            };
        }
    };
    let now = OffsetDateTime::now_utc();
    let allowed = match req.message_type {
        MessageType::PkcsReq => req.challenge_matches(CHALLENGE),
        MessageType::RenewalReq => req.signer_issued_by(ca_cert) && req.signer_valid_at(now),
    };
    if !allowed {
        return (
            Outcome::Refused(FailInfo::BadRequest),
            scep::cert_rep_failure(&req, FailInfo::BadRequest, ca_cert, ca_key),
        );
    }
    let params = IssueParams::new(now - time::Duration::minutes(5), time::Duration::days(30));
    let issued = match scep::issue_identity(&req.csr, ca_cert, ca_key, &params) {
        Ok(cert) => cert,
        Err(e) => {
            let info = e.fail_info().unwrap_or(FailInfo::BadRequest);
            return (
                Outcome::Refused(info),
                scep::cert_rep_failure(&req, info, ca_cert, ca_key),
            );
        }
    };
    (
        Outcome::Issued {
            message_type: req.message_type,
            digest: req.digest,
            cipher: req.content_cipher,
        },
        scep::cert_rep_success(&req, &issued, ca_cert, ca_key),
    )
}

// ---------------------------------------------------------------------------------------
// Helpers

fn skip(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {why} ***");
}

/// The tool named by `env`, if set and runnable; otherwise announces the skip.
fn tool(test: &str, env: &str, package: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) else {
        skip(
            test,
            &format!("{env} is not set (install the Debian package {package} and set {env} to the binary's path)"),
        );
        return None;
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        skip(
            test,
            &format!(
                "{env}={} does not exist (install the Debian package {package})",
                path.display()
            ),
        );
        return None;
    }
    Some(path)
}

async fn run(program: &Path, args: &[&str]) -> Output {
    let child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(CLIENT_TIMEOUT, child).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("{} could not be run: {e}", program.display()),
        Err(_) => panic!(
            "{} {args:?} did not finish within {CLIENT_TIMEOUT:?}",
            program.display()
        ),
    }
}

fn text(output: &Output) -> String {
    format!(
        "exit status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn read_cert(path: &Path) -> X509 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    X509::from_pem(&bytes)
        .or_else(|_| X509::from_der(&bytes))
        .unwrap_or_else(|e| panic!("{} is not a certificate: {e}", path.display()))
}

fn write_ca(dir: &Path) -> (PathBuf, PathBuf) {
    let (ca_cert, _) = ca();
    let pem = dir.join("ca.pem");
    let der = dir.join("ca.der");
    std::fs::write(&pem, ca_cert.to_pem().unwrap()).unwrap();
    std::fs::write(&der, ca_cert.to_der().unwrap()).unwrap();
    (pem, der)
}

/// Checks a certificate the way Russet's MDM endpoint will: it chains to the CA and is for
/// TLS client authentication. Also asks the `openssl verify` command when it is installed.
async fn assert_identity(cert: &X509, dir: &Path) {
    let (ca_cert, _) = ca();
    let eku = cert
        .extended_key_usage()
        .expect("the issued certificate has no extendedKeyUsage");
    assert!(eku.contains(X509ExtendedKeyUsage::SSL_CLIENT), "no clientAuth: {eku:?}");
    assert_eq!(ca_cert.issued(cert), X509VerifyResult::OK);

    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(ca_cert.clone()).unwrap();
    store.set_purpose(openssl::x509::X509PurposeId::SSL_CLIENT).unwrap();
    let store = store.build();
    let mut ctx = X509StoreContext::new().unwrap();
    let chain = Stack::new().unwrap();
    let (ok, error) = ctx
        .init(&store, cert, &chain, |c| Ok((c.verify_cert()?, c.error())))
        .unwrap();
    assert!(ok, "the issued certificate does not verify against the CA: {error}");

    let (ca_pem, _) = write_ca(dir);
    let cert_pem = dir.join("issued-check.pem");
    std::fs::write(&cert_pem, cert.to_pem().unwrap()).unwrap();
    match tokio::process::Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(&ca_pem)
        .arg(&cert_pem)
        .output()
        .await
    {
        Ok(output) => assert!(output.status.success(), "openssl verify: {}", text(&output)),
        Err(_) => skip(
            "assert_identity",
            "the openssl command is not installed; `openssl verify` not run",
        ),
    }
}

fn serial(cert: &X509) -> String {
    cert.serial_number().to_bn().unwrap().to_hex_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------
// Debian's scepclient (micromdm/scep 2.1)

/// scepclient 2.1 encrypts with single DES whatever the CA advertises, so the server allows
/// it here; `scepclient_is_refused_single_des_by_default` shows the default.
const SCEPCLIENT_SERVER: Config = Config {
    post: true,
    allow_single_des: true,
};

fn scepclient_args<'a>(
    url: &'a str,
    key: &'a str,
    cert: &'a str,
    challenge: Option<&'a str>,
    cn: &'a str,
) -> Vec<&'a str> {
    let mut args = vec!["-server-url", url, "-private-key", key, "-certificate", cert, "-cn", cn];
    if let Some(challenge) = challenge {
        args.extend(["-challenge", challenge]);
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scepclient_enrolls_and_renews() {
    let test = "scepclient_enrolls_and_renews";
    let Some(scepclient) = tool(test, SCEPCLIENT_ENV, "scep") else {
        return;
    };
    // Over GET: without POSTPKIOperation among the capabilities, scepclient puts the request
    // in the URL.
    let server = TestServer::start(Config {
        post: false,
        ..SCEPCLIENT_SERVER
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("device.key");
    let cert_path = dir.path().join("device.pem");
    let (key_s, cert_s) = (key.to_str().unwrap(), cert_path.to_str().unwrap());

    let output = run(
        &scepclient,
        &scepclient_args(&server.url, key_s, cert_s, Some(CHALLENGE), "scepclient-device"),
    )
    .await;
    assert!(output.status.success(), "scepclient enrollment: {}", text(&output));
    let first = read_cert(&cert_path);
    assert_identity(&first, dir.path()).await;
    let cn = first
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap();
    assert_eq!(cn, "scepclient-device");
    match server.outcomes().as_slice() {
        [Outcome::Issued { message_type, .. }] => assert_eq!(*message_type, MessageType::PkcsReq),
        other => panic!("unexpected server log: {other:?}"),
    }

    // With its certificate in place, scepclient renews: a RenewalReq signed by that identity,
    // without a challenge.
    let output = run(
        &scepclient,
        &scepclient_args(&server.url, key_s, cert_s, None, "scepclient-device"),
    )
    .await;
    assert!(output.status.success(), "scepclient renewal: {}", text(&output));
    let renewed = read_cert(&cert_path);
    assert_identity(&renewed, dir.path()).await;
    assert_ne!(serial(&renewed), serial(&first));
    match server.outcomes().as_slice() {
        [_, Outcome::Issued { message_type, .. }] => assert_eq!(*message_type, MessageType::RenewalReq),
        other => panic!("unexpected server log: {other:?}"),
    }
    assert_eq!(server.pki_operations_over_get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scepclient_with_a_wrong_challenge_is_refused() {
    let test = "scepclient_with_a_wrong_challenge_is_refused";
    let Some(scepclient) = tool(test, SCEPCLIENT_ENV, "scep") else {
        return;
    };
    let server = TestServer::start(SCEPCLIENT_SERVER).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("device.key");
    let cert_path = dir.path().join("device.pem");
    let output = run(
        &scepclient,
        &scepclient_args(
            &server.url,
            key.to_str().unwrap(),
            cert_path.to_str().unwrap(),
            Some("not-the-challenge"),
            "intruder",
        ),
    )
    .await;
    assert!(!output.status.success(), "scepclient got in: {}", text(&output));
    let all = text(&output);
    assert!(
        all.contains("failInfo"),
        "scepclient did not report a SCEP failure: {all}"
    );
    assert!(!cert_path.exists());
    assert_eq!(server.outcomes(), vec![Outcome::Refused(FailInfo::BadRequest)]);
    assert_eq!(server.pki_operations_over_get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scepclient_is_refused_single_des_by_default() {
    let test = "scepclient_is_refused_single_des_by_default";
    let Some(scepclient) = tool(test, SCEPCLIENT_ENV, "scep") else {
        return;
    };
    let server = TestServer::start(Config {
        post: true,
        allow_single_des: false,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("device.key");
    let cert_path = dir.path().join("device.pem");
    let output = run(
        &scepclient,
        &scepclient_args(
            &server.url,
            key.to_str().unwrap(),
            cert_path.to_str().unwrap(),
            Some(CHALLENGE),
            "des-device",
        ),
    )
    .await;
    assert!(
        !output.status.success(),
        "scepclient enrolled with single DES: {}",
        text(&output)
    );
    assert!(text(&output).contains("failInfo"), "{}", text(&output));
    assert_eq!(server.outcomes(), vec![Outcome::Refused(FailInfo::BadAlg)]);
}

// ---------------------------------------------------------------------------------------
// strongSwan's pki --scep

const STRONGSWAN_SERVER: Config = Config {
    post: true,
    allow_single_des: false,
};

async fn pki_key(pki: &Path, path: &Path) {
    let output = run(pki, &["--gen", "--type", "rsa", "--size", "2048", "--outform", "pem"]).await;
    assert!(output.status.success(), "pki --gen: {}", text(&output));
    std::fs::write(path, &output.stdout).unwrap();
}

/// Runs `pki --scep`; returns the certificate (PEM on stdout) or the failed run's output.
async fn pki_enroll(
    pki: &Path,
    url: &str,
    ca_der: &Path,
    key: &Path,
    dn: &str,
    extra: &[&str],
) -> Result<X509, String> {
    let mut args = vec![
        "--scep",
        "--url",
        url,
        "--in",
        key.to_str().unwrap(),
        "--dn",
        dn,
        "--cacert-enc",
        ca_der.to_str().unwrap(),
        "--cacert-sig",
        ca_der.to_str().unwrap(),
        "--outform",
        "pem",
    ];
    args.extend_from_slice(extra);
    let output = run(pki, &args).await;
    if !output.status.success() {
        return Err(text(&output));
    }
    X509::from_pem(&output.stdout).map_err(|e| format!("no certificate on stdout ({e}): {}", text(&output)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strongswan_fetches_the_ca_and_enrolls() {
    let test = "strongswan_fetches_the_ca_and_enrolls";
    let Some(pki) = tool(test, PKI_ENV, "strongswan-pki") else {
        return;
    };
    let server = TestServer::start(STRONGSWAN_SERVER).await;
    let dir = tempfile::tempdir().unwrap();

    // GetCACert through strongSwan: the CA it stores is ours.
    let fetched = dir.path().join("fetched-ca.der");
    let output = run(
        &pki,
        &["--scepca", "--url", &server.url, "--caout", fetched.to_str().unwrap()],
    )
    .await;
    assert!(output.status.success(), "pki --scepca: {}", text(&output));
    assert_eq!(std::fs::read(&fetched).unwrap(), ca().0.to_der().unwrap());

    let key = dir.path().join("device.key");
    pki_key(&pki, &key).await;
    let cert = pki_enroll(
        &pki,
        &server.url,
        &fetched,
        &key,
        "C=US, O=Russet Tests, CN=strongswan-device",
        &["--password", CHALLENGE],
    )
    .await
    .unwrap();
    assert_identity(&cert, dir.path()).await;
    assert_eq!(
        server.outcomes(),
        vec![Outcome::Issued {
            message_type: MessageType::PkcsReq,
            digest: DigestAlgorithm::Sha256,
            cipher: ContentCipher::Aes128Cbc,
        }]
    );
    assert_eq!(server.pki_operations_over_get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strongswan_with_other_digests_ciphers_and_pss() {
    let test = "strongswan_with_other_digests_ciphers_and_pss";
    let Some(pki) = tool(test, PKI_ENV, "strongswan-pki") else {
        return;
    };
    let server = TestServer::start(STRONGSWAN_SERVER).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, ca_der) = write_ca(dir.path());
    let key = dir.path().join("device.key");
    pki_key(&pki, &key).await;

    let cases: [(&[&str], DigestAlgorithm, ContentCipher); 3] = [
        (
            &["--cipher", "des3"],
            DigestAlgorithm::Sha256,
            ContentCipher::DesEde3Cbc,
        ),
        (&["--digest", "sha1"], DigestAlgorithm::Sha1, ContentCipher::Aes128Cbc),
        (
            &["--rsa-padding", "pss"],
            DigestAlgorithm::Sha256,
            ContentCipher::Aes128Cbc,
        ),
    ];
    for (i, (extra, digest, cipher)) in cases.iter().enumerate() {
        let mut args = vec!["--password", CHALLENGE];
        args.extend_from_slice(extra);
        let dn = format!("C=US, O=Russet Tests, CN=variant-{i}");
        let cert = pki_enroll(&pki, &server.url, &ca_der, &key, &dn, &args)
            .await
            .unwrap_or_else(|e| panic!("pki --scep {extra:?}: {e}"));
        assert_identity(&cert, dir.path()).await;
        assert_eq!(
            server.outcomes().last(),
            Some(&Outcome::Issued {
                message_type: MessageType::PkcsReq,
                digest: *digest,
                cipher: *cipher,
            }),
            "{extra:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strongswan_with_a_wrong_password_and_renewal() {
    let test = "strongswan_with_a_wrong_password_and_renewal";
    let Some(pki) = tool(test, PKI_ENV, "strongswan-pki") else {
        return;
    };
    let server = TestServer::start(STRONGSWAN_SERVER).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, ca_der) = write_ca(dir.path());
    let key = dir.path().join("device.key");
    pki_key(&pki, &key).await;
    let dn = "C=US, O=Russet Tests, CN=renewing-device";

    let refused = pki_enroll(&pki, &server.url, &ca_der, &key, dn, &["--password", "wrong"]).await;
    assert!(refused.is_err(), "a wrong password was accepted");
    assert_eq!(server.outcomes(), vec![Outcome::Refused(FailInfo::BadRequest)]);

    let first = pki_enroll(&pki, &server.url, &ca_der, &key, dn, &["--password", CHALLENGE])
        .await
        .unwrap();
    assert_identity(&first, dir.path()).await;

    // Renewal: a new key, the request signed with the current identity and its key.
    let old_cert = dir.path().join("old.pem");
    std::fs::write(&old_cert, first.to_pem().unwrap()).unwrap();
    let new_key = dir.path().join("new.key");
    pki_key(&pki, &new_key).await;
    let renewed = pki_enroll(
        &pki,
        &server.url,
        &ca_der,
        &new_key,
        dn,
        &["--cert", old_cert.to_str().unwrap(), "--key", key.to_str().unwrap()],
    )
    .await
    .unwrap();
    assert_identity(&renewed, dir.path()).await;
    assert_ne!(serial(&renewed), serial(&first));
    let new_public = PKey::private_key_from_pem(&std::fs::read(&new_key).unwrap()).unwrap();
    assert!(renewed.public_key().unwrap().public_eq(&new_public));
    assert!(matches!(
        server.outcomes().last(),
        Some(Outcome::Issued {
            message_type: MessageType::RenewalReq,
            ..
        })
    ));
}
