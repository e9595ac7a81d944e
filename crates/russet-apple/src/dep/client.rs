//! The HTTP client: sessions, retries, and the endpoints.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tracing::debug;
use url::Url;

use super::error::{ACCESS_DENIED, FORBIDDEN, T_C_NOT_SIGNED, classify};
use super::oauth::{new_nonce, oauth_authorization};
use super::types::{DeviceDetailsWire, DeviceStatusesWire, SessionWire};
use super::{
    Account, AssignProfileResponse, DefineProfileResponse, DepConfig, DepError, DeviceDetails, DevicePage,
    DeviceStatuses, MAX_DEVICES_PER_REQUEST, OAuthCredentials, PROTOCOL_VERSION, Profile,
};

/// The session token header, sent on every call but `/session` and possibly rotated by Apple
/// in responses.
const SESSION_HEADER: HeaderName = HeaderName::from_static("x-adm-auth-session");
const PROTOCOL_HEADER: HeaderName = HeaderName::from_static("x-server-protocol-version");
/// "UTF8" without a dash, as Apple's and depsim's clients send it (depsim requires it).
const JSON_UTF8: &str = "application/json;charset=UTF8";
/// Responses larger than this are refused (a page of 1000 devices is about 0.5 MiB).
const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// A client of Apple's device assignment API for one server token.
///
/// Cheap to clone: clones share the HTTP connection pool and the session, and only one of
/// them at a time asks `/session` for a new one (the others wait and reuse it).
#[derive(Clone)]
pub struct DepClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Without a trailing slash.
    base_url: String,
    user_agent: HeaderValue,
    config: DepConfig,
    credentials: OAuthCredentials,
    /// Held while a new session is fetched, so that concurrent callers wait for it.
    session: Mutex<SessionCache>,
}

#[derive(Default)]
struct SessionCache {
    current: Option<Session>,
    next_generation: u64,
}

/// A session token as a (sensitive) header value. `generation` tells a stale copy from the
/// cached one, so that one refused session leads to one refresh however many requests used it.
#[derive(Clone)]
struct Session {
    header: HeaderValue,
    generation: u64,
}

/// One API request, replayable.
struct Call {
    method: Method,
    /// For logs: the path without query.
    path: &'static str,
    url: String,
    body: Option<Vec<u8>>,
}

enum Auth<'a> {
    /// `GET /session`: a freshly signed OAuth header per attempt.
    OAuth,
    Session(&'a HeaderValue),
}

/// A complete answer.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

enum AttemptError {
    /// No (complete) answer: retried.
    Transport(String),
    /// Not retried.
    Fatal(DepError),
}

#[derive(Serialize)]
struct CursorRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<&'a str>,
    limit: u32,
}

#[derive(Serialize)]
struct DevicesRequest<'a> {
    devices: &'a [String],
}

#[derive(Serialize)]
struct AssignRequest<'a> {
    profile_uuid: &'a str,
    devices: &'a [String],
}

impl fmt::Debug for DepClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DepClient")
            .field("base_url", &self.inner.base_url)
            .field("consumer_key", &self.inner.credentials.consumer_key)
            .finish_non_exhaustive()
    }
}

impl DepClient {
    /// Checks the configuration and credentials and sets up the HTTP client. No request is
    /// made: the session is obtained with the first call.
    pub fn new(config: DepConfig, credentials: OAuthCredentials) -> Result<DepClient, DepError> {
        let invalid = |detail: String| DepError::InvalidConfig { detail };
        let base = Url::parse(config.base_url.trim())
            .map_err(|e| invalid(format!("the base URL {:?} is not a valid URL ({e})", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid(format!(
                "the base URL {:?} must be an http or https URL with a host name, such as {}",
                config.base_url,
                super::APPLE_DEP_URL
            )));
        }
        if base.query().is_some()
            || base.fragment().is_some()
            || !base.username().is_empty()
            || base.password().is_some()
        {
            return Err(invalid(format!(
                "the base URL {:?} must not contain a query, a fragment or user credentials",
                config.base_url
            )));
        }
        let base_url = base.as_str().trim_end_matches('/').to_owned();

        let user_agent = config.user_agent.trim();
        if user_agent.is_empty() {
            return Err(invalid(
                "the User-Agent is empty, and Apple rejects requests without one: set it to a product \
                 string such as \"russet/0.1.0\""
                    .to_owned(),
            ));
        }
        let user_agent = HeaderValue::from_str(user_agent).map_err(|_| {
            invalid(format!(
                "the User-Agent {user_agent:?} contains characters not allowed in an HTTP header"
            ))
        })?;
        if config.request_timeout.is_zero() || config.connect_timeout.is_zero() {
            return Err(invalid(
                "the request and connect timeouts must be longer than zero".to_owned(),
            ));
        }
        for (name, value) in [
            ("consumer_key", credentials.consumer_key.as_str()),
            ("consumer_secret", credentials.consumer_secret.expose_secret()),
            ("access_token", credentials.access_token.expose_secret()),
            ("access_secret", credentials.access_secret.expose_secret()),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(format!(
                    "the server token's {name} is empty: upload the server token again as downloaded from \
                     Apple Business Manager"
                )));
            }
        }

        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect would carry the session header to another host; Apple does not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("the HTTP client cannot be created ({})", error_chain(&e))))?;

        Ok(DepClient {
            inner: Arc::new(Inner {
                http,
                base_url,
                user_agent,
                config,
                credentials,
                session: Mutex::new(SessionCache::default()),
            }),
        })
    }

    /// The configuration this client was made with.
    pub fn config(&self) -> &DepConfig {
        &self.inner.config
    }

    /// `GET /account`: the MDM server and organisation of the token. A cheap way to check a
    /// newly uploaded token.
    pub async fn account(&self) -> Result<Account, DepError> {
        let call = self.prepare(Method::GET, "/account", None, None::<&()>)?;
        let reply = self.call(&call).await?;
        decode(&reply, &call)
    }

    /// `POST /server/devices`: one page of all devices assigned to this MDM server. `cursor` is
    /// `None` (or empty) on the first call; `limit` is clamped to 1..=1000.
    ///
    /// Call again with the page's cursor while `more_to_follow` is true; then continue with
    /// [`sync_devices`](DepClient::sync_devices). An error with
    /// [`is_exhausted_cursor`](DepError::is_exhausted_cursor) means "switch to sync".
    pub async fn fetch_devices(&self, cursor: Option<&str>, limit: u32) -> Result<DevicePage, DepError> {
        let body = CursorRequest {
            cursor: cursor.filter(|c| !c.is_empty()),
            limit: clamp_limit(limit),
        };
        let call = self.prepare(Method::POST, "/server/devices", None, Some(&body))?;
        let reply = self.call(&call).await?;
        decode(&reply, &call)
    }

    /// `POST /devices/sync`: the changes since `cursor`, each device with `op_type` and
    /// `op_date`; `limit` is clamped to 1..=1000. An error with
    /// [`is_cursor_reset`](DepError::is_cursor_reset) means "fetch from scratch".
    pub async fn sync_devices(&self, cursor: &str, limit: u32) -> Result<DevicePage, DepError> {
        let body = CursorRequest {
            cursor: Some(cursor),
            limit: clamp_limit(limit),
        };
        let call = self.prepare(Method::POST, "/devices/sync", None, Some(&body))?;
        let reply = self.call(&call).await?;
        decode(&reply, &call)
    }

    /// `POST /devices`: details of up to 1000 devices. Each [`Device`](super::Device) has its
    /// `response_status` (`SUCCESS`, `NOT_FOUND`, …) and, if Apple omitted it, its serial number
    /// filled in from the map key. An empty list returns an empty map without a request.
    pub async fn device_details(&self, serials: &[String]) -> Result<DeviceDetails, DepError> {
        check_batch(serials.len())?;
        if serials.is_empty() {
            return Ok(DeviceDetails::new());
        }
        let call = self.prepare(
            Method::POST,
            "/devices",
            None,
            Some(&DevicesRequest { devices: serials }),
        )?;
        let reply = self.call(&call).await?;
        let mut devices = decode::<DeviceDetailsWire>(&reply, &call)?.devices;
        for (serial, device) in &mut devices {
            if device.serial_number.is_empty() {
                device.serial_number.clone_from(serial);
            }
        }
        Ok(devices)
    }

    /// `POST /devices/disown`: permanently release up to 1000 devices from the organisation.
    /// An empty list returns an empty map without a request.
    pub async fn disown_devices(&self, serials: &[String]) -> Result<DeviceStatuses, DepError> {
        check_batch(serials.len())?;
        if serials.is_empty() {
            return Ok(DeviceStatuses::new());
        }
        let call = self.prepare(
            Method::POST,
            "/devices/disown",
            None,
            Some(&DevicesRequest { devices: serials }),
        )?;
        let reply = self.call(&call).await?;
        Ok(decode::<DeviceStatusesWire>(&reply, &call)?.devices)
    }

    /// `POST /profile`: define an enrollment profile (and assign it to `profile.devices`, at
    /// most 1000). Apple's answer must carry the new `profile_uuid`.
    pub async fn define_profile(&self, profile: &Profile) -> Result<DefineProfileResponse, DepError> {
        check_batch(profile.devices.as_ref().map_or(0, Vec::len))?;
        let call = self.prepare(Method::POST, "/profile", None, Some(profile))?;
        let reply = self.call(&call).await?;
        let response: DefineProfileResponse = decode(&reply, &call)?;
        if response.profile_uuid.trim().is_empty() {
            return Err(DepError::Decode {
                detail: "POST /profile answered without a profile_uuid".to_owned(),
            });
        }
        Ok(response)
    }

    /// `GET /profile?profile_uuid=…`.
    pub async fn get_profile(&self, profile_uuid: &str) -> Result<Profile, DepError> {
        let call = self.prepare(
            Method::GET,
            "/profile",
            Some(("profile_uuid", profile_uuid)),
            None::<&()>,
        )?;
        let reply = self.call(&call).await?;
        decode(&reply, &call)
    }

    /// `POST /profile/devices` (Apple's documented method): assign a profile to at most
    /// [`MAX_DEVICES_PER_REQUEST`] devices; more give [`DepError::TooManyDevices`] without a
    /// request, none give an empty answer without a request. Devices Apple throttles are
    /// [`DeviceStatus::Throttled`](super::DeviceStatus::Throttled), with
    /// `retry_after_seconds`.
    pub async fn assign_profile(
        &self,
        profile_uuid: &str,
        serials: &[String],
    ) -> Result<AssignProfileResponse, DepError> {
        check_batch(serials.len())?;
        if serials.is_empty() {
            return Ok(AssignProfileResponse {
                profile_uuid: profile_uuid.to_owned(),
                ..AssignProfileResponse::default()
            });
        }
        let body = AssignRequest {
            profile_uuid,
            devices: serials,
        };
        let call = self.prepare(Method::POST, "/profile/devices", None, Some(&body))?;
        let reply = self.call(&call).await?;
        decode(&reply, &call)
    }

    /// `DELETE /profile/devices` with a JSON body: unassign the profile of up to 1000 devices
    /// (no effect on a device that already has it until it is erased). An empty list returns an
    /// empty map without a request.
    pub async fn remove_profile(&self, serials: &[String]) -> Result<DeviceStatuses, DepError> {
        check_batch(serials.len())?;
        if serials.is_empty() {
            return Ok(DeviceStatuses::new());
        }
        let call = self.prepare(
            Method::DELETE,
            "/profile/devices",
            None,
            Some(&DevicesRequest { devices: serials }),
        )?;
        let reply = self.call(&call).await?;
        Ok(decode::<DeviceStatusesWire>(&reply, &call)?.devices)
    }

    fn prepare<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &'static str,
        query: Option<(&str, &str)>,
        body: Option<&B>,
    ) -> Result<Call, DepError> {
        let mut url = format!("{}{path}", self.inner.base_url);
        if let Some((name, value)) = query {
            let mut parsed = Url::parse(&url).map_err(|e| DepError::InvalidConfig {
                detail: format!("the URL {url:?} cannot be built ({e})"),
            })?;
            parsed.query_pairs_mut().append_pair(name, value);
            url = parsed.into();
        }
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| DepError::InvalidConfig {
                detail: format!("the {method} {path} request cannot be encoded as JSON ({e})"),
            })?;
        Ok(Call {
            method,
            path,
            url,
            body,
        })
    }

    /// A request with the session: re-authenticates once on 401 or 403 `FORBIDDEN`, follows
    /// session rotation, and turns refusals into errors. Returns only 2xx answers.
    async fn call(&self, call: &Call) -> Result<Reply, DepError> {
        let mut session = self.session().await?;
        let mut reauthenticated = false;
        loop {
            let reply = self.send_with_retries(call, Auth::Session(&session.header)).await?;
            if let Some(rotated) = self.observe_rotation(&session, &reply.headers).await {
                session = rotated;
            }
            let status = reply.status;
            if status.is_success() {
                return Ok(reply);
            }
            let body = String::from_utf8_lossy(&reply.body);
            let session_refused = status == StatusCode::UNAUTHORIZED
                || (status == StatusCode::FORBIDDEN
                    && body.contains(FORBIDDEN)
                    && !body.contains(T_C_NOT_SIGNED)
                    && !body.contains(ACCESS_DENIED));
            if !session_refused {
                return Err(classify(status.as_u16(), &body, false));
            }
            if reauthenticated {
                return Err(DepError::Unauthorized {
                    detail: format!(
                        "{} {} was refused with HTTP {} even with a new session",
                        call.method,
                        call.path,
                        status.as_u16()
                    ),
                });
            }
            debug!(
                method = %call.method,
                path = call.path,
                status = status.as_u16(),
                "DEP session refused; getting a new one"
            );
            session = self.refresh_session(session.generation).await?;
            reauthenticated = true;
        }
    }

    /// The cached session, or a new one.
    async fn session(&self) -> Result<Session, DepError> {
        let mut cache = self.inner.session.lock().await;
        if let Some(session) = &cache.current {
            return Ok(session.clone());
        }
        self.new_session(&mut cache).await
    }

    /// A session other than `stale`: the cached one if another caller already replaced it,
    /// else a new one.
    async fn refresh_session(&self, stale: u64) -> Result<Session, DepError> {
        let mut cache = self.inner.session.lock().await;
        if let Some(session) = &cache.current {
            if session.generation != stale {
                return Ok(session.clone());
            }
        }
        cache.current = None;
        self.new_session(&mut cache).await
    }

    async fn new_session(&self, cache: &mut SessionCache) -> Result<Session, DepError> {
        let header = self.fetch_session().await?;
        let session = Session {
            header,
            generation: cache.next_generation,
        };
        cache.next_generation += 1;
        cache.current = Some(session.clone());
        Ok(session)
    }

    /// `GET /session` with the OAuth header.
    async fn fetch_session(&self) -> Result<HeaderValue, DepError> {
        let call = self.prepare(Method::GET, "/session", None, None::<&()>)?;
        let reply = self.send_with_retries(&call, Auth::OAuth).await?;
        if !reply.status.is_success() {
            return Err(classify(
                reply.status.as_u16(),
                &String::from_utf8_lossy(&reply.body),
                true,
            ));
        }
        // The serde error is not shown: it could quote the token.
        let wire: SessionWire = serde_json::from_slice(&reply.body).map_err(|_| DepError::Decode {
            detail: "GET /session did not answer with a JSON object holding auth_session_token".to_owned(),
        })?;
        let token = wire.auth_session_token.unwrap_or_default();
        let token = token.trim();
        if token.is_empty() {
            return Err(DepError::Decode {
                detail: "GET /session answered without a session token (auth_session_token is missing or empty)"
                    .to_owned(),
            });
        }
        let mut header = HeaderValue::from_str(token).map_err(|_| DepError::Decode {
            detail: "GET /session answered with a session token containing characters not allowed in an HTTP header"
                .to_owned(),
        })?;
        header.set_sensitive(true);
        debug!("DEP session obtained");
        Ok(header)
    }

    /// If Apple sent a session token other than the one used, it replaces the cached session
    /// (unless the cache has moved on already) and is returned.
    async fn observe_rotation(&self, used: &Session, headers: &HeaderMap) -> Option<Session> {
        let new = headers.get(SESSION_HEADER)?;
        if new.is_empty() || new.as_bytes() == used.header.as_bytes() {
            return None;
        }
        let mut header = new.clone();
        header.set_sensitive(true);
        let mut cache = self.inner.session.lock().await;
        let still_current = cache.current.as_ref().is_none_or(|c| c.generation == used.generation);
        if !still_current {
            return None;
        }
        let session = Session {
            header,
            generation: cache.next_generation,
        };
        cache.next_generation += 1;
        cache.current = Some(session.clone());
        debug!("DEP session rotated by Apple");
        Some(session)
    }

    /// Sends `call`, retrying 429, 5xx and transport failures. Returns any other answer, or
    /// the last 429 / 5xx / transport failure as an error.
    async fn send_with_retries(&self, call: &Call, auth: Auth<'_>) -> Result<Reply, DepError> {
        let config = &self.inner.config;
        let mut attempt: u32 = 0;
        loop {
            let started = Instant::now();
            let result = self.send_once(call, &auth).await;
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let wait = match result {
                Ok(reply) => {
                    let status = reply.status;
                    debug!(
                        method = %call.method,
                        path = call.path,
                        status = status.as_u16(),
                        latency_ms,
                        attempt,
                        "DEP request"
                    );
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Ok(reply);
                    }
                    let retry_after = parse_retry_after(&reply.headers, SystemTime::now());
                    let error = || {
                        if status == StatusCode::TOO_MANY_REQUESTS {
                            DepError::RateLimited { retry_after }
                        } else {
                            DepError::ServerError {
                                status: status.as_u16(),
                                retry_after,
                            }
                        }
                    };
                    match retry_after {
                        Some(wait) if wait > config.max_retry_after => return Err(error()),
                        _ if attempt >= config.max_retries => return Err(error()),
                        Some(wait) => wait,
                        None => full_jitter(config.backoff_base, config.backoff_max, attempt, random_u64()),
                    }
                }
                Err(AttemptError::Fatal(error)) => return Err(error),
                Err(AttemptError::Transport(detail)) => {
                    debug!(
                        method = %call.method,
                        path = call.path,
                        latency_ms,
                        attempt,
                        error = %detail,
                        "DEP request failed"
                    );
                    if attempt >= config.max_retries {
                        return Err(DepError::Transport { detail });
                    }
                    full_jitter(config.backoff_base, config.backoff_max, attempt, random_u64())
                }
            };
            debug!(
                method = %call.method,
                path = call.path,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "DEP request will be retried"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, call: &Call, auth: &Auth<'_>) -> Result<Reply, AttemptError> {
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), &call.url)
            .header(USER_AGENT, self.inner.user_agent.clone())
            .header(PROTOCOL_HEADER, HeaderValue::from(PROTOCOL_VERSION))
            .header(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8))
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        match auth {
            Auth::OAuth => {
                let nonce = new_nonce().map_err(AttemptError::Fatal)?;
                let value = oauth_authorization(
                    call.method.as_str(),
                    &call.url,
                    &self.inner.credentials,
                    &nonce,
                    unix_now(),
                )
                .map_err(AttemptError::Fatal)?;
                let mut header = HeaderValue::from_str(&value).map_err(|_| {
                    AttemptError::Fatal(DepError::InvalidConfig {
                        detail: "the OAuth header cannot be sent".to_owned(),
                    })
                })?;
                header.set_sensitive(true);
                request = request.header(AUTHORIZATION, header);
            }
            Auth::Session(header) => request = request.header(SESSION_HEADER, (*header).clone()),
        }
        if let Some(body) = &call.body {
            request = request.body(body.clone());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| AttemptError::Transport(describe(&e, &self.inner.config)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| AttemptError::Transport(describe(&e, &self.inner.config)))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BODY {
                return Err(AttemptError::Fatal(DepError::Decode {
                    detail: format!(
                        "{} {} answered with more than {} MiB",
                        call.method,
                        call.path,
                        MAX_RESPONSE_BODY >> 20
                    ),
                }));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, headers, body })
    }
}

fn decode<T: DeserializeOwned>(reply: &Reply, call: &Call) -> Result<T, DepError> {
    serde_json::from_slice(&reply.body).map_err(|e| DepError::Decode {
        detail: format!(
            "{} {} answered HTTP {} with {e}",
            call.method,
            call.path,
            reply.status.as_u16()
        ),
    })
}

fn clamp_limit(limit: u32) -> u32 {
    // MAX_DEVICES_PER_REQUEST is 1000 and fits.
    limit.clamp(1, MAX_DEVICES_PER_REQUEST as u32)
}

fn check_batch(count: usize) -> Result<(), DepError> {
    if count > MAX_DEVICES_PER_REQUEST {
        return Err(DepError::TooManyDevices { count });
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn random_u64() -> u64 {
    // Without randomness the backoff loses its jitter, not its bound.
    getrandom::u64().unwrap_or(u64::MAX)
}

/// Retry `attempt` (from 0) waits a uniformly random time in `0..=min(base × 2^attempt, max)`.
pub(crate) fn full_jitter(base: Duration, max: Duration, attempt: u32, random: u64) -> Duration {
    let factor = 2u32.checked_pow(attempt).unwrap_or(u32::MAX);
    let ceiling = base.checked_mul(factor).unwrap_or(max).min(max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(random % nanos.saturating_add(1))
}

/// `Retry-After` as delay-seconds or an HTTP-date (a date in the past is zero).
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A transport failure for logs and errors: its kind and the chain of causes (which name
/// neither credentials nor session tokens).
fn describe(error: &reqwest::Error, config: &DepConfig) -> String {
    let kind = if error.is_timeout() {
        format!(
            "no complete answer within {} s (request timeout) or {} s (connect timeout)",
            config.request_timeout.as_secs_f64(),
            config.connect_timeout.as_secs_f64()
        )
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_body() || error.is_decode() {
        "the connection failed while reading the answer".to_owned()
    } else {
        "the connection failed".to_owned()
    };
    let causes = error_chain(error);
    if causes.is_empty() {
        kind
    } else {
        format!("{kind}: {causes}")
    }
}

/// The messages of an error's sources, without repetitions.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_bounded_and_grows() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        assert_eq!(
            full_jitter(base, max, 0, u64::MAX),
            Duration::from_nanos(u64::MAX % 500_000_001)
        );
        for attempt in 0..40 {
            let ceiling = base.saturating_mul(2u32.saturating_pow(attempt)).min(max);
            for random in [0, 1, 12345, u64::MAX / 3, u64::MAX] {
                assert!(full_jitter(base, max, attempt, random) <= ceiling);
            }
        }
        // The ceiling itself is reachable: random = ceiling in nanoseconds.
        assert_eq!(full_jitter(base, max, 2, 2_000_000_000), Duration::from_secs(2));
        assert_eq!(full_jitter(base, max, 10, 30_000_000_000), max);
        assert_eq!(full_jitter(Duration::ZERO, max, 3, 99), Duration::ZERO);
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        assert_eq!(parse_retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 120 "));
        assert_eq!(parse_retry_after(&headers, now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(parse_retry_after(&headers, now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&earlier).unwrap());
        assert_eq!(parse_retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("-5"));
        assert_eq!(parse_retry_after(&headers, now), None);
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(1), 1);
        assert_eq!(clamp_limit(500), 500);
        assert_eq!(clamp_limit(1000), 1000);
        assert_eq!(clamp_limit(5000), 1000);
    }

    fn credentials() -> OAuthCredentials {
        OAuthCredentials {
            consumer_key: "CK_x".to_owned(),
            consumer_secret: "CS_x".into(),
            access_token: "AT_x".into(),
            access_secret: "AS_x".into(),
        }
    }

    #[test]
    fn config_validation() {
        let ok = |base: &str| {
            let config = DepConfig {
                base_url: base.to_owned(),
                ..DepConfig::default()
            };
            DepClient::new(config, credentials()).map(|c| c.inner.base_url.clone())
        };
        assert_eq!(
            ok("https://mdmenrollment.apple.com").unwrap(),
            "https://mdmenrollment.apple.com"
        );
        assert_eq!(
            ok("https://mdmenrollment.apple.com/").unwrap(),
            "https://mdmenrollment.apple.com"
        );
        assert_eq!(
            ok("http://127.0.0.1:8080/proxy/t1/").unwrap(),
            "http://127.0.0.1:8080/proxy/t1"
        );
        for bad in [
            "",
            "mdmenrollment.apple.com",
            "ftp://x/",
            "https://x/?a=b",
            "https://u:p@x/",
        ] {
            assert!(matches!(ok(bad), Err(DepError::InvalidConfig { .. })), "{bad}");
        }
        let mut empty = credentials();
        empty.access_secret = "".into();
        assert!(matches!(
            DepClient::new(DepConfig::default(), empty),
            Err(DepError::InvalidConfig { .. })
        ));
        let no_ua = DepConfig {
            user_agent: " ".to_owned(),
            ..DepConfig::default()
        };
        assert!(matches!(
            DepClient::new(no_ua, credentials()),
            Err(DepError::InvalidConfig { .. })
        ));
        assert_eq!(
            DepConfig::default().user_agent,
            format!("russet/{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let client = DepClient::new(DepConfig::default(), credentials()).unwrap();
        let text = format!("{client:?} {:?}", credentials());
        assert!(text.contains("CK_x"));
        for secret in ["CS_x", "AT_x", "AS_x"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
