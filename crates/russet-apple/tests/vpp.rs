//! The Apps and Books client against a mock of Apple's API v2 (axum on 127.0.0.1:0) that
//! follows the wire contract: it checks the bearer itself, keeps a location with assets and
//! pages them, records every request, and can be scripted per endpoint.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use russet_apple::vpp::{
    AssetRef, AssetsQuery, AssignmentsQuery, AssociateRequest, ClientConfigRequest, EventStatus, EventType, MdmInfo,
    ProductType, RevokeRequest, VppClient, VppConfig, VppError, parse_vpp_token,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use time::macros::datetime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// The mock server
// ---------------------------------------------------------------------------------------------

const USER_AGENT: &str = "russet-test/1.0";
const PREFIX: &str = "/mdm/v2";
const UID: &str = "2049025000431439";

/// The token file Apple would hand out (standard base64, padded) followed by a newline.
fn token_file(token: &str) -> String {
    let json = format!(r#"{{"token":"{token}","expDate":"2027-11-24T10:00:00+0000","orgName":"Example Org"}}"#);
    format!("{}\n", STANDARD.encode(json))
}

#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    query: HashMap<String, String>,
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

/// A canned answer, returned instead of the default behaviour.
#[derive(Clone, Default)]
struct Scripted {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn reply(status: u16, body: impl Into<String>) -> Scripted {
    Scripted {
        status,
        body: body.into(),
        ..Scripted::default()
    }
}

fn apple_error(status: u16, number: i64, message: &str) -> Scripted {
    reply(
        status,
        json!({"errorNumber": number, "errorMessage": message}).to_string(),
    )
}

impl Scripted {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Scripted {
        self.headers.push((name, value.into()));
        self
    }
}

struct MockState {
    /// Bearer text → the error number Apple answers it with (0: valid).
    tokens: Mutex<HashMap<String, i64>>,
    mdm_info: Mutex<Option<Value>>,
    assets: Mutex<Vec<Value>>,
    page_size: usize,
    scripts: Mutex<HashMap<(String, String), VecDeque<Scripted>>>,
    requests: Mutex<Vec<Recorded>>,
}

struct Mock {
    addr: SocketAddr,
    state: Arc<MockState>,
}

impl Mock {
    /// A location with five apps and books, two per page, and one valid token: the file of
    /// [`token_file`]`("good")`.
    async fn start() -> Mock {
        let assets = (1..=5)
            .map(|n| {
                json!({"adamId": format!("{n}0000"), "assignedCount": n, "availableCount": 10 - n,
                       "deviceAssignable": true, "pricingParam": "STDQ",
                       "productType": if n == 5 { "Book" } else { "App" }, "retiredCount": 0, "revocable": true,
                       "supportedPlatforms": ["iOS", "macOS"], "totalCount": 10})
            })
            .collect();
        let state = Arc::new(MockState {
            tokens: Mutex::new(HashMap::from([(token_file("good").trim().to_owned(), 0)])),
            mdm_info: Mutex::new(None),
            assets: Mutex::new(assets),
            page_size: 2,
            scripts: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mock { addr, state }
    }

    fn config(&self) -> VppConfig {
        test_config(format!("http://{}{PREFIX}", self.addr))
    }

    fn client(&self) -> VppClient {
        self.client_with(&token_file("good"))
    }

    fn client_with(&self, file: &str) -> VppClient {
        let token = parse_vpp_token(file.as_bytes()).unwrap();
        VppClient::new(self.config(), token.bearer().clone()).unwrap()
    }

    /// A token Apple answers with `number`.
    fn add_token(&self, file: &str, number: i64) {
        self.state.tokens.lock().unwrap().insert(file.trim().to_owned(), number);
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
}

fn test_config(base_url: String) -> VppConfig {
    VppConfig {
        base_url,
        user_agent: USER_AGENT.to_owned(),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
        max_pages: 50,
        max_response_bytes: 64 * 1024,
    }
}

fn response(status: u16, headers: &[(&str, String)], body: impl Into<String>) -> Response {
    let mut map = HeaderMap::new();
    map.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    (StatusCode::from_u16(status).unwrap(), map, body.into()).into_response()
}

fn error_response(status: u16, number: i64, message: &str) -> Response {
    response(
        status,
        &[],
        json!({"errorNumber": number, "errorMessage": message}).to_string(),
    )
}

fn client_config_json(st: &MockState) -> Value {
    let mut config = json!({"countryISO2ACode":"US","defaultPlatform":"volumestore","locationName":"Paris Office",
        "notificationAuthToken":null,"notificationUrl":null,"subscribedNotificationTypes":[],
        "tokenExpirationDate":"2027-11-24T10:00:00+0000","uId":UID,"websiteURL":"https://business.apple.com"});
    if let Some(info) = st.mdm_info.lock().unwrap().clone() {
        config["mdmInfo"] = info;
    }
    config
}

async fn handle(
    State(st): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().strip_prefix(PREFIX).unwrap_or(uri.path()).to_owned(),
        query,
        headers,
        body: body.to_vec(),
    };
    st.requests.lock().unwrap().push(recorded.clone());

    let scripted = st
        .scripts
        .lock()
        .unwrap()
        .get_mut(&(recorded.method.clone(), recorded.path.clone()))
        .and_then(VecDeque::pop_front);
    if let Some(s) = scripted {
        return response(s.status, &s.headers, s.body);
    }

    if recorded.path != "/service/config" {
        let Some(authorization) = recorded.header("authorization") else {
            return error_response(401, 9601, "Login required.");
        };
        let Some(bearer) = authorization.strip_prefix("Bearer ") else {
            return error_response(401, 9722, "Authorization header is malformed.");
        };
        match st.tokens.lock().unwrap().get(bearer).copied() {
            Some(0) => {}
            Some(9621) => {
                return error_response(
                    401,
                    9621,
                    "The token has expired. You need to generate a new token online using your organization's \
                     account at either school.apple.com or business.apple.com.",
                );
            }
            Some(9625) => return error_response(401, 9625, "The server has revoked the sToken."),
            _ => return error_response(401, 9622, "Invalid authentication token."),
        }
    }

    match (recorded.method.as_str(), recorded.path.as_str()) {
        ("GET", "/client/config") => response(200, &[], client_config_json(&st).to_string()),
        ("POST", "/client/config") => {
            let body = recorded.json();
            if let Some(info) = body.get("mdmInfo") {
                if info.get("id").is_none() || info.get("name").is_none() {
                    return error_response(400, 9602, "Invalid argument.");
                }
                *st.mdm_info.lock().unwrap() = Some(info.clone());
            }
            response(200, &[], client_config_json(&st).to_string())
        }
        ("GET", "/service/config") => response(
            200,
            &[],
            json!({"errorCodes":[{"errorNumber":9601,"errorMessage":"Login required."}],
                   "limits":{"maxAssets":25,"maxClientUserIds":1000,"maxSerialNumbers":1000},
                   "notificationTypes":["ASSET_COUNT","ASSET_MANAGEMENT","USER_MANAGEMENT","USER_ASSOCIATED"],
                   "urls":{"getAssets":"http://x/mdm/v2/assets"}})
            .to_string(),
        ),
        ("GET", "/assets") => {
            let Ok(index) = recorded.query.get("pageIndex").map_or(Ok(0), |p| p.parse::<usize>()) else {
                return error_response(400, 9602, "Invalid argument.");
            };
            let assets: Vec<Value> = st
                .assets
                .lock()
                .unwrap()
                .iter()
                .filter(|a| {
                    recorded
                        .query
                        .get("productType")
                        .is_none_or(|p| a["productType"] == p.as_str())
                })
                .cloned()
                .collect();
            let pages = assets.len().div_ceil(st.page_size).max(1);
            let page: Vec<Value> = assets
                .iter()
                .skip(index * st.page_size)
                .take(st.page_size)
                .cloned()
                .collect();
            let mut body = json!({"assets": page, "currentPageIndex": index, "size": assets.len(),
                "totalPages": pages, "tokenExpirationDate": "2027-11-24T10:00:00+0000", "uId": UID,
                "versionId": "42"});
            if index + 1 < pages {
                body["nextPageIndex"] = json!(index + 1);
            }
            response(200, &[], body.to_string())
        }
        ("GET", "/assignments") => response(
            200,
            &[],
            json!({"assignments":[{"adamId":"10000","pricingParam":"STDQ","serialNumber":"C02AAA"},
                                  {"adamId":"10000","clientUserId":"user-1"}],
                   "currentPageIndex":0,"size":2,"totalPages":1,"uId":UID,"versionId":"43"})
            .to_string(),
        ),
        ("POST", "/assets/associate" | "/assets/disassociate" | "/assets/revoke") => response(
            200,
            &[],
            json!({"eventId":"5b0a7a48-1a5e-4c38-9d2c-0e6a4f4f7e01",
                   "tokenExpirationDate":"2027-11-24T10:00:00+0000","uId":UID})
            .to_string(),
        ),
        ("GET", "/status") => response(
            200,
            &[],
            json!({"eventId": recorded.query.get("eventId"), "eventStatus":"COMPLETE","eventType":"ASSOCIATE",
                   "numCompleted":3,"numRequested":4,
                   "failures":[{"adamId":"10000","pricingParam":"STDQ","serialNumber":"C02BBB",
                                "errorNumber":9709,"errorMessage":"Not enough licenses."}],
                   "tokenExpirationDate":"2027-11-24T10:00:00+0000","uId":UID})
            .to_string(),
        ),
        _ => response(404, &[], "Not Found"),
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_authorization_header_carries_the_exact_file_text() {
    let mock = Mock::start().await;
    let config = mock.client().client_config().await.unwrap();
    assert_eq!(config.uid, UID);
    let request = &mock.requests_to("GET", "/client/config")[0];
    let expected = format!("Bearer {}", token_file("good").trim());
    assert_eq!(request.header("authorization"), Some(expected.as_str()));
    assert_eq!(request.header("user-agent"), Some(USER_AGENT));
    assert_eq!(request.header("accept"), Some("application/json"));

    // A URL-safe, unpadded file (not Apple's format) is sent exactly as it is, not re-encoded.
    let json = r#"{"token":"~~~???~","expDate":"2027-11-24T10:00:00Z","orgName":"O"}"#;
    let url_safe = URL_SAFE_NO_PAD.encode(json);
    assert!(url_safe.contains(['-', '_']), "{url_safe}");
    mock.add_token(&url_safe, 0);
    mock.client_with(&format!("\u{feff}{url_safe}\r\n"))
        .client_config()
        .await
        .unwrap();
    let request = mock.requests_to("GET", "/client/config").pop().unwrap();
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {url_safe}").as_str())
    );
}

#[tokio::test]
async fn every_token_error() {
    let mock = Mock::start().await;
    let expired = token_file("expired");
    let revoked = token_file("revoked");
    mock.add_token(&expired, 9621);
    mock.add_token(&revoked, 9625);

    let err = mock.client_with(&expired).client_config().await.unwrap_err();
    assert!(
        err.is_expired() && err.is_token_error() && !err.is_transient(),
        "{err:?}"
    );
    assert_eq!((err.number(), err.http_status()), (Some(9621), Some(401)));

    let err = mock.client_with(&revoked).client_config().await.unwrap_err();
    assert!(err.is_revoked() && err.is_token_error(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "Apple revoked this Apps and Books token (9625): it was replaced or revoked in Apple Business Manager; \
         download a new token for this location and renew the token in Russet"
    );

    let err = mock
        .client_with(&token_file("unknown"))
        .client_config()
        .await
        .unwrap_err();
    assert!(err.is_invalid() && err.is_token_error(), "{err:?}");
    assert_eq!(err.number(), Some(9622));

    mock.script(
        "GET",
        "/client/config",
        [
            apple_error(401, 9601, "Login required."),
            apple_error(401, 9722, "Authorization header is malformed."),
        ],
    );
    let err = mock.client().client_config().await.unwrap_err();
    assert!(err.is_unauthorized() && err.is_token_error(), "{err:?}");
    assert_eq!(err.number(), Some(9601));
    let err = mock.client().client_config().await.unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    assert_eq!(err.number(), Some(9722));
    assert!(err.to_string().contains("Authorization header is malformed."), "{err}");

    // Token errors are not retried: one request each.
    assert_eq!(mock.requests_to("GET", "/client/config").len(), 5);
    // No message or Debug output holds a token.
    for file in [&expired, &revoked] {
        let err = mock.client_with(file).client_config().await.unwrap_err();
        let shown = format!("{err} {err:?} {:?}", mock.client_with(file));
        assert!(!shown.contains(&file.trim()[..16]), "{shown}");
    }
}

// ---------------------------------------------------------------------------------------------
// Client and service configuration
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_config_and_claiming_the_location() {
    let mock = Mock::start().await;
    let client = mock.client();
    let config = client.client_config().await.unwrap();
    assert_eq!(config.location_name, "Paris Office");
    assert_eq!(config.country.as_deref(), Some("US"));
    assert_eq!(config.default_platform.as_deref(), Some("volumestore"));
    assert_eq!(config.website_url.as_deref(), Some("https://business.apple.com"));
    assert_eq!(config.token_expiration, Some(datetime!(2027-11-24 10:00 UTC)));
    assert_eq!(config.mdm_info, None);
    assert_eq!(config.notification_url, None);
    assert!(config.notification_auth_token.is_none());

    let ours = MdmInfo {
        id: "russet-7f3a".to_owned(),
        name: "Russet".to_owned(),
        metadata: Some("https://mdm.example".to_owned()),
    };
    let request = ClientConfigRequest {
        mdm_info: Some(ours.clone()),
        notification_url: Some("https://mdm.example/vpp/notify".to_owned()),
        notification_auth_token: Some(SecretString::from("notify-secret")),
        notification_types: Some(vec!["ASSET_MANAGEMENT".to_owned()]),
    };
    let updated = client.set_client_config(&request).await.unwrap();
    assert_eq!(updated.mdm_info.as_ref(), Some(&ours));
    let sent = mock.requests_to("POST", "/client/config")[0].clone();
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.json(),
        json!({"mdmInfo":{"id":"russet-7f3a","name":"Russet","metadata":"https://mdm.example"},
               "notificationUrl":"https://mdm.example/vpp/notify","notificationAuthToken":"notify-secret",
               "notificationTypes":["ASSET_MANAGEMENT"]})
    );
    let again = client.client_config().await.unwrap();
    assert!(!again.is_claimed_by_another_mdm("russet-7f3a"));
    assert!(again.is_claimed_by_another_mdm("someone-else"));

    // An mdmInfo without a name is refused before anything is sent.
    let before = mock.requests().len();
    let err = client
        .set_client_config(&ClientConfigRequest {
            mdm_info: Some(MdmInfo {
                id: "x".to_owned(),
                ..MdmInfo::default()
            }),
            ..ClientConfigRequest::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, VppError::InvalidRequest { .. }), "{err:?}");
    assert_eq!(mock.requests().len(), before);

    // An answer without the location's uId cannot be used.
    mock.script("GET", "/client/config", [reply(200, r#"{"locationName":"X"}"#)]);
    let err = client.client_config().await.unwrap_err();
    assert!(
        matches!(err, VppError::Decode { .. }) && err.to_string().contains("uId"),
        "{err}"
    );
}

#[tokio::test]
async fn service_config() {
    let mock = Mock::start().await;
    let service = mock.client().service_config().await.unwrap();
    assert_eq!(service.limits.max_assets, Some(25));
    assert_eq!(service.limits.max_serial_numbers, Some(1000));
    assert_eq!(service.limits.max_client_user_ids, Some(1000));
    assert_eq!(service.notification_types.len(), 4);
    assert_eq!(service.error_codes[0].error_number, Some(9601));
    assert_eq!(
        service.urls.get("getAssets").map(String::as_str),
        Some("http://x/mdm/v2/assets")
    );
}

// ---------------------------------------------------------------------------------------------
// Assets, assignments, paging
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn all_assets_follows_the_pages() {
    let mock = Mock::start().await;
    let client = mock.client();
    let all = client.all_assets(&AssetsQuery::default()).await.unwrap();
    assert_eq!(all.pages, 3);
    let ids: Vec<&str> = all.items.iter().map(|a| a.adam_id.as_str()).collect();
    assert_eq!(ids, ["10000", "20000", "30000", "40000", "50000"]);
    assert_eq!(all.total_size, Some(5));
    assert_eq!(all.version_id.as_deref(), Some("42"));
    assert_eq!(all.uid.as_deref(), Some(UID));
    assert_eq!(all.token_expiration, Some(datetime!(2027-11-24 10:00 UTC)));
    let first = &all.items[0];
    assert_eq!(first.product_type, ProductType::App);
    assert_eq!(
        (first.assigned, first.available, first.total, first.retired),
        (1, 9, 10, 0)
    );
    assert!(first.device_assignable && first.revocable);
    assert_eq!(first.platforms, ["iOS", "macOS"]);
    assert_eq!(all.items[4].product_type, ProductType::Book);
    let indexes: Vec<String> = mock
        .requests_to("GET", "/assets")
        .iter()
        .map(|r| r.query["pageIndex"].clone())
        .collect();
    assert_eq!(indexes, ["0", "1", "2"]);

    // One page, with filters in the query.
    let page = client
        .assets_page(&AssetsQuery {
            page_index: 0,
            product_type: Some(ProductType::Book),
            device_assignable: Some(true),
            min_available_count: Some(1),
            ..AssetsQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.assets.len(), 1);
    assert_eq!(page.next_page_index, None);
    let query = &mock.requests_to("GET", "/assets").pop().unwrap().query;
    assert_eq!(query["productType"], "Book");
    assert_eq!(query["deviceAssignable"], "true");
    assert_eq!(query["minAvailableCount"], "1");
    assert!(!query.contains_key("adamId"));
}

#[tokio::test]
async fn paging_that_does_not_end_is_refused() {
    let mock = Mock::start().await;
    let page = |current: u32, next: u32| {
        reply(
            200,
            json!({"assets":[{"adamId":"1"}],"currentPageIndex":current,"nextPageIndex":next}).to_string(),
        )
    };
    // 0 → 1 → 0: a loop.
    mock.script("GET", "/assets", [page(0, 1), page(1, 0)]);
    let err = mock.client().all_assets(&AssetsQuery::default()).await.unwrap_err();
    assert!(matches!(err, VppError::Paging { .. }), "{err:?}");
    assert!(err.to_string().contains("already fetched"), "{err}");
    assert_eq!(mock.requests_to("GET", "/assets").len(), 2);

    // A page naming itself as the next one.
    mock.script("GET", "/assets", [page(0, 0)]);
    let err = mock.client().all_assets(&AssetsQuery::default()).await.unwrap_err();
    assert!(matches!(err, VppError::Paging { .. }), "{err:?}");

    // More pages than allowed.
    let endless: Vec<Scripted> = (0..10).map(|n| page(n, n + 1)).collect();
    mock.script("GET", "/assets", endless);
    let config = VppConfig {
        max_pages: 4,
        ..mock.config()
    };
    let bearer = SecretString::from(token_file("good"));
    let client = VppClient::new(config, bearer).unwrap();
    let before = mock.requests_to("GET", "/assets").len();
    let err = client.all_assets(&AssetsQuery::default()).await.unwrap_err();
    assert!(err.to_string().contains("more than 4 pages"), "{err}");
    assert_eq!(mock.requests_to("GET", "/assets").len() - before, 4);
}

#[tokio::test]
async fn one_odd_asset_does_not_fail_its_page() {
    let mock = Mock::start().await;
    mock.script(
        "GET",
        "/assets",
        [reply(
            200,
            json!({"assets":[
                {"adamId":"1","productType":"Podcast","pricingParam":"STDQ","assignedCount":"3",
                 "availableCount":"7","totalCount":"10","retiredCount":"x","supportedPlatforms":"iOS"},
                {"adamId":2,"productType":"App","assignedCount":1,"availableCount":1,"totalCount":2}
            ],"currentPageIndex":0,"size":"2","versionId":7})
            .to_string(),
        )],
    );
    let all = mock.client().all_assets(&AssetsQuery::default()).await.unwrap();
    assert_eq!(all.items.len(), 2);
    let odd = &all.items[0];
    assert_eq!(odd.product_type, ProductType::Other("Podcast".to_owned()));
    assert_eq!((odd.assigned, odd.available, odd.total, odd.retired), (3, 7, 10, 0));
    assert_eq!(odd.platforms, ["iOS"]);
    assert_eq!(all.items[1].adam_id, "2");
    assert_eq!(all.total_size, Some(2));
    assert_eq!(all.version_id.as_deref(), Some("7"));

    // Not JSON at all is a decode error.
    mock.script("GET", "/assets", [reply(200, "<html>maintenance</html>")]);
    let err = mock.client().assets_page(&AssetsQuery::default()).await.unwrap_err();
    assert!(matches!(err, VppError::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn assignments() {
    let mock = Mock::start().await;
    let query = AssignmentsQuery {
        since_version_id: Some("42".to_owned()),
        ..AssignmentsQuery::default()
    };
    let page = mock.client().assignments_page(&query).await.unwrap();
    assert_eq!(page.assignments.len(), 2);
    assert_eq!(page.assignments[0].serial_number.as_deref(), Some("C02AAA"));
    assert_eq!(page.assignments[1].client_user_id.as_deref(), Some("user-1"));
    assert_eq!(page.version_id.as_deref(), Some("43"));
    let all = mock.client().all_assignments(&query).await.unwrap();
    assert_eq!((all.items.len(), all.pages), (2, 1));
    for request in mock.requests_to("GET", "/assignments") {
        assert_eq!(request.query["sinceVersionId"], "42");
        assert_eq!(request.query["pageIndex"], "0");
    }
}

// ---------------------------------------------------------------------------------------------
// Associate, disassociate, revoke, status
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn licence_events() {
    let mock = Mock::start().await;
    let client = mock.client();
    let request = AssociateRequest {
        assets: vec![AssetRef {
            adam_id: "10000".to_owned(),
            pricing_param: "STDQ".to_owned(),
        }],
        serial_numbers: vec!["C02AAA".to_owned(), "C02BBB".to_owned()],
        client_user_ids: Vec::new(),
    };
    let event = client.associate(&request).await.unwrap();
    assert_eq!(event.event_id, "5b0a7a48-1a5e-4c38-9d2c-0e6a4f4f7e01");
    assert_eq!(event.uid.as_deref(), Some(UID));
    assert_eq!(event.token_expiration, Some(datetime!(2027-11-24 10:00 UTC)));
    assert_eq!(
        mock.requests_to("POST", "/assets/associate")[0].json(),
        json!({"assets":[{"adamId":"10000","pricingParam":"STDQ"}],"serialNumbers":["C02AAA","C02BBB"]})
    );
    client.disassociate(&request).await.unwrap();
    assert_eq!(
        mock.requests_to("POST", "/assets/disassociate")[0].json(),
        json!({"assets":[{"adamId":"10000","pricingParam":"STDQ"}],"serialNumbers":["C02AAA","C02BBB"]})
    );
    client
        .revoke(&RevokeRequest {
            serial_numbers: vec!["C02AAA".to_owned()],
            ..RevokeRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(
        mock.requests_to("POST", "/assets/revoke")[0].json(),
        json!({"serialNumbers":["C02AAA"]})
    );

    let status = client.status(&event.event_id).await.unwrap();
    assert_eq!(mock.requests_to("GET", "/status")[0].query["eventId"], event.event_id);
    assert_eq!(status.status, EventStatus::Complete);
    assert_eq!(status.event_type, EventType::Associate);
    assert!(status.is_finished());
    assert_eq!((status.num_completed, status.num_requested), (Some(3), Some(4)));
    assert_eq!(status.failures.len(), 1);
    assert!(status.failures[0].is_not_enough_licenses());
    assert_eq!(status.failures[0].serial_number.as_deref(), Some("C02BBB"));

    // Incomplete requests are refused before anything is sent.
    let before = mock.requests().len();
    let no_devices = AssociateRequest {
        serial_numbers: Vec::new(),
        ..request.clone()
    };
    let no_assets = AssociateRequest {
        assets: Vec::new(),
        ..request.clone()
    };
    for err in [
        client.associate(&no_devices).await.unwrap_err(),
        client.disassociate(&no_assets).await.unwrap_err(),
        client.revoke(&RevokeRequest::default()).await.unwrap_err(),
        client.status(" ").await.unwrap_err(),
    ] {
        assert!(matches!(err, VppError::InvalidRequest { .. }), "{err:?}");
    }
    assert_eq!(mock.requests().len(), before);

    // Apple's synchronous refusals come back with their numbers.
    mock.script(
        "POST",
        "/assets/associate",
        [
            apple_error(400, 9702, "Too many serial numbers."),
            reply(200, r#"{"uId":"1"}"#),
        ],
    );
    let err = client.associate(&request).await.unwrap_err();
    assert!(
        matches!(
            err,
            VppError::Api {
                http_status: 400,
                number: Some(9702),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
    let err = client.associate(&request).await.unwrap_err();
    assert!(err.to_string().contains("without an eventId"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Errors in 200 answers, retries, limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_error_in_a_200_answer_is_an_error() {
    let mock = Mock::start().await;
    mock.script(
        "GET",
        "/client/config",
        [apple_error(200, 9625, "The server has revoked the sToken.")],
    );
    let err = mock.client().client_config().await.unwrap_err();
    assert!(err.is_revoked(), "{err:?}");
    assert_eq!(err.http_status(), Some(200));

    mock.script("GET", "/assets", [apple_error(200, 9602, "Invalid argument.")]);
    let err = mock.client().assets_page(&AssetsQuery::default()).await.unwrap_err();
    assert!(
        matches!(
            err,
            VppError::Api {
                http_status: 200,
                number: Some(9602),
                ..
            }
        ),
        "{err:?}"
    );

    // An internal error inside a 200 answer is retried like a 5xx.
    mock.script("GET", "/service/config", [apple_error(200, 9603, "Internal error.")]);
    let before = mock.requests_to("GET", "/service/config").len();
    mock.client().service_config().await.unwrap();
    assert_eq!(mock.requests_to("GET", "/service/config").len() - before, 2);
}

#[tokio::test]
async fn rate_limiting_is_waited_out_as_apple_asks() {
    let mock = Mock::start().await;
    mock.script(
        "GET",
        "/client/config",
        [apple_error(
            429,
            9646,
            "Too many recent calls to manage licenses with identical requests.",
        )
        .header("retry-after", "1")],
    );
    let started = Instant::now();
    let config = mock.client().client_config().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(config.uid, UID);
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert_eq!(mock.requests_to("GET", "/client/config").len(), 2);
}

#[tokio::test]
async fn a_long_retry_after_is_returned_to_the_caller() {
    let mock = Mock::start().await;
    mock.script(
        "GET",
        "/assets",
        [apple_error(503, 9603, "Internal error.").header("retry-after", "120")],
    );
    let started = Instant::now();
    let err = mock.client().all_assets(&AssetsQuery::default()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, VppError::ServerError { http_status: 503, .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(err.number(), Some(9603));
    assert!(err.to_string().contains("asked to wait 120 s"), "{err}");
    assert_eq!(mock.requests_to("GET", "/assets").len(), 1);

    // The same for rate limiting.
    mock.script(
        "GET",
        "/assets",
        [apple_error(429, 9646, "Too many recent calls.").header("retry-after", "3600")],
    );
    let err = mock.client().assets_page(&AssetsQuery::default()).await.unwrap_err();
    assert!(err.is_rate_limited(), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let mock = Mock::start().await;
    // Two failures, then Apple's normal answer.
    mock.script("GET", "/assignments", [reply(500, ""), reply(502, "Bad gateway")]);
    mock.client()
        .assignments_page(&AssignmentsQuery::default())
        .await
        .unwrap();
    assert_eq!(mock.requests_to("GET", "/assignments").len(), 3);

    // Failing every time: 1 + max_retries attempts, then the last error.
    mock.script(
        "GET",
        "/status",
        (0..10).map(|_| apple_error(500, 9603, "Internal error.")),
    );
    let err = mock.client().status("e1").await.unwrap_err();
    assert!(
        matches!(
            err,
            VppError::ServerError {
                http_status: 500,
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(mock.requests_to("GET", "/status").len(), 4);
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_refused() {
    let mock = Mock::start().await;
    let big = json!({"assets": (0..5000).map(|n| json!({"adamId": n.to_string()})).collect::<Vec<_>>()});
    assert!(big.to_string().len() > 64 * 1024);
    mock.script("GET", "/assets", [reply(200, big.to_string())]);
    let err = mock.client().assets_page(&AssetsQuery::default()).await.unwrap_err();
    assert!(matches!(err, VppError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("more than 65536 bytes"), "{err}");
    // Not retried.
    assert_eq!(mock.requests_to("GET", "/assets").len(), 1);
}

/// A server that answers every connection with a chunked body (no Content-Length) larger than
/// `size`.
async fn chunked_server(size: usize) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 8192];
                for _ in 0..=size / chunk.len() {
                    let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                    if socket.write_all(&framed).await.is_err() {
                        return;
                    }
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_chunked_answer_over_the_size_limit_is_refused() {
    let addr = chunked_server(100 * 1024).await;
    let client = VppClient::new(
        test_config(format!("http://{addr}/mdm/v2")),
        SecretString::from("dG9rZW4="),
    )
    .unwrap();
    let err = client.service_config().await.unwrap_err();
    assert!(matches!(err, VppError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("more than 65536 bytes"), "{err}");
}

#[tokio::test]
async fn an_unreachable_service_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = VppClient::new(
        test_config(format!("http://{addr}/mdm/v2")),
        SecretString::from(token_file("good")),
    )
    .unwrap();
    let err = client.client_config().await.unwrap_err();
    assert!(matches!(err, VppError::Transport { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(
        err.to_string()
            .contains("could not reach Apple's Apps and Books service"),
        "{err}"
    );
    let file = token_file("good");
    assert!(!err.to_string().contains(file.trim()), "{err}");
}

#[test]
fn the_token_file_and_the_client_agree() {
    // The bearer the client sends is the token file's: nothing is added or re-encoded.
    let file = token_file("good");
    let token = parse_vpp_token(file.as_bytes()).unwrap();
    assert_eq!(token.bearer().expose_secret(), file.trim());
    assert_eq!(token.org_name, "Example Org");
    assert_eq!(token.expires_at, datetime!(2027-11-24 10:00 UTC));
}
