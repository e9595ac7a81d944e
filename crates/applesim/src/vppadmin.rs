//! The administrator's side of Apps and Books over HTTP (under `/abm`, JSON): the same
//! operations as the `*_vpp_*` methods of [`AppleSim`]. See the crate documentation.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::admin::{AdminError, bad, not_found, parse};
use crate::sim::AppleSim;
use crate::types::OrgId;
use crate::vpp::{VppAssetSpec, VppAssignee, VppFault, VppFaultKind, VppLimits, VppLocationId, VppMdmInfo, VppPricing};

type Res = Result<Response, AdminError>;

fn ok_json<T: Serialize>(v: T) -> Res {
    Ok(Json(v).into_response())
}

fn no_content() -> Res {
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) fn router() -> Router<AppleSim> {
    Router::new()
        .route("/orgs/{org}/vpp-locations", post(create_location))
        .route("/vpp-locations", get(list_locations))
        .route("/vpp-locations/{loc}", get(location).put(update_location))
        .route("/vpp-locations/{loc}/assets", get(assets).post(add_asset))
        .route(
            "/vpp-locations/{loc}/assignments",
            get(assignments).post(add_assignments),
        )
        .route("/vpp-locations/{loc}/token", post(download_token))
        .route("/vpp-locations/{loc}/tokens", axum::routing::delete(revoke_tokens))
        .route(
            "/vpp-locations/{loc}/mdm-info",
            get(mdm_info).put(set_mdm_info).delete(clear_mdm_info),
        )
        .route("/vpp-tokens/revoke", post(revoke_token))
        .route("/vpp-events/{event}", get(event))
        .route("/vpp-faults", get(list_faults).post(push_faults).delete(clear_faults))
        .route("/vpp-settings", get(settings).put(set_settings))
}

#[derive(Deserialize)]
struct CreateLocation {
    name: String,
    #[serde(default)]
    country: Option<String>,
}

async fn create_location(State(sim): State<AppleSim>, Path(org): Path<u32>, body: axum::body::Bytes) -> Res {
    let req: CreateLocation = parse(&body)?;
    if req.name.trim().is_empty() {
        return Err(bad("the location name is empty"));
    }
    if let Some(c) = &req.country {
        // Checked before the location exists, so a bad country creates nothing.
        if c.trim().len() != 2 || !c.trim().bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad(format!(
                "the country must be two letters (ISO 3166-1 alpha-2, e.g. FR), not {c:?}"
            )));
        }
    }
    let id = sim.try_create_vpp_location(OrgId(org), &req.name)?;
    if let Some(c) = &req.country {
        sim.set_vpp_country(id, c)?;
    }
    let uid = sim.vpp_location(id).map(|l| l.uid).unwrap_or_default();
    Ok((StatusCode::CREATED, Json(json!({ "location_id": id.0, "uid": uid }))).into_response())
}

async fn list_locations(State(sim): State<AppleSim>) -> Res {
    ok_json(sim.vpp_locations())
}

async fn location(State(sim): State<AppleSim>, Path(loc): Path<u32>) -> Res {
    match sim.vpp_location(VppLocationId(loc)) {
        Some(l) => ok_json(l),
        None => Err(not_found(format!("unknown Apps and Books location {loc}"))),
    }
}

#[derive(Deserialize)]
struct UpdateLocation {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

async fn update_location(State(sim): State<AppleSim>, Path(loc): Path<u32>, body: axum::body::Bytes) -> Res {
    let req: UpdateLocation = parse(&body)?;
    let loc = VppLocationId(loc);
    if req.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(bad("the location name is empty"));
    }
    if let Some(c) = &req.country {
        sim.set_vpp_country(loc, c)?;
    }
    if let Some(n) = &req.name {
        sim.set_vpp_location_name(loc, n)?;
    }
    match sim.vpp_location(loc) {
        Some(l) => ok_json(l),
        None => Err(not_found(format!("unknown Apps and Books location {loc}"))),
    }
}

fn known(sim: &AppleSim, loc: u32) -> Result<VppLocationId, AdminError> {
    let id = VppLocationId(loc);
    match sim.vpp_location(id) {
        Some(_) => Ok(id),
        None => Err(not_found(format!("unknown Apps and Books location {loc}"))),
    }
}

async fn assets(State(sim): State<AppleSim>, Path(loc): Path<u32>) -> Res {
    let id = known(&sim, loc)?;
    ok_json(sim.vpp_assets(id))
}

async fn add_asset(State(sim): State<AppleSim>, Path(loc): Path<u32>, body: axum::body::Bytes) -> Res {
    let spec: VppAssetSpec = parse(&body)?;
    let id = known(&sim, loc)?;
    let key = (spec.adam_id.clone(), spec.pricing_param);
    sim.add_vpp_asset(id, spec)?;
    let asset = sim
        .vpp_assets(id)
        .into_iter()
        .find(|a| (a.adam_id.clone(), a.pricing_param) == key);
    ok_json(asset)
}

async fn assignments(State(sim): State<AppleSim>, Path(loc): Path<u32>) -> Res {
    let id = known(&sim, loc)?;
    ok_json(sim.vpp_assignments(id))
}

#[derive(Deserialize)]
struct AddAssignments {
    adam_id: String,
    #[serde(default = "stdq")]
    pricing_param: VppPricing,
    #[serde(default)]
    serial_numbers: Vec<String>,
    #[serde(default)]
    client_user_ids: Vec<String>,
}

fn stdq() -> VppPricing {
    VppPricing::Stdq
}

async fn add_assignments(State(sim): State<AppleSim>, Path(loc): Path<u32>, body: axum::body::Bytes) -> Res {
    let req: AddAssignments = parse(&body)?;
    let id = known(&sim, loc)?;
    let who: Vec<VppAssignee> = req
        .serial_numbers
        .into_iter()
        .map(VppAssignee::SerialNumber)
        .chain(req.client_user_ids.into_iter().map(VppAssignee::ClientUserId))
        .collect();
    sim.add_vpp_assignments(id, &req.adam_id, req.pricing_param, &who)?;
    no_content()
}

#[derive(Deserialize)]
struct TokenRequest {
    /// RFC 3339 expiry; a year from the sim clock when absent.
    #[serde(default)]
    expires: Option<String>,
}

async fn download_token(State(sim): State<AppleSim>, Path(loc): Path<u32>, body: axum::body::Bytes) -> Res {
    let req: TokenRequest = parse(&body)?;
    let id = VppLocationId(loc);
    let file = match &req.expires {
        Some(s) => {
            let at = crate::timefmt::parse(s).ok_or_else(|| bad(format!("not an RFC 3339 time: {s}")))?;
            sim.download_vpp_token_expiring(id, at)?
        }
        None => sim.download_vpp_token(id)?,
    };
    let name = sim.vpp_location(id).map(|l| l.name).unwrap_or_default();
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut resp = (StatusCode::OK, file).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"sToken_for_{safe}.vpptoken\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn revoke_tokens(State(sim): State<AppleSim>, Path(loc): Path<u32>) -> Res {
    let n = sim.revoke_vpp_tokens(VppLocationId(loc))?;
    ok_json(json!({ "revoked": n }))
}

async fn revoke_token(State(sim): State<AppleSim>, body: String) -> Res {
    sim.revoke_vpp_token(&body)?;
    no_content()
}

async fn mdm_info(State(sim): State<AppleSim>, Path(loc): Path<u32>) -> Res {
    let id = known(&sim, loc)?;
    ok_json(sim.vpp_mdm_info(id))
}

async fn set_mdm_info(State(sim): State<AppleSim>, Path(loc): Path<u32>, body: axum::body::Bytes) -> Res {
    let info: VppMdmInfo = parse(&body)?;
    if info.id.trim().is_empty() || info.name.trim().is_empty() {
        return Err(bad("mdmInfo needs a non-empty id and name"));
    }
    sim.set_vpp_mdm_info(VppLocationId(loc), Some(info))?;
    no_content()
}

async fn clear_mdm_info(State(sim): State<AppleSim>, Path(loc): Path<u32>) -> Res {
    sim.set_vpp_mdm_info(VppLocationId(loc), None)?;
    no_content()
}

async fn event(State(sim): State<AppleSim>, Path(event): Path<String>) -> Res {
    match sim.vpp_event(&event) {
        Some(e) => ok_json(e),
        None => Err(not_found(format!("unknown Apps and Books event {event}"))),
    }
}

/// A fault in the admin API's JSON.
#[derive(Deserialize, Serialize)]
struct FaultJson {
    /// Path under `/mdm/v2`, e.g. `/assets`; every path when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default = "one")]
    count: u32,
    /// `pass`, `error`, `too_many_requests`, `service_unavailable`, `internal_error`,
    /// `token_revoked`, `token_invalid`, `error_in_ok_body`, `slow`, `drop_connection`,
    /// `fail_event`.
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    millis: Option<u64>,
}

fn one() -> u32 {
    1
}

impl FaultJson {
    fn to_fault(&self) -> Result<VppFault, AdminError> {
        let number = |default: u32| self.error_number.unwrap_or(default);
        let kind = match self.kind.as_str() {
            "pass" => VppFaultKind::Pass,
            "error" => {
                let (Some(status), Some(error_number)) = (self.status, self.error_number) else {
                    return Err(bad("an error fault needs status and error_number"));
                };
                if !(200..=599).contains(&status) {
                    return Err(bad(format!("status {status} is not an HTTP status from 200 to 599")));
                }
                VppFaultKind::Error {
                    status,
                    error_number,
                    retry_after_seconds: self.retry_after_seconds,
                }
            }
            "too_many_requests" => VppFaultKind::Error {
                status: 429,
                error_number: number(9646),
                retry_after_seconds: self.retry_after_seconds,
            },
            "service_unavailable" => VppFaultKind::Error {
                status: 503,
                error_number: number(9603),
                retry_after_seconds: self.retry_after_seconds,
            },
            "internal_error" => VppFaultKind::Error {
                status: 500,
                error_number: number(9603),
                retry_after_seconds: self.retry_after_seconds,
            },
            "token_revoked" => VppFaultKind::token_revoked(),
            "token_invalid" => VppFaultKind::token_invalid(),
            "error_in_ok_body" => VppFaultKind::error_in_ok_body(number(9603)),
            "slow" => VppFaultKind::Slow(Duration::from_millis(self.millis.unwrap_or(1000))),
            "drop_connection" => VppFaultKind::DropConnection,
            "fail_event" => VppFaultKind::FailEvent {
                error_number: number(9603),
            },
            other => return Err(bad(format!("unknown fault kind {other}"))),
        };
        if let Some(p) = &self.path
            && !p.starts_with('/')
        {
            return Err(bad(format!(
                "the fault path must start with / (a path under /mdm/v2, e.g. /assets), not {p:?}"
            )));
        }
        Ok(VppFault {
            path: self.path.clone(),
            count: self.count,
            kind,
        })
    }

    fn from_fault(f: &VppFault) -> FaultJson {
        let mut j = FaultJson {
            path: f.path.clone(),
            count: f.count,
            kind: String::new(),
            status: None,
            error_number: None,
            retry_after_seconds: None,
            millis: None,
        };
        j.kind = match &f.kind {
            VppFaultKind::Pass => "pass",
            VppFaultKind::Error {
                status,
                error_number,
                retry_after_seconds,
            } => {
                j.status = Some(*status);
                j.error_number = Some(*error_number);
                j.retry_after_seconds = *retry_after_seconds;
                "error"
            }
            VppFaultKind::Slow(d) => {
                j.millis = Some(d.as_millis() as u64);
                "slow"
            }
            VppFaultKind::DropConnection => "drop_connection",
            VppFaultKind::FailEvent { error_number } => {
                j.error_number = Some(*error_number);
                "fail_event"
            }
        }
        .to_owned();
        j
    }
}

#[derive(Deserialize)]
struct PushFaults {
    faults: Vec<FaultJson>,
}

async fn push_faults(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: PushFaults = parse(&body)?;
    let faults = req
        .faults
        .iter()
        .map(FaultJson::to_fault)
        .collect::<Result<Vec<_>, _>>()?;
    sim.push_vpp_faults(faults);
    no_content()
}

async fn list_faults(State(sim): State<AppleSim>) -> Res {
    let list: Vec<FaultJson> = sim.pending_vpp_faults().iter().map(FaultJson::from_fault).collect();
    ok_json(list)
}

async fn clear_faults(State(sim): State<AppleSim>) -> Res {
    sim.clear_vpp_faults();
    no_content()
}

#[derive(Deserialize, Serialize)]
struct Settings {
    #[serde(default)]
    page_size: Option<usize>,
    #[serde(default)]
    max_assets: Option<usize>,
    #[serde(default)]
    max_client_user_ids: Option<usize>,
    #[serde(default)]
    max_serial_numbers: Option<usize>,
    #[serde(default)]
    event_delay_millis: Option<u64>,
    #[serde(default)]
    hold_events: Option<bool>,
}

fn current_settings(sim: &AppleSim) -> Settings {
    let w = sim.vpp();
    Settings {
        page_size: Some(w.page_size),
        max_assets: Some(w.limits.max_assets),
        max_client_user_ids: Some(w.limits.max_client_user_ids),
        max_serial_numbers: Some(w.limits.max_serial_numbers),
        event_delay_millis: Some(w.event_delay.as_millis() as u64),
        hold_events: Some(w.hold_events),
    }
}

async fn settings(State(sim): State<AppleSim>) -> Res {
    ok_json(current_settings(&sim))
}

async fn set_settings(State(sim): State<AppleSim>, body: axum::body::Bytes) -> Res {
    let req: Settings = parse(&body)?;
    if let Some(n) = req.page_size {
        sim.set_vpp_page_size(n);
    }
    let l = sim.vpp_limits();
    sim.set_vpp_limits(VppLimits {
        max_assets: req.max_assets.unwrap_or(l.max_assets),
        max_client_user_ids: req.max_client_user_ids.unwrap_or(l.max_client_user_ids),
        max_serial_numbers: req.max_serial_numbers.unwrap_or(l.max_serial_numbers),
    });
    if let Some(ms) = req.event_delay_millis {
        sim.set_vpp_event_delay(Duration::from_millis(ms));
    }
    if let Some(h) = req.hold_events {
        sim.hold_vpp_events(h);
    }
    ok_json(current_settings(&sim))
}
