//! The device assignment client against a mock DEP server (axum on 127.0.0.1:0) that checks
//! the OAuth signature on its own, records every request, and can be scripted per endpoint
//! like Apple's depsim (`config_failures.json`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use russet_apple::dep::{
    DepClient, DepConfig, DepError, DeviceStatus, MAX_DEVICES_PER_REQUEST, OAuthCredentials, OpType, Profile,
    oauth_authorization,
};
use serde_json::{Value, json};
use time::macros::datetime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// The mock server
// ---------------------------------------------------------------------------------------------

const CK: &str = "CK_3a8b1f0e9d";
const CS: &str = "CS_sec&ret+1/=";
const AT: &str = "AT_O1234O5678Otok en";
const AS: &str = "AS_acc%ess~secret";
const USER_AGENT: &str = "russet-test/1.0";

#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A canned answer, returned (without checking the session) instead of the default behaviour.
#[derive(Clone, Default)]
struct Scripted {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
    /// Registers this session token as valid and sends it in `X-ADM-Auth-Session`.
    rotate_to: Option<String>,
}

fn reply(status: u16, body: impl Into<String>) -> Scripted {
    Scripted {
        status,
        body: body.into(),
        ..Scripted::default()
    }
}

impl Scripted {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Scripted {
        self.headers.push((name, value.into()));
        self
    }

    fn delay(mut self, delay: Duration) -> Scripted {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct MockState {
    valid_sessions: Mutex<HashSet<String>>,
    sessions_issued: AtomicUsize,
    nonces: Mutex<HashSet<String>>,
    scripts: Mutex<HashMap<(String, String), VecDeque<Scripted>>>,
    requests: Mutex<Vec<Recorded>>,
    session_delay: Mutex<Duration>,
    profiles: Mutex<BTreeMap<String, Value>>,
    oauth_failures: Mutex<Vec<String>>,
}

struct Mock {
    addr: SocketAddr,
    state: Arc<MockState>,
}

impl Mock {
    async fn start() -> Mock {
        let state = Arc::new(MockState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mock { addr, state }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn config(&self) -> DepConfig {
        test_config(self.base_url())
    }

    fn client(&self) -> DepClient {
        DepClient::new(self.config(), credentials()).unwrap()
    }

    fn script(&self, method: &str, path: &str, replies: impl IntoIterator<Item = Scripted>) {
        self.state
            .scripts
            .lock()
            .unwrap()
            .entry((method.to_owned(), path.to_owned()))
            .or_default()
            .extend(replies);
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.requests_to(method, path).len()
    }

    fn clear_scripts(&self) {
        self.state.scripts.lock().unwrap().clear();
    }

    /// Forget every session, as Apple does when one expires.
    fn expire_sessions(&self) {
        self.state.valid_sessions.lock().unwrap().clear();
    }

    fn oauth_failures(&self) -> Vec<String> {
        self.state.oauth_failures.lock().unwrap().clone()
    }
}

fn test_config(base_url: String) -> DepConfig {
    DepConfig {
        base_url,
        user_agent: USER_AGENT.to_owned(),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(10),
    }
}

fn credentials() -> OAuthCredentials {
    OAuthCredentials {
        consumer_key: CK.to_owned(),
        consumer_secret: CS.into(),
        access_token: AT.into(),
        access_secret: AS.into(),
    }
}

fn response(status: u16, headers: &[(&str, String)], body: impl Into<String>) -> Response {
    let mut map = HeaderMap::new();
    map.insert(
        "content-type",
        HeaderValue::from_static("application/json;charset=UTF8"),
    );
    for (name, value) in headers {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    (StatusCode::from_u16(status).unwrap(), map, body.into()).into_response()
}

async fn handle(
    State(st): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers.clone(),
        body: body.to_vec(),
    };
    st.requests.lock().unwrap().push(recorded.clone());

    // A reverse proxy's prefix (see `base_url_with_trailing_slash_and_path_prefix`).
    let route = recorded
        .path
        .strip_prefix("/proxy/t1")
        .unwrap_or(&recorded.path)
        .to_owned();
    let scripted = st
        .scripts
        .lock()
        .unwrap()
        .get_mut(&(recorded.method.clone(), route.clone()))
        .and_then(VecDeque::pop_front);
    if let Some(s) = scripted {
        tokio::time::sleep(s.delay).await;
        let mut extra = s.headers.clone();
        if let Some(token) = &s.rotate_to {
            st.valid_sessions.lock().unwrap().insert(token.clone());
            extra.push(("x-adm-auth-session", token.clone()));
        }
        return response(s.status, &extra, s.body);
    }

    if route == "/session" {
        return session(&st, &recorded).await;
    }
    let session_ok = recorded
        .header("x-adm-auth-session")
        .is_some_and(|s| st.valid_sessions.lock().unwrap().contains(s));
    if !session_ok {
        return response(401, &[], "UNAUTHORIZED");
    }
    match (recorded.method.as_str(), route.as_str()) {
        ("GET", "/account") => response(200, &[], ACCOUNT),
        ("POST", "/server/devices") => fetch(&recorded.json()),
        ("POST", "/devices/sync") => sync(&recorded.json()),
        ("POST", "/devices") => details(&recorded.json()),
        ("POST", "/devices/disown") | ("DELETE", "/profile/devices") => {
            let devices: BTreeMap<String, &str> = serials(&recorded.json())
                .into_iter()
                .map(|s| {
                    let status = if s.starts_with("NA") {
                        "NOT_ACCESSIBLE"
                    } else {
                        "SUCCESS"
                    };
                    (s, status)
                })
                .collect();
            response(200, &[], json!({ "devices": devices }).to_string())
        }
        ("POST", "/profile") => {
            let profile = recorded.json();
            let mut profiles = st.profiles.lock().unwrap();
            let uuid = format!("{:032X}", profiles.len() + 0xC1F1_2309);
            let devices: BTreeMap<String, &str> = serials(&profile).into_iter().map(|s| (s, "SUCCESS")).collect();
            profiles.insert(uuid.clone(), profile);
            response(
                200,
                &[],
                json!({ "profile_uuid": uuid, "devices": devices }).to_string(),
            )
        }
        ("GET", "/profile") => {
            let uuid = recorded
                .query
                .as_deref()
                .and_then(|q| q.strip_prefix("profile_uuid="))
                .unwrap_or_default()
                .to_owned();
            match st.profiles.lock().unwrap().get(&uuid) {
                Some(profile) => {
                    let mut profile = profile.clone();
                    profile["profile_uuid"] = json!(uuid);
                    response(200, &[], profile.to_string())
                }
                None => response(400, &[], "PROFILE_NOT_FOUND"),
            }
        }
        ("POST" | "PUT", "/profile/devices") => {
            let request = recorded.json();
            let mut throttled = false;
            let devices: BTreeMap<String, &str> = serials(&request)
                .into_iter()
                .map(|s| {
                    let status = if s.starts_with("THR") {
                        throttled = true;
                        "THROTTLED"
                    } else if s.starts_with("NA") {
                        "NOT_ACCESSIBLE"
                    } else {
                        "SUCCESS"
                    };
                    (s, status)
                })
                .collect();
            let mut answer = json!({ "profile_uuid": request["profile_uuid"], "devices": devices });
            if throttled {
                answer["retry_after_seconds"] = json!(30);
            }
            response(200, &[], answer.to_string())
        }
        _ => response(405, &[], ""),
    }
}

fn serials(request: &Value) -> Vec<String> {
    request["devices"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn session(st: &MockState, recorded: &Recorded) -> Response {
    let host = recorded.header("host").unwrap_or_default().to_owned();
    let url = format!("http://{}{}", host.to_ascii_lowercase(), recorded.path);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let verdict = match recorded.header("authorization") {
        None => Err("no Authorization header".to_owned()),
        Some(header) => verify_oauth(header, "GET", &url, &[CS, AS], CK, AT, Some(now)).and_then(|nonce| {
            if st.nonces.lock().unwrap().insert(nonce.clone()) {
                Ok(())
            } else {
                Err(format!("nonce {nonce} used twice"))
            }
        }),
    };
    if let Err(problem) = verdict {
        st.oauth_failures.lock().unwrap().push(problem);
        return response(401, &[], "oauth_problem=signature_invalid");
    }
    let delay = *st.session_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let n = st.sessions_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("session-{n}");
    st.valid_sessions.lock().unwrap().insert(token.clone());
    response(200, &[], json!({ "auth_session_token": token }).to_string())
}

const ACCOUNT: &str = r#"{"server_name":"Russet Test","server_uuid":"6e1f0a2c-0000-4000-8000-000000000001",
  "admin_id":"admin@example.com","facilitator_id":"admin@example.com","org_name":"Example Org",
  "org_email":"it@example.com","org_phone":"+1 555 0100","org_address":"1 Infinite Loop",
  "org_id":"1234567","org_id_hash":"abcdef0123456789","org_type":"org","org_version":"v2",
  "urls":[{"uri":"/server/devices","http_method":["POST"],"limit":{"default":1000,"maximum":5000}},
          {"uri":"/devices/sync","http_method":["POST"],"limit":{"default":1000,"maximum":5000}},
          {"uri":"/profile/devices","http_method":["DELETE","POST","PUT"]}],
  "some_future_key":[1,2,3]}"#;

/// Fetch: no cursor → C1 (more to follow) → C2 (done) → EXHAUSTED_CURSOR.
fn fetch(request: &Value) -> Response {
    match request["cursor"].as_str() {
        None => response(
            200,
            &[],
            json!({
                "cursor": "C1", "more_to_follow": true, "fetched_until": "2026-03-01T10:00:00Z",
                "devices": [
                    {"serial_number": "SN1", "model": "iPad Pro", "os": "iPadOS", "device_family": "iPad",
                     "profile_status": "empty", "device_assigned_date": "2026-02-01T08:00:00Z",
                     "device_assigned_by": "it@example.com"},
                    {"serial_number": "SN2", "model": "MacBook Air", "os": "OSX", "device_family": "Mac",
                     "profile_status": "assigned", "profile_uuid": "C1F123098EB5074580041E69883004C3",
                     "profile_assign_time": "2026-02-02T09:00:00Z"}
                ]
            })
            .to_string(),
        ),
        Some("C1") => response(
            200,
            &[],
            json!({"cursor": "C2", "more_to_follow": false, "fetched_until": "2026-03-01T10:00:01Z",
                   "devices": [{"serial_number": "SN3", "model": "iPhone 16"}]})
            .to_string(),
        ),
        Some("C2") => response(400, &[], "EXHAUSTED_CURSOR"),
        Some(_) => response(400, &[], "INVALID_CURSOR"),
    }
}

/// Sync: C2 → a page of changes; OLD → EXPIRED_CURSOR (quoted, depsim style).
fn sync(request: &Value) -> Response {
    match request["cursor"].as_str() {
        Some("C2") => response(
            200,
            &[],
            json!({
                "cursor": "C3", "more_to_follow": false, "fetched_until": "2026-03-02T00:00:00+01:00",
                "a_new_top_level_key": true,
                "devices": [
                    {"serial_number": "SN4", "model": "iPhone 16", "op_type": "added",
                     "op_date": "2026-03-01T11:00:00Z", "device_assigned_date": "2026-03-01T11:00:00Z",
                     "eid": "89049032000000000000000000000001", "imei": ["356789012345678", "356789012345679"],
                     "wifi_mac_address": "a4:83:e7:00:00:01", "bluetooth_mac_address": "a4:83:e7:00:00:02",
                     "is_replacement_device": false, "future_field": {"nested": [1, 2]}},
                    {"serial_number": "SN2", "op_type": "modified", "op_date": "2026-03-01T12:00:00.5Z",
                     "profile_status": "removed"},
                    {"serial_number": "SN1", "op_type": "deleted", "op_date": "not a date",
                     "released_by_replacement": true},
                    {"serial_number": "SN9", "op_type": "teleported", "op_date": "2026-03-01T13:00:00"}
                ]
            })
            .to_string(),
        ),
        Some("OLD") => response(400, &[], "\"EXPIRED_CURSOR\""),
        Some(_) => response(400, &[], "INVALID_CURSOR"),
        None => response(400, &[], "CURSOR_REQUIRED"),
    }
}

fn details(request: &Value) -> Response {
    let devices: BTreeMap<String, Value> = serials(request)
        .into_iter()
        .map(|s| {
            let value = if s.starts_with("NF") {
                json!({"response_status": "NOT_FOUND"})
            } else {
                json!({"serial_number": s, "model": "iPad", "response_status": "SUCCESS"})
            };
            (s, value)
        })
        .collect();
    response(200, &[], json!({ "devices": devices }).to_string())
}

// ---------------------------------------------------------------------------------------------
// An OAuth 1.0a verifier written from RFC 5849, separately from the client's signer
// ---------------------------------------------------------------------------------------------

/// RFC 3986 §2.3 unreserved characters stay; every other byte becomes %XX (RFC 5849 §3.6).
fn rfc5849_encode(s: &str) -> String {
    let mut out = String::new();
    for byte in s.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn rfc5849_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("truncated escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "escape is not UTF-8".to_owned())
}

/// Checks an `Authorization: OAuth …` header (RFC 5849 §3.5.1, §3.4.1, §3.4.2) and returns the
/// nonce. `secrets` = [consumer secret, token secret]. `now` = check the timestamp (±5 min).
fn verify_oauth(
    header: &str,
    method: &str,
    url: &str,
    secrets: &[&str; 2],
    consumer_key: &str,
    token: &str,
    now: Option<u64>,
) -> Result<String, String> {
    let rest = header.strip_prefix("OAuth ").ok_or("not an OAuth header")?;
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for item in rest.split(',') {
        let (name, quoted) = item
            .trim()
            .split_once('=')
            .ok_or_else(|| format!("bad item {item:?}"))?;
        let value = quoted
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("unquoted value in {item:?}"))?;
        if params.insert(rfc5849_decode(name)?, rfc5849_decode(value)?).is_some() {
            return Err(format!("duplicated parameter {name}"));
        }
    }
    let expected_names = [
        "oauth_consumer_key",
        "oauth_nonce",
        "oauth_signature",
        "oauth_signature_method",
        "oauth_timestamp",
        "oauth_token",
        "oauth_version",
    ];
    let names: Vec<&str> = params.keys().map(String::as_str).filter(|k| *k != "realm").collect();
    if names != expected_names {
        return Err(format!("parameters {names:?}"));
    }
    if params["oauth_signature_method"] != "HMAC-SHA1" || params["oauth_version"] != "1.0" {
        return Err("wrong signature method or version".to_owned());
    }
    if params["oauth_consumer_key"] != consumer_key || params["oauth_token"] != token {
        return Err("unknown consumer key or token".to_owned());
    }
    let timestamp: u64 = params["oauth_timestamp"].parse().map_err(|_| "bad timestamp")?;
    if let Some(now) = now {
        if timestamp.abs_diff(now) > 300 {
            return Err(format!("timestamp {timestamp} is not within 5 minutes of {now}"));
        }
    }
    if params["oauth_nonce"].is_empty() {
        return Err("empty nonce".to_owned());
    }
    // §3.4.1.3.2: encode names and values, sort, join.
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| *k != "oauth_signature" && *k != "realm")
        .map(|(k, v)| (rfc5849_encode(k), rfc5849_encode(v)))
        .collect();
    pairs.sort();
    let normalized: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    // §3.4.1.2: the URL here is already lower-case, without default port and query.
    let base = format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        rfc5849_encode(url),
        rfc5849_encode(&normalized.join("&"))
    );
    // §3.4.2.
    let key = format!("{}&{}", rfc5849_encode(secrets[0]), rfc5849_encode(secrets[1]));
    let pkey = openssl::pkey::PKey::hmac(key.as_bytes()).unwrap();
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha1(), &pkey).unwrap();
    signer.update(base.as_bytes()).unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec().unwrap());
    if params["oauth_signature"] != expected {
        return Err(format!("signature {} is not {expected}", params["oauth_signature"]));
    }
    Ok(params["oauth_nonce"].clone())
}

#[test]
fn verifier_accepts_the_research_vector_and_rejects_tampering() {
    let header = "OAuth oauth_consumer_key=\"CK_test\", oauth_nonce=\"8a3941c71673f50c\", \
                  oauth_signature=\"BO8c2rfUPO55EQCCIPZ9Doci1Bc%3D\", oauth_signature_method=\"HMAC-SHA1\", \
                  oauth_timestamp=\"1795455974\", oauth_token=\"AT_tok\", oauth_version=\"1.0\"";
    let url = "http://127.0.0.1:18080/session";
    let secrets = ["CS_secret&x", "AS_secret+y"];
    assert_eq!(
        verify_oauth(header, "GET", url, &secrets, "CK_test", "AT_tok", None).unwrap(),
        "8a3941c71673f50c"
    );
    let tampered = header.replace("1795455974", "1795455975");
    assert!(verify_oauth(&tampered, "GET", url, &secrets, "CK_test", "AT_tok", None).is_err());
    assert!(
        verify_oauth(
            header,
            "GET",
            url,
            &["CS_secret&x", "AS_secret+z"],
            "CK_test",
            "AT_tok",
            None
        )
        .is_err()
    );
    assert!(
        verify_oauth(
            header,
            "GET",
            "http://127.0.0.1:18081/session",
            &secrets,
            "CK_test",
            "AT_tok",
            None
        )
        .is_err()
    );
}

#[test]
fn client_signer_matches_the_independent_verifier() {
    let creds = credentials();
    for (url, signed_url) in [
        ("http://127.0.0.1:8080/session", "http://127.0.0.1:8080/session"),
        (
            "HTTPS://MDMEnrollment.Apple.com:443/session",
            "https://mdmenrollment.apple.com/session",
        ),
        (
            "http://Example.COM:80/proxy/t1/session",
            "http://example.com/proxy/t1/session",
        ),
    ] {
        let header = oauth_authorization("GET", url, &creds, "nonce with spaces&symbols", 1_700_000_000).unwrap();
        verify_oauth(&header, "GET", signed_url, &[CS, AS], CK, AT, None).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions and headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn session_is_obtained_once_and_every_request_has_the_headers() {
    let mock = Mock::start().await;
    let client = mock.client();
    let account = client.account().await.unwrap();
    let page = client.fetch_devices(None, 100).await.unwrap();
    let clone = client.clone();
    clone.account().await.unwrap();

    assert_eq!(account.org_name.as_deref(), Some("Example Org"));
    assert_eq!(account.admin_id.as_deref(), Some("admin@example.com"));
    assert_eq!(account.org_version.as_deref(), Some("v2"));
    assert_eq!(account.urls.len(), 3);
    assert_eq!(account.urls[2].http_method, ["DELETE", "POST", "PUT"]);
    assert_eq!(account.page_limit("/server/devices"), Some(5000));
    assert_eq!(page.devices.len(), 2);

    assert!(mock.oauth_failures().is_empty(), "{:?}", mock.oauth_failures());
    assert_eq!(mock.count("GET", "/session"), 1);
    let requests = mock.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests {
        assert_eq!(r.header("user-agent"), Some(USER_AGENT), "{r:?}");
        assert_eq!(r.header("x-server-protocol-version"), Some("10"));
        assert_eq!(r.header("content-type"), Some("application/json;charset=UTF8"));
        assert_eq!(r.header("accept"), Some("application/json"));
        if r.path == "/session" {
            assert_eq!(r.method, "GET");
            assert!(
                r.header("authorization")
                    .unwrap()
                    .starts_with("OAuth oauth_consumer_key=")
            );
            assert_eq!(r.header("x-adm-auth-session"), None);
            assert!(r.body.is_empty());
        } else {
            assert_eq!(r.header("x-adm-auth-session"), Some("session-1"));
            assert_eq!(r.header("authorization"), None);
        }
    }
}

#[tokio::test]
async fn expired_session_is_renewed_once_and_the_request_replayed() {
    let mock = Mock::start().await;
    let client = mock.client();
    client.fetch_devices(None, 10).await.unwrap();
    mock.expire_sessions();
    let page = client.fetch_devices(Some("C1"), 10).await.unwrap();
    assert_eq!(page.cursor, "C2");

    assert_eq!(mock.count("GET", "/session"), 2);
    let fetches = mock.requests_to("POST", "/server/devices");
    assert_eq!(fetches.len(), 3);
    assert_eq!(fetches[1].header("x-adm-auth-session"), Some("session-1"));
    assert_eq!(fetches[2].header("x-adm-auth-session"), Some("session-2"));
    // The body was replayed unchanged.
    assert_eq!(fetches[1].body, fetches[2].body);
    assert_eq!(fetches[2].json(), json!({"cursor": "C1", "limit": 10}));
}

#[tokio::test]
async fn forbidden_403_also_renews_the_session() {
    let mock = Mock::start().await;
    mock.script("GET", "/account", [reply(403, "\"FORBIDDEN\"")]);
    let client = mock.client();
    client.account().await.unwrap();
    assert_eq!(mock.count("GET", "/session"), 2);
    let accounts = mock.requests_to("GET", "/account");
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[1].header("x-adm-auth-session"), Some("session-2"));
}

#[tokio::test]
async fn still_refused_after_one_renewal_is_unauthorized() {
    let mock = Mock::start().await;
    mock.script(
        "GET",
        "/account",
        [reply(401, "UNAUTHORIZED"), reply(401, "UNAUTHORIZED"), reply(401, "")],
    );
    let err = mock.client().account().await.unwrap_err();
    assert!(matches!(err, DepError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("download a new server token"), "{err}");
    assert_eq!(mock.count("GET", "/session"), 2);
    assert_eq!(mock.count("GET", "/account"), 2);
}

#[tokio::test]
async fn terms_not_signed_is_returned_without_renewing() {
    let mock = Mock::start().await;
    mock.script(
        "GET",
        "/account",
        [reply(403, "T_C_NOT_SIGNED"), reply(403, "T_C_NOT_SIGNED")],
    );
    let err = mock.client().account().await.unwrap_err();
    assert_eq!(err, DepError::TermsNotSigned);
    assert!(err.is_terms_not_signed() && !err.is_transient());
    assert_eq!(err.code(), Some("T_C_NOT_SIGNED"));
    assert!(err.to_string().contains("accept the new terms and conditions"));
    assert_eq!(mock.count("GET", "/session"), 1);
    assert_eq!(mock.count("GET", "/account"), 1);
}

#[tokio::test]
async fn terms_not_signed_on_session() {
    let mock = Mock::start().await;
    mock.script("GET", "/session", [reply(403, r#"{"code":"T_C_NOT_SIGNED"}"#)]);
    let err = mock.client().account().await.unwrap_err();
    assert_eq!(err, DepError::TermsNotSigned);
    assert_eq!(mock.count("GET", "/session"), 1);
    assert_eq!(mock.count("GET", "/account"), 0);
}

#[tokio::test]
async fn access_denied_is_returned_without_renewing() {
    let mock = Mock::start().await;
    mock.script(
        "POST",
        "/devices/sync",
        [reply(403, "ACCESS_DENIED"), reply(403, "ACCESS_DENIED")],
    );
    let err = mock.client().sync_devices("C2", 100).await.unwrap_err();
    assert_eq!(err, DepError::AccessDenied);
    assert_eq!(err.code(), Some("ACCESS_DENIED"));
    assert!(err.to_string().contains("download a new server token"));
    assert_eq!(mock.count("GET", "/session"), 1);
    assert_eq!(mock.count("POST", "/devices/sync"), 1);

    let mock = Mock::start().await;
    mock.script("GET", "/session", [reply(403, "ACCESS_DENIED")]);
    assert_eq!(mock.client().account().await.unwrap_err(), DepError::AccessDenied);
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized() {
    let mock = Mock::start().await;
    let mut creds = credentials();
    creds.access_secret = "AS_not-the-right-one".into();
    let client = DepClient::new(mock.config(), creds).unwrap();
    let err = client.account().await.unwrap_err();
    assert!(
        matches!(&err, DepError::Unauthorized { detail } if detail.contains("signature_invalid")),
        "{err:?}"
    );
    // The mock's own verifier refused it, once: 401 is not retried on /session.
    assert_eq!(mock.oauth_failures().len(), 1, "{:?}", mock.oauth_failures());
    assert!(mock.oauth_failures()[0].contains("signature"));
    assert_eq!(mock.count("GET", "/session"), 1);
    assert_eq!(mock.count("GET", "/account"), 0);
}

#[tokio::test]
async fn empty_session_token_is_an_error() {
    let mock = Mock::start().await;
    mock.script(
        "GET",
        "/session",
        [reply(200, r#"{"auth_session_token":""}"#), reply(200, "[]")],
    );
    let client = mock.client();
    let err = client.account().await.unwrap_err();
    assert!(matches!(err, DepError::Decode { .. }), "{err:?}");
    let err = client.account().await.unwrap_err();
    assert!(matches!(err, DepError::Decode { .. }), "{err:?}");
    // A working /session afterwards gives a session: failures were not cached.
    client.account().await.unwrap();
    assert_eq!(mock.count("GET", "/session"), 3);
}

#[tokio::test]
async fn session_rotated_by_a_response_header_is_used() {
    let mock = Mock::start().await;
    mock.script(
        "GET",
        "/account",
        [Scripted {
            status: 200,
            body: ACCOUNT.to_owned(),
            rotate_to: Some("rotated-session".to_owned()),
            ..Scripted::default()
        }],
    );
    let client = mock.client();
    client.account().await.unwrap();
    client.clone().fetch_devices(None, 5).await.unwrap();
    let fetch = &mock.requests_to("POST", "/server/devices")[0];
    assert_eq!(fetch.header("x-adm-auth-session"), Some("rotated-session"));
    assert_eq!(mock.count("GET", "/session"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_on_clones_share_one_session() {
    let mock = Mock::start().await;
    *mock.state.session_delay.lock().unwrap() = Duration::from_millis(300);
    let client = mock.client();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = client.clone();
        tasks.spawn(async move { c.account().await.map(|a| a.org_name) });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().unwrap().as_deref(), Some("Example Org"));
    }
    assert_eq!(mock.count("GET", "/session"), 1);
    assert_eq!(mock.count("GET", "/account"), 8);

    // All of them refused at once: still one renewal.
    mock.expire_sessions();
    for _ in 0..8 {
        let c = client.clone();
        tasks.spawn(async move { c.account().await.map(|a| a.org_name) });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(mock.count("GET", "/session"), 2);
}

// ---------------------------------------------------------------------------------------------
// Fetch, sync and error bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fetch_until_exhausted_then_sync() {
    let mock = Mock::start().await;
    let client = mock.client();

    let first = client.fetch_devices(None, 5000).await.unwrap();
    assert_eq!(first.cursor, "C1");
    assert!(first.more_to_follow);
    assert_eq!(first.fetched_until, Some(datetime!(2026-03-01 10:00:00 UTC)));
    assert_eq!(first.devices.len(), 2);
    let sn2 = &first.devices[1];
    assert_eq!(sn2.serial_number, "SN2");
    assert_eq!(sn2.profile_status.as_deref(), Some("assigned"));
    assert_eq!(sn2.profile_uuid.as_deref(), Some("C1F123098EB5074580041E69883004C3"));
    assert_eq!(sn2.profile_assign_time, Some(datetime!(2026-02-02 09:00:00 UTC)));
    assert_eq!(
        first.devices[0].device_assigned_date,
        Some(datetime!(2026-02-01 08:00:00 UTC))
    );
    assert_eq!(first.devices[0].op_type, None);

    let second = client.fetch_devices(Some(&first.cursor), 0).await.unwrap();
    assert_eq!(second.cursor, "C2");
    assert!(!second.more_to_follow);

    let err = client.fetch_devices(Some(&second.cursor), 100).await.unwrap_err();
    assert!(err.is_exhausted_cursor(), "{err:?}");
    assert!(!err.is_cursor_reset() && !err.is_transient());
    assert_eq!(err.code(), Some("EXHAUSTED_CURSOR"));
    assert_eq!(err.status(), Some(400));

    let bodies: Vec<Value> = mock
        .requests_to("POST", "/server/devices")
        .iter()
        .map(Recorded::json)
        .collect();
    assert_eq!(
        bodies,
        [
            json!({"limit": 1000}),
            json!({"cursor": "C1", "limit": 1}),
            json!({"cursor": "C2", "limit": 100})
        ]
    );

    let sync = client.sync_devices(&second.cursor, 200).await.unwrap();
    assert_eq!(sync.cursor, "C3");
    assert_eq!(sync.fetched_until, Some(datetime!(2026-03-01 23:00:00 UTC)));
    let ops: Vec<(&str, Option<OpType>)> = sync
        .devices
        .iter()
        .map(|d| (d.serial_number.as_str(), d.op_type.clone()))
        .collect();
    assert_eq!(
        ops,
        [
            ("SN4", Some(OpType::Added)),
            ("SN2", Some(OpType::Modified)),
            ("SN1", Some(OpType::Deleted)),
            ("SN9", Some(OpType::Other("teleported".to_owned())))
        ]
    );
    let added = &sync.devices[0];
    assert_eq!(added.op_date, Some(datetime!(2026-03-01 11:00:00 UTC)));
    assert_eq!(added.eid.as_deref(), Some("89049032000000000000000000000001"));
    assert_eq!(
        added.imei.as_deref(),
        Some(&["356789012345678".to_owned(), "356789012345679".to_owned()][..])
    );
    assert_eq!(added.wifi_mac_address.as_deref(), Some("a4:83:e7:00:00:01"));
    assert_eq!(added.bluetooth_mac_address.as_deref(), Some("a4:83:e7:00:00:02"));
    assert_eq!(added.is_replacement_device, Some(false));
    assert_eq!(added.extra.get("future_field"), Some(&json!({"nested": [1, 2]})));
    assert_eq!(sync.devices[1].op_date, Some(datetime!(2026-03-01 12:00:00.5 UTC)));
    // An unparsable time does not fail the page.
    assert_eq!(sync.devices[2].op_date, None);
    assert_eq!(sync.devices[2].released_by_replacement, Some(true));
    assert_eq!(sync.devices[3].op_date, Some(datetime!(2026-03-01 13:00:00 UTC)));
    assert_eq!(
        mock.requests_to("POST", "/devices/sync")[0].json(),
        json!({"cursor": "C2", "limit": 200})
    );

    let err = client.sync_devices("OLD", 100).await.unwrap_err();
    assert!(err.is_cursor_reset(), "{err:?}");
    assert_eq!(err.code(), Some("EXPIRED_CURSOR"));
}

#[tokio::test]
async fn error_bodies_bare_quoted_and_json_give_the_same_code() {
    let mock = Mock::start().await;
    let bodies = [
        "INVALID_CURSOR",
        "\"INVALID_CURSOR\"",
        r#"{"code":"INVALID_CURSOR"}"#,
        r#"{"error":"INVALID_CURSOR"}"#,
        "INVALID_CURSOR\n",
    ];
    mock.script("POST", "/devices/sync", bodies.iter().map(|b| reply(400, *b)));
    let client = mock.client();
    for body in bodies {
        let err = client.sync_devices("C2", 100).await.unwrap_err();
        assert_eq!(err.code(), Some("INVALID_CURSOR"), "{body:?}: {err:?}");
        assert!(err.is_cursor_reset());
        match &err {
            DepError::Api { status, body: kept, .. } => {
                assert_eq!(*status, 400);
                assert_eq!(kept, body);
            }
            other => panic!("{other:?}"),
        }
    }
    // 4xx are never retried.
    assert_eq!(mock.count("POST", "/devices/sync"), bodies.len());
}

#[tokio::test]
async fn undecodable_success_is_a_decode_error() {
    let mock = Mock::start().await;
    mock.script(
        "POST",
        "/server/devices",
        [reply(200, "<html>maintenance</html>"), reply(200, r#"{"devices":[]}"#)],
    );
    let client = mock.client();
    for _ in 0..2 {
        let err = client.fetch_devices(None, 10).await.unwrap_err();
        assert!(matches!(err, DepError::Decode { .. }), "{err:?}");
    }
    assert_eq!(mock.count("POST", "/server/devices"), 2);
}

// ---------------------------------------------------------------------------------------------
// Retries, Retry-After, timeouts, dropped connections
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let mock = Mock::start().await;
    mock.script(
        "GET",
        "/account",
        [reply(429, "TOO_MANY_REQUESTS").header("retry-after", "1")],
    );
    let client = mock.client();
    client.account().await.unwrap(); // session first, so only the retry is timed
    mock.script(
        "GET",
        "/account",
        [reply(429, "TOO_MANY_REQUESTS").header("retry-after", "1")],
    );
    let started = Instant::now();
    client.account().await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(mock.count("GET", "/account"), 4);
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let mock = Mock::start().await;
    let client = mock.client();
    client.account().await.unwrap();
    // HTTP-dates have whole seconds: now + 2 s is 1–2 s away.
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    mock.script("GET", "/account", [reply(503, "").header("retry-after", date)]);
    let started = Instant::now();
    client.account().await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    assert_eq!(mock.count("GET", "/account"), 3);
}

#[tokio::test]
async fn too_long_retry_after_is_returned_at_once() {
    let mock = Mock::start().await;
    let client = mock.client();
    client.account().await.unwrap();
    mock.script("GET", "/account", [reply(429, "").header("retry-after", "3600")]);
    let started = Instant::now();
    let err = client.account().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(
        err,
        DepError::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        }
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert!(err.is_transient());

    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(7200));
    mock.script("GET", "/account", [reply(503, "").header("retry-after", date)]);
    let err = client.account().await.unwrap_err();
    assert!(
        matches!(err, DepError::ServerError { status: 503, retry_after: Some(d) } if d > Duration::from_secs(7000))
    );
    assert_eq!(mock.count("GET", "/account"), 3);
}

#[tokio::test]
async fn server_errors_then_success_recover() {
    let mock = Mock::start().await;
    mock.script("GET", "/account", [reply(503, ""), reply(502, "Bad Gateway")]);
    mock.script("GET", "/session", [reply(500, "")]);
    let started = Instant::now();
    let account = mock.client().account().await.unwrap();
    assert_eq!(account.server_name.as_deref(), Some("Russet Test"));
    assert_eq!(mock.count("GET", "/session"), 2);
    assert_eq!(mock.count("GET", "/account"), 3);
    // Without Retry-After the backoff is short (at most 50 ms per retry here).
    assert!(started.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn retries_are_bounded() {
    let mock = Mock::start().await;
    let mut config = mock.config();
    config.max_retries = 2;
    config.backoff_base = Duration::from_millis(100);
    config.backoff_max = Duration::from_millis(150);
    let client = DepClient::new(config, credentials()).unwrap();
    client.account().await.unwrap();

    mock.script("GET", "/account", (0..10).map(|_| reply(500, "")));
    let started = Instant::now();
    let err = client.account().await.unwrap_err();
    assert_eq!(
        err,
        DepError::ServerError {
            status: 500,
            retry_after: None
        }
    );
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mock.count("GET", "/account"), 1 + 3);

    mock.clear_scripts();
    mock.script("GET", "/account", (0..10).map(|_| reply(429, "")));
    let err = client.account().await.unwrap_err();
    assert_eq!(err, DepError::RateLimited { retry_after: None });
    assert_eq!(mock.count("GET", "/account"), 1 + 3 + 3);

    // Retry-After within the limit, but no retries left: returned with the value.
    let mut config = mock.config();
    config.max_retries = 0;
    let client = DepClient::new(config, credentials()).unwrap();
    mock.clear_scripts();
    mock.script("GET", "/account", [reply(429, "").header("retry-after", "2")]);
    let started = Instant::now();
    let err = client.account().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn request_timeout_is_a_transport_error_after_retries() {
    let mock = Mock::start().await;
    let mut config = mock.config();
    config.request_timeout = Duration::from_millis(300);
    config.max_retries = 1;
    let client = DepClient::new(config, credentials()).unwrap();
    client.account().await.unwrap();
    mock.script(
        "GET",
        "/account",
        (0..2).map(|_| reply(200, ACCOUNT).delay(Duration::from_secs(3))),
    );
    let started = Instant::now();
    let err = client.account().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, DepError::Transport { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("request timeout"), "{err}");
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    assert_eq!(mock.count("GET", "/account"), 3);
}

/// A bare-bones HTTP/1.1 server that closes the connection without answering for the
/// requests whose index is in `drop`.
async fn raw_server(drop: &'static [usize]) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let counter = Arc::new(AtomicUsize::new(0));
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break pos + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buffer.len() < head_end + length {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let request_line = head.lines().next().unwrap_or_default().to_owned();
                let index = counter.fetch_add(1, Ordering::SeqCst);
                log.lock().unwrap().push(request_line.clone());
                if drop.contains(&index) {
                    let _ = stream.shutdown().await;
                    return;
                }
                let body = if request_line.contains("/session") {
                    r#"{"auth_session_token":"raw-session"}"#
                } else {
                    r#"{"org_name":"Raw Org"}"#
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn dropped_connection_is_retried() {
    // Request 0 is /session, 1 the first /account (dropped), 2 the retry.
    let (addr, seen) = raw_server(&[1]).await;
    let client = DepClient::new(test_config(format!("http://{addr}")), credentials()).unwrap();
    let account = client.account().await.unwrap();
    assert_eq!(account.org_name.as_deref(), Some("Raw Org"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].starts_with("GET /session "));
    assert!(seen[1].starts_with("GET /account ") && seen[2].starts_with("GET /account "));
}

#[tokio::test]
async fn connection_always_dropped_gives_a_transport_error() {
    let (addr, seen) = raw_server(&[0, 1, 2, 3, 4, 5, 6, 7]).await;
    let client = DepClient::new(test_config(format!("http://{addr}")), credentials()).unwrap();
    let err = client.account().await.unwrap_err();
    assert!(matches!(err, DepError::Transport { .. }), "{err:?}");
    // /session tried 1 + max_retries times.
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn connection_refused_gives_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = DepClient::new(test_config(format!("http://{addr}")), credentials()).unwrap();
    let err = client.account().await.unwrap_err();
    assert!(
        matches!(&err, DepError::Transport { detail } if detail.contains("connect")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Devices and profiles
// ---------------------------------------------------------------------------------------------

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn assign_with_throttled_devices() {
    let mock = Mock::start().await;
    let client = mock.client();
    let answer = client
        .assign_profile("PROFILE-1", &strings(&["S1", "THR2", "NA3", "THR4"]))
        .await
        .unwrap();
    assert_eq!(answer.profile_uuid, "PROFILE-1");
    assert_eq!(answer.devices["S1"], DeviceStatus::Success);
    assert_eq!(answer.devices["THR2"], DeviceStatus::Throttled);
    assert_eq!(answer.devices["NA3"], DeviceStatus::NotAccessible);
    assert_eq!(answer.retry_after_seconds, Some(30));
    assert_eq!(answer.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(answer.throttled().collect::<Vec<_>>(), ["THR2", "THR4"]);

    let request = &mock.requests_to("POST", "/profile/devices")[0];
    assert_eq!(
        request.json(),
        json!({"profile_uuid": "PROFILE-1", "devices": ["S1", "THR2", "NA3", "THR4"]})
    );

    let answer = client.assign_profile("PROFILE-1", &strings(&["S5"])).await.unwrap();
    assert_eq!(answer.retry_after_seconds, None);
}

#[tokio::test]
async fn more_than_1000_devices_are_refused_locally() {
    let mock = Mock::start().await;
    let client = mock.client();
    let many: Vec<String> = (0..=MAX_DEVICES_PER_REQUEST).map(|i| format!("SN{i:05}")).collect();
    let err = client.assign_profile("P", &many).await.unwrap_err();
    assert_eq!(err, DepError::TooManyDevices { count: 1001 });
    assert!(err.to_string().contains("at most 1000"));
    assert_eq!(
        client.remove_profile(&many).await.unwrap_err(),
        DepError::TooManyDevices { count: 1001 }
    );
    assert!(mock.requests().is_empty());
    // Exactly 1000 is fine.
    let answer = client.assign_profile("P", &many[..1000]).await.unwrap();
    assert_eq!(answer.devices.len(), 1000);
}

#[tokio::test]
async fn define_and_get_profile_round_trip_with_every_field() {
    let mock = Mock::start().await;
    let client = mock.client();
    let profile = Profile {
        profile_name: Some("Russet – Staff iPads".to_owned()),
        url: Some("https://mdm.example.com/enroll?token=a&b=c".to_owned()),
        configuration_web_url: Some("https://mdm.example.com/setup".to_owned()),
        allow_pairing: Some(true),
        is_supervised: Some(true),
        is_mandatory: Some(true),
        is_mdm_removable: Some(false),
        await_device_configured: Some(true),
        auto_advance_setup: Some(false),
        is_multi_user: Some(false),
        is_return_to_service: Some(true),
        do_not_use_profile_from_backup: Some(true),
        anchor_certs: Some(vec!["MIIBszCCAVmgAwIBAgIU".to_owned()]),
        supervising_host_certs: Some(vec!["MIIBtDCCAVqgAwIBAgIU".to_owned()]),
        department: Some("IT".to_owned()),
        support_phone_number: Some("+1 555 0100".to_owned()),
        support_email_address: Some("it@example.com".to_owned()),
        org_magic: Some("913FABBB-0032-4E13-9966-D6BBAC900331".to_owned()),
        language: Some("en".to_owned()),
        region: Some("US".to_owned()),
        skip_setup_items: Some(strings(&["Location", "Restore", "Android", "Siri"])),
        devices: Some(strings(&["SN1", "SN2"])),
        profile_uuid: None,
    };
    let defined = client.define_profile(&profile).await.unwrap();
    assert_eq!(defined.profile_uuid.len(), 32);
    assert_eq!(defined.devices.len(), 2);
    assert!(defined.devices.values().all(DeviceStatus::is_success));

    let sent = mock.requests_to("POST", "/profile")[0].json();
    let keys: Vec<&String> = sent.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 22, "{keys:?}");
    assert_eq!(sent["is_mdm_removable"], json!(false));
    assert_eq!(
        sent["skip_setup_items"],
        json!(["Location", "Restore", "Android", "Siri"])
    );

    let fetched = client.get_profile(&defined.profile_uuid).await.unwrap();
    assert_eq!(
        fetched,
        Profile {
            profile_uuid: Some(defined.profile_uuid.clone()),
            ..profile
        }
    );
    let get = &mock.requests_to("GET", "/profile")[0];
    assert_eq!(
        get.query.as_deref(),
        Some(format!("profile_uuid={}", defined.profile_uuid).as_str())
    );

    let err = client.get_profile("NOPE").await.unwrap_err();
    assert_eq!(err.code(), Some("PROFILE_NOT_FOUND"));
    assert!(err.to_string().contains("defined anew"), "{err}");

    // A minimal profile sends only what is set.
    client
        .define_profile(&Profile {
            profile_name: Some("Minimal".to_owned()),
            url: Some("https://mdm.example.com/enroll".to_owned()),
            ..Profile::default()
        })
        .await
        .unwrap();
    assert_eq!(
        mock.requests_to("POST", "/profile")[1].json(),
        json!({"profile_name": "Minimal", "url": "https://mdm.example.com/enroll"})
    );
}

#[tokio::test]
async fn details_disown_and_remove() {
    let mock = Mock::start().await;
    let client = mock.client();

    let details = client.device_details(&strings(&["SN1", "NF2"])).await.unwrap();
    assert_eq!(details["SN1"].response_status, Some(DeviceStatus::Success));
    assert_eq!(details["SN1"].model.as_deref(), Some("iPad"));
    assert_eq!(details["NF2"].response_status, Some(DeviceStatus::NotFound));
    assert_eq!(details["NF2"].serial_number, "NF2");

    let disowned = client.disown_devices(&strings(&["SN1", "NA2"])).await.unwrap();
    assert_eq!(disowned["SN1"], DeviceStatus::Success);
    assert_eq!(disowned["NA2"], DeviceStatus::NotAccessible);

    let removed = client.remove_profile(&strings(&["SN3"])).await.unwrap();
    assert_eq!(removed["SN3"], DeviceStatus::Success);
    let delete = &mock.requests_to("DELETE", "/profile/devices")[0];
    assert_eq!(delete.json(), json!({"devices": ["SN3"]}));
    assert_eq!(delete.header("content-type"), Some("application/json;charset=UTF8"));

    assert_eq!(
        mock.requests_to("POST", "/devices")[0].json(),
        json!({"devices": ["SN1", "NF2"]})
    );
    assert_eq!(
        mock.requests_to("POST", "/devices/disown")[0].json(),
        json!({"devices": ["SN1", "NA2"]})
    );

    // Empty lists need no request.
    let before = mock.requests().len();
    assert!(client.remove_profile(&[]).await.unwrap().is_empty());
    assert!(client.device_details(&[]).await.unwrap().is_empty());
    assert!(client.disown_devices(&[]).await.unwrap().is_empty());
    assert!(client.assign_profile("P", &[]).await.unwrap().devices.is_empty());
    assert_eq!(mock.requests().len(), before);
}

#[tokio::test]
async fn base_url_with_trailing_slash_and_path_prefix() {
    let mock = Mock::start().await;
    let client = DepClient::new(test_config(format!("{}/", mock.base_url())), credentials()).unwrap();
    client.account().await.unwrap();
    assert_eq!(mock.count("GET", "/session"), 1);
    assert_eq!(mock.count("GET", "/account"), 1);
    assert!(mock.oauth_failures().is_empty());

    // A prefix is kept in the signed URL (the mock rejects the signature otherwise).
    let client = DepClient::new(test_config(format!("{}/proxy/t1/", mock.base_url())), credentials()).unwrap();
    client.account().await.unwrap();
    assert_eq!(mock.count("GET", "/proxy/t1/session"), 1);
    assert_eq!(mock.count("GET", "/proxy/t1/account"), 1);
    assert!(mock.oauth_failures().is_empty(), "{:?}", mock.oauth_failures());
}

// ---------------------------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------------------------

/// Collects the text of every event and span field.
struct Capture(Arc<Mutex<String>>);

struct Visitor<'a>(&'a mut String);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut Visitor(&mut self.0.lock().unwrap()));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Visitor(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap();
        text.push_str(event.metadata().target());
        text.push(' ');
        event.record(&mut Visitor(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn logs_show_requests_but_no_secrets() {
    // A global subscriber: with a thread-local one, callsites first reached by the other tests'
    // threads would be cached as uninteresting. It also sees the other tests' logs, which must
    // not hold secrets either.
    let captured = Arc::new(Mutex::new(String::new()));
    tracing::subscriber::set_global_default(Capture(captured.clone())).unwrap();
    tracing::callsite::rebuild_interest_cache();

    let mock = Mock::start().await;
    mock.script(
        "GET",
        "/account",
        [
            reply(401, "UNAUTHORIZED"),
            Scripted {
                status: 200,
                body: ACCOUNT.to_owned(),
                rotate_to: Some("rotated-secret-session".to_owned()),
                ..Scripted::default()
            },
            reply(503, ""),
        ],
    );
    let client = mock.client();
    client.account().await.unwrap();
    client.account().await.unwrap();
    let _ = client.fetch_devices(None, 10).await;

    let text = captured.lock().unwrap().clone();
    assert!(
        text.contains("path=\"/account\"") || text.contains("path=/account"),
        "{text}"
    );
    assert!(text.contains("status=401"), "{text}");
    assert!(text.contains("status=503"), "{text}");
    assert!(text.contains("latency_ms="), "{text}");
    for secret in [
        CS,
        AS,
        AT,
        "CS_sec",
        "AS_acc",
        "AT_O1234",
        "session-1",
        "session-2",
        "rotated-secret-session",
        "OAuth ",
    ] {
        assert!(!text.contains(secret), "{secret:?} logged:\n{text}");
    }
}
