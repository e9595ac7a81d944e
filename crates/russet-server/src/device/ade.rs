//! `/enroll/ade/{key}`: the endpoints Russet puts into its ADE profiles.
//!
//! * `POST /enroll/ade/{key}` is the profile's `url`: the device posts its signed
//!   MachineInfo (`application/pkcs7-signature`) and gets its enrollment profile.
//! * `GET /enroll/ade/{key}/sign-in` is the `configuration_web_url` (user affinity): Setup
//!   Assistant's web view sends the MachineInfo in `x-apple-aspen-deviceinfo` and gets a
//!   sign-in page; `POST` of that form answers the profile, or the page again with the
//!   reason.
//!
//! Refusals are Apple's error format for Setup Assistant: a 403 with a JSON body (`code`,
//! `description`, `message`), or the sign-in page with the message for the web view.

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use russet_apple::mdm::machine_info::{DEVICE_INFO_HEADER, decode_device_info_header};
use russet_core::ade_enroll::{AdeWebAnswer, SignInPage};
use russet_core::enroll::ServedProfile;
use russet_core::{CoreError, ErrorKind};
use serde::Deserialize;

use crate::AppState;

/// Longest profile key in a URL (Russet's are 43 characters).
const MAX_KEY: usize = 128;

fn status_of(e: &CoreError) -> StatusCode {
    match e.kind {
        ErrorKind::Forbidden | ErrorKind::Invalid | ErrorKind::Gone => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unavailable | ErrorKind::RateLimited => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Upstream | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A refusal as Setup Assistant reads it: Apple's error object, as JSON.
fn setup_error(e: &CoreError) -> Response {
    let status = status_of(e);
    if status.is_server_error() {
        tracing::error!(code = e.code, error = %e, "ADE enrollment failed");
    } else {
        tracing::info!(code = e.code, error = %e, "ADE enrollment refused");
    }
    let body = serde_json::json!({
        "code": format!("com.russet.enrollment.{}", e.code),
        "description": e.message,
        "message": e.message,
    });
    (status, axum::Json(body)).into_response()
}

fn profile_response(p: ServedProfile) -> Response {
    let mut r = (StatusCode::OK, p.body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(russet_apple::mdm::profile::PROFILE_CONTENT_TYPE),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn unknown_key() -> Response {
    setup_error(&CoreError::not_found(
        "ade_profile_unknown",
        "no such enrollment profile",
    ))
}

/// `POST /enroll/ade/{key}`: the signed MachineInfo in the body.
pub async fn enroll(State(state): State<AppState>, Path(key): Path<String>, body: Bytes) -> Response {
    if key.len() > MAX_KEY {
        return unknown_key();
    }
    match state.core.ade_enroll(&key, &body).await {
        Ok(p) => profile_response(p),
        Err(e) => setup_error(&e),
    }
}

/// `GET /enroll/ade/{key}/sign-in`: the web view's first request.
pub async fn sign_in_page(State(state): State<AppState>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    if key.len() > MAX_KEY {
        return unknown_key();
    }
    let Some(value) = headers.get(DEVICE_INFO_HEADER).and_then(|v| v.to_str().ok()) else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "This page is part of a device's setup",
            "Open it from the device's Setup Assistant: it identifies the device to the server.",
        );
    };
    let der = match decode_device_info_header(value) {
        Ok(der) => der,
        Err(e) => {
            let err = CoreError::new(ErrorKind::Forbidden, "ade_machine_info_invalid", e.to_string());
            return error_page(&err);
        }
    };
    match state.core.ade_sign_in_page(&key, &der).await {
        Ok(answer) => web_answer(answer),
        Err(e) => error_page(&e),
    }
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    session: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /enroll/ade/{key}/sign-in`: the form, filled in.
pub async fn sign_in_submit(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Form(form): Form<SignInForm>,
) -> Response {
    if key.len() > MAX_KEY {
        return unknown_key();
    }
    match state
        .core
        .ade_sign_in_submit(&key, &form.session, form.username.trim(), &form.password)
        .await
    {
        Ok(answer) => web_answer(answer),
        Err(e) => error_page(&e),
    }
}

fn web_answer(answer: AdeWebAnswer) -> Response {
    match answer {
        AdeWebAnswer::Profile(p) => profile_response(p),
        AdeWebAnswer::SignIn(page) => html(StatusCode::OK, sign_in_html(&page)),
    }
}

fn error_page(e: &CoreError) -> Response {
    let status = status_of(e);
    if status.is_server_error() {
        tracing::error!(code = e.code, error = %e, "ADE sign-in failed");
    } else {
        tracing::info!(code = e.code, error = %e, "ADE sign-in refused");
    }
    message_page(status, "This device cannot enroll", &e.message)
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// HTML-escapes text for element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:-apple-system,system-ui,sans-serif;max-width:28em;margin:3em auto;padding:0 1em;\
color:#222}h1{font-size:1.4em}label{display:block;margin-top:1em}input[type=text],input[type=password]{width:100%;\
font-size:1.1em;padding:.4em;box-sizing:border-box}button{margin-top:1.5em;font-size:1.1em;padding:.5em 2em}\
.error{color:#b00020;margin-top:1em}";

fn sign_in_html(p: &SignInPage) -> String {
    let error = p
        .error
        .as_deref()
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign in to {org}</title><style>{STYLE}</style></head><body>\
         <h1>Sign in to {org}</h1><p>This device is set up by {org} ({profile}). Sign in with your work account.</p>\
         {error}<form method=\"post\" action=\"sign-in\">\
         <input type=\"hidden\" name=\"session\" value=\"{session}\">\
         <label for=\"username\">Username</label>\
         <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" autocapitalize=\"none\" \
         value=\"{username}\" required>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form></body></html>",
        org = esc(&p.organization),
        profile = esc(&p.profile_name),
        session = esc(&p.session),
        username = esc(p.username.as_deref().unwrap_or_default()),
    )
}

fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    html(
        status,
        format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>\
             <p class=\"error\" role=\"alert\">{m}</p></body></html>",
            t = esc(title),
            m = esc(message),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_page_escapes_what_it_shows() {
        let page = SignInPage {
            session: "s\"><script>".into(),
            organization: "A & B <Corp>".into(),
            profile_name: "P".into(),
            username: Some("\"onfocus=alert(1)".into()),
            error: Some("<b>wrong</b>".into()),
        };
        let html = sign_in_html(&page);
        assert!(!html.contains("<script>") && !html.contains("<b>"));
        assert!(html.contains("A &amp; B &lt;Corp&gt;"));
        assert!(html.contains("value=\"&quot;onfocus=alert(1)\""));
        assert!(html.contains("class=\"error\""));
        assert!(html.contains("type=\"password\""));
    }
}
