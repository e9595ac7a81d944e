//! The APNs provider API for MDM, as `api.push.apple.com` serves it: HTTP/2 over TLS with
//! client-certificate authentication and `POST /3/device/<hex token>`. Also the device
//! side: push tokens that simulated devices register and then wait on to be woken with
//! their PushMagic.
//!
//! TLS is mandatory. The server certificate comes from an "APNs server CA" of this
//! simulator ([`AppleSim::apns_ca_pem`]). The client must present a push certificate that
//! the simulator's push certificate portal issued ([`AppleSim::push_portal_create`]); the
//! certificate's subject UID is the connection's topic. The handshake checks the
//! certificate against the simulated clock and the revocation list: an expired
//! certificate is refused with the TLS alert `certificate_expired` (what MDM servers see
//! from Apple as "remote error: tls: expired certificate"), a revoked one with
//! `certificate_revoked`, a missing one or one from another CA with the usual handshake
//! alerts. Requests on a connection opened while the certificate was still good get 403
//! `BadCertificate` once it has expired or been revoked.
//!
//! The request handler holds no lock across an await. Device tokens live in sharded
//! maps, counters are atomics, and the push log is a bounded ring buffer.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{
    AlpnError, Ssl, SslAcceptor, SslMethod, SslOptions, SslSessionCacheMode, SslVerifyMode, select_next_proto,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509VerifyResult};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::catalog::{Rng, hex, os_random};
use crate::pushcert::{CertState, Profile, format_uuid, issue, make_ca, pem_string, public_of, x509_name};
use crate::sim::{AppleSim, lock};
use crate::types::{Endpoint, FaultKind, RetryAfter, SimError};

/// Largest MDM notification payload APNs accepts, in bytes; larger gives 413 `PayloadTooLarge`.
pub const MAX_PAYLOAD: usize = 4096;
/// Capacity of the push log ring buffer ([`AppleSim::pushes`]).
pub const PUSH_LOG_CAPACITY: usize = 100_000;
/// `SETTINGS_MAX_CONCURRENT_STREAMS` the APNs listener announces on each connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 1000;
/// Longest device token accepted, in bytes (Apple's are 32; Apple says not to rely on it).
pub const MAX_TOKEN_BYTES: usize = 100;
/// Shards of the device token map.
const TOKEN_SHARDS: usize = 64;
/// A TLS handshake must finish within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The APNs headers that must not be repeated (else 400 `DuplicateHeaders`).
const APNS_HEADERS: [&str; 6] = [
    "apns-id",
    "apns-topic",
    "apns-push-type",
    "apns-priority",
    "apns-expiration",
    "apns-collapse-id",
];

/// One request to the APNs listener, as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PushRecord {
    /// Simulated time of arrival.
    #[serde(serialize_with = "crate::timefmt::ser")]
    pub time: OffsetDateTime,
    /// The device token from the path: lowercase hex when valid, else as sent (at most
    /// 256 characters); empty when the path had none.
    pub token: String,
    /// The topic of the connection's client certificate.
    pub topic: String,
    /// The `mdm` value of the payload (the device's PushMagic), when the payload was valid.
    pub push_magic: Option<String>,
    /// The `apns-id` answered (the client's, or one APNs made up).
    pub apns_id: String,
    /// HTTP status answered; `None` when the connection was dropped instead.
    pub status: Option<u16>,
    /// The error `reason`, for errors.
    pub reason: Option<String>,
    /// The injected fault applied, if any (its debug form).
    pub fault: Option<String>,
}

/// Counters of the APNs listener since the simulator was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApnsStats {
    /// TLS connections established (handshake completed with a valid client certificate).
    pub connections: u64,
    /// Connections refused or failed during the TLS handshake.
    pub handshake_failures: u64,
    /// Requests received.
    pub requests: u64,
    /// Notifications accepted (200).
    pub delivered: u64,
    /// Requests answered with a 4xx status.
    pub rejected: u64,
    /// Requests answered with a 5xx status (injected faults).
    pub server_errors: u64,
    /// Connections dropped by the `drop_connection` fault.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    handshake_failures: AtomicU64,
    requests: AtomicU64,
    delivered: AtomicU64,
    rejected: AtomicU64,
    server_errors: AtomicU64,
    dropped: AtomicU64,
}

/// What a woken device receives: the latest notification. APNs keeps only the last
/// notification per device, so several pushes before the device looks wake it once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushWake {
    /// The `mdm` value of the payload: the PushMagic the device sent in TokenUpdate.
    pub push_magic: String,
    /// The notification's `apns-id`.
    pub apns_id: String,
    /// Notifications delivered to this token so far, this one included.
    pub delivered: u64,
}

/// The device's end of a push registration: await [`PushReceiver::recv`] to be woken.
#[derive(Debug)]
pub struct PushReceiver {
    rx: watch::Receiver<Option<PushWake>>,
}

impl PushReceiver {
    /// Wait for the next notification (the latest one if several came since the last
    /// call). `None` once the token was unregistered, registered again elsewhere, or the
    /// simulator is gone.
    pub async fn recv(&mut self) -> Option<PushWake> {
        loop {
            self.rx.changed().await.ok()?;
            if let Some(w) = self.rx.borrow_and_update().clone() {
                return Some(w);
            }
        }
    }

    /// The notification that arrived since the last call, if any, without waiting.
    pub fn try_recv(&mut self) -> Option<PushWake> {
        if self.rx.has_changed().unwrap_or(false) {
            self.rx.borrow_and_update().clone()
        } else {
            None
        }
    }
}

/// A device's push registration: its token (what the device sends the MDM server in
/// TokenUpdate) and the receiver it is woken through.
#[derive(Debug)]
pub struct PushRegistration {
    /// The token bytes.
    pub token: Vec<u8>,
    /// The token as lowercase hex, as it appears in `/3/device/<token>`.
    pub token_hex: String,
    /// The topic the token is registered for.
    pub topic: String,
    /// Where the device is woken.
    pub receiver: PushReceiver,
}

enum TokenState {
    Active {
        tx: watch::Sender<Option<PushWake>>,
        delivered: u64,
    },
    Unregistered {
        at_ms: i64,
    },
}

struct TokenEntry {
    topic: Arc<str>,
    state: TokenState,
}

enum Delivery {
    Delivered,
    Unknown,
    OtherTopic,
    Unregistered(i64),
}

/// Device tokens, sharded so concurrent pushes rarely meet on one lock.
struct Tokens {
    shards: Vec<Mutex<HashMap<Box<[u8]>, TokenEntry>>>,
}

impl Tokens {
    fn new() -> Tokens {
        Tokens {
            shards: (0..TOKEN_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, token: &[u8]) -> &Mutex<HashMap<Box<[u8]>, TokenEntry>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        token.hash(&mut h);
        &self.shards[(h.finish() as usize) % TOKEN_SHARDS]
    }

    fn register(&self, token: &[u8], topic: &str) -> watch::Receiver<Option<PushWake>> {
        let (tx, rx) = watch::channel(None);
        let entry = TokenEntry {
            topic: Arc::from(topic),
            state: TokenState::Active { tx, delivered: 0 },
        };
        lock(self.shard(token)).insert(token.into(), entry);
        rx
    }

    /// Mark unregistered; false if the token was never registered.
    fn unregister(&self, token: &[u8], at_ms: i64) -> bool {
        let mut shard = lock(self.shard(token));
        match shard.get_mut(token) {
            Some(e) => {
                if let TokenState::Active { .. } = e.state {
                    e.state = TokenState::Unregistered { at_ms };
                }
                true
            }
            None => false,
        }
    }

    fn deliver(&self, token: &[u8], topic: &str, push_magic: &str, apns_id: &str) -> Delivery {
        let mut shard = lock(self.shard(token));
        let Some(e) = shard.get_mut(token) else {
            return Delivery::Unknown;
        };
        if &*e.topic != topic {
            return Delivery::OtherTopic;
        }
        match &mut e.state {
            TokenState::Unregistered { at_ms } => Delivery::Unregistered(*at_ms),
            TokenState::Active { tx, delivered } => {
                *delivered += 1;
                tx.send_replace(Some(PushWake {
                    push_magic: push_magic.to_owned(),
                    apns_id: apns_id.to_owned(),
                    delivered: *delivered,
                }));
                Delivery::Delivered
            }
        }
    }
}

/// The APNs listener's TLS setup, made on first use.
pub(crate) struct ApnsTls {
    ca_pem: String,
    acceptor: SslAcceptor,
}

impl ApnsTls {
    /// An EC P-256 server CA and a server certificate for `127.0.0.1`, `::1`, `localhost`
    /// and Apple's APNs host names; client certificates must come from `push_ca`.
    fn generate(push_ca: &X509, now: i64) -> Result<ApnsTls, SimError> {
        let crypto = |e: openssl::error::ErrorStack| SimError::Crypto(e.to_string());
        let ec_key = || -> Result<PKey<openssl::pkey::Private>, SimError> {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(crypto)?;
            PKey::from_ec_key(EcKey::generate(&group).map_err(crypto)?).map_err(crypto)
        };
        let ca = make_ca(
            &[
                (Nid::COMMONNAME, "applesim APNs server CA"),
                (Nid::ORGANIZATIONNAME, "applesim"),
                (Nid::COUNTRYNAME, "US"),
            ],
            None,
            ec_key()?,
            now,
        )?;
        let leaf_key = ec_key()?;
        let (leaf, _) = issue(
            &*x509_name(&[
                (Nid::COMMONNAME, "api.push.apple.com"),
                (Nid::ORGANIZATIONNAME, "applesim"),
            ])?,
            &*public_of(&leaf_key)?,
            Some(&ca),
            None,
            now - 86_400,
            now + 20 * 365 * 86_400,
            Profile::TlsServer {
                dns: vec![
                    "localhost".into(),
                    "api.push.apple.com".into(),
                    "api.sandbox.push.apple.com".into(),
                ],
                ips: vec!["127.0.0.1".into(), "::1".into()],
            },
        )?;
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(crypto)?;
        b.set_private_key(&leaf_key).map_err(crypto)?;
        b.set_certificate(&leaf).map_err(crypto)?;
        b.check_private_key().map_err(crypto)?;
        b.set_alpn_select_callback(|_, client| select_next_proto(b"\x02h2", client).ok_or(AlpnError::ALERT_FATAL));
        // Trust the push CA alone (it is an intermediate, hence PARTIAL_CHAIN): certificates
        // of the WWDR CA or of any other CA are refused.
        let mut store = X509StoreBuilder::new().map_err(crypto)?;
        store.add_cert(push_ca.clone()).map_err(crypto)?;
        store.set_flags(X509VerifyFlags::PARTIAL_CHAIN).map_err(crypto)?;
        b.set_verify_cert_store(store.build()).map_err(crypto)?;
        b.verify_param_mut()
            .set_flags(X509VerifyFlags::PARTIAL_CHAIN)
            .map_err(crypto)?;
        b.add_client_ca(push_ca).map_err(crypto)?;
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        // No session resumption: every connection checks its certificate again.
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
        b.set_options(SslOptions::NO_TICKET);
        b.set_session_id_context(b"applesim-apns").map_err(crypto)?;
        Ok(ApnsTls {
            ca_pem: pem_string(&ca.cert)?,
            acceptor: b.build(),
        })
    }
}

/// The APNs part of the simulator state.
pub(crate) struct ApnsState {
    tokens: Tokens,
    log: Mutex<VecDeque<PushRecord>>,
    counters: Counters,
    tls: Mutex<Option<Arc<ApnsTls>>>,
    /// Set when APNs faults may be pending, so requests skip the fault lock otherwise.
    pub faults_pending: AtomicBool,
}

impl ApnsState {
    pub(crate) fn new() -> ApnsState {
        ApnsState {
            tokens: Tokens::new(),
            log: Mutex::new(VecDeque::new()),
            counters: Counters::default(),
            tls: Mutex::new(None),
            faults_pending: AtomicBool::new(false),
        }
    }
}

/// Parse a device token: hex (either case), 1 to [`MAX_TOKEN_BYTES`] bytes.
fn parse_token(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() % 2 != 0 || b.len() > MAX_TOKEN_BYTES * 2 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    b.chunks(2)
        .map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

/// A canonical 8-4-4-4-12 UUID (either case), as `apns-id` must be.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

thread_local! {
    static ID_RNG: RefCell<Rng> = RefCell::new(Rng::from_os());
}

/// A new uppercase UUID for `apns-id` (a fast PRNG: these identify, they do not protect).
fn new_apns_id() -> String {
    let (a, b) = ID_RNG.with(|r| {
        let mut r = r.borrow_mut();
        (r.next_u64(), r.next_u64())
    });
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    format_uuid(bytes, true)
}

/// An APNs answer before rendering.
struct Answer {
    status: u16,
    reason: Option<String>,
    timestamp_ms: Option<i64>,
    retry_after: Option<RetryAfter>,
}

impl Answer {
    fn ok() -> Answer {
        Answer {
            status: 200,
            reason: None,
            timestamp_ms: None,
            retry_after: None,
        }
    }

    fn error(status: u16, reason: &str) -> Answer {
        Answer {
            status,
            reason: Some(reason.to_owned()),
            timestamp_ms: None,
            retry_after: None,
        }
    }

    fn render(&self, apns_id: &str) -> Response<Full<Bytes>> {
        let body = match &self.reason {
            None => Bytes::new(),
            Some(reason) => {
                let v = match self.timestamp_ms {
                    Some(ts) => serde_json::json!({ "reason": reason, "timestamp": ts }),
                    None => serde_json::json!({ "reason": reason }),
                };
                Bytes::from(v.to_string())
            }
        };
        let has_body = !body.is_empty();
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(apns_id) {
            h.insert("apns-id", v);
        }
        if has_body {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(ra) = self.retry_after {
            let v = match ra {
                RetryAfter::Seconds(n) => n.to_string(),
                RetryAfter::HttpDateIn(n) => {
                    httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(n))
                }
                RetryAfter::HttpDate(t) => httpdate::fmt_http_date(t),
            };
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// One established APNs connection.
struct Conn {
    topic: Arc<str>,
    cert: Arc<CertState>,
    /// `drop_connection` fault: close the TCP connection without answering.
    kill: Notify,
    /// `go_away` fault: send GOAWAY and close once the streams in flight are done.
    goaway: Notify,
    /// Becomes true when the connection has ended.
    closed: watch::Sender<bool>,
}

/// Sets `closed` when the connection task ends, however it ends.
struct ClosedGuard(Arc<Conn>);

impl Drop for ClosedGuard {
    fn drop(&mut self) {
        self.0.closed.send_replace(true);
    }
}

/// The header's value if it is present once and is text.
fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<Result<&'a str, ()>> {
    h.get(name).map(|v| v.to_str().map_err(|_| ()))
}

/// Check the request up to (not including) the token registry. Returns the token and the
/// push magic, or the error answer.
async fn check(
    conn: &Conn,
    now_unix: i64,
    parts: &hyper::http::request::Parts,
    body: Incoming,
) -> Result<(Vec<u8>, String), Answer> {
    let path = parts.uri.path();
    let token_text = match path.strip_prefix("/3/device") {
        Some("") => "",
        Some(rest) => match rest.strip_prefix('/') {
            Some(t) => t,
            None => return Err(Answer::error(404, "BadPath")),
        },
        None => return Err(Answer::error(404, "BadPath")),
    };
    if parts.method != Method::POST {
        return Err(Answer::error(405, "MethodNotAllowed"));
    }
    if conn.cert.unusable_at(now_unix).is_some() {
        return Err(Answer::error(403, "BadCertificate"));
    }
    let h = &parts.headers;
    if APNS_HEADERS.iter().any(|n| h.get_all(*n).iter().nth(1).is_some()) {
        return Err(Answer::error(400, "DuplicateHeaders"));
    }
    match header(h, "apns-push-type") {
        None | Some(Ok("mdm")) => {}
        Some(_) => return Err(Answer::error(400, "InvalidPushType")),
    }
    match header(h, "apns-topic") {
        None => {}
        Some(Ok(t)) if t == &*conn.topic => {}
        // A well-formed topic that this certificate does not cover.
        Some(Ok(t)) if !t.is_empty() && t.bytes().all(|c| c.is_ascii_graphic()) => {
            return Err(Answer::error(400, "TopicDisallowed"));
        }
        Some(_) => return Err(Answer::error(400, "BadTopic")),
    }
    match header(h, "apns-id") {
        None => {}
        Some(Ok(id)) if is_uuid(id) => {}
        Some(_) => return Err(Answer::error(400, "BadMessageId")),
    }
    match header(h, "apns-priority") {
        None | Some(Ok("10" | "5" | "1")) => {}
        Some(_) => return Err(Answer::error(400, "BadPriority")),
    }
    match header(h, "apns-expiration") {
        None => {}
        Some(Ok(e)) if !e.is_empty() && e.len() <= 19 && e.bytes().all(|c| c.is_ascii_digit()) => {}
        Some(_) => return Err(Answer::error(400, "BadExpirationDate")),
    }
    if h.get("apns-collapse-id").is_some_and(|v| v.len() > 64) {
        return Err(Answer::error(400, "BadCollapseId"));
    }
    if token_text.is_empty() {
        return Err(Answer::error(400, "MissingDeviceToken"));
    }
    let token = parse_token(token_text).ok_or_else(|| Answer::error(400, "BadDeviceToken"))?;

    let declared = h
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_PAYLOAD as u64) {
        return Err(Answer::error(413, "PayloadTooLarge"));
    }
    let bytes = match Limited::new(body, MAX_PAYLOAD).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Answer::error(413, "PayloadTooLarge"));
        }
        // The client reset the stream; nobody reads this answer.
        Err(_) => return Err(Answer::error(400, "PayloadEmpty")),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Answer::error(400, "PayloadEmpty"));
    }
    let payload: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| Answer::error(400, "BadPayload"))?;
    match payload.get("mdm").and_then(serde_json::Value::as_str) {
        Some(magic) if !magic.is_empty() => Ok((token, magic.to_owned())),
        _ => Err(Answer::error(400, "BadPayload")),
    }
}

/// Serve one request on an APNs connection.
async fn handle(sim: AppleSim, conn: Arc<Conn>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let apns = &sim.inner.apns;
    apns.counters.requests.fetch_add(1, Ordering::Relaxed);
    let now = sim.inner.clock.now();
    let (parts, body) = req.into_parts();
    let sent_id = parts
        .headers
        .get("apns-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_uuid(v));
    let apns_id = match sent_id {
        Some(id) => id.to_owned(),
        None => new_apns_id(),
    };
    let token = match parts.uri.path().strip_prefix("/3/device/") {
        Some(t) => match parse_token(t) {
            Some(bytes) => hex(&bytes, false),
            None => t.chars().take(256).collect(),
        },
        None => String::new(),
    };
    let mut rec = PushRecord {
        time: now,
        token,
        topic: conn.topic.to_string(),
        push_magic: None,
        apns_id,
        status: None,
        reason: None,
        fault: None,
    };

    let answer = 'answer: {
        let fault = if apns.faults_pending.load(Ordering::Relaxed) {
            sim.take_apns_fault()
        } else {
            None
        };
        if let Some(kind) = fault {
            rec.fault = Some(format!("{kind:?}"));
            let retry = |status, reason, retry_after| Answer {
                retry_after,
                ..Answer::error(status, reason)
            };
            match kind {
                FaultKind::Pass => {}
                FaultKind::Slow(d) => tokio::time::sleep(d).await,
                FaultKind::DropConnection => {
                    apns.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    sim.record_push(rec);
                    let mut closed = conn.closed.subscribe();
                    conn.kill.notify_one();
                    // HTTP/2 streams run in their own tasks: wait for the connection to go,
                    // so that this answer is never sent.
                    let _ = tokio::time::timeout(Duration::from_secs(10), closed.wait_for(|c| *c)).await;
                    return Ok(Answer::error(500, "InternalServerError").render(""));
                }
                FaultKind::GoAway => {
                    conn.goaway.notify_one();
                    break 'answer Answer::error(503, "Shutdown");
                }
                FaultKind::TooManyRequests { retry_after } => break 'answer retry(429, "TooManyRequests", retry_after),
                FaultKind::ServiceUnavailable { retry_after } => {
                    break 'answer retry(503, "ServiceUnavailable", retry_after);
                }
                FaultKind::InternalError => break 'answer Answer::error(500, "InternalServerError"),
                FaultKind::Unauthorized
                | FaultKind::Forbidden
                | FaultKind::AccessDenied
                | FaultKind::TermsNotSigned => {
                    break 'answer Answer::error(403, "Forbidden");
                }
                FaultKind::BadRequest(code) => break 'answer Answer::error(400, &code),
            }
        }
        let (token, magic) = match check(&conn, now.unix_timestamp(), &parts, body).await {
            Ok(x) => x,
            Err(a) => break 'answer a,
        };
        let outcome = apns.tokens.deliver(&token, &conn.topic, &magic, &rec.apns_id);
        rec.push_magic = Some(magic);
        match outcome {
            Delivery::Delivered => Answer::ok(),
            Delivery::Unknown => Answer::error(400, "BadDeviceToken"),
            Delivery::OtherTopic => Answer::error(400, "DeviceTokenNotForTopic"),
            Delivery::Unregistered(at_ms) => Answer {
                timestamp_ms: Some(at_ms),
                ..Answer::error(410, "Unregistered")
            },
        }
    };

    let counter = match answer.status {
        200 => &apns.counters.delivered,
        400..=499 => &apns.counters.rejected,
        _ => &apns.counters.server_errors,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let resp = answer.render(&rec.apns_id);
    rec.status = Some(answer.status);
    rec.reason = answer.reason;
    sim.record_push(rec);
    Ok(resp)
}

/// TLS handshake, then HTTP/2 until the client leaves or a fault ends the connection.
async fn serve_connection(sim: AppleSim, tcp: TcpStream) {
    let counters = &sim.inner.apns.counters;
    let tls = match sim.apns_tls().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("APNs listener cannot set up TLS: {e}");
            counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let ssl = match new_ssl(&sim, &tls) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("APNs listener cannot start a TLS session: {e}");
            counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let mut stream = match tokio_openssl::SslStream::new(ssl, tcp) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("APNs listener cannot start a TLS session: {e}");
            counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Pin::new(&mut stream).accept()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!("APNs TLS handshake failed: {e}");
            counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(_) => {
            tracing::debug!("APNs TLS handshake timed out");
            counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    // The verify callback accepted only certificates the portal issued.
    let known = stream.ssl().peer_certificate().and_then(|peer| {
        let serial = peer.serial_number().to_bn().ok()?.to_vec();
        let cert = sim.push_cert_by_serial(&serial)?;
        let topic = peer
            .subject_name()
            .entries_by_nid(Nid::USERID)
            .next()
            .and_then(|e| e.data().to_string().ok())
            .map(Arc::<str>::from)
            .unwrap_or_else(|| cert.topic.clone());
        Some((topic, cert))
    });
    let Some((topic, cert)) = known else {
        counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
        return;
    };
    counters.connections.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn {
        topic,
        cert,
        kill: Notify::new(),
        goaway: Notify::new(),
        closed: watch::Sender::new(false),
    });
    let _closed = ClosedGuard(conn.clone());
    let svc = {
        let sim = sim.clone();
        let conn = conn.clone();
        hyper::service::service_fn(move |req| handle(sim.clone(), conn.clone(), req))
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .initial_connection_window_size(4 * 1024 * 1024)
        .initial_stream_window_size(256 * 1024);
    let served = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(served);
    let mut draining = false;
    loop {
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("APNs connection ended: {e}");
                }
                break;
            }
            // drop_connection: drop the connection and its socket without another frame.
            _ = conn.kill.notified() => break,
            _ = conn.goaway.notified(), if !draining => {
                draining = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A TLS session for one connection: the client certificate is checked against the
/// simulated clock and the portal's revocations.
fn new_ssl(sim: &AppleSim, tls: &ApnsTls) -> Result<Ssl, openssl::error::ErrorStack> {
    let mut ssl = Ssl::new(tls.acceptor.context())?;
    ssl.param_mut().set_time(sim.inner.clock.now().unix_timestamp());
    let sim = sim.clone();
    ssl.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        move |preverified, ctx| {
            if !preverified {
                return false;
            }
            if ctx.error_depth() != 0 {
                return true;
            }
            let state = ctx
                .current_cert()
                .and_then(|c| c.serial_number().to_bn().ok())
                .and_then(|bn| sim.push_cert_by_serial(&bn.to_vec()));
            match state {
                Some(s) if s.revoked.load(Ordering::Relaxed) => {
                    // SAFETY: 23 is X509_V_ERR_CERT_REVOKED, a valid verification error
                    // number; OpenSSL answers it with the `certificate_revoked` alert.
                    ctx.set_error(unsafe { X509VerifyResult::from_raw(23) });
                    false
                }
                Some(_) => true,
                None => {
                    ctx.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
                    false
                }
            }
        },
    );
    Ok(ssl)
}

/// Accept APNs connections until `stopped` changes.
pub(crate) async fn accept_loop(sim: AppleSim, listener: TcpListener, mut stopped: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("APNs accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                conns.spawn(serve_connection(sim.clone(), stream));
                while conns.try_join_next().is_some() {}
            }
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// `https://HOST:PORT` for a bound address.
pub(crate) fn https_url(addr: SocketAddr) -> String {
    format!("https://{}", crate::server::host_port(addr))
}

impl AppleSim {
    /// The APNs TLS setup, made on first use (off the async threads: it generates keys).
    pub(crate) async fn apns_tls(&self) -> Result<Arc<ApnsTls>, SimError> {
        if let Some(t) = lock(&self.inner.apns.tls).clone() {
            return Ok(t);
        }
        let sim = self.clone();
        tokio::task::spawn_blocking(move || sim.apns_tls_blocking())
            .await
            .map_err(|e| SimError::Crypto(format!("APNs TLS setup task failed: {e}")))?
    }

    fn apns_tls_blocking(&self) -> Result<Arc<ApnsTls>, SimError> {
        let mut slot = lock(&self.inner.apns.tls);
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let pki = self.portal_pki()?;
        let tls = Arc::new(ApnsTls::generate(
            &pki.push.cert,
            OffsetDateTime::now_utc().unix_timestamp(),
        )?);
        *slot = Some(tls.clone());
        Ok(tls)
    }

    /// The CA of the APNs listener's server certificate (PEM). APNs clients trust it
    /// instead of the public CAs that sign `api.push.apple.com`. The first call (or the
    /// first APNs connection) makes the keys, which takes a few hundred milliseconds. Empty
    /// (with an error logged) only if OpenSSL failed to make them.
    pub fn apns_ca_pem(&self) -> String {
        match self.apns_tls_blocking() {
            Ok(t) => t.ca_pem.clone(),
            Err(e) => {
                tracing::error!("apns_ca_pem: {e}");
                String::new()
            }
        }
    }

    /// A device registers for remote notifications on `topic` (what an MDM-enrolled device
    /// does with the topic of its MDM payload): a new random 32-byte token, and the
    /// receiver the device is woken through.
    pub fn register_push_token(&self, topic: &str) -> PushRegistration {
        let mut token = vec![0u8; 32];
        os_random(&mut token);
        let rx = self.inner.apns.tokens.register(&token, topic);
        PushRegistration {
            token_hex: hex(&token, false),
            token,
            topic: topic.to_owned(),
            receiver: PushReceiver { rx },
        }
    }

    /// Register a given token (1 to [`MAX_TOKEN_BYTES`] bytes) for `topic`. Registering a
    /// token again replaces its topic and receiver (the old receiver then ends).
    pub fn register_push_token_bytes(&self, topic: &str, token: &[u8]) -> Result<PushRegistration, SimError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(SimError::InvalidPushToken(format!(
                "a token has 1 to {MAX_TOKEN_BYTES} bytes, this one {}",
                token.len()
            )));
        }
        if topic.trim().is_empty() {
            return Err(SimError::Invalid("the topic is empty".into()));
        }
        let rx = self.inner.apns.tokens.register(token, topic);
        Ok(PushRegistration {
            token: token.to_vec(),
            token_hex: hex(token, false),
            topic: topic.to_owned(),
            receiver: PushReceiver { rx },
        })
    }

    /// The device is gone (or the app unregistered): APNs answers pushes to the token with
    /// 410 `Unregistered` and the time of this call (simulated clock, ms since the epoch).
    /// Its receiver ends.
    pub fn unregister_push_token(&self, token_hex: &str) -> Result<(), SimError> {
        let token = parse_token(token_hex.trim()).ok_or_else(|| {
            SimError::InvalidPushToken(format!("{token_hex} is not 1 to {MAX_TOKEN_BYTES} bytes of hex"))
        })?;
        let now = self.inner.clock.now();
        let at_ms = now.unix_timestamp() * 1000 + i64::from(now.millisecond());
        if self.inner.apns.tokens.unregister(&token, at_ms) {
            Ok(())
        } else {
            Err(SimError::UnknownPushToken(token_hex.to_owned()))
        }
    }

    /// Every APNs request received (the newest last, at most [`PUSH_LOG_CAPACITY`]).
    pub fn pushes(&self) -> Vec<PushRecord> {
        lock(&self.inner.apns.log).iter().cloned().collect()
    }

    /// The last `n` APNs requests (the newest last).
    pub fn last_pushes(&self, n: usize) -> Vec<PushRecord> {
        let log = lock(&self.inner.apns.log);
        log.iter().skip(log.len().saturating_sub(n)).cloned().collect()
    }

    /// Forget the recorded APNs requests (the counters stay).
    pub fn clear_pushes(&self) {
        lock(&self.inner.apns.log).clear();
    }

    /// Counters of the APNs listener.
    pub fn apns_stats(&self) -> ApnsStats {
        let c = &self.inner.apns.counters;
        ApnsStats {
            connections: c.connections.load(Ordering::Relaxed),
            handshake_failures: c.handshake_failures.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    fn record_push(&self, r: PushRecord) {
        let mut q = lock(&self.inner.apns.log);
        if q.len() >= PUSH_LOG_CAPACITY {
            q.pop_front();
        }
        q.push_back(r);
    }

    /// The next APNs fault, clearing the "pending" flag when none is left.
    fn take_apns_fault(&self) -> Option<FaultKind> {
        let mut f = lock(&self.inner.faults);
        let q = f.get_mut(Endpoint::Apns.index())?;
        let kind = match q.front_mut() {
            Some(first) => {
                let kind = first.kind.clone();
                first.count = first.count.saturating_sub(1);
                if first.count == 0 {
                    q.pop_front();
                }
                Some(kind)
            }
            None => None,
        };
        if q.is_empty() {
            self.inner.apns.faults_pending.store(false, Ordering::Relaxed);
        }
        kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse() {
        assert_eq!(parse_token("00ffAB"), Some(vec![0, 255, 171]));
        assert_eq!(parse_token(""), None);
        assert_eq!(parse_token("abc"), None);
        assert_eq!(parse_token("zz"), None);
        assert_eq!(
            parse_token(&"ab".repeat(MAX_TOKEN_BYTES)).map(|t| t.len()),
            Some(MAX_TOKEN_BYTES)
        );
        assert_eq!(parse_token(&"ab".repeat(MAX_TOKEN_BYTES + 1)), None);
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-42665544000a"));
        assert!(is_uuid("123E4567-E89B-12D3-A456-42665544000A"));
        assert!(!is_uuid("123e4567e89b12d3a45642665544000a"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42665544000"));
        assert!(!is_uuid("g23e4567-e89b-12d3-a456-42665544000a"));
        let id = new_apns_id();
        assert!(is_uuid(&id));
        assert_ne!(id, new_apns_id());
    }

    #[test]
    fn registry() {
        let t = Tokens::new();
        let mut rx = t.register(b"tok", "topic-a");
        assert!(matches!(t.deliver(b"tok", "topic-b", "m", "id"), Delivery::OtherTopic));
        assert!(matches!(t.deliver(b"other", "topic-a", "m", "id"), Delivery::Unknown));
        assert!(matches!(t.deliver(b"tok", "topic-a", "m1", "id1"), Delivery::Delivered));
        assert!(matches!(t.deliver(b"tok", "topic-a", "m2", "id2"), Delivery::Delivered));
        let latest = rx.borrow_and_update().clone().unwrap();
        assert_eq!((latest.push_magic.as_str(), latest.delivered), ("m2", 2));
        assert!(t.unregister(b"tok", 1234));
        assert!(!t.unregister(b"nope", 1));
        assert!(matches!(
            t.deliver(b"tok", "topic-a", "m", "id"),
            Delivery::Unregistered(1234)
        ));
        assert!(rx.has_changed().is_err(), "the receiver ends on unregistration");
    }
}
