//! The App and Book Management API v2, as `vpp.itunes.apple.com/mdm/v2` serves it, under
//! `/mdm/v2` on the main listener. See the crate documentation ("Apps and Books").

use std::collections::HashMap;
use std::ops::Range;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::dep::ConnKill;
use crate::pushcert::uuid_v4;
use crate::sim::AppleSim;
use crate::types::RequestRecord;
use crate::vpp::{
    ERROR_NUMBERS, Event, Location, NOTIFICATION_TYPES, TokenProblem, VppAssignee, VppEventFailure, VppEventStatus,
    VppEventType, VppFaultKind, VppMdmInfo, VppPricing, VppProductType, VppWorld, vpp_date, vpp_error_message,
};

/// Where the API lives on the main listener.
pub(crate) const PREFIX: &str = "/mdm/v2";
/// Largest request body read.
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ep {
    GetClientConfig,
    SetClientConfig,
    ServiceConfig,
    Assets,
    Assignments,
    Associate,
    Disassociate,
    Revoke,
    Status,
}

enum Route {
    Ep(Ep),
    WrongMethod,
    NotFound,
}

fn route(method: &Method, rel: &str) -> Route {
    let ep = match (rel, method.as_str()) {
        ("/client/config", "GET") => Ep::GetClientConfig,
        ("/client/config", "POST") => Ep::SetClientConfig,
        ("/service/config", "GET") => Ep::ServiceConfig,
        ("/assets", "GET") => Ep::Assets,
        ("/assignments", "GET") => Ep::Assignments,
        ("/assets/associate", "POST") => Ep::Associate,
        ("/assets/disassociate", "POST") => Ep::Disassociate,
        ("/assets/revoke", "POST") => Ep::Revoke,
        ("/status", "GET") => Ep::Status,
        (
            "/client/config"
            | "/service/config"
            | "/assets"
            | "/assignments"
            | "/assets/associate"
            | "/assets/disassociate"
            | "/assets/revoke"
            | "/status",
            _,
        ) => return Route::WrongMethod,
        _ => return Route::NotFound,
    };
    Route::Ep(ep)
}

/// An error answer: `{"errorNumber","errorMessage","errorInfo"?}`.
#[derive(Debug)]
pub(crate) struct VppError {
    status: StatusCode,
    number: u32,
    info: Option<Value>,
    retry_after: Option<u64>,
}

impl VppError {
    fn new(status: u16, number: u32) -> VppError {
        VppError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            number,
            info: None,
            retry_after: None,
        }
    }

    fn bad(number: u32) -> VppError {
        VppError::new(400, number)
    }

    fn info(mut self, info: Value) -> VppError {
        self.info = Some(info);
        self
    }

    fn render(self) -> Response {
        let mut body = Map::new();
        body.insert("errorNumber".into(), json!(self.number));
        body.insert("errorMessage".into(), json!(vpp_error_message(self.number)));
        if let Some(info) = self.info {
            body.insert("errorInfo".into(), info);
        }
        let mut resp = json_response(self.status, &Value::Object(body));
        if let Some(n) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&n.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut resp = (status, v.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn ok(v: Value) -> Result<Response, VppError> {
    Ok(json_response(StatusCode::OK, &v))
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The handler of every path under `/mdm/v2`.
pub(crate) async fn entry(State(sim): State<AppleSim>, req: Request) -> Response {
    let kill = req.extensions().get::<ConnKill>().cloned();
    let (parts, body) = req.into_parts();
    let now = sim.clock().now();
    let full = parts.uri.path().to_owned();
    let rel = full.strip_prefix(PREFIX).unwrap_or(&full);
    let rel = if rel.len() > 1 {
        rel.strip_suffix('/').unwrap_or(rel)
    } else {
        rel
    }
    .to_owned();
    let mut rec = RequestRecord {
        method: parts.method.to_string(),
        path: full.clone(),
        endpoint: None,
        protocol_version: None,
        user_agent: header_str(&parts.headers, "user-agent").map(str::to_owned),
        serials: None,
        status: None,
        fault: None,
        time: now,
    };
    let ep = match route(&parts.method, &rel) {
        Route::Ep(e) => e,
        Route::WrongMethod => {
            let resp = VppError::new(405, 9726).render();
            rec.status = Some(405);
            sim.record(rec);
            return resp;
        }
        Route::NotFound => {
            rec.status = Some(404);
            sim.record(rec);
            return StatusCode::NOT_FOUND.into_response();
        }
    };
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.ok();
    // Parsed JSON body: Ok(None) for an empty body, Err(()) for invalid JSON or unreadable.
    let parsed: Result<Option<Value>, ()> = match &bytes {
        None => Err(()),
        Some(b) if b.iter().all(|c| c.is_ascii_whitespace()) => Ok(None),
        Some(b) => serde_json::from_slice::<Value>(b).map(Some).map_err(|_| ()),
    };
    rec.serials = match &parsed {
        Ok(Some(v)) => v.get("serialNumbers").and_then(Value::as_array).map(Vec::len),
        _ => None,
    };

    let mut forced = None;
    if let Some(kind) = sim.take_vpp_fault(&rel) {
        rec.fault = Some(format!("{kind:?}"));
        match kind {
            VppFaultKind::Pass => {}
            VppFaultKind::Slow(d) => tokio::time::sleep(d).await,
            VppFaultKind::DropConnection => {
                sim.record(rec);
                if let Some(k) = kill {
                    k.0.notify_one();
                    // The connection task drops the connection; this future is dropped with it.
                    std::future::pending::<()>().await;
                }
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            VppFaultKind::Error {
                status,
                error_number,
                retry_after_seconds,
            } => {
                let mut e = VppError::new(status, error_number);
                e.retry_after = retry_after_seconds;
                let resp = e.render();
                rec.status = Some(resp.status().as_u16());
                sim.record(rec);
                return resp;
            }
            VppFaultKind::FailEvent { error_number } => forced = Some(error_number),
        }
    }

    let req = Req {
        ep,
        headers: &parts.headers,
        query: parts.uri.query(),
        body: parsed,
        forced,
        now,
    };
    let resp = handle(&sim, req).unwrap_or_else(VppError::render);
    rec.status = Some(resp.status().as_u16());
    sim.record(rec);
    resp
}

struct Req<'a> {
    ep: Ep,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    body: Result<Option<Value>, ()>,
    forced: Option<u32>,
    now: OffsetDateTime,
}

/// The authenticated location and the expiry of the token used.
struct Auth {
    loc: u32,
    expires: OffsetDateTime,
}

fn handle(sim: &AppleSim, req: Req<'_>) -> Result<Response, VppError> {
    if req.ep == Ep::ServiceConfig {
        return service_config(sim, req.headers);
    }
    let token = bearer(req.headers)?;
    let mut w = sim.vpp();
    let (loc, expires) = w.authenticate(token, req.now).map_err(|p| match p {
        TokenProblem::Unknown => VppError::new(401, 9622),
        TokenProblem::Revoked => VppError::new(401, 9625),
        TokenProblem::Expired => VppError::new(401, 9621),
    })?;
    let auth = Auth { loc, expires };
    let is_post = matches!(
        req.ep,
        Ep::SetClientConfig | Ep::Associate | Ep::Disassociate | Ep::Revoke
    );
    if is_post && !json_content_type(req.headers) {
        return Err(VppError::new(415, 9727));
    }
    w.settle(loc);
    match req.ep {
        Ep::GetClientConfig => {
            let l = location(&w, &auth)?;
            ok(client_config(l, &auth))
        }
        Ep::SetClientConfig => set_client_config(&mut w, &auth, body_object(req.body)?),
        Ep::Assets => assets(&w, &auth, req.query),
        Ep::Assignments => assignments(&w, &auth, req.query),
        Ep::Status => status(&w, &auth, req.query),
        Ep::Associate => manage(
            &mut w,
            &auth,
            VppEventType::Associate,
            body_object(req.body)?,
            req.forced,
        ),
        Ep::Disassociate => manage(
            &mut w,
            &auth,
            VppEventType::Disassociate,
            body_object(req.body)?,
            req.forced,
        ),
        Ep::Revoke => manage(&mut w, &auth, VppEventType::Revoke, body_object(req.body)?, req.forced),
        Ep::ServiceConfig => service_config(sim, req.headers),
    }
}

fn location<'a>(w: &'a VppWorld, auth: &Auth) -> Result<&'a Location, VppError> {
    w.locations
        .get(auth.loc as usize)
        .ok_or_else(|| VppError::new(500, 9603))
}

fn location_mut<'a>(w: &'a mut VppWorld, auth: &Auth) -> Result<&'a mut Location, VppError> {
    w.locations
        .get_mut(auth.loc as usize)
        .ok_or_else(|| VppError::new(500, 9603))
}

/// The bearer credential: 9601 without an `Authorization` header, 9722 when it is not
/// exactly one `Bearer <token>`.
fn bearer(h: &HeaderMap) -> Result<&str, VppError> {
    let mut values = h.get_all(header::AUTHORIZATION).iter();
    let Some(v) = values.next() else {
        return Err(VppError::new(401, 9601));
    };
    let malformed = || VppError::new(401, 9722);
    if values.next().is_some() {
        return Err(malformed());
    }
    let s = v.to_str().map_err(|_| malformed())?;
    let (scheme, rest) = s.trim().split_once(' ').ok_or_else(malformed)?;
    let token = rest.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(malformed());
    }
    Ok(token)
}

/// `application/json`, with or without parameters such as `charset`.
fn json_content_type(h: &HeaderMap) -> bool {
    header_str(h, "content-type")
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

fn body_object(body: Result<Option<Value>, ()>) -> Result<Map<String, Value>, VppError> {
    match body {
        Ok(None) => Ok(Map::new()),
        Ok(Some(Value::Object(m))) => Ok(m),
        _ => Err(VppError::bad(9602)),
    }
}

/// Query parameters; a repeated one is 9602. Unknown ones are ignored.
fn query_map(q: Option<&str>) -> Result<HashMap<String, String>, VppError> {
    let mut m = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        if m.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(VppError::bad(9602));
        }
    }
    Ok(m)
}

fn parse_count(v: &str) -> Result<u64, VppError> {
    if v.is_empty() || v.len() > 18 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VppError::bad(9602));
    }
    v.parse().map_err(|_| VppError::bad(9602))
}

fn parse_bool(v: &str) -> Result<bool, VppError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(VppError::bad(9602)),
    }
}

fn valid_adam_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fn page_index(q: &HashMap<String, String>) -> Result<usize, VppError> {
    match q.get("pageIndex") {
        None => Ok(0),
        Some(v) => Ok(usize::try_from(parse_count(v)?).unwrap_or(usize::MAX)),
    }
}

/// The records of page `index` of `n` records, the total pages (at least 1) and the next
/// page index; 9650 past the last page.
fn page(n: usize, size: usize, index: usize) -> Result<(Range<usize>, usize, Option<usize>), VppError> {
    let size = size.max(1);
    let total = n.div_ceil(size).max(1);
    if index >= total {
        return Err(VppError::bad(9650));
    }
    let start = index * size;
    let end = (start + size).min(n);
    let next = (index + 1 < total).then_some(index + 1);
    Ok((start..end, total, next))
}

fn paged(
    mut m: Map<String, Value>,
    index: usize,
    size: usize,
    total: usize,
    next: Option<usize>,
) -> Map<String, Value> {
    m.insert("currentPageIndex".into(), json!(index));
    if let Some(n) = next {
        m.insert("nextPageIndex".into(), json!(n));
    }
    m.insert("size".into(), json!(size));
    m.insert("totalPages".into(), json!(total));
    m
}

fn stamp(m: &mut Map<String, Value>, l: &Location, auth: &Auth) {
    m.insert("tokenExpirationDate".into(), json!(vpp_date(auth.expires)));
    m.insert("uId".into(), json!(l.uid));
}

fn client_config(l: &Location, auth: &Auth) -> Value {
    let mut m = Map::new();
    m.insert("countryISO2ACode".into(), json!(l.country));
    m.insert("defaultPlatform".into(), json!("volumestore"));
    m.insert("locationName".into(), json!(l.name));
    if let Some(i) = &l.mdm_info {
        m.insert(
            "mdmInfo".into(),
            json!({"id": i.id, "name": i.name, "metadata": i.metadata}),
        );
    }
    m.insert("notificationAuthToken".into(), json!(l.notification_auth_token));
    m.insert("notificationUrl".into(), json!(l.notification_url));
    m.insert("subscribedNotificationTypes".into(), json!(l.notification_types));
    stamp(&mut m, l, auth);
    m.insert("websiteURL".into(), json!(l.website_url()));
    Value::Object(m)
}

/// An optional string member: absent or null → None; a string → Some; anything else 9602.
fn opt_str<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, VppError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(VppError::bad(9602)),
    }
}

fn set_client_config(w: &mut VppWorld, auth: &Auth, body: Map<String, Value>) -> Result<Response, VppError> {
    // Everything is checked before anything changes.
    let mdm_info = match body.get("mdmInfo") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => {
            let id = opt_str(o, "id")?.map(str::trim).unwrap_or("");
            let name = opt_str(o, "name")?.map(str::trim).unwrap_or("");
            let metadata = opt_str(o, "metadata")?.unwrap_or("");
            if id.is_empty() || name.is_empty() {
                return Err(VppError::bad(9602));
            }
            Some(VppMdmInfo::new(id, name, metadata))
        }
        Some(_) => return Err(VppError::bad(9602)),
    };
    let url = opt_str(&body, "notificationUrl")?;
    let token = opt_str(&body, "notificationAuthToken")?;
    let notification = match (url, token) {
        (None, None) => None,
        (Some(u), Some(t)) if u.is_empty() && t.is_empty() => Some((None, None)),
        (Some(u), Some(t)) if !u.is_empty() && !t.is_empty() => {
            let https = url::Url::parse(u).is_ok_and(|p| p.scheme() == "https" && p.host().is_some());
            if !https {
                return Err(VppError::bad(9712));
            }
            Some((Some(u.to_owned()), Some(t.to_owned())))
        }
        _ => return Err(VppError::bad(9710)),
    };
    let types = match body.get("notificationTypes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let mut out: Vec<String> = Vec::new();
            for v in a {
                let s = v.as_str().ok_or_else(|| VppError::bad(9602))?;
                if !NOTIFICATION_TYPES.contains(&s) {
                    return Err(VppError::bad(9602));
                }
                if !out.iter().any(|x| x == s) {
                    out.push(s.to_owned());
                }
            }
            Some(out)
        }
        Some(_) => return Err(VppError::bad(9602)),
    };
    let l = location_mut(w, auth)?;
    if let Some(i) = mdm_info {
        l.mdm_info = Some(i);
    }
    if let Some((u, t)) = notification {
        l.notification_url = u;
        l.notification_auth_token = t;
    }
    if let Some(t) = types {
        l.notification_types = t;
    }
    ok(client_config(l, auth))
}

fn service_config(sim: &AppleSim, h: &HeaderMap) -> Result<Response, VppError> {
    let host = header_str(h, "host").unwrap_or("localhost");
    let scheme = match header_str(h, "x-forwarded-proto").map(|s| s.trim().to_ascii_lowercase()) {
        Some(s) if s == "https" => "https",
        _ => "http",
    };
    let base = format!("{scheme}://{host}{PREFIX}");
    let limits = sim.vpp_limits();
    let codes: Vec<Value> = ERROR_NUMBERS
        .iter()
        .map(|&n| json!({"errorNumber": n, "errorMessage": vpp_error_message(n)}))
        .collect();
    ok(json!({
        "errorCodes": codes,
        "limits": {
            "maxAssets": limits.max_assets,
            "maxClientUserIds": limits.max_client_user_ids,
            "maxSerialNumbers": limits.max_serial_numbers,
        },
        "notificationTypes": NOTIFICATION_TYPES,
        "urls": {
            "clientConfig": format!("{base}/client/config"),
            "getAssets": format!("{base}/assets"),
            "getAssignments": format!("{base}/assignments"),
            "associateAssets": format!("{base}/assets/associate"),
            "disassociateAssets": format!("{base}/assets/disassociate"),
            "revokeAssets": format!("{base}/assets/revoke"),
            "status": format!("{base}/status"),
        },
    }))
}

fn assets(w: &VppWorld, auth: &Auth, query: Option<&str>) -> Result<Response, VppError> {
    let q = query_map(query)?;
    let index = page_index(&q)?;
    let adam_id = q.get("adamId").map(String::as_str);
    if adam_id.is_some_and(|a| !valid_adam_id(a)) {
        return Err(VppError::bad(9602));
    }
    let pricing = match q.get("pricingParam") {
        None => None,
        Some(v) => Some(VppPricing::parse(v).ok_or_else(|| VppError::bad(9602))?),
    };
    let product = match q.get("productType") {
        None => None,
        Some(v) => Some(VppProductType::parse(v).ok_or_else(|| VppError::bad(9602))?),
    };
    let flag = |k: &str| q.get(k).map(|v| parse_bool(v)).transpose();
    let revocable = flag("revocable")?;
    let device_assignable = flag("deviceAssignable")?;
    let count = |k: &str| q.get(k).map(|v| parse_count(v)).transpose();
    let max_available = count("maxAvailableCount")?;
    let min_available = count("minAvailableCount")?;
    let max_assigned = count("maxAssignedCount")?;
    let min_assigned = count("minAssignedCount")?;

    let l = location(w, auth)?;
    let matching: Vec<&crate::vpp::Asset> = l
        .assets
        .iter()
        .filter(|a| adam_id.is_none_or(|x| a.adam_id == x))
        .filter(|a| pricing.is_none_or(|p| a.pricing == p))
        .filter(|a| product.is_none_or(|p| a.product_type == p))
        .filter(|a| revocable.is_none_or(|r| a.revocable == r))
        .filter(|a| device_assignable.is_none_or(|d| a.device_assignable == d))
        .filter(|a| max_available.is_none_or(|n| u64::from(a.available()) <= n))
        .filter(|a| min_available.is_none_or(|n| u64::from(a.available()) >= n))
        .filter(|a| max_assigned.is_none_or(|n| u64::from(a.assigned) <= n))
        .filter(|a| min_assigned.is_none_or(|n| u64::from(a.assigned) >= n))
        .collect();
    let (range, total, next) = page(matching.len(), w.page_size, index)?;
    let list: Vec<Value> = matching
        .get(range)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let platforms: Vec<&str> = a.platforms.iter().map(|p| p.as_str()).collect();
            json!({
                "adamId": a.adam_id,
                "assignedCount": a.assigned,
                "availableCount": a.available(),
                "deviceAssignable": a.device_assignable,
                "pricingParam": a.pricing.as_str(),
                "productType": a.product_type.as_str(),
                "retiredCount": a.retired,
                "revocable": a.revocable,
                "supportedPlatforms": platforms,
                "totalCount": a.total,
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("assets".into(), Value::Array(list));
    let mut m = paged(m, index, matching.len(), total, next);
    stamp(&mut m, l, auth);
    m.insert("versionId".into(), json!(l.version.to_string()));
    ok(Value::Object(m))
}

fn assignee_json(m: &mut Map<String, Value>, who: &VppAssignee) {
    match who {
        VppAssignee::SerialNumber(s) => m.insert("serialNumber".into(), json!(s)),
        VppAssignee::ClientUserId(u) => m.insert("clientUserId".into(), json!(u)),
    };
}

fn assignments(w: &VppWorld, auth: &Auth, query: Option<&str>) -> Result<Response, VppError> {
    let q = query_map(query)?;
    let index = page_index(&q)?;
    let adam_id = q.get("adamId").map(String::as_str);
    if adam_id.is_some_and(|a| !valid_adam_id(a)) {
        return Err(VppError::bad(9602));
    }
    let serial = q.get("serialNumber").map(String::as_str);
    let user = q.get("clientUserId").map(String::as_str);
    if serial.is_some_and(str::is_empty) || user.is_some_and(str::is_empty) {
        return Err(VppError::bad(9602));
    }
    let l = location(w, auth)?;
    let since = match q.get("sinceVersionId") {
        None => None,
        Some(v) => {
            let n = parse_count(v).map_err(|_| VppError::bad(9721))?;
            if n > l.version {
                return Err(VppError::bad(9721));
            }
            Some(n)
        }
    };
    let matching: Vec<&crate::vpp::Assign> = l
        .assignments
        .values()
        .filter(|a| since.is_none_or(|v| a.version > v))
        .filter(|a| adam_id.is_none_or(|x| l.assets.get(a.asset as usize).is_some_and(|asset| asset.adam_id == x)))
        .filter(|a| serial.is_none_or(|s| a.who == VppAssignee::SerialNumber(s.to_owned())))
        .filter(|a| user.is_none_or(|u| a.who == VppAssignee::ClientUserId(u.to_owned())))
        .collect();
    let (range, total, next) = page(matching.len(), w.page_size, index)?;
    let list: Vec<Value> = matching
        .get(range)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let x = l.assignment(a);
            let mut m = Map::new();
            m.insert("adamId".into(), json!(x.adam_id));
            m.insert("pricingParam".into(), json!(x.pricing_param.as_str()));
            assignee_json(&mut m, &x.assignee);
            Value::Object(m)
        })
        .collect();
    let mut m = Map::new();
    m.insert("assignments".into(), Value::Array(list));
    let mut m = paged(m, index, matching.len(), total, next);
    stamp(&mut m, l, auth);
    m.insert("versionId".into(), json!(l.version.to_string()));
    ok(Value::Object(m))
}

fn failure_json(f: &VppEventFailure) -> Value {
    let mut m = Map::new();
    if let Some(a) = &f.adam_id {
        m.insert("adamId".into(), json!(a));
    }
    if let Some(p) = f.pricing_param {
        m.insert("pricingParam".into(), json!(p.as_str()));
    }
    assignee_json(&mut m, &f.assignee);
    m.insert("errorNumber".into(), json!(f.error_number));
    m.insert("errorMessage".into(), json!(f.error_message));
    Value::Object(m)
}

fn status(w: &VppWorld, auth: &Auth, query: Option<&str>) -> Result<Response, VppError> {
    let q = query_map(query)?;
    let id = q
        .get("eventId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| VppError::bad(9602))?;
    let l = location(w, auth)?;
    let ev = l.events.get(id.as_str()).ok_or_else(|| VppError::bad(9708))?;
    let failures: Vec<Value> = ev.failures.iter().map(failure_json).collect();
    let mut m = Map::new();
    m.insert("eventId".into(), json!(ev.id));
    m.insert("eventStatus".into(), json!(ev.status.as_str()));
    m.insert("eventType".into(), json!(ev.kind.as_str()));
    m.insert("numCompleted".into(), json!(ev.num_completed));
    m.insert("numRequested".into(), json!(ev.num_requested));
    m.insert("failures".into(), Value::Array(failures));
    stamp(&mut m, l, auth);
    ok(Value::Object(m))
}

/// A string array member: absent or null → empty; elements must be non-empty strings.
fn str_array(m: &Map<String, Value>, key: &str) -> Result<Vec<String>, VppError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v.as_str() {
                Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
                _ => Err(VppError::bad(9602)),
            })
            .collect(),
        Some(_) => Err(VppError::bad(9602)),
    }
}

fn first_duplicates(items: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut dups: Vec<String> = Vec::new();
    for s in items {
        if !seen.insert(s.as_str()) && !dups.contains(s) {
            dups.push(s.clone());
        }
    }
    dups
}

fn asset_json(adam_id: &str, pricing: VppPricing) -> Value {
    json!({"adamId": adam_id, "pricingParam": pricing.as_str()})
}

fn manage(
    w: &mut VppWorld,
    auth: &Auth,
    kind: VppEventType,
    body: Map<String, Value>,
    forced: Option<u32>,
) -> Result<Response, VppError> {
    // The request's assets, as (adamId, pricing).
    let requested: Vec<(String, VppPricing)> = match body.get("assets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                let o = v.as_object().ok_or_else(|| VppError::bad(9602))?;
                let id = opt_str(o, "adamId")?
                    .filter(|s| valid_adam_id(s))
                    .ok_or_else(|| VppError::bad(9602))?;
                let pricing = match opt_str(o, "pricingParam")? {
                    None => VppPricing::Stdq,
                    Some(p) => VppPricing::parse(p).ok_or_else(|| VppError::bad(9602))?,
                };
                Ok((id.to_owned(), pricing))
            })
            .collect::<Result<_, VppError>>()?,
        Some(_) => return Err(VppError::bad(9602)),
    };
    let serials = str_array(&body, "serialNumbers")?;
    let users = str_array(&body, "clientUserIds")?;
    if requested.is_empty() && kind != VppEventType::Revoke {
        return Err(VppError::bad(9718));
    }
    if serials.is_empty() && users.is_empty() {
        return Err(VppError::bad(9719));
    }
    let limits = w.limits;
    if requested.len() > limits.max_assets {
        return Err(VppError::bad(9700));
    }
    if users.len() > limits.max_client_user_ids {
        return Err(VppError::bad(9701));
    }
    if serials.len() > limits.max_serial_numbers {
        return Err(VppError::bad(9702));
    }
    let mut seen = std::collections::HashSet::new();
    let dup_assets: Vec<Value> = requested
        .iter()
        .filter(|a| !seen.insert((*a).clone()))
        .map(|(id, p)| asset_json(id, *p))
        .collect();
    if !dup_assets.is_empty() {
        return Err(VppError::bad(9703).info(json!({ "assets": dup_assets })));
    }
    let dups = first_duplicates(&users);
    if !dups.is_empty() {
        return Err(VppError::bad(9704).info(json!({ "clientUserIds": dups })));
    }
    let dups = first_duplicates(&serials);
    if !dups.is_empty() {
        return Err(VppError::bad(9705).info(json!({ "serialNumbers": dups })));
    }
    let delay = w.event_delay;
    let l = location_mut(w, auth)?;
    let mut indexes = Vec::new();
    let mut unknown = Vec::new();
    for (id, p) in &requested {
        match l.find_asset(id, *p) {
            Some(i) => indexes.push(i),
            None => unknown.push(asset_json(id, *p)),
        }
    }
    if !unknown.is_empty() {
        return Err(VppError::bad(9602).info(json!({ "assets": unknown })));
    }
    let refused = |pred: &dyn Fn(&crate::vpp::Asset) -> bool| -> Vec<Value> {
        indexes
            .iter()
            .filter_map(|&i| l.assets.get(i as usize))
            .filter(|a| pred(a))
            .map(|a| asset_json(&a.adam_id, a.pricing))
            .collect()
    };
    if kind == VppEventType::Associate && !serials.is_empty() {
        let r = refused(&|a| !a.device_assignable);
        if !r.is_empty() {
            return Err(VppError::bad(9707).info(json!({ "assets": r })));
        }
    }
    if kind != VppEventType::Associate {
        let r = refused(&|a| !a.revocable);
        if !r.is_empty() {
            return Err(VppError::bad(9706).info(json!({ "assets": r })));
        }
    }
    let who: Vec<VppAssignee> = serials
        .into_iter()
        .map(VppAssignee::SerialNumber)
        .chain(users.into_iter().map(VppAssignee::ClientUserId))
        .collect();
    let assets = if indexes.is_empty() { None } else { Some(indexes) };
    let num_requested = match &assets {
        Some(a) => (a.len() * who.len()) as u64,
        None => who.len() as u64,
    };
    let id = uuid_v4(false);
    l.events.insert(
        id.clone(),
        Event {
            id: id.clone(),
            kind,
            due: Instant::now() + delay,
            assets,
            who,
            forced,
            status: VppEventStatus::Pending,
            num_requested,
            num_completed: 0,
            failures: Vec::new(),
        },
    );
    l.queue.push_back(id.clone());
    let mut m = Map::new();
    m.insert("eventId".into(), json!(id));
    stamp(&mut m, l, auth);
    ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        assert_eq!(page(0, 10, 0).unwrap(), (0..0, 1, None));
        assert!(page(0, 10, 1).is_err());
        assert_eq!(page(25, 10, 0).unwrap(), (0..10, 3, Some(1)));
        assert_eq!(page(25, 10, 2).unwrap(), (20..25, 3, None));
        assert!(page(25, 10, 3).is_err());
        assert_eq!(page(20, 10, 1).unwrap(), (10..20, 2, None));
    }

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).unwrap_err().number, 9601);
        for (v, want) in [
            ("Bearer abc", Ok("abc")),
            ("bearer  abc ", Ok("abc")),
            ("Basic abc", Err(9722)),
            ("Bearer", Err(9722)),
            ("Bearer ", Err(9722)),
            ("Bearer a b", Err(9722)),
            ("abc", Err(9722)),
        ] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            assert_eq!(bearer(&h).map_err(|e| e.number), want, "{v}");
        }
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(bearer(&h).unwrap_err().number, 9722);
    }
}
