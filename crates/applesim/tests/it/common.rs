//! Test helpers: a small independent OAuth 1.0a signer and DEP client, and test keys.

#![allow(dead_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use applesim::{AppleSim, OrgId, OrgKind, RunningSim, ServerId, SimCredentials};
use base64::Engine as _;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::{X509, X509NameBuilder};
use serde_json::Value;

/// RFC 3986 percent-encoding, written out by hand (independent of the crate under test).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `Authorization` header for `GET {url}` (no query), with an optional realm.
pub fn oauth_header(creds: &SimCredentials, url: &str, nonce: &str, timestamp: u64, realm: bool) -> String {
    let mut params = [
        ("oauth_consumer_key", creds.consumer_key.clone()),
        ("oauth_nonce", nonce.to_owned()),
        ("oauth_signature_method", "HMAC-SHA1".to_owned()),
        ("oauth_timestamp", timestamp.to_string()),
        ("oauth_token", creds.access_token.clone()),
        ("oauth_version", "1.0".to_owned()),
    ];
    params.sort();
    let norm = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!("GET&{}&{}", enc(url), enc(&norm));
    let key = format!("{}&{}", enc(&creds.consumer_secret), enc(&creds.access_secret));
    let pkey = PKey::hmac(key.as_bytes()).unwrap();
    let mut signer = Signer::new(MessageDigest::sha1(), &pkey).unwrap();
    let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign_oneshot_to_vec(base.as_bytes()).unwrap());
    let mut parts: Vec<String> = Vec::new();
    if realm {
        parts.push(r#"realm="ADM""#.to_owned());
    }
    for (k, v) in params.iter() {
        parts.push(format!(r#"{k}="{}""#, enc(v)));
    }
    parts.push(format!(r#"oauth_signature="{}""#, enc(&sig)));
    format!("OAuth {}", parts.join(", "))
}

static NONCE: AtomicU64 = AtomicU64::new(0x5eed_0000);

pub fn nonce() -> String {
    format!("{:016x}", NONCE.fetch_add(1, Ordering::Relaxed))
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A response, read fully.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }
}

pub async fn read(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp { status, headers, text }
}

/// A minimal DEP client.
pub struct Dep {
    pub http: reqwest::Client,
    pub base: String,
    pub creds: SimCredentials,
    pub session: Option<String>,
    pub version: Option<u32>,
    pub user_agent: Option<String>,
    /// Adopt `X-ADM-Auth-Session` from responses.
    pub follow_rotation: bool,
}

impl Dep {
    pub fn new(base: &str, creds: SimCredentials) -> Dep {
        Dep {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: base.to_owned(),
            creds,
            session: None,
            version: Some(10),
            user_agent: Some("applesim-tests/1.0".to_owned()),
            follow_rotation: true,
        }
    }

    fn decorate(&self, mut rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(ua) = &self.user_agent {
            rb = rb.header("User-Agent", ua);
        }
        if let Some(v) = self.version {
            rb = rb.header("X-Server-Protocol-Version", v.to_string());
        }
        rb.header("Content-Type", "application/json;charset=UTF8")
    }

    /// `GET /session` with this Authorization header (or none).
    pub async fn session_raw(&self, authorization: Option<String>) -> Resp {
        let mut rb = self.decorate(self.http.get(format!("{}/session", self.base)));
        if let Some(a) = authorization {
            rb = rb.header("Authorization", a);
        }
        read(rb.send().await.unwrap()).await
    }

    pub fn signed_header(&self) -> String {
        oauth_header(
            &self.creds,
            &format!("{}/session", self.base),
            &nonce(),
            unix_now(),
            false,
        )
    }

    /// Get a session; panics unless 200.
    pub async fn login(&mut self) -> String {
        let r = self.session_raw(Some(self.signed_header())).await;
        assert_eq!(r.status, 200, "session failed: {}", r.text);
        let tok = r.json()["auth_session_token"].as_str().unwrap().to_owned();
        assert!(!tok.is_empty());
        self.session = Some(tok.clone());
        tok
    }

    pub async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let url = format!("{}{}", self.base, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.decorate(self.http.request(m, url));
        if let Some(s) = &self.session {
            rb = rb.header("X-ADM-Auth-Session", s);
        }
        if let Some(b) = body {
            rb = rb.body(serde_json::to_vec(&b).unwrap());
        }
        let r = read(rb.send().await.unwrap()).await;
        if self.follow_rotation {
            if let Some(new) = r.header("x-adm-auth-session") {
                self.session = Some(new);
            }
        }
        r
    }

    pub async fn post(&mut self, path: &str, body: Value) -> Resp {
        self.call("POST", path, Some(body)).await
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }
}

pub fn test_credentials(now: time::OffsetDateTime) -> SimCredentials {
    let r = |n: usize| {
        let mut b = vec![0u8; n];
        openssl::rand::rand_bytes(&mut b).unwrap();
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    SimCredentials {
        consumer_key: format!("CK_{}", r(48)),
        consumer_secret: format!("CS_{}&+/", r(20)),
        access_token: format!("AT_O{}O{}O{}", 1234567890, r(20), now.unix_timestamp() * 1000),
        access_secret: format!("AS_{} x", r(20)),
        access_token_expiry: now + time::Duration::days(365),
    }
}

/// A simulator with one org, one server with a registered token, listening.
pub struct World {
    pub sim: AppleSim,
    pub run: RunningSim,
    pub org: OrgId,
    pub server: ServerId,
    pub creds: SimCredentials,
}

impl World {
    pub async fn new() -> World {
        let sim = AppleSim::new();
        let org = sim.create_org("Test Org", OrgKind::Business);
        let server = sim.create_mdm_server(org, "Test MDM");
        let creds = test_credentials(sim.clock().now());
        sim.register_credentials(server, creds.clone());
        let run = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        World {
            sim,
            run,
            org,
            server,
            creds,
        }
    }

    pub fn dep(&self) -> Dep {
        Dep::new(&self.run.base_url, self.creds.clone())
    }

    pub async fn logged_in(&self) -> Dep {
        let mut d = self.dep();
        d.login().await;
        d
    }

    /// Buy `n` devices and assign them to the server.
    pub fn devices(&self, n: usize) -> Vec<String> {
        let s = self.sim.add_devices(self.org, n, applesim::DeviceSpec::default());
        self.sim.assign_devices(self.server, &s).unwrap();
        s
    }
}

/// An RSA-2048 key and self-signed certificate, made once per test binary.
pub fn test_key() -> &'static (PKey<Private>, X509) {
    static KEY: OnceLock<(PKey<Private>, X509)> = OnceLock::new();
    KEY.get_or_init(|| make_key("applesim-test"))
}

pub fn make_key(cn: &str) -> (PKey<Private>, X509) {
    let rsa = Rsa::generate(2048).unwrap();
    let pkey = PKey::from_rsa(rsa).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(0x70FE_DDC7).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&pkey).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    b.sign(&pkey, MessageDigest::sha256()).unwrap();
    (pkey, b.build())
}

/// The JSON between the BEGIN/END MESSAGE markers of a decrypted token.
pub fn token_json(plaintext: &[u8]) -> Value {
    let text = std::str::from_utf8(plaintext).unwrap();
    let start = text.find("-----BEGIN MESSAGE-----\n").unwrap() + "-----BEGIN MESSAGE-----\n".len();
    let end = text.find("\n-----END MESSAGE-----").unwrap();
    serde_json::from_str(&text[start..end]).unwrap()
}
