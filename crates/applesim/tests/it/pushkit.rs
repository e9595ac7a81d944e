//! Test helpers for push certificates and APNs, written as an MDM vendor and an MDM server
//! would: customer keys and CSRs, the vendor's signed push certificate request (a plist
//! written by hand), and an HTTP/2-over-TLS APNs client on hyper and OpenSSL.

#![allow(dead_code)]

use std::pin::Pin;
use std::sync::OnceLock;

use applesim::{AppleSim, IssuedPushCert, RunningSim};
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
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::{X509, X509NameBuilder, X509Req, X509ReqBuilder};

pub const APPLE_ID: &str = "admin@example.com";

fn rsa2048() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

/// The MDM vendor's signing key (made once per test binary).
pub fn vendor_key() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    K.get_or_init(rsa2048)
}

/// A customer's push key (made once per test binary).
pub fn customer_key() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    K.get_or_init(rsa2048)
}

/// Another customer's push key.
pub fn other_customer_key() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    K.get_or_init(rsa2048)
}

/// A CSR like Keychain Access makes: `C`, `CN`, `emailAddress`.
pub fn csr(key: &PKey<Private>, cn: &str) -> X509Req {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COUNTRYNAME, "US").unwrap();
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, cn).unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    name.append_entry_by_nid(Nid::PKCS9_EMAILADDRESS, "it@example.com")
        .unwrap();
    let mut b = X509ReqBuilder::new().unwrap();
    b.set_subject_name(&name.build()).unwrap();
    b.set_pubkey(key).unwrap();
    b.sign(key, MessageDigest::sha256()).unwrap();
    b.build()
}

/// The vendor: its signing key, the certificate applesim issued, and the chain to append.
pub struct Vendor {
    pub key: PKey<Private>,
    pub cert_pem: String,
    pub chain_pem: String,
}

impl Vendor {
    /// Get an MDM vendor certificate from the simulated Apple.
    pub fn new(sim: &AppleSim) -> Vendor {
        let key = vendor_key().clone();
        let csr_pem = String::from_utf8(csr(&key, "Example MDM Vendor").to_pem().unwrap()).unwrap();
        let cert_pem = sim.issue_vendor_certificate(&csr_pem).unwrap();
        Vendor {
            key,
            cert_pem,
            chain_pem: sim.vendor_chain_pem(),
        }
    }

    /// SHA256withRSA signature of `data` with the vendor key.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut s = Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        s.update(data).unwrap();
        s.sign_to_vec().unwrap()
    }

    /// The base64 request for the portal, for a customer CSR's DER.
    pub fn request(&self, csr_der: &[u8]) -> String {
        let sig = self.sign(csr_der);
        request_from_parts(csr_der, &format!("{}{}", self.cert_pem, self.chain_pem), &sig)
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A plist written by hand, as the vendor's tooling would.
pub fn plist_xml(entries: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n",
    );
    for (k, v) in entries {
        out.push_str(&format!("\t<key>{k}</key>\n\t<string>{}</string>\n", xml_escape(v)));
    }
    out.push_str("</dict>\n</plist>\n");
    out
}

/// base64 of the plist `{PushCertRequestCSR, PushCertCertificateChain, PushCertSignature}`.
pub fn request_from_parts(csr_der: &[u8], chain_pem: &str, signature: &[u8]) -> String {
    b64(plist_xml(&[
        ("PushCertRequestCSR", &b64(csr_der)),
        ("PushCertCertificateChain", chain_pem),
        ("PushCertSignature", &b64(signature)),
    ])
    .as_bytes())
}

/// A push certificate issued for `key`, with its PEM key.
pub struct PushCert {
    pub issued: IssuedPushCert,
    pub key: PKey<Private>,
}

/// Create a push certificate for the customer key through the portal.
pub fn create_push_cert(sim: &AppleSim, key: &PKey<Private>) -> PushCert {
    let vendor = Vendor::new(sim);
    let request = vendor.request(&csr(key, "Customer").to_der().unwrap());
    let issued = sim.push_portal_create(APPLE_ID, &request).unwrap();
    PushCert {
        issued,
        key: key.clone(),
    }
}

/// A simulator serving DEP and APNs, with one push certificate.
pub struct ApnsWorld {
    pub sim: AppleSim,
    pub running: RunningSim,
    pub cert: PushCert,
}

impl ApnsWorld {
    pub async fn new() -> ApnsWorld {
        let sim = AppleSim::new();
        let cert = create_push_cert(&sim, customer_key());
        let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        ApnsWorld { sim, running, cert }
    }

    pub fn topic(&self) -> &str {
        &self.cert.issued.topic
    }

    pub async fn client(&self) -> Apns {
        Apns::connect(
            &self.running.apns_url,
            &self.sim.apns_ca_pem(),
            Some((&self.cert.issued.certificate_pem, &self.cert.key)),
        )
        .await
        .unwrap()
    }
}

/// An APNs answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub apns_id: Option<String>,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn reason(&self) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()?
            .get("reason")?
            .as_str()
            .map(str::to_owned)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An HTTP/2 APNs client connection (clone it to push concurrently on one connection).
#[derive(Clone)]
pub struct Apns {
    pub sender: SendRequest<Full<Bytes>>,
    pub authority: String,
}

/// Why a connection or request failed, with the whole error chain in the text.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Apns {
    /// TLS (ALPN h2, trusting `ca_pem`, with the client certificate if given), then HTTP/2.
    pub async fn connect(url: &str, ca_pem: &str, client: Option<(&str, &PKey<Private>)>) -> Result<Apns, String> {
        let authority = url.strip_prefix("https://").unwrap().to_owned();
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.cert_store_mut()
            .add_cert(X509::from_pem(ca_pem.as_bytes()).unwrap())
            .unwrap();
        b.set_verify(SslVerifyMode::PEER);
        b.set_alpn_protos(b"\x02h2").unwrap();
        if let Some((cert, key)) = client {
            b.set_certificate(&X509::from_pem(cert.as_bytes()).unwrap()).unwrap();
            b.set_private_key(key).unwrap();
        }
        let connector = b.build();
        let host = authority.rsplit_once(':').unwrap().0;
        let ssl = connector.configure().unwrap().into_ssl(host).unwrap();
        let tcp = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).unwrap();
        let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
        Pin::new(&mut tls)
            .connect()
            .await
            .map_err(|e| format!("TLS: {}", chain(&e)))?;
        let alpn = tls.ssl().selected_alpn_protocol().map(|p| p.to_vec());
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "the server must choose h2");
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP/2: {}", chain(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Apns { sender, authority })
    }

    /// Send a request; `Err` with the error chain if the stream or connection failed.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.authority));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        self.sender
            .ready()
            .await
            .map_err(|e| format!("not ready: {}", chain(&e)))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {}", chain(&e)))?;
        let h = |n: &str| resp.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        let status = resp.status().as_u16();
        let apns_id = h("apns-id");
        let retry_after = h("retry-after");
        let content_type = h("content-type");
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {}", chain(&e)))?
            .to_bytes();
        Ok(Answer {
            status,
            apns_id,
            retry_after,
            content_type,
            body: String::from_utf8(body.to_vec()).unwrap(),
        })
    }

    /// An MDM push: `{"mdm":"<magic>"}` to the token.
    pub async fn push(&mut self, token_hex: &str, magic: &str, headers: &[(&str, &str)]) -> Result<Answer, String> {
        let body = format!(r#"{{"mdm":"{magic}"}}"#);
        self.request("POST", &format!("/3/device/{token_hex}"), headers, body.as_bytes())
            .await
    }
}

/// Connect and push once; the first error's text, or `None` if the push got any answer.
pub async fn try_push(url: &str, ca_pem: &str, client: Option<(&str, &PKey<Private>)>) -> Option<String> {
    let mut c = match Apns::connect(url, ca_pem, client).await {
        Ok(c) => c,
        Err(e) => return Some(e),
    };
    c.push("00", "magic", &[]).await.err()
}
