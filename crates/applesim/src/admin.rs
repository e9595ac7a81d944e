//! The administrator-side HTTP API under `/abm` (JSON). See the crate documentation for
//! the route list.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sim::AppleSim;
use crate::types::{
    DeviceChange, DeviceFamily, DeviceSpec, Endpoint, ErrorStyle, Fault, FaultKind, MoveStyle, OrgId, OrgKind,
    RetryAfter, ServerId, SimCredentials, SimDevice, SimError, ThrottlePolicy,
};

type Res = Result<Response, AdminError>;

/// An admin API error: `{"error": "…"}`.
pub(crate) struct AdminError(StatusCode, String);

impl From<SimError> for AdminError {
    fn from(e: SimError) -> AdminError {
        let status = match e {
            SimError::UnknownOrg(_)
            | SimError::UnknownServer(_)
            | SimError::UnknownDevice(_)
            | SimError::UnknownTopic(_)
            | SimError::UnknownPushToken(_)
            | SimError::UnknownVppLocation(_)
            | SimError::UnknownVppToken => StatusCode::NOT_FOUND,
            SimError::AppleIdMismatch(_) => StatusCode::FORBIDDEN,
            SimError::Crypto(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        AdminError(status, e.to_string())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, msg.into())
}

pub(crate) fn not_found(msg: impl Into<String>) -> AdminError {
    AdminError(StatusCode::NOT_FOUND, msg.into())
}

fn ok_json<T: Serialize>(v: T) -> Res {
    Ok(Json(v).into_response())
}

fn no_content() -> Res {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Parse a JSON body ourselves so that errors come back as `{"error": …}`.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AdminError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

pub(crate) fn router() -> Router<AppleSim> {
    Router::new()
        .route("/orgs", get(list_orgs).post(create_org))
        .route("/orgs/{org}/servers", post(create_server))
        .route("/orgs/{org}/devices", post(add_devices))
        .route("/orgs/{org}/devices/unassigned", get(unassigned))
        .route("/orgs/{org}/terms", put(set_terms))
        .route("/servers/{server}", get(server_info))
        .route("/servers/{server}/public-key", put(upload_key))
        .route("/servers/{server}/token", post(download_token))
        .route(
            "/servers/{server}/credentials",
            get(get_credentials).put(put_credentials),
        )
        .route("/servers/{server}/devices", get(server_devices).post(assign))
        .route("/servers/{server}/throttle", put(set_throttle).delete(clear_throttle))
        .route("/devices/release", post(release))
        .route("/devices/modify", post(modify))
        .route("/devices/profile-fetched", post(profile_fetched))
        .route("/devices/{serial}", get(device))
        .route("/profiles/{uuid}", get(profile))
        .route("/clock", get(get_clock).post(set_clock))
        .route("/faults", get(list_faults).post(push_faults).delete(clear_faults))
        .route("/error-style", put(error_style))
        .route("/session-policy", put(session_policy))
        .route("/move-style", put(move_style))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/vendor-certificate", post(vendor_certificate))
        .route("/vendor-chain", get(vendor_chain))
        .route("/push-certificates", get(list_push_certs).post(create_push_cert))
        .route("/push-certificates/{topic}/renew", post(renew_push_cert))
        .route("/push-certificates/{topic}/revoke", post(revoke_push_cert))
        .route("/apns-ca", get(apns_ca))
        .route("/device-ca", get(device_ca))
        .route("/push-tokens", post(register_push_token))
        .route("/push-tokens/{token}", axum::routing::delete(unregister_push_token))
        .route("/pushes", get(pushes).delete(clear_pushes))
        .route("/push-stats", get(push_stats))
        .merge(crate::vppadmin::router())
}

#[derive(Deserialize)]
struct CreateOrg {
    name: String,
    #[serde(default)]
    kind: OrgKind,
}

async fn list_orgs(State(sim): State<AppleSim>) -> Res {
    let st = sim.read();
    let orgs: Vec<Value> = st
        .orgs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let servers: Vec<u32> = st
                .servers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.org as usize == i)
                .map(|(j, _)| j as u32)
                .collect();
            json!({"org_id": i, "name": o.name, "kind": o.kind, "terms_pending": o.terms_pending, "servers": servers})
        })
        .collect();
    drop(st);
    ok_json(orgs)
}

async fn create_org(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: CreateOrg = parse(&body)?;
    let id = sim.create_org(&req.name, req.kind);
    Ok((StatusCode::CREATED, Json(json!({ "org_id": id.0 }))).into_response())
}

#[derive(Deserialize)]
struct CreateServer {
    name: String,
}

async fn create_server(State(sim): State<AppleSim>, Path(org): Path<u32>, body: axum::body::Bytes) -> Res {
    let req: CreateServer = parse(&body)?;
    let id = sim.try_create_mdm_server(OrgId(org), &req.name)?;
    let uuid = sim.server_info(id).map(|i| i.1).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "server_id": id.0, "server_uuid": uuid })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct AddDevices {
    count: usize,
    #[serde(default)]
    family: Option<String>,
}

async fn add_devices(State(sim): State<AppleSim>, Path(org): Path<u32>, body: axum::body::Bytes) -> Res {
    let req: AddDevices = parse(&body)?;
    let family = match req.family.as_deref() {
        None | Some("") | Some("mix") => None,
        Some(f) => Some(DeviceFamily::parse(f).ok_or_else(|| bad(format!("unknown device family {f}")))?),
    };
    if sim.read().org(OrgId(org)).is_err() {
        return Err(SimError::UnknownOrg(OrgId(org)).into());
    }
    let serials = sim.add_devices(OrgId(org), req.count, DeviceSpec { family });
    ok_json(json!({ "serials": serials }))
}

async fn unassigned(State(sim): State<AppleSim>, Path(org): Path<u32>) -> Res {
    ok_json(json!({ "serials": sim.unassigned_devices(OrgId(org)) }))
}

#[derive(Deserialize)]
struct Terms {
    pending: bool,
}

async fn set_terms(State(sim): State<AppleSim>, Path(org): Path<u32>, body: axum::body::Bytes) -> Res {
    let req: Terms = parse(&body)?;
    if sim.read().org(OrgId(org)).is_err() {
        return Err(SimError::UnknownOrg(OrgId(org)).into());
    }
    sim.set_terms_pending(OrgId(org), req.pending);
    no_content()
}

async fn server_info(State(sim): State<AppleSim>, Path(server): Path<u32>) -> Res {
    let st = sim.read();
    let s = st.server(ServerId(server))?;
    let v = json!({
        "server_id": server,
        "name": s.name,
        "server_uuid": s.uuid,
        "org_id": s.org,
        "device_count": s.members.len(),
        "change_count": s.log.len(),
        "has_public_key": s.cert.is_some(),
        "has_token": s.token.is_some(),
        "throttle": s.throttle,
    });
    drop(st);
    ok_json(v)
}

async fn upload_key(State(sim): State<AppleSim>, Path(server): Path<u32>, body: String) -> Res {
    sim.upload_public_key(ServerId(server), &body)?;
    no_content()
}

async fn download_token(State(sim): State<AppleSim>, Path(server): Path<u32>) -> Res {
    let p7m = sim.download_token(ServerId(server))?;
    let name = sim.server_info(ServerId(server)).map(|i| i.0).unwrap_or_default();
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let stamp = crate::timefmt::format(sim.clock().now()).replace(':', "-");
    let mut resp = (StatusCode::OK, p7m).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pkcs7-mime"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}_Token_{stamp}_smime.p7m\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn get_credentials(State(sim): State<AppleSim>, Path(server): Path<u32>) -> Res {
    match sim.current_credentials(ServerId(server)) {
        Some(c) => ok_json(c),
        None => Err(not_found("no current token")),
    }
}

async fn put_credentials(State(sim): State<AppleSim>, Path(server): Path<u32>, body: axum::body::Bytes) -> Res {
    let creds: SimCredentials = parse(&body)?;
    sim.try_register_credentials(ServerId(server), creds)?;
    no_content()
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Serialize)]
struct AdminDevice {
    #[serde(flatten)]
    device: SimDevice,
    org_id: u32,
    server_id: Option<u32>,
}

impl From<SimDevice> for AdminDevice {
    fn from(d: SimDevice) -> AdminDevice {
        let org_id = d.org.0;
        let server_id = d.server.map(|s| s.0);
        AdminDevice {
            device: d,
            org_id,
            server_id,
        }
    }
}

async fn server_devices(State(sim): State<AppleSim>, Path(server): Path<u32>, Query(p): Query<Page>) -> Res {
    let st = sim.read();
    let s = st.server(ServerId(server))?;
    let devices: Vec<AdminDevice> = s
        .members
        .iter()
        .skip(p.offset.unwrap_or(0))
        .take(p.limit.unwrap_or(usize::MAX))
        .filter_map(|&id| st.sim_device(id))
        .map(AdminDevice::from)
        .collect();
    drop(st);
    ok_json(devices)
}

#[derive(Deserialize)]
struct Serials {
    serials: Vec<String>,
}

async fn assign(State(sim): State<AppleSim>, Path(server): Path<u32>, body: axum::body::Bytes) -> Res {
    let req: Serials = parse(&body)?;
    sim.assign_devices(ServerId(server), &req.serials)?;
    no_content()
}

#[derive(Deserialize)]
struct Throttle {
    devices_per_window: u32,
    window_seconds: i64,
    #[serde(default)]
    retry_after_seconds: u32,
}

async fn set_throttle(State(sim): State<AppleSim>, Path(server): Path<u32>, body: axum::body::Bytes) -> Res {
    let req: Throttle = parse(&body)?;
    sim.read().server(ServerId(server))?;
    sim.set_assign_throttle(
        ServerId(server),
        Some(ThrottlePolicy {
            devices_per_window: req.devices_per_window,
            window: time::Duration::seconds(req.window_seconds),
            retry_after_seconds: req.retry_after_seconds,
        }),
    );
    no_content()
}

async fn clear_throttle(State(sim): State<AppleSim>, Path(server): Path<u32>) -> Res {
    sim.read().server(ServerId(server))?;
    sim.set_assign_throttle(ServerId(server), None);
    no_content()
}

async fn release(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: Serials = parse(&body)?;
    sim.release_devices(&req.serials)?;
    no_content()
}

#[derive(Deserialize)]
struct Modify {
    serials: Vec<String>,
    #[serde(flatten)]
    change: DeviceChange,
}

async fn modify(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: Modify = parse(&body)?;
    sim.modify_devices(&req.serials, req.change)?;
    no_content()
}

async fn profile_fetched(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: Serials = parse(&body)?;
    sim.simulate_profile_fetch(&req.serials)?;
    no_content()
}

async fn device(State(sim): State<AppleSim>, Path(serial): Path<String>) -> Res {
    match sim.device(&serial) {
        Some(d) => ok_json(AdminDevice::from(d)),
        None => Err(not_found(format!("unknown device {serial}"))),
    }
}

async fn profile(State(sim): State<AppleSim>, Path(uuid): Path<String>) -> Res {
    match sim.profile(&uuid) {
        Some(p) => ok_json(p),
        None => Err(not_found(format!("unknown profile {uuid}"))),
    }
}

fn clock_json(sim: &AppleSim) -> Value {
    let now = sim.clock().now();
    json!({ "now": crate::timefmt::format(now), "unix": now.unix_timestamp() })
}

async fn get_clock(State(sim): State<AppleSim>) -> Res {
    ok_json(clock_json(&sim))
}

#[derive(Deserialize)]
struct ClockChange {
    #[serde(default)]
    set: Option<String>,
    #[serde(default)]
    advance_seconds: Option<i64>,
}

async fn set_clock(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: ClockChange = parse(&body)?;
    if let Some(s) = &req.set {
        let t = crate::timefmt::parse(s).ok_or_else(|| bad(format!("not an RFC 3339 time: {s}")))?;
        sim.clock().set(t);
    }
    if let Some(n) = req.advance_seconds {
        sim.clock().advance(time::Duration::seconds(n));
    }
    ok_json(clock_json(&sim))
}

/// A fault in the admin API's JSON.
#[derive(Deserialize, Serialize)]
struct FaultJson {
    #[serde(default = "one")]
    count: u32,
    kind: String,
    /// `too_many_requests` / `service_unavailable`: `Retry-After: <seconds>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u64>,
    /// … or `Retry-After: <HTTP-date>` that many seconds after the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_date_in_seconds: Option<u64>,
    /// `bad_request`: the code, e.g. `MALFORMED_REQUEST_BODY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    /// `slow`: delay in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    millis: Option<u64>,
}

fn one() -> u32 {
    1
}

impl FaultJson {
    fn to_fault(&self) -> Result<Fault, AdminError> {
        let retry_after = match (self.retry_after_seconds, self.retry_after_date_in_seconds) {
            (Some(s), _) => Some(RetryAfter::Seconds(s)),
            (None, Some(s)) => Some(RetryAfter::HttpDateIn(s)),
            _ => None,
        };
        let kind = match self.kind.as_str() {
            "pass" | "success" => FaultKind::Pass,
            "unauthorized" => FaultKind::Unauthorized,
            "forbidden" => FaultKind::Forbidden,
            "access_denied" => FaultKind::AccessDenied,
            "terms_not_signed" | "t_c_not_signed" => FaultKind::TermsNotSigned,
            "too_many_requests" => FaultKind::TooManyRequests { retry_after },
            "service_unavailable" => FaultKind::ServiceUnavailable { retry_after },
            "internal_error" => FaultKind::InternalError,
            "bad_request" => FaultKind::BadRequest(self.code.clone().unwrap_or_else(|| "BAD_REQUEST".into())),
            "slow" => FaultKind::Slow(Duration::from_millis(self.millis.unwrap_or(1000))),
            "drop_connection" => FaultKind::DropConnection,
            "go_away" | "goaway" => FaultKind::GoAway,
            other => return Err(bad(format!("unknown fault kind {other}"))),
        };
        Ok(Fault {
            count: self.count,
            kind,
        })
    }

    fn from_fault(f: &Fault) -> FaultJson {
        let mut j = FaultJson {
            count: f.count,
            kind: String::new(),
            retry_after_seconds: None,
            retry_after_date_in_seconds: None,
            code: None,
            millis: None,
        };
        let ra = |j: &mut FaultJson, r: &Option<RetryAfter>| match r {
            Some(RetryAfter::Seconds(s)) => j.retry_after_seconds = Some(*s),
            Some(RetryAfter::HttpDateIn(s)) => j.retry_after_date_in_seconds = Some(*s),
            _ => {}
        };
        j.kind = match &f.kind {
            FaultKind::Pass => "pass",
            FaultKind::Unauthorized => "unauthorized",
            FaultKind::Forbidden => "forbidden",
            FaultKind::AccessDenied => "access_denied",
            FaultKind::TermsNotSigned => "terms_not_signed",
            FaultKind::TooManyRequests { retry_after } => {
                ra(&mut j, retry_after);
                "too_many_requests"
            }
            FaultKind::ServiceUnavailable { retry_after } => {
                ra(&mut j, retry_after);
                "service_unavailable"
            }
            FaultKind::InternalError => "internal_error",
            FaultKind::BadRequest(c) => {
                j.code = Some(c.clone());
                "bad_request"
            }
            FaultKind::Slow(d) => {
                j.millis = Some(d.as_millis() as u64);
                "slow"
            }
            FaultKind::DropConnection => "drop_connection",
            FaultKind::GoAway => "go_away",
        }
        .to_owned();
        j
    }
}

#[derive(Deserialize)]
struct PushFaults {
    endpoint: Endpoint,
    faults: Vec<FaultJson>,
}

async fn push_faults(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: PushFaults = parse(&body)?;
    let faults = req
        .faults
        .iter()
        .map(FaultJson::to_fault)
        .collect::<Result<Vec<_>, _>>()?;
    sim.push_faults(req.endpoint, faults);
    no_content()
}

async fn list_faults(State(sim): State<AppleSim>) -> Res {
    let mut m = serde_json::Map::new();
    for ep in Endpoint::ALL {
        let list: Vec<FaultJson> = sim.pending_faults(ep).iter().map(FaultJson::from_fault).collect();
        if !list.is_empty() {
            let key = serde_json::to_value(ep)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            m.insert(key, json!(list));
        }
    }
    ok_json(Value::Object(m))
}

async fn clear_faults(State(sim): State<AppleSim>) -> Res {
    sim.clear_faults();
    no_content()
}

#[derive(Deserialize)]
struct Style<T> {
    style: T,
}

async fn error_style(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: Style<ErrorStyle> = parse(&body)?;
    sim.set_error_style(req.style);
    no_content()
}

async fn move_style(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: Style<MoveStyle> = parse(&body)?;
    sim.set_move_style(req.style);
    no_content()
}

#[derive(Deserialize)]
struct SessionPolicy {
    #[serde(default = "thirty_minutes")]
    lifetime_seconds: i64,
    #[serde(default)]
    rotate_every: Option<u32>,
}

fn thirty_minutes() -> i64 {
    1800
}

async fn session_policy(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: SessionPolicy = parse(&body)?;
    sim.set_session_policy(time::Duration::seconds(req.lifetime_seconds), req.rotate_every);
    no_content()
}

#[derive(Deserialize)]
struct Tail {
    #[serde(default)]
    last: Option<usize>,
}

async fn requests(State(sim): State<AppleSim>, Query(t): Query<Tail>) -> Res {
    let all = sim.requests();
    let skip = t.last.map(|n| all.len().saturating_sub(n)).unwrap_or(0);
    ok_json(&all[skip..])
}

async fn clear_requests(State(sim): State<AppleSim>) -> Res {
    sim.clear_requests();
    no_content()
}

fn pem_response(pem: String) -> Res {
    if pem.is_empty() {
        return Err(AdminError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the simulated CA could not be made (OpenSSL failed; see the log)".into(),
        ));
    }
    let mut resp = (StatusCode::OK, pem).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
    Ok(resp)
}

/// Run key-generating or signing work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SimError> + Send + 'static,
) -> Result<T, AdminError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(AdminError::from),
        Err(e) => Err(AdminError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the task failed: {e}"),
        )),
    }
}

async fn vendor_certificate(State(sim): State<AppleSim>, body: String) -> Res {
    let pem = blocking(move || sim.issue_vendor_certificate(&body)).await?;
    pem_response(pem)
}

async fn vendor_chain(State(sim): State<AppleSim>) -> Res {
    let pem = blocking(move || Ok(sim.vendor_chain_pem())).await?;
    pem_response(pem)
}

async fn apns_ca(State(sim): State<AppleSim>) -> Res {
    let pem = blocking(move || Ok(sim.apns_ca_pem())).await?;
    pem_response(pem)
}

async fn device_ca(State(sim): State<AppleSim>) -> Res {
    let pem = blocking(move || Ok(sim.device_ca_root_pem())).await?;
    pem_response(pem)
}

#[derive(Deserialize)]
struct PushCertUpload {
    apple_id: String,
    request: String,
}

async fn create_push_cert(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: PushCertUpload = parse(&body)?;
    let issued = blocking(move || sim.push_portal_create(&req.apple_id, &req.request)).await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

async fn renew_push_cert(State(sim): State<AppleSim>, Path(topic): Path<String>, body: axum::body::Bytes) -> Res {
    let req: PushCertUpload = parse(&body)?;
    let issued = blocking(move || sim.push_portal_renew(&req.apple_id, &topic, &req.request)).await?;
    ok_json(issued)
}

async fn revoke_push_cert(State(sim): State<AppleSim>, Path(topic): Path<String>) -> Res {
    sim.revoke_push_cert(&topic)?;
    no_content()
}

async fn list_push_certs(State(sim): State<AppleSim>) -> Res {
    ok_json(sim.push_certificates())
}

#[derive(Deserialize)]
struct PushTokenRequest {
    topic: String,
    #[serde(default)]
    token: Option<String>,
}

async fn register_push_token(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: PushTokenRequest = parse(&body)?;
    let reg = match req.token.as_deref() {
        None => {
            if req.topic.trim().is_empty() {
                return Err(bad("the topic is empty"));
            }
            sim.register_push_token(&req.topic)
        }
        Some(hex) => {
            let bytes = decode_hex(hex.trim()).ok_or_else(|| bad(format!("token {hex} is not hex")))?;
            sim.register_push_token_bytes(&req.topic, &bytes)?
        }
    };
    // Nobody waits on the receiver of a token registered over HTTP; pushes to it still succeed.
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": reg.token_hex, "topic": reg.topic })),
    )
        .into_response())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

async fn unregister_push_token(State(sim): State<AppleSim>, Path(token): Path<String>) -> Res {
    sim.unregister_push_token(&token)?;
    no_content()
}

async fn pushes(State(sim): State<AppleSim>, Query(t): Query<Tail>) -> Res {
    match t.last {
        Some(n) => ok_json(sim.last_pushes(n)),
        None => ok_json(sim.pushes()),
    }
}

async fn clear_pushes(State(sim): State<AppleSim>) -> Res {
    sim.clear_pushes();
    no_content()
}

async fn push_stats(State(sim): State<AppleSim>) -> Res {
    ok_json(sim.apns_stats())
}
