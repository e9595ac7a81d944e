//! The DEP ("Device Assignment") web API, as `mdmenrollment.apple.com` serves it.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::catalog::random_hex;
use crate::cursor::{Cursor, Phase};
use crate::oauth::{self, OAuthError};
use crate::sim::{AppleSim, Session, lock};
use crate::state::{
    NONE, OP_DELETED, OP_MODIFIED, STATUS_ASSIGNED, STATUS_REMOVED, Snap, State as SimState, op_str, secs, status_str,
};
use crate::types::{DeviceFamily, Endpoint, ErrorStyle, FaultKind, OrgKind, RequestRecord, RetryAfter};

/// Default fetch/sync page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Maximum fetch/sync page size; larger `limit`s are clamped to it.
pub const MAX_LIMIT: usize = 1000;
/// Most serials accepted in one `devices` array; more → 400 `MALFORMED_REQUEST_BODY`.
pub const MAX_SERIALS: usize = 1000;
/// Cursor lifetime (sim time): older → `EXPIRED_CURSOR`.
pub const CURSOR_LIFETIME: time::Duration = time::Duration::days(7);
/// Live sessions kept at most; beyond that, arbitrary ones are forgotten.
const MAX_SESSIONS: usize = 100_000;
/// Largest request body read.
const MAX_BODY: usize = 8 * 1024 * 1024;

const JSON_TYPE: &str = "application/json;charset=UTF8";
const SESSION_HEADER: &str = "x-adm-auth-session";

/// Per-connection switch the `DropConnection` fault uses to close the TCP connection.
#[derive(Clone)]
pub(crate) struct ConnKill(pub Arc<tokio::sync::Notify>);

/// An error answer: status and Apple's code.
#[derive(Debug)]
pub(crate) struct DepError {
    status: StatusCode,
    code: String,
    /// OAuth problem text (sent as the body instead of the code).
    oauth_problem: Option<String>,
    retry_after: Option<RetryAfter>,
}

impl DepError {
    fn new(status: u16, code: &str) -> DepError {
        DepError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code: code.to_owned(),
            oauth_problem: None,
            retry_after: None,
        }
    }

    fn bad(code: &str) -> DepError {
        DepError::new(400, code)
    }

    fn unauthorized() -> DepError {
        DepError::new(401, "UNAUTHORIZED")
    }

    fn oauth(e: OAuthError) -> DepError {
        let status = e.status();
        let mut d = DepError::new(status, if status == 400 { "BAD_REQUEST" } else { "UNAUTHORIZED" });
        d.oauth_problem = Some(e.problem());
        d
    }

    fn render(self, style: ErrorStyle) -> Response {
        let text = self.oauth_problem.clone().unwrap_or_else(|| self.code.clone());
        let (ctype, body) = match style {
            ErrorStyle::Bare => ("text/plain;charset=UTF-8", text),
            ErrorStyle::Quoted => (JSON_TYPE, serde_json::to_string(&text).unwrap_or_default()),
            ErrorStyle::Json => {
                let message = self
                    .oauth_problem
                    .clone()
                    .unwrap_or_else(|| message_for(&self.code).to_owned());
                (JSON_TYPE, json!({"code": self.code, "message": message}).to_string())
            }
        };
        let mut resp = (self.status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        if let Some(ra) = self.retry_after {
            let v = match ra {
                RetryAfter::Seconds(n) => n.to_string(),
                RetryAfter::HttpDateIn(n) => {
                    httpdate::fmt_http_date(std::time::SystemTime::now() + std::time::Duration::from_secs(n))
                }
                RetryAfter::HttpDate(t) => httpdate::fmt_http_date(t),
            };
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

fn message_for(code: &str) -> &'static str {
    match code {
        "UNAUTHORIZED" => "The auth token has expired or is invalid; retry with a new auth token from /session.",
        "FORBIDDEN" => "The auth token is invalid.",
        "ACCESS_DENIED" => "Access denied.",
        "T_C_NOT_SIGNED" => "The organisation has not accepted the latest Terms and Conditions of the program.",
        "TOO_MANY_REQUESTS" => "Too many requests; retry later.",
        "SERVICE_UNAVAILABLE" => "The service is unavailable; retry later.",
        "INTERNAL_SERVER_ERROR" => "Internal server error.",
        "USER_AGENT_MISSING" => "The User-Agent header is missing.",
        "USER_AGENT_INVALID" => "The User-Agent header is invalid.",
        "MALFORMED_REQUEST_BODY" => "The request body is malformed.",
        "CURSOR_REQUIRED" => "A cursor is required.",
        "INVALID_CURSOR" => "The cursor is invalid.",
        "EXHAUSTED_CURSOR" => "The cursor has returned all devices; use it with /devices/sync.",
        "EXPIRED_CURSOR" => "The cursor is older than 7 days.",
        "DEVICE_ID_REQUIRED" => "At least one device serial number is required.",
        "PROFILE_UUID_REQUIRED" => "A profile UUID is required.",
        "PROFILE_NOT_FOUND" => "The profile was not found.",
        "CONFIG_NAME_REQUIRED" => "profile_name is required.",
        "CONFIG_NAME_INVALID" => "profile_name is invalid.",
        "CONFIG_URL_REQUIRED" => "url is required.",
        "CONFIG_URL_INVALID" => "url is invalid.",
        "DEPARTMENT_INVALID" => "department is invalid.",
        "SUPPORT_PHONE_INVALID" => "support_phone_number is invalid.",
        "SUPPORT_EMAIL_INVALID" => "support_email_address is invalid.",
        "MAGIC_INVALID" => "org_magic is invalid.",
        "FLAGS_INVALID" => "is_mdm_removable may be false only for supervised devices.",
        "LOCALE_INVALID" => "language or region is invalid.",
        _ => "Bad request.",
    }
}

fn fault_error(kind: &FaultKind) -> Option<DepError> {
    Some(match kind {
        FaultKind::Unauthorized => DepError::unauthorized(),
        FaultKind::Forbidden => DepError::new(403, "FORBIDDEN"),
        FaultKind::AccessDenied => DepError::new(403, "ACCESS_DENIED"),
        FaultKind::TermsNotSigned => DepError::new(403, "T_C_NOT_SIGNED"),
        FaultKind::TooManyRequests { retry_after } => {
            let mut e = DepError::new(429, "TOO_MANY_REQUESTS");
            e.retry_after = *retry_after;
            e
        }
        FaultKind::ServiceUnavailable { retry_after } => {
            let mut e = DepError::new(503, "SERVICE_UNAVAILABLE");
            e.retry_after = *retry_after;
            e
        }
        FaultKind::InternalError => DepError::new(500, "INTERNAL_SERVER_ERROR"),
        FaultKind::GoAway => DepError::new(503, "SERVICE_UNAVAILABLE"),
        FaultKind::BadRequest(code) => DepError::bad(code),
        FaultKind::Pass | FaultKind::Slow(_) | FaultKind::DropConnection => return None,
    })
}

enum Route {
    Ep(Endpoint),
    WrongMethod,
    NotFound,
}

fn route(method: &Method, path: &str) -> Route {
    let path = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    let m = method.as_str();
    let ep = match (path, m) {
        ("/session", "GET") => Endpoint::Session,
        ("/account", "GET") => Endpoint::Account,
        ("/server/devices", "POST") => Endpoint::FetchDevices,
        ("/devices/sync", "POST") => Endpoint::SyncDevices,
        ("/devices", "POST") => Endpoint::DeviceDetails,
        ("/devices/disown", "POST") => Endpoint::Disown,
        ("/profile", "POST") => Endpoint::DefineProfile,
        ("/profile", "GET") => Endpoint::GetProfile,
        ("/profile/devices", "POST" | "PUT") => Endpoint::AssignProfile,
        ("/profile/devices", "DELETE") => Endpoint::RemoveProfile,
        (
            "/session" | "/account" | "/server/devices" | "/devices/sync" | "/devices" | "/devices/disown" | "/profile"
            | "/profile/devices",
            _,
        ) => return Route::WrongMethod,
        _ => return Route::NotFound,
    };
    Route::Ep(ep)
}

/// What a request carries that the handlers need.
struct Ctx {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    /// Parsed `X-Server-Protocol-Version`; absent or unparsable counts as 1.
    version: u32,
    now: OffsetDateTime,
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn json_ok<T: Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(bytes) => {
            let mut resp = (StatusCode::OK, bytes).into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
            resp
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The fallback handler serving every DEP path.
pub(crate) async fn dep_entry(State(sim): State<AppleSim>, req: Request) -> Response {
    let kill = req.extensions().get::<ConnKill>().cloned();
    let (parts, body) = req.into_parts();
    let now = sim.inner.clock.now();
    let version_raw = header_str(&parts.headers, "x-server-protocol-version").map(str::to_owned);
    let user_agent = header_str(&parts.headers, "user-agent").map(str::to_owned);
    let mut rec = RequestRecord {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        endpoint: None,
        protocol_version: version_raw.clone(),
        user_agent: user_agent.clone(),
        serials: None,
        status: None,
        fault: None,
        time: now,
    };
    let endpoint = match route(&parts.method, parts.uri.path()) {
        Route::Ep(e) => e,
        Route::WrongMethod => {
            rec.status = Some(405);
            sim.record(rec);
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        Route::NotFound => {
            rec.status = Some(404);
            sim.record(rec);
            return StatusCode::NOT_FOUND.into_response();
        }
    };
    rec.endpoint = Some(endpoint);
    let style = sim.error_style();

    let bytes = axum::body::to_bytes(body, MAX_BODY).await.ok();
    // Parsed JSON body: Ok(None) for an empty body, Err(()) for invalid JSON or unreadable.
    let parsed: Result<Option<Value>, ()> = match &bytes {
        None => Err(()),
        Some(b) if b.iter().all(|c| c.is_ascii_whitespace()) => Ok(None),
        Some(b) => serde_json::from_slice::<Value>(b).map(Some).map_err(|_| ()),
    };
    rec.serials = match &parsed {
        Ok(Some(v)) => v.get("devices").and_then(Value::as_array).map(Vec::len),
        _ => None,
    };

    if let Some(kind) = sim.take_fault(endpoint) {
        rec.fault = Some(format!("{kind:?}"));
        match &kind {
            FaultKind::Pass => {}
            FaultKind::Slow(d) => tokio::time::sleep(*d).await,
            FaultKind::DropConnection => {
                sim.record(rec);
                if let Some(k) = kill {
                    k.0.notify_one();
                    // The connection task drops the connection; this future is dropped with it.
                    std::future::pending::<()>().await;
                }
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            other => {
                if let Some(e) = fault_error(other) {
                    let mut resp = e.render(style);
                    if matches!(other, FaultKind::GoAway) {
                        // HTTP/1.1 has no GOAWAY: answer, then hyper closes the connection.
                        resp.headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    rec.status = Some(resp.status().as_u16());
                    sim.record(rec);
                    return resp;
                }
            }
        }
    }

    let version = version_raw
        .as_deref()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(1);
    let ctx = Ctx {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        version,
        now,
    };
    let resp = match sim.handle(endpoint, &ctx, parsed) {
        Ok(r) => r,
        Err(e) => e.render(style),
    };
    rec.status = Some(resp.status().as_u16());
    sim.record(rec);
    resp
}

/// An authenticated session.
struct Auth {
    server: u32,
    token: String,
}

impl AppleSim {
    fn handle(&self, ep: Endpoint, ctx: &Ctx, body: Result<Option<Value>, ()>) -> Result<Response, DepError> {
        match header_str(&ctx.headers, "user-agent") {
            Some(ua) if !ua.trim().is_empty() => {}
            _ => return Err(DepError::bad("USER_AGENT_MISSING")),
        }
        if ep == Endpoint::Session {
            return self.session(ctx);
        }
        let auth = self.authenticate(ctx)?;
        let result = match ep {
            Endpoint::Account => self.account(&auth, ctx),
            Endpoint::GetProfile => self.get_profile(&auth, ctx),
            _ => {
                let body = body.map_err(|_| DepError::bad("MALFORMED_REQUEST_BODY"))?;
                let body = match body {
                    Some(Value::Object(m)) => m,
                    None => serde_json::Map::new(),
                    Some(_) => return Err(DepError::bad("MALFORMED_REQUEST_BODY")),
                };
                match ep {
                    Endpoint::FetchDevices => self.fetch(&auth, ctx, &body),
                    Endpoint::SyncDevices => self.sync(&auth, ctx, &body),
                    Endpoint::DeviceDetails => self.details(&auth, ctx, &body),
                    Endpoint::Disown => self.disown(&auth, ctx, &body),
                    Endpoint::DefineProfile => self.define_profile(&auth, ctx, body),
                    Endpoint::AssignProfile => self.assign_profile(&auth, ctx, &body),
                    _ => self.remove_profile(&auth, ctx, &body),
                }
            }
        };
        let mut resp = result.unwrap_or_else(|e| e.render(self.error_style()));
        if let Some(v) = self
            .count_response(&auth, ctx.now)
            .and_then(|new| HeaderValue::from_str(&new).ok())
        {
            resp.headers_mut().insert(SESSION_HEADER, v);
        }
        Ok(resp)
    }

    /// `GET /session`: OAuth 1.0a, HMAC-SHA1.
    fn session(&self, ctx: &Ctx) -> Result<Response, DepError> {
        let p = oauth::parse_header(header_str(&ctx.headers, "authorization")).map_err(DepError::oauth)?;
        let (server, consumer_secret, access_secret, expiry, org) = {
            let st = self.read();
            let Some(rec) = st.tokens.get(&p.token) else {
                return Err(DepError::oauth(if st.revoked.contains(&p.token) {
                    OAuthError::TokenRevoked
                } else {
                    OAuthError::TokenRejected
                }));
            };
            if rec.creds.consumer_key != p.consumer_key {
                return Err(DepError::oauth(OAuthError::ConsumerKeyUnknown));
            }
            let org = st.servers.get(rec.server as usize).map(|s| s.org).unwrap_or(NONE);
            (
                rec.server,
                rec.creds.consumer_secret.clone(),
                rec.creds.access_secret.clone(),
                rec.creds.access_token_expiry,
                org,
            )
        };
        let host = header_str(&ctx.headers, "host").unwrap_or("localhost");
        let forwarded = header_str(&ctx.headers, "x-forwarded-proto").map(|s| s.trim().to_ascii_lowercase());
        let schemes: Vec<&str> = match forwarded.as_deref() {
            Some("https") => vec!["https"],
            Some("http") => vec!["http"],
            _ => vec!["http", "https"],
        };
        let signed = schemes.iter().any(|scheme| {
            let url = oauth::normalise_url(scheme, host, &ctx.path);
            let base = oauth::base_string(ctx.method.as_str(), &url, &p, ctx.query.as_deref());
            oauth::signature_matches(&p, &base, &consumer_secret, &access_secret)
        });
        if !signed {
            return Err(DepError::oauth(OAuthError::SignatureInvalid));
        }
        if !lock(&self.inner.sessions).use_nonce(&p.token, &p.nonce) {
            return Err(DepError::oauth(OAuthError::NonceUsed));
        }
        if ctx.now >= expiry {
            return Err(DepError::oauth(OAuthError::TokenExpired));
        }
        if self.read().orgs.get(org as usize).is_some_and(|o| o.terms_pending) {
            return Err(DepError::new(403, "T_C_NOT_SIGNED"));
        }
        let lifetime = lock(&self.inner.config).session_lifetime;
        let token = random_hex(16, false);
        {
            let mut s = lock(&self.inner.sessions);
            s.created += 1;
            if s.created % 1024 == 0 || s.map.len() >= MAX_SESSIONS {
                let now = ctx.now;
                s.map.retain(|_, v| v.expires > now);
            }
            if s.map.len() >= MAX_SESSIONS {
                // Too many live sessions (a client looping on /session): forget some.
                let victims: Vec<String> = s.map.keys().take(MAX_SESSIONS / 10).cloned().collect();
                for v in victims {
                    s.map.remove(&v);
                }
            }
            s.map.insert(
                token.clone(),
                Session {
                    server,
                    access_token: p.token.clone(),
                    expires: ctx.now.saturating_add(lifetime),
                    responses: 0,
                },
            );
        }
        Ok(json_ok(&json!({ "auth_session_token": token })))
    }

    fn authenticate(&self, ctx: &Ctx) -> Result<Auth, DepError> {
        let token = header_str(&ctx.headers, SESSION_HEADER)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(DepError::unauthorized)?;
        let (server, access_token) = {
            let mut s = lock(&self.inner.sessions);
            let Some(sess) = s.map.get(token) else {
                return Err(DepError::unauthorized());
            };
            if sess.expires <= ctx.now {
                s.map.remove(token);
                return Err(DepError::unauthorized());
            }
            (sess.server, sess.access_token.clone())
        };
        let st = self.read();
        match st.tokens.get(&access_token) {
            Some(rec) if rec.server == server && rec.creds.access_token_expiry > ctx.now => {}
            _ => return Err(DepError::unauthorized()),
        }
        let org = st.servers.get(server as usize).map(|s| s.org).unwrap_or(NONE);
        if st.orgs.get(org as usize).is_some_and(|o| o.terms_pending) {
            return Err(DepError::new(403, "T_C_NOT_SIGNED"));
        }
        Ok(Auth {
            server,
            token: token.to_owned(),
        })
    }

    /// Count a response for session rotation; returns the new token when it rotates.
    fn count_response(&self, auth: &Auth, now: OffsetDateTime) -> Option<String> {
        let (every, lifetime) = {
            let c = lock(&self.inner.config);
            (c.rotate_every?, c.session_lifetime)
        };
        let mut s = lock(&self.inner.sessions);
        let sess = s.map.get_mut(&auth.token)?;
        sess.responses += 1;
        if sess.responses < every {
            return None;
        }
        let mut sess = s.map.remove(&auth.token)?;
        sess.responses = 0;
        sess.expires = now.saturating_add(lifetime);
        let new = random_hex(16, false);
        s.map.insert(new.clone(), sess);
        Some(new)
    }

    fn account(&self, auth: &Auth, ctx: &Ctx) -> Result<Response, DepError> {
        let st = self.read();
        let server = st
            .servers
            .get(auth.server as usize)
            .ok_or_else(DepError::unauthorized)?;
        let org = st.orgs.get(server.org as usize).ok_or_else(DepError::unauthorized)?;
        let admin = st.strings.get(org.admin_email).to_string();
        let mut v = json!({
            "server_name": server.name,
            "server_uuid": server.uuid,
            "admin_id": admin,
            "facilitator_id": admin,
            "org_name": org.name,
            "org_email": org.email,
            "org_phone": org.phone,
            "org_address": org.address,
        });
        if let (true, Value::Object(m)) = (ctx.version >= 3, &mut v) {
            let page = json!({"default": DEFAULT_LIMIT, "maximum": MAX_LIMIT});
            let batch = json!({"default": MAX_SERIALS, "maximum": MAX_SERIALS});
            m.insert("org_id".into(), json!(org.org_id));
            m.insert("org_id_hash".into(), json!(org.org_id_hash));
            m.insert(
                "org_type".into(),
                json!(if org.kind == OrgKind::Education { "edu" } else { "org" }),
            );
            m.insert("org_version".into(), json!("v2"));
            m.insert(
                "urls".into(),
                json!([
                    {"uri": "/account", "http_method": ["GET"]},
                    {"uri": "/server/devices", "http_method": ["POST"], "limit": page},
                    {"uri": "/devices/sync", "http_method": ["POST"], "limit": page},
                    {"uri": "/devices", "http_method": ["POST"], "limit": batch},
                    {"uri": "/devices/disown", "http_method": ["POST"], "limit": batch},
                    {"uri": "/profile", "http_method": ["POST", "GET"]},
                    {"uri": "/profile/devices", "http_method": ["DELETE", "POST", "PUT"], "limit": batch},
                ]),
            );
        }
        Ok(json_ok(&v))
    }

    fn limit_of(body: &serde_json::Map<String, Value>) -> Result<usize, DepError> {
        match body.get("limit") {
            None | Some(Value::Null) => Ok(DEFAULT_LIMIT),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(l) if l <= 0 => Ok(DEFAULT_LIMIT),
                Some(l) => Ok((l as u64).min(MAX_LIMIT as u64) as usize),
                None => Err(DepError::bad("MALFORMED_REQUEST_BODY")),
            },
            Some(_) => Err(DepError::bad("MALFORMED_REQUEST_BODY")),
        }
    }

    fn cursor_of(body: &serde_json::Map<String, Value>) -> Result<Option<&str>, DepError> {
        match body.get("cursor") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(DepError::bad("MALFORMED_REQUEST_BODY")),
        }
    }

    fn decode_cursor(&self, s: &str, auth: &Auth) -> Result<Cursor, DepError> {
        match self.inner.cursor_key.decode(s) {
            Some(c) if c.server == auth.server => Ok(c),
            _ => Err(DepError::bad("INVALID_CURSOR")),
        }
    }

    fn cursor_expired(c: &Cursor, now: OffsetDateTime) -> bool {
        let issued = OffsetDateTime::from_unix_timestamp_nanos(c.issued_ms as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        now - issued > CURSOR_LIFETIME
    }

    fn issue(&self, mut c: Cursor, now: OffsetDateTime) -> String {
        c.issued_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        self.inner.cursor_key.encode(&c)
    }

    /// `POST /server/devices`.
    fn fetch(&self, auth: &Auth, ctx: &Ctx, body: &serde_json::Map<String, Value>) -> Result<Response, DepError> {
        let limit = Self::limit_of(body)?;
        let cursor = match Self::cursor_of(body)? {
            None => None,
            Some(s) => {
                let c = self.decode_cursor(s, auth)?;
                if c.phase != Phase::Fetching {
                    return Err(DepError::bad("EXHAUSTED_CURSOR"));
                }
                if Self::cursor_expired(&c, ctx.now) {
                    return Err(DepError::bad("EXPIRED_CURSOR"));
                }
                Some(c)
            }
        };
        let mut devices = Vec::with_capacity(limit.min(MAX_LIMIT));
        let (log_pos, more, last) = {
            let st = self.read();
            let server = st
                .servers
                .get(auth.server as usize)
                .ok_or_else(DepError::unauthorized)?;
            let log_pos = match cursor {
                Some(c) if c.log_pos > server.log.len() as u64 => return Err(DepError::bad("INVALID_CURSOR")),
                Some(c) => c.log_pos,
                None => server.log.len() as u64,
            };
            let next = cursor.map(|c| c.next_device).unwrap_or(0);
            let mut it = server.members.range(next..);
            let mut last = None;
            for &id in it.by_ref().take(limit) {
                if let Some(s) = st.snap(id) {
                    devices.push(s);
                }
                last = Some(id);
            }
            (log_pos, it.next().is_some(), last)
        };
        let next_cursor = match (more, last) {
            (true, Some(last)) => Cursor {
                phase: Phase::Fetching,
                server: auth.server,
                log_pos,
                next_device: last.saturating_add(1),
                issued_ms: 0,
            },
            _ => Cursor {
                phase: Phase::FetchDone,
                server: auth.server,
                log_pos,
                next_device: 0,
                issued_ms: 0,
            },
        };
        let out = DevicePage {
            cursor: self.issue(next_cursor, ctx.now),
            fetched_until: ctx.now,
            more_to_follow: more,
            devices: devices.iter().map(|s| DevOut::plain(s, ctx.version)).collect(),
        };
        Ok(json_ok(&out))
    }

    /// `POST /devices/sync`.
    fn sync(&self, auth: &Auth, ctx: &Ctx, body: &serde_json::Map<String, Value>) -> Result<Response, DepError> {
        let limit = Self::limit_of(body)?;
        let c = match Self::cursor_of(body)? {
            None => return Err(DepError::bad("CURSOR_REQUIRED")),
            Some(s) => self.decode_cursor(s, auth)?,
        };
        if Self::cursor_expired(&c, ctx.now) {
            return Err(DepError::bad("EXPIRED_CURSOR"));
        }
        let mut events: Vec<(Snap, u8, u32, bool)> = Vec::with_capacity(limit);
        let (end, more) = {
            let st = self.read();
            let server = st
                .servers
                .get(auth.server as usize)
                .ok_or_else(DepError::unauthorized)?;
            let len = server.log.len() as u64;
            if c.log_pos > len {
                return Err(DepError::bad("INVALID_CURSOR"));
            }
            let start = c.log_pos as usize;
            let end = (start + limit).min(server.log.len());
            for ch in &server.log[start..end] {
                let here = st
                    .devices
                    .get(ch.device as usize)
                    .is_some_and(|d| d.server == auth.server);
                if let Some(s) = st.snap(ch.device) {
                    events.push((s, ch.op, ch.time, ch.op == OP_DELETED || !here));
                }
            }
            (end as u64, (end as u64) < len)
        };
        let next = Cursor {
            phase: Phase::Sync,
            server: auth.server,
            log_pos: end,
            next_device: 0,
            issued_ms: 0,
        };
        let out = DevicePage {
            cursor: self.issue(next, ctx.now),
            fetched_until: ctx.now,
            more_to_follow: more,
            devices: events
                .iter()
                .map(|(s, op, t, strip)| DevOut {
                    op: Some((*op, *t)),
                    strip: *strip,
                    ..DevOut::plain(s, ctx.version)
                })
                .collect(),
        };
        Ok(json_ok(&out))
    }

    /// `POST /devices`.
    fn details(&self, auth: &Auth, ctx: &Ctx, body: &serde_json::Map<String, Value>) -> Result<Response, DepError> {
        let serials = serial_list(body)?;
        let rows: Vec<(String, Option<Snap>)> = {
            let st = self.read();
            serials
                .into_iter()
                .map(|sn| {
                    let snap = st
                        .lookup(&sn)
                        .filter(|&id| st.devices.get(id as usize).is_some_and(|d| d.server == auth.server))
                        .and_then(|id| st.snap(id));
                    (sn, snap)
                })
                .collect()
        };
        let map = OrderedMap(
            rows.iter()
                .map(|(sn, snap)| {
                    let v = match snap {
                        Some(s) => Detail::Found(DevOut {
                            status: Some("SUCCESS"),
                            ..DevOut::plain(s, ctx.version)
                        }),
                        None => Detail::Missing {
                            serial_number: sn,
                            response_status: "NOT_FOUND",
                        },
                    };
                    (sn.as_str(), v)
                })
                .collect(),
        );
        Ok(json_ok(&DevicesResult { devices: map }))
    }

    /// `POST /devices/disown`: the devices leave the organisation.
    fn disown(&self, auth: &Auth, ctx: &Ctx, body: &serde_json::Map<String, Value>) -> Result<Response, DepError> {
        let serials = serial_list(body)?;
        let t = secs(ctx.now);
        let rows: Vec<(String, &'static str)> = {
            let mut st = self.write();
            serials
                .into_iter()
                .map(|sn| {
                    let id = st
                        .lookup(&sn)
                        .filter(|&id| st.devices.get(id as usize).is_some_and(|d| d.server == auth.server));
                    match id {
                        Some(id) => {
                            st.release_one(id, t);
                            (sn, "SUCCESS")
                        }
                        None => (sn, "NOT_ACCESSIBLE"),
                    }
                })
                .collect()
        };
        Ok(json_ok(&DevicesResult {
            devices: OrderedMap(rows.iter().map(|(s, r)| (s.as_str(), *r)).collect()),
        }))
    }

    /// `POST /profile`.
    fn define_profile(
        &self,
        auth: &Auth,
        ctx: &Ctx,
        mut body: serde_json::Map<String, Value>,
    ) -> Result<Response, DepError> {
        validate_profile(&body)?;
        let devices = match body.contains_key("devices") {
            true => Some(serial_list_allow_empty(&body)?),
            false => None,
        };
        body.remove("devices");
        let mut st = self.write();
        let uuid: Arc<str> = loop {
            let u: Arc<str> = Arc::from(random_hex(16, true));
            if !st.profile_by_uuid.contains_key(&u) {
                break u;
            }
        };
        body.insert("profile_uuid".into(), Value::String(uuid.to_string()));
        let idx = st.profiles.len() as u32;
        st.profiles.push(crate::state::Profile {
            server: auth.server,
            uuid: uuid.clone(),
            body: Value::Object(body),
        });
        st.profile_by_uuid.insert(uuid.clone(), idx);
        let (rows, throttled) = match devices {
            Some(d) => assign_devices(&mut st, auth.server, idx, d, ctx),
            None => (Vec::new(), false),
        };
        drop(st);
        Ok(json_ok(&AssignResult {
            profile_uuid: &uuid,
            devices: OrderedMap(rows.iter().map(|(s, r)| (s.as_str(), *r)).collect()),
            retry_after_seconds: throttled.then_some(()).and_then(|_| self.retry_after(auth, ctx)),
        }))
    }

    fn retry_after(&self, auth: &Auth, ctx: &Ctx) -> Option<u32> {
        if ctx.version < 10 {
            return None;
        }
        self.read()
            .servers
            .get(auth.server as usize)?
            .throttle
            .map(|p| p.retry_after_seconds)
    }

    fn find_profile(&self, st: &SimState, auth: &Auth, uuid: &str) -> Result<u32, DepError> {
        match st.profile_by_uuid.get(uuid) {
            Some(&i) if st.profiles.get(i as usize).is_some_and(|p| p.server == auth.server) => Ok(i),
            _ => Err(DepError::new(404, "PROFILE_NOT_FOUND")),
        }
    }

    /// `GET /profile?profile_uuid=…`.
    fn get_profile(&self, auth: &Auth, ctx: &Ctx) -> Result<Response, DepError> {
        let uuid = ctx
            .query
            .as_deref()
            .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "profile_uuid"))
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| DepError::bad("PROFILE_UUID_REQUIRED"))?;
        let st = self.read();
        let i = self.find_profile(&st, auth, &uuid)?;
        let body = st
            .profiles
            .get(i as usize)
            .map(|p| p.body.clone())
            .unwrap_or(Value::Null);
        drop(st);
        Ok(json_ok(&body))
    }

    /// `POST`/`PUT /profile/devices`.
    fn assign_profile(
        &self,
        auth: &Auth,
        ctx: &Ctx,
        body: &serde_json::Map<String, Value>,
    ) -> Result<Response, DepError> {
        let uuid = match body.get("profile_uuid") {
            None | Some(Value::Null) => return Err(DepError::bad("PROFILE_UUID_REQUIRED")),
            Some(Value::String(s)) if s.is_empty() => return Err(DepError::bad("PROFILE_UUID_REQUIRED")),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(DepError::bad("MALFORMED_REQUEST_BODY")),
        };
        let serials = serial_list(body)?;
        let mut st = self.write();
        let idx = self.find_profile(&st, auth, &uuid)?;
        let (rows, throttled) = assign_devices(&mut st, auth.server, idx, serials, ctx);
        drop(st);
        Ok(json_ok(&AssignResult {
            profile_uuid: &uuid,
            devices: OrderedMap(rows.iter().map(|(s, r)| (s.as_str(), *r)).collect()),
            retry_after_seconds: throttled.then_some(()).and_then(|_| self.retry_after(auth, ctx)),
        }))
    }

    /// `DELETE /profile/devices`: `profile_status` becomes `removed`, `profile_uuid` and the
    /// profile times are cleared, and the server gets a `modified` event. A device of the
    /// server without a profile answers `SUCCESS` and changes nothing. `profile_uuid` in the
    /// body is ignored (as nanodep notes Apple does).
    fn remove_profile(
        &self,
        auth: &Auth,
        ctx: &Ctx,
        body: &serde_json::Map<String, Value>,
    ) -> Result<Response, DepError> {
        let serials = serial_list(body)?;
        let t = secs(ctx.now);
        let rows: Vec<(String, &'static str)> = {
            let mut st = self.write();
            serials
                .into_iter()
                .map(|sn| {
                    let id = st
                        .lookup(&sn)
                        .filter(|&id| st.devices.get(id as usize).is_some_and(|d| d.server == auth.server));
                    let Some(id) = id else { return (sn, "NOT_ACCESSIBLE") };
                    let had = st.devices.get(id as usize).is_some_and(|d| d.profile != NONE);
                    if had {
                        if let Some(d) = st.devices.get_mut(id as usize) {
                            d.profile = NONE;
                            d.profile_status = STATUS_REMOVED;
                            d.profile_assign_time = 0;
                            d.profile_push_time = 0;
                        }
                        st.log(auth.server, id, OP_MODIFIED, t);
                    }
                    (sn, "SUCCESS")
                })
                .collect()
        };
        Ok(json_ok(&DevicesResult {
            devices: OrderedMap(rows.iter().map(|(s, r)| (s.as_str(), *r)).collect()),
        }))
    }
}

/// Assign profile `idx` to the serials (per-device results, and whether any was throttled).
fn assign_devices(
    st: &mut SimState,
    server: u32,
    idx: u32,
    serials: Vec<String>,
    ctx: &Ctx,
) -> (Vec<(String, &'static str)>, bool) {
    let t = secs(ctx.now);
    let mut throttled = false;
    let rows = serials
        .into_iter()
        .map(|sn| {
            let id = st
                .lookup(&sn)
                .filter(|&id| st.devices.get(id as usize).is_some_and(|d| d.server == server));
            let Some(id) = id else { return (sn, "NOT_ACCESSIBLE") };
            if !admit(st, server, ctx.now) {
                throttled = true;
                return (sn, if ctx.version >= 9 { "THROTTLED" } else { "FAILED" });
            }
            if let Some(d) = st.devices.get_mut(id as usize) {
                d.profile = idx;
                d.profile_status = STATUS_ASSIGNED;
                d.profile_assign_time = t;
                d.profile_push_time = 0;
            }
            st.log(server, id, OP_MODIFIED, t);
            (sn, "SUCCESS")
        })
        .collect();
    (rows, throttled)
}

/// Take one slot of the server's throttle window; false if the window is full.
fn admit(st: &mut SimState, server: u32, now: OffsetDateTime) -> bool {
    let Some(s) = st.servers.get_mut(server as usize) else {
        return false;
    };
    let Some(p) = s.throttle else { return true };
    let fresh = match s.window_start {
        None => true,
        Some(start) => now >= start.saturating_add(p.window),
    };
    if fresh {
        s.window_start = Some(now);
        s.window_count = 0;
    }
    if s.window_count < p.devices_per_window {
        s.window_count += 1;
        true
    } else {
        false
    }
}

/// The `devices` array: required, non-empty, at most [`MAX_SERIALS`], strings; duplicates
/// are answered once.
fn serial_list(body: &serde_json::Map<String, Value>) -> Result<Vec<String>, DepError> {
    let v = serial_list_allow_empty(body)?;
    if v.is_empty() {
        return Err(DepError::bad("DEVICE_ID_REQUIRED"));
    }
    Ok(v)
}

fn serial_list_allow_empty(body: &serde_json::Map<String, Value>) -> Result<Vec<String>, DepError> {
    let arr = match body.get("devices") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(DepError::bad("MALFORMED_REQUEST_BODY")),
    };
    if arr.len() > MAX_SERIALS {
        return Err(DepError::bad("MALFORMED_REQUEST_BODY"));
    }
    let mut seen = HashSet::with_capacity(arr.len());
    let mut out = Vec::with_capacity(arr.len());
    for v in arr {
        let s = v.as_str().ok_or_else(|| DepError::bad("MALFORMED_REQUEST_BODY"))?;
        if s.is_empty() {
            continue;
        }
        if seen.insert(s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

fn str_field<'a>(
    body: &'a serde_json::Map<String, Value>,
    key: &str,
    invalid: &str,
) -> Result<Option<&'a str>, DepError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DepError::bad(invalid)),
    }
}

fn valid_url(s: &str) -> bool {
    s.len() <= 2000
        && url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

fn valid_email(s: &str) -> bool {
    if s.chars().count() > 250 || s.chars().any(|c| c.is_whitespace()) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty() && !domain.contains('@') && domain.contains('.') && domain.split('.').all(|p| !p.is_empty())
}

/// Apple's define-profile validation, in this order: name, URL, web URL, department, phone,
/// email, magic, flags, locale; then the types of booleans and lists.
fn validate_profile(body: &serde_json::Map<String, Value>) -> Result<(), DepError> {
    match str_field(body, "profile_name", "CONFIG_NAME_INVALID")? {
        None => return Err(DepError::bad("CONFIG_NAME_REQUIRED")),
        Some(s) if s.trim().is_empty() => return Err(DepError::bad("CONFIG_NAME_REQUIRED")),
        Some(s) if s.chars().count() > 125 => return Err(DepError::bad("CONFIG_NAME_INVALID")),
        Some(_) => {}
    }
    match str_field(body, "url", "CONFIG_URL_INVALID")? {
        None => return Err(DepError::bad("CONFIG_URL_REQUIRED")),
        Some(s) if s.trim().is_empty() => return Err(DepError::bad("CONFIG_URL_REQUIRED")),
        Some(s) if !valid_url(s) => return Err(DepError::bad("CONFIG_URL_INVALID")),
        Some(_) => {}
    }
    if str_field(body, "configuration_web_url", "CONFIG_URL_INVALID")?.is_some_and(|s| !s.is_empty() && !valid_url(s)) {
        return Err(DepError::bad("CONFIG_URL_INVALID"));
    }
    if str_field(body, "department", "DEPARTMENT_INVALID")?.is_some_and(|s| s.chars().count() > 125) {
        return Err(DepError::bad("DEPARTMENT_INVALID"));
    }
    if str_field(body, "support_phone_number", "SUPPORT_PHONE_INVALID")?.is_some_and(|s| s.chars().count() > 50) {
        return Err(DepError::bad("SUPPORT_PHONE_INVALID"));
    }
    if str_field(body, "support_email_address", "SUPPORT_EMAIL_INVALID")?
        .is_some_and(|s| !s.is_empty() && !valid_email(s))
    {
        return Err(DepError::bad("SUPPORT_EMAIL_INVALID"));
    }
    if str_field(body, "org_magic", "MAGIC_INVALID")?.is_some_and(|s| s.chars().count() > 256) {
        return Err(DepError::bad("MAGIC_INVALID"));
    }
    const BOOLS: [&str; 9] = [
        "allow_pairing",
        "is_supervised",
        "is_mandatory",
        "is_mdm_removable",
        "await_device_configured",
        "auto_advance_setup",
        "is_multi_user",
        "is_return_to_service",
        "do_not_use_profile_from_backup",
    ];
    for k in BOOLS {
        if !matches!(body.get(k), None | Some(Value::Null) | Some(Value::Bool(_))) {
            return Err(DepError::bad("FLAGS_INVALID"));
        }
    }
    let supervised = body.get("is_supervised").and_then(Value::as_bool).unwrap_or(false);
    if body.get("is_mdm_removable").and_then(Value::as_bool) == Some(false) && !supervised {
        return Err(DepError::bad("FLAGS_INVALID"));
    }
    let letters =
        |s: &str, lo: usize, hi: usize| (lo..=hi).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic());
    if str_field(body, "language", "LOCALE_INVALID")?.is_some_and(|s| !letters(s, 2, 3)) {
        return Err(DepError::bad("LOCALE_INVALID"));
    }
    if str_field(body, "region", "LOCALE_INVALID")?.is_some_and(|s| !letters(s, 2, 2)) {
        return Err(DepError::bad("LOCALE_INVALID"));
    }
    for k in ["anchor_certs", "supervising_host_certs", "skip_setup_items"] {
        match body.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
            Some(_) => return Err(DepError::bad("MALFORMED_REQUEST_BODY")),
        }
    }
    Ok(())
}

/// A JSON object with keys in insertion order.
struct OrderedMap<'a, V>(Vec<(&'a str, V)>);

impl<V: Serialize> Serialize for OrderedMap<'_, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct DevicesResult<'a, V: Serialize> {
    devices: OrderedMap<'a, V>,
}

#[derive(Serialize)]
struct AssignResult<'a> {
    profile_uuid: &'a str,
    devices: OrderedMap<'a, &'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u32>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Detail<'a> {
    Found(DevOut<'a>),
    Missing {
        serial_number: &'a str,
        response_status: &'static str,
    },
}

#[derive(Serialize)]
struct DevicePage<'a> {
    cursor: String,
    devices: Vec<DevOut<'a>>,
    #[serde(serialize_with = "crate::timefmt::ser")]
    fetched_until: OffsetDateTime,
    more_to_follow: bool,
}

/// A device as the API serves it at a protocol version.
struct DevOut<'a> {
    s: &'a Snap,
    version: u32,
    /// Sync: (op, op_date).
    op: Option<(u8, u32)>,
    /// Leave out profile and assignment fields (deleted events, devices now elsewhere).
    strip: bool,
    /// Details: `response_status`.
    status: Option<&'static str>,
}

impl<'a> DevOut<'a> {
    fn plain(s: &'a Snap, version: u32) -> DevOut<'a> {
        DevOut {
            s,
            version,
            op: None,
            strip: false,
            status: None,
        }
    }
}

impl Serialize for DevOut<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let s = self.s;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("serial_number", s.serial.as_str())?;
        m.serialize_entry("model", &*s.model)?;
        m.serialize_entry("description", &*s.description)?;
        m.serialize_entry("color", &*s.color)?;
        if let Some(tag) = &s.asset_tag {
            m.serialize_entry("asset_tag", &**tag)?;
        }
        if self.version >= 2 {
            let fam = DeviceFamily::from_u8(s.family);
            let os = if fam == DeviceFamily::IPad && self.version < 7 {
                "iOS"
            } else {
                fam.os()
            };
            m.serialize_entry("os", os)?;
            m.serialize_entry("device_family", fam.as_str())?;
        }
        if !self.strip {
            m.serialize_entry("profile_status", status_str(s.profile_status))?;
            if let Some(p) = &s.profile_uuid {
                m.serialize_entry("profile_uuid", &**p)?;
            }
            if s.profile_assign_time != 0 {
                m.serialize_entry(
                    "profile_assign_time",
                    crate::timefmt::stamp(s.profile_assign_time as i64).as_str(),
                )?;
            }
            if s.profile_push_time != 0 {
                m.serialize_entry(
                    "profile_push_time",
                    crate::timefmt::stamp(s.profile_push_time as i64).as_str(),
                )?;
            }
            if s.assigned_date != 0 {
                m.serialize_entry(
                    "device_assigned_date",
                    crate::timefmt::stamp(s.assigned_date as i64).as_str(),
                )?;
            }
            if let Some(by) = &s.assigned_by {
                m.serialize_entry("device_assigned_by", &**by)?;
            }
        }
        if let Some((op, t)) = self.op {
            m.serialize_entry("op_type", op_str(op))?;
            m.serialize_entry("op_date", crate::timefmt::stamp(t as i64).as_str())?;
        }
        if let Some(st) = self.status {
            m.serialize_entry("response_status", st)?;
        }
        m.end()
    }
}
