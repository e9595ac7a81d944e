//! `/scep`: Russet's SCEP certificate authority (RFC 8894): `GetCACaps`, `GetCACert` and
//! `PKIOperation` (GET with a base64 `message`, or POST with the DER body).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use russet_apple::scep::{self, Operation};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct ScepQuery {
    operation: Option<String>,
    message: Option<String>,
}

fn with_type(content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn operation(q: &ScepQuery) -> Result<Operation, ApiError> {
    let op = q.operation.as_deref().unwrap_or("");
    Operation::parse(op).ok_or_else(|| {
        ApiError::bad_request(
            "scep_operation",
            format!("unknown SCEP operation \"{op}\": use GetCACaps, GetCACert or PKIOperation"),
        )
    })
}

async fn pki_operation(state: &AppState, message: &[u8]) -> Result<Response, ApiError> {
    let reply = state.core.scep_pki_operation(message).await?;
    tracing::info!(outcome = %reply.outcome, "SCEP PKIOperation");
    Ok(with_type(scep::CONTENT_TYPE_PKI_MESSAGE, reply.body))
}

pub async fn get(State(state): State<AppState>, Query(q): Query<ScepQuery>) -> Result<Response, ApiError> {
    match operation(&q)? {
        Operation::GetCaCaps => Ok(with_type(scep::CONTENT_TYPE_CAPS, scep::caps().as_bytes().to_vec())),
        Operation::GetCaCert => {
            let (content_type, der) = state.core.scep_ca_certs().await?;
            Ok(with_type(content_type, der))
        }
        Operation::PkiOperation => {
            let message = q.message.as_deref().unwrap_or("");
            if message.len() > scep::MAX_MESSAGE_SIZE * 2 {
                return Err(ApiError::too_large(scep::MAX_MESSAGE_SIZE));
            }
            let der = scep::decode_message_param(message)
                .map_err(|e| ApiError::bad_request("scep_message", e.to_string()))?;
            pki_operation(&state, &der).await
        }
        Operation::GetNextCaCert => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "scep_operation",
            "GetNextCACert is not supported: Russet's CA has no successor yet",
        )),
    }
}

pub async fn post(
    State(state): State<AppState>,
    Query(q): Query<ScepQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    match operation(&q)? {
        Operation::PkiOperation => pki_operation(&state, &body).await,
        other => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "scep_operation",
            format!("{} is a GET operation", other.as_str()),
        )),
    }
}
