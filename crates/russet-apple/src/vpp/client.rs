//! The HTTP client: authentication, retries, paging, and the endpoints.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tracing::debug;
use url::Url;

use super::error::classify;
use super::token_file::bearer_text;
use super::types::{
    AllPages, Asset, AssetsPage, AssetsQuery, Assignment, AssignmentsPage, AssignmentsQuery, AssociateRequest,
    ClientConfig, ClientConfigRequest, EventResponse, RevokeRequest, ServiceConfig, StatusResponse,
};
use super::{APPLE_VPP_URL, VppConfig, VppError};
use crate::dep::client::{error_chain, full_jitter, parse_retry_after};

/// A client of Apple's Apps and Books API v2 for one location token.
///
/// Cheap to clone: clones share the HTTP connection pool. `Debug` shows the base URL only.
#[derive(Clone)]
pub struct VppClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Without a trailing slash.
    base_url: String,
    user_agent: HeaderValue,
    /// `Bearer <token file text>`, marked sensitive.
    authorization: HeaderValue,
    config: VppConfig,
}

/// One API request, replayable.
struct Call {
    method: Method,
    /// For logs and messages: the path without query.
    path: &'static str,
    url: String,
    body: Option<Vec<u8>>,
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
    Fatal(VppError),
}

impl fmt::Debug for VppClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VppClient")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl VppClient {
    /// Checks the configuration and the token and sets up the HTTP client; no request is
    /// made. `bearer` is the `.vpptoken` file's text ([`VppTokenFile::bearer`]); surrounding
    /// whitespace and a byte order mark are ignored, the rest is sent unchanged.
    ///
    /// [`VppTokenFile::bearer`]: super::VppTokenFile::bearer
    pub fn new(config: VppConfig, bearer: SecretString) -> Result<VppClient, VppError> {
        let invalid = |detail: String| VppError::InvalidConfig { detail };
        let base = Url::parse(config.base_url.trim())
            .map_err(|e| invalid(format!("the base URL {:?} is not a valid URL ({e})", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid(format!(
                "the base URL {:?} must be an http or https URL with a host name, such as {APPLE_VPP_URL}",
                config.base_url
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
                "the User-Agent is empty: set it to a product string such as \"russet/0.1.0\"".to_owned(),
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
        if config.max_pages == 0 || config.max_response_bytes == 0 {
            return Err(invalid(
                "the maximum number of pages and the maximum answer size must be larger than zero".to_owned(),
            ));
        }

        let token = bearer_text(bearer.expose_secret());
        if token.is_empty() {
            return Err(invalid(
                "the Apps and Books token is empty: upload the location's .vpptoken file again as downloaded \
                 from Apple Business Manager"
                    .to_owned(),
            ));
        }
        // The token's text is never part of a message.
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .ok()
            .filter(|_| token.chars().all(|c| c.is_ascii_graphic()))
            .ok_or_else(|| {
                invalid(
                    "the Apps and Books token contains characters that cannot be sent to Apple (a .vpptoken file \
                     is one line of base64 text): upload the location's .vpptoken file again as downloaded from \
                     Apple Business Manager"
                        .to_owned(),
                )
            })?;
        authorization.set_sensitive(true);

        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect would carry the token to another host; Apple does not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("the HTTP client cannot be created ({})", error_chain(&e))))?;

        Ok(VppClient {
            inner: Arc::new(Inner {
                http,
                base_url,
                user_agent,
                authorization,
                config,
            }),
        })
    }

    /// The configuration this client was made with.
    pub fn config(&self) -> &VppConfig {
        &self.inner.config
    }

    /// `GET /client/config`: the location of the token (its `uId`, name, country), which MDM
    /// claimed it, and the token's expiry. A cheap way to check a newly uploaded token. An
    /// answer without `uId` is refused with [`VppError::Decode`].
    pub async fn client_config(&self) -> Result<ClientConfig, VppError> {
        let call = self.prepare(Method::GET, "/client/config", &[], None::<&()>)?;
        let config: ClientConfig = self.execute(&call).await?;
        check_uid(config, &call)
    }

    /// `POST /client/config`: writes the keys that are set (claims the location with
    /// `mdm_info`, sets notifications) and returns the updated configuration. An `mdm_info`
    /// without `id` or `name` is refused without a request.
    pub async fn set_client_config(&self, request: &ClientConfigRequest) -> Result<ClientConfig, VppError> {
        if let Some(info) = &request.mdm_info {
            if info.id.trim().is_empty() || info.name.trim().is_empty() {
                return Err(VppError::InvalidRequest {
                    detail: "mdmInfo needs an id and a name".to_owned(),
                });
            }
        }
        let call = self.prepare(Method::POST, "/client/config", &[], Some(request))?;
        let config: ClientConfig = self.execute(&call).await?;
        check_uid(config, &call)
    }

    /// `GET /service/config`: Apple's batch limits, notification types, endpoints and error
    /// codes. (The token is sent as with every call, though Apple does not require it here.)
    pub async fn service_config(&self) -> Result<ServiceConfig, VppError> {
        let call = self.prepare(Method::GET, "/service/config", &[], None::<&()>)?;
        self.execute(&call).await
    }

    /// `GET /assets`: one page of the location's assets matching the query.
    pub async fn assets_page(&self, query: &AssetsQuery) -> Result<AssetsPage, VppError> {
        let call = self.prepare(Method::GET, "/assets", &query.pairs(), None::<&()>)?;
        self.execute(&call).await
    }

    /// Every page of `GET /assets` from `query.page_index` on, following `nextPageIndex`.
    /// Fails with [`VppError::Paging`] when a page index comes back again or there are more
    /// than [`VppConfig::max_pages`] pages; any failing page fails the whole list.
    pub async fn all_assets(&self, query: &AssetsQuery) -> Result<AllPages<Asset>, VppError> {
        let mut pager = Pager::new("assets", query.page_index, self.inner.config.max_pages);
        let mut query = query.clone();
        loop {
            let page = self.assets_page(&query).await?;
            let meta = PageMeta {
                next: page.next_page_index,
                total_size: page.total_size,
                version_id: page.version_id,
                token_expiration: page.token_expiration,
                uid: page.uid,
            };
            match pager.add(page.assets, meta)? {
                Some(next) => query.page_index = next,
                None => return Ok(pager.all),
            }
        }
    }

    /// `GET /assignments`: one page of the location's licence assignments matching the
    /// query.
    pub async fn assignments_page(&self, query: &AssignmentsQuery) -> Result<AssignmentsPage, VppError> {
        let call = self.prepare(Method::GET, "/assignments", &query.pairs(), None::<&()>)?;
        self.execute(&call).await
    }

    /// Every page of `GET /assignments` from `query.page_index` on, as
    /// [`all_assets`](VppClient::all_assets) does. The result's `version_id` is the one to
    /// pass as `since_version_id` next time.
    pub async fn all_assignments(&self, query: &AssignmentsQuery) -> Result<AllPages<Assignment>, VppError> {
        let mut pager = Pager::new("assignments", query.page_index, self.inner.config.max_pages);
        let mut query = query.clone();
        loop {
            let page = self.assignments_page(&query).await?;
            let meta = PageMeta {
                next: page.next_page_index,
                total_size: page.total_size,
                version_id: page.version_id,
                token_expiration: page.token_expiration,
                uid: page.uid,
            };
            match pager.add(page.assignments, meta)? {
                Some(next) => query.page_index = next,
                None => return Ok(pager.all),
            }
        }
    }

    /// `POST /assets/associate`: assigns every asset to every device and user named. Apple
    /// checks the batch limits and duplicates at once (errors 9700–9705) and does the work
    /// asynchronously: follow the event with [`status`](VppClient::status). A request without
    /// assets, or without devices and users, is refused without a request.
    pub async fn associate(&self, request: &AssociateRequest) -> Result<EventResponse, VppError> {
        check_associate(request)?;
        let call = self.prepare(Method::POST, "/assets/associate", &[], Some(request))?;
        self.event(&call).await
    }

    /// `POST /assets/disassociate`: removes the assets' licences from the devices and users
    /// named; asynchronous like [`associate`](VppClient::associate), with the same checks.
    pub async fn disassociate(&self, request: &AssociateRequest) -> Result<EventResponse, VppError> {
        check_associate(request)?;
        let call = self.prepare(Method::POST, "/assets/disassociate", &[], Some(request))?;
        self.event(&call).await
    }

    /// `POST /assets/revoke`: revokes the licences (of the assets named, or of all) of the
    /// devices and users named; asynchronous. A request without devices and users is refused
    /// without a request.
    pub async fn revoke(&self, request: &RevokeRequest) -> Result<EventResponse, VppError> {
        if request.serial_numbers.is_empty() && request.client_user_ids.is_empty() {
            return Err(VppError::InvalidRequest {
                detail: "a revoke needs at least one serial number or client user id".to_owned(),
            });
        }
        check_asset_ids(&request.assets)?;
        let call = self.prepare(Method::POST, "/assets/revoke", &[], Some(request))?;
        self.event(&call).await
    }

    /// `GET /status?eventId=…`: how an associate, disassociate or revoke event is going.
    pub async fn status(&self, event_id: &str) -> Result<StatusResponse, VppError> {
        let event_id = event_id.trim();
        if event_id.is_empty() {
            return Err(VppError::InvalidRequest {
                detail: "the event id is empty".to_owned(),
            });
        }
        let call = self.prepare(Method::GET, "/status", &[("eventId", event_id.to_owned())], None::<&()>)?;
        self.execute(&call).await
    }

    async fn event(&self, call: &Call) -> Result<EventResponse, VppError> {
        let response: EventResponse = self.execute(call).await?;
        if response.event_id.trim().is_empty() {
            return Err(VppError::Decode {
                detail: format!("{} {} answered without an eventId", call.method, call.path),
            });
        }
        Ok(response)
    }

    fn prepare<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &'static str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Call, VppError> {
        let mut url = format!("{}{path}", self.inner.base_url);
        if !query.is_empty() {
            let mut parsed = Url::parse(&url).map_err(|e| VppError::InvalidConfig {
                detail: format!("the URL {url:?} cannot be built ({e})"),
            })?;
            parsed.query_pairs_mut().extend_pairs(query);
            url = parsed.into();
        }
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| VppError::InvalidRequest {
                detail: format!("the {method} {path} request cannot be encoded as JSON ({e})"),
            })?;
        Ok(Call {
            method,
            path,
            url,
            body,
        })
    }

    /// Sends `call` (with retries) and reads the answer as `T`.
    async fn execute<T: DeserializeOwned>(&self, call: &Call) -> Result<T, VppError> {
        let reply = self.send_with_retries(call).await?;
        serde_json::from_slice(&reply.body).map_err(|e| VppError::Decode {
            detail: format!(
                "{} {} answered HTTP {} with {e}",
                call.method,
                call.path,
                reply.status.as_u16()
            ),
        })
    }

    /// Sends `call`, retrying rate limiting, server errors (also when they come in a 200
    /// body) and transport failures. Returns only answers without an error.
    async fn send_with_retries(&self, call: &Call) -> Result<Reply, VppError> {
        let config = &self.inner.config;
        let mut attempt: u32 = 0;
        loop {
            let started = Instant::now();
            let result = self.send_once(call).await;
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let wait = match result {
                Ok(reply) => {
                    let retry_after = parse_retry_after(&reply.headers, SystemTime::now());
                    let error = classify(reply.status.as_u16(), &reply.body, retry_after);
                    debug!(
                        method = %call.method,
                        path = call.path,
                        status = reply.status.as_u16(),
                        error_number = error.as_ref().and_then(VppError::number),
                        latency_ms,
                        attempt,
                        "Apps and Books request"
                    );
                    let Some(error) = error else {
                        return Ok(reply);
                    };
                    if !matches!(error, VppError::RateLimited { .. } | VppError::ServerError { .. }) {
                        return Err(error);
                    }
                    match retry_after {
                        Some(wait) if wait > config.max_retry_after => return Err(error),
                        _ if attempt >= config.max_retries => return Err(error),
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
                        "Apps and Books request failed"
                    );
                    if attempt >= config.max_retries {
                        return Err(VppError::Transport { detail });
                    }
                    full_jitter(config.backoff_base, config.backoff_max, attempt, random_u64())
                }
            };
            debug!(
                method = %call.method,
                path = call.path,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "Apps and Books request will be retried"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, call: &Call) -> Result<Reply, AttemptError> {
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), &call.url)
            .header(USER_AGENT, self.inner.user_agent.clone())
            .header(AUTHORIZATION, self.inner.authorization.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.clone());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| AttemptError::Transport(describe(&e, &self.inner.config)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let limit = self.inner.config.max_response_bytes;
        let too_large = || {
            AttemptError::Fatal(VppError::Decode {
                detail: format!(
                    "{} {} answered with more than {}",
                    call.method,
                    call.path,
                    size_text(limit)
                ),
            })
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| AttemptError::Transport(describe(&e, &self.inner.config)))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, headers, body })
    }
}

/// What a page says besides its items.
struct PageMeta {
    next: Option<u32>,
    total_size: Option<u64>,
    version_id: Option<String>,
    token_expiration: Option<OffsetDateTime>,
    uid: Option<String>,
}

/// Collects pages, refusing loops and endless lists.
struct Pager<T> {
    what: &'static str,
    max_pages: u32,
    requested: u32,
    seen: HashSet<u32>,
    all: AllPages<T>,
}

impl<T> Pager<T> {
    fn new(what: &'static str, first: u32, max_pages: u32) -> Pager<T> {
        Pager {
            what,
            max_pages,
            requested: first,
            seen: HashSet::from([first]),
            all: AllPages {
                items: Vec::new(),
                pages: 0,
                total_size: None,
                version_id: None,
                token_expiration: None,
                uid: None,
            },
        }
    }

    /// Adds the page just fetched; returns the next page index to fetch, if any.
    fn add(&mut self, items: Vec<T>, meta: PageMeta) -> Result<Option<u32>, VppError> {
        self.all.items.extend(items);
        self.all.pages += 1;
        self.all.total_size = meta.total_size;
        self.all.version_id = meta.version_id;
        self.all.token_expiration = meta.token_expiration;
        self.all.uid = meta.uid;
        let Some(next) = meta.next else {
            return Ok(None);
        };
        if !self.seen.insert(next) {
            return Err(VppError::Paging {
                detail: format!(
                    "the {} page {} named page {next} as the next one, which was already fetched",
                    self.what, self.requested
                ),
            });
        }
        if self.all.pages >= self.max_pages {
            return Err(VppError::Paging {
                detail: format!(
                    "the {} list has more than {} pages, the most this server fetches",
                    self.what, self.max_pages
                ),
            });
        }
        self.requested = next;
        Ok(Some(next))
    }
}

fn check_uid(config: ClientConfig, call: &Call) -> Result<ClientConfig, VppError> {
    if config.uid.trim().is_empty() {
        return Err(VppError::Decode {
            detail: format!("{} {} answered without the location's uId", call.method, call.path),
        });
    }
    Ok(config)
}

fn check_associate(request: &AssociateRequest) -> Result<(), VppError> {
    if request.assets.is_empty() {
        return Err(VppError::InvalidRequest {
            detail: "no asset given".to_owned(),
        });
    }
    if request.serial_numbers.is_empty() && request.client_user_ids.is_empty() {
        return Err(VppError::InvalidRequest {
            detail: "no serial number or client user id given".to_owned(),
        });
    }
    check_asset_ids(&request.assets)
}

fn check_asset_ids(assets: &[super::AssetRef]) -> Result<(), VppError> {
    if assets.iter().any(|a| a.adam_id.trim().is_empty()) {
        return Err(VppError::InvalidRequest {
            detail: "an asset has an empty adamId".to_owned(),
        });
    }
    Ok(())
}

fn size_text(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

fn random_u64() -> u64 {
    // Without randomness the backoff loses its jitter, not its bound.
    getrandom::u64().unwrap_or(u64::MAX)
}

/// A transport failure for logs and errors: its kind and the chain of causes (which never
/// name the token).
fn describe(error: &reqwest::Error, config: &VppConfig) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client(config: VppConfig) -> Result<VppClient, VppError> {
        VppClient::new(config, SecretString::from("eyJ0b2tlbiI6InQifQ=="))
    }

    #[test]
    fn config_validation() {
        let base = |url: &str| {
            client(VppConfig {
                base_url: url.to_owned(),
                ..VppConfig::default()
            })
            .map(|c| c.inner.base_url.clone())
        };
        assert_eq!(base(APPLE_VPP_URL).unwrap(), "https://vpp.itunes.apple.com/mdm/v2");
        assert_eq!(
            base("https://vpp.itunes.apple.com/mdm/v2/").unwrap(),
            "https://vpp.itunes.apple.com/mdm/v2"
        );
        assert_eq!(base("http://127.0.0.1:9/mdm/v2").unwrap(), "http://127.0.0.1:9/mdm/v2");
        for bad in [
            "",
            "vpp.itunes.apple.com",
            "ftp://x/",
            "https://x/?a=b",
            "https://u:p@x/",
            "https://x/#f",
        ] {
            assert!(matches!(base(bad), Err(VppError::InvalidConfig { .. })), "{bad}");
        }
        for config in [
            VppConfig {
                user_agent: " ".to_owned(),
                ..VppConfig::default()
            },
            VppConfig {
                request_timeout: Duration::ZERO,
                ..VppConfig::default()
            },
            VppConfig {
                max_pages: 0,
                ..VppConfig::default()
            },
        ] {
            assert!(matches!(client(config), Err(VppError::InvalidConfig { .. })));
        }
        assert_eq!(
            VppConfig::default().user_agent,
            format!("russet/{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn tokens_that_cannot_be_sent_are_refused_without_showing_them() {
        for bad in ["", " \n", "abc def", "abc\u{7f}def", "t\u{e9}st"] {
            let err = VppClient::new(VppConfig::default(), SecretString::from(bad)).unwrap_err();
            assert!(matches!(err, VppError::InvalidConfig { .. }), "{bad:?}");
            if bad.len() > 3 {
                assert!(!err.to_string().contains(bad.trim()), "{err}");
            }
        }
        let ok = VppClient::new(VppConfig::default(), SecretString::from("\u{feff}abc=\n")).unwrap();
        assert_eq!(ok.inner.authorization.to_str().unwrap(), "Bearer abc=");
        assert!(ok.inner.authorization.is_sensitive());
    }

    #[test]
    fn debug_output_hides_the_token() {
        let c = client(VppConfig::default()).unwrap();
        let text = format!("{c:?}");
        assert!(text.contains("vpp.itunes.apple.com"), "{text}");
        assert!(!text.contains("eyJ0b2tlbiI6"), "{text}");
    }

    #[test]
    fn pager_stops_loops_and_endless_lists() {
        let meta = |next: Option<u32>| PageMeta {
            next,
            total_size: Some(3),
            version_id: Some("v".to_owned()),
            token_expiration: None,
            uid: Some("1".to_owned()),
        };
        let mut pager = Pager::new("assets", 0, 10);
        assert_eq!(pager.add(vec![1], meta(Some(1))).unwrap(), Some(1));
        assert_eq!(pager.add(vec![2], meta(Some(2))).unwrap(), Some(2));
        assert_eq!(pager.add(vec![3], meta(None)).unwrap(), None);
        assert_eq!(pager.all.items, vec![1, 2, 3]);
        assert_eq!(pager.all.pages, 3);

        let mut pager = Pager::new("assets", 0, 10);
        pager.add(vec![1], meta(Some(1))).unwrap();
        let err = pager.add(vec![2], meta(Some(0))).unwrap_err();
        assert!(matches!(err, VppError::Paging { .. }), "{err:?}");
        assert!(err.to_string().contains("page 1 named page 0"), "{err}");

        let mut pager = Pager::new("assets", 0, 2);
        pager.add(vec![1], meta(Some(1))).unwrap();
        let err = pager.add(vec![2], meta(Some(2))).unwrap_err();
        assert!(err.to_string().contains("more than 2 pages"), "{err}");
        // Exactly max_pages pages is fine.
        let mut pager = Pager::new("assets", 0, 2);
        pager.add(vec![1], meta(Some(1))).unwrap();
        assert_eq!(pager.add(vec![2], meta(None)).unwrap(), None);
    }

    #[test]
    fn sizes_for_messages() {
        assert_eq!(size_text(64 * 1024 * 1024), "64 MiB");
        assert_eq!(size_text(1000), "1000 bytes");
    }
}
