//! Apps and Books (VPP) API v2 under /mdm/v2, driven over HTTP as an MDM server would.

use std::time::{Duration, Instant};

use crate::common::*;
use applesim::{
    AppleSim, OrgId, OrgKind, RunningSim, VppAssetSpec, VppAssignee, VppFault, VppFaultKind, VppLimits, VppLocationId,
    VppMdmInfo, VppPricing,
};
use base64::Engine as _;
use serde_json::{Value, json};

const PAGES: &str = "361309726";
const NUMBERS: &str = "361304891";
const KEYNOTE: &str = "361285480";
const BOOK: &str = "1058120411";

/// A simulator with one organisation, one location with a token, listening.
struct W {
    sim: AppleSim,
    run: RunningSim,
    org: OrgId,
    loc: VppLocationId,
    token: String,
    http: reqwest::Client,
}

impl W {
    async fn new() -> W {
        let sim = AppleSim::new();
        let org = sim.create_org("Example Org", OrgKind::Business);
        let loc = sim.create_vpp_location(org, "Paris Office");
        let token = sim.download_vpp_token(loc).unwrap();
        // Events are carried out quickly unless a test holds them.
        sim.set_vpp_event_delay(Duration::from_millis(5));
        let run = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        W {
            sim,
            run,
            org,
            loc,
            token,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.run.vpp_url)
    }

    async fn get_as(&self, path: &str, authorization: Option<&str>) -> Resp {
        let mut rb = self.http.get(self.url(path));
        if let Some(a) = authorization {
            rb = rb.header("Authorization", a);
        }
        read(rb.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.get_as(path, Some(&format!("Bearer {}", self.token))).await
    }

    async fn post_as(&self, path: &str, token: &str, body: Value) -> Resp {
        let rb = self
            .http
            .post(self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        read(rb.send().await.unwrap()).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.post_as(path, &self.token, body).await
    }

    /// Submit a manage request; returns its eventId (panics unless 200).
    async fn submit(&self, path: &str, body: Value) -> String {
        let r = self.post(path, body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert!(v.get("errorNumber").is_none(), "{v}");
        v["eventId"].as_str().unwrap().to_owned()
    }

    /// Poll `/status` until the event is no longer PENDING (deadline 10 s).
    async fn wait(&self, event: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get(&format!("/status?eventId={event}")).await;
            assert_eq!(r.status, 200, "{}", r.text);
            let v = r.json();
            if v["eventStatus"] != "PENDING" {
                return v;
            }
            assert!(Instant::now() < deadline, "event {event} still pending: {v}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The asset of `GET /assets?adamId=…` (STDQ).
    async fn asset(&self, adam_id: &str) -> Value {
        let r = self.get(&format!("/assets?adamId={adam_id}&pricingParam=STDQ")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert_eq!(v["assets"].as_array().unwrap().len(), 1, "{v}");
        v["assets"][0].clone()
    }

    fn buy_catalogue(&self) {
        self.sim.add_vpp_asset(self.loc, VppAssetSpec::app(PAGES, 10)).unwrap();
        self.sim.add_vpp_asset(self.loc, VppAssetSpec::app(NUMBERS, 5)).unwrap();
        self.sim.add_vpp_asset(self.loc, VppAssetSpec::app(KEYNOTE, 2)).unwrap();
        self.sim.add_vpp_asset(self.loc, VppAssetSpec::book(BOOK, 3)).unwrap();
        let mut plus = VppAssetSpec::app(PAGES, 1);
        plus.pricing_param = VppPricing::Plus;
        self.sim.add_vpp_asset(self.loc, plus).unwrap();
    }
}

fn error_number(r: &Resp) -> u64 {
    r.json()["errorNumber"]
        .as_u64()
        .unwrap_or_else(|| panic!("no errorNumber: {}", r.text))
}

fn assert_error(r: &Resp, status: u16, number: u64) {
    assert_eq!((r.status, error_number(r)), (status, number), "{}", r.text);
    assert!(r.json()["errorMessage"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        r.header("content-type").unwrap().starts_with("application/json"),
        "{:?}",
        r.headers
    );
}

fn decode_token(file: &str) -> Value {
    let raw = base64::engine::general_purpose::STANDARD.decode(file.trim()).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[tokio::test]
async fn token_file_and_client_config() {
    let w = W::new().await;
    let t = decode_token(&w.token);
    assert_eq!(t["orgName"], "Example Org");
    assert!(!t["token"].as_str().unwrap().is_empty());
    let exp = t["expDate"].as_str().unwrap();
    // YYYY-MM-DDTHH:MM:SS+0000, a year from the sim clock.
    assert_eq!(exp.len(), 24, "{exp}");
    assert!(exp.ends_with("+0000"), "{exp}");
    let parsed = time::OffsetDateTime::parse(
        &format!("{}+00:00", &exp[..19]),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_a_year = w.sim.clock().now() + time::Duration::days(365);
    assert!((in_a_year - parsed).abs() < time::Duration::minutes(1));

    let r = w.get("/client/config").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.json();
    assert_eq!(c["locationName"], "Paris Office");
    assert_eq!(c["countryISO2ACode"], "US");
    assert_eq!(c["defaultPlatform"], "volumestore");
    assert_eq!(c["websiteURL"], "https://business.apple.com");
    assert_eq!(c["tokenExpirationDate"], exp);
    assert!(c.get("mdmInfo").is_none(), "no MDM has claimed it: {c}");
    assert_eq!(c["notificationUrl"], Value::Null);
    assert_eq!(c["subscribedNotificationTypes"], json!([]));
    let uid = c["uId"].as_str().unwrap().to_owned();
    assert!(uid.bytes().all(|b| b.is_ascii_digit()) && uid.len() >= 10, "{uid}");
    assert_eq!(w.sim.vpp_location(w.loc).unwrap().uid, uid);

    // A second token of the same location: same uId, its own expiry; the first still works.
    let later = w.sim.clock().now() + time::Duration::days(30);
    let second = w.sim.download_vpp_token_expiring(w.loc, later).unwrap();
    assert_ne!(second, w.token);
    let r = w.get_as("/client/config", Some(&format!("Bearer {second}"))).await;
    assert_eq!(r.json()["uId"], uid);
    assert_eq!(r.json()["tokenExpirationDate"], decode_token(&second)["expDate"]);
    assert_eq!(w.get("/client/config").await.status, 200);

    // Another location has another uId; an education organisation has school.apple.com.
    let edu = w.sim.create_org("Lycée Molière", OrgKind::Education);
    let eloc = w.sim.create_vpp_location(edu, "Bâtiment B");
    w.sim.set_vpp_country(eloc, "fr").unwrap();
    assert!(w.sim.set_vpp_country(eloc, "FRA").is_err());
    let etok = w.sim.download_vpp_token(eloc).unwrap();
    assert_eq!(decode_token(&etok)["orgName"], "Lycée Molière");
    let r = w.get_as("/client/config", Some(&format!("Bearer {etok}"))).await;
    let c = r.json();
    assert_eq!(c["websiteURL"], "https://school.apple.com");
    assert_eq!(c["countryISO2ACode"], "FR");
    assert_eq!(c["locationName"], "Bâtiment B");
    assert_ne!(c["uId"], uid);
}

#[tokio::test]
async fn client_config_post_claims_the_location() {
    let w = W::new().await;
    let mine = json!({"id": "7c1a0e5e-2b7f-4c47-9d0e-1a2b3c4d5e6f", "name": "Russet", "metadata": "russet 0.1"});
    let r = w.post("/client/config", json!({ "mdmInfo": mine })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["mdmInfo"], mine);
    assert_eq!(w.get("/client/config").await.json()["mdmInfo"], mine);
    assert_eq!(
        w.sim.vpp_mdm_info(w.loc),
        Some(VppMdmInfo::new(
            "7c1a0e5e-2b7f-4c47-9d0e-1a2b3c4d5e6f",
            "Russet",
            "russet 0.1"
        ))
    );

    // Invalid bodies change nothing.
    for bad in [
        json!({"mdmInfo": {"id": "x"}}),
        json!({"mdmInfo": {"name": "x"}}),
        json!({"mdmInfo": {"id": "", "name": "Other"}}),
        json!({"mdmInfo": {"id": 5, "name": "Other"}}),
        json!({"mdmInfo": "Other"}),
        json!({"notificationTypes": ["EVERYTHING"]}),
        json!({"notificationTypes": "ASSET_COUNT"}),
        json!([1, 2]),
    ] {
        let r = w.post("/client/config", bad.clone()).await;
        assert_error(&r, 400, 9602);
    }
    let r = w
        .post(
            "/client/config",
            json!({"notificationUrl": "https://mdm.example.com/vpp"}),
        )
        .await;
    assert_error(&r, 400, 9710);
    let r = w
        .post(
            "/client/config",
            json!({"notificationUrl": "http://mdm.example.com/vpp", "notificationAuthToken": "s3cret"}),
        )
        .await;
    assert_error(&r, 400, 9712);
    assert_eq!(w.get("/client/config").await.json()["mdmInfo"], mine);

    // Notifications (stored and echoed; applesim sends none).
    let r = w
        .post(
            "/client/config",
            json!({"notificationUrl": "https://mdm.example.com/vpp", "notificationAuthToken": "s3cret",
                   "notificationTypes": ["ASSET_MANAGEMENT", "ASSET_COUNT"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.json();
    assert_eq!(c["notificationUrl"], "https://mdm.example.com/vpp");
    assert_eq!(c["notificationAuthToken"], "s3cret");
    assert_eq!(
        c["subscribedNotificationTypes"],
        json!(["ASSET_MANAGEMENT", "ASSET_COUNT"])
    );
    assert_eq!(c["mdmInfo"], mine, "mdmInfo is kept when not sent");

    // Another MDM takes over (ABM side); then Russet takes it back.
    w.sim
        .set_vpp_mdm_info(w.loc, Some(VppMdmInfo::new("other-id", "Other MDM", "")))
        .unwrap();
    let c = w.get("/client/config").await.json();
    assert_eq!(
        c["mdmInfo"],
        json!({"id": "other-id", "name": "Other MDM", "metadata": ""})
    );
    let r = w.post("/client/config", json!({ "mdmInfo": mine })).await;
    assert_eq!(r.json()["mdmInfo"], mine);
    // Released in ABM: mdmInfo is absent again.
    w.sim.set_vpp_mdm_info(w.loc, None).unwrap();
    assert!(w.get("/client/config").await.json().get("mdmInfo").is_none());

    // Content-Type must be JSON; GET and POST only.
    let r = read(
        w.http
            .post(w.url("/client/config"))
            .header("Authorization", format!("Bearer {}", w.token))
            .header("Content-Type", "text/plain")
            .body(json!({ "mdmInfo": mine }).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 415, 9727);
    let r = read(
        w.http
            .delete(w.url("/client/config"))
            .header("Authorization", format!("Bearer {}", w.token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 405, 9726);
    let r = read(
        w.http
            .post(w.url("/client/config"))
            .header("Authorization", format!("Bearer {}", w.token))
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 400, 9602);
    assert_eq!(w.get("/nowhere").await.status, 404);
}

#[tokio::test]
async fn service_config_needs_no_token() {
    let w = W::new().await;
    let r = w.get_as("/service/config", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.json();
    assert_eq!(
        c["limits"],
        json!({"maxAssets": 25, "maxClientUserIds": 1000, "maxSerialNumbers": 1000})
    );
    let base = &w.run.vpp_url;
    assert_eq!(c["urls"]["clientConfig"], format!("{base}/client/config"));
    assert_eq!(c["urls"]["getAssets"], format!("{base}/assets"));
    assert_eq!(c["urls"]["getAssignments"], format!("{base}/assignments"));
    assert_eq!(c["urls"]["associateAssets"], format!("{base}/assets/associate"));
    assert_eq!(c["urls"]["disassociateAssets"], format!("{base}/assets/disassociate"));
    assert_eq!(c["urls"]["revokeAssets"], format!("{base}/assets/revoke"));
    assert_eq!(c["urls"]["status"], format!("{base}/status"));
    assert_eq!(
        c["notificationTypes"],
        json!(["ASSET_COUNT", "ASSET_MANAGEMENT", "USER_MANAGEMENT", "USER_ASSOCIATED"])
    );
    let codes = c["errorCodes"].as_array().unwrap();
    let msg = |n: u64| {
        codes
            .iter()
            .find(|e| e["errorNumber"] == n)
            .map(|e| e["errorMessage"].as_str().unwrap().to_owned())
    };
    assert_eq!(msg(9601).as_deref(), Some("Login required."));
    assert_eq!(msg(9625).as_deref(), Some("The server has revoked the sToken."));
    assert_eq!(msg(9709).as_deref(), Some("Not enough licenses."));
    assert_eq!(msg(9722).as_deref(), Some("Authorization header is malformed."));

    w.sim.set_vpp_limits(VppLimits {
        max_assets: 2,
        max_client_user_ids: 3,
        max_serial_numbers: 4,
    });
    let c = w.get_as("/service/config", None).await.json();
    assert_eq!(
        c["limits"],
        json!({"maxAssets": 2, "maxClientUserIds": 3, "maxSerialNumbers": 4})
    );
}

#[tokio::test]
async fn assets_pages_and_filters() {
    let w = W::new().await;
    let r = w.get("/assets").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["assets"], json!([]));
    assert_eq!((v["size"].as_u64(), v["totalPages"].as_u64()), (Some(0), Some(1)));
    assert!(v.get("nextPageIndex").is_none());
    let v0 = v["versionId"].as_str().unwrap().to_owned();

    w.buy_catalogue();
    w.sim.set_vpp_page_size(2);
    let first = w.get("/assets").await.json();
    assert_ne!(first["versionId"], v0, "buying licences changes versionId");
    assert_eq!(first["size"], 5);
    assert_eq!(first["totalPages"], 3);
    assert_eq!(first["currentPageIndex"], 0);
    assert_eq!(first["nextPageIndex"], 1);
    assert_eq!(first["uId"], w.sim.vpp_location(w.loc).unwrap().uid);
    assert!(first["tokenExpirationDate"].as_str().unwrap().ends_with("+0000"));
    let mut seen = Vec::new();
    let mut next = Some(0u64);
    while let Some(i) = next {
        let p = w.get(&format!("/assets?pageIndex={i}")).await.json();
        assert_eq!(p["currentPageIndex"], i);
        for a in p["assets"].as_array().unwrap() {
            seen.push((
                a["adamId"].as_str().unwrap().to_owned(),
                a["pricingParam"].as_str().unwrap().to_owned(),
            ));
        }
        next = p["nextPageIndex"].as_u64();
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0], (PAGES.to_owned(), "STDQ".to_owned()));
    assert_eq!(seen[4], (PAGES.to_owned(), "PLUS".to_owned()));
    assert_error(&w.get("/assets?pageIndex=3").await, 400, 9650);

    let pages = w.asset(PAGES).await;
    assert_eq!(
        pages,
        json!({"adamId": PAGES, "assignedCount": 0, "availableCount": 10, "deviceAssignable": true,
               "pricingParam": "STDQ", "productType": "App", "retiredCount": 0, "revocable": true,
               "supportedPlatforms": ["iOS", "macOS"], "totalCount": 10})
    );
    // Buying the same adamId and pricing again adds licences.
    w.sim.add_vpp_asset(w.loc, VppAssetSpec::app(PAGES, 5)).unwrap();
    assert_eq!(w.asset(PAGES).await["totalCount"], 15);

    let ids = |v: Value| -> Vec<String> {
        v["assets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{}/{}",
                    a["adamId"].as_str().unwrap(),
                    a["pricingParam"].as_str().unwrap()
                )
            })
            .collect()
    };
    w.sim.set_vpp_page_size(100);
    let book = w.get("/assets?productType=Book").await.json();
    assert_eq!(ids(book.clone()), vec![format!("{BOOK}/STDQ")]);
    assert_eq!(book["assets"][0]["deviceAssignable"], false);
    assert_eq!(book["size"], 1);
    assert_eq!(
        ids(w.get("/assets?pricingParam=PLUS").await.json()),
        vec![format!("{PAGES}/PLUS")]
    );
    assert_eq!(
        ids(w.get("/assets?deviceAssignable=false").await.json()),
        vec![format!("{BOOK}/STDQ")]
    );
    assert_eq!(
        ids(w.get("/assets?revocable=true&productType=App").await.json()).len(),
        4
    );
    assert_eq!(ids(w.get(&format!("/assets?adamId={PAGES}")).await.json()).len(), 2);
    assert_eq!(ids(w.get("/assets?adamId=999").await.json()), Vec::<String>::new());
    assert_eq!(
        ids(w.get("/assets?maxAvailableCount=2").await.json()),
        vec![format!("{KEYNOTE}/STDQ"), format!("{PAGES}/PLUS")]
    );
    assert_eq!(
        ids(w.get("/assets?minAvailableCount=5&maxAvailableCount=5").await.json()),
        vec![format!("{NUMBERS}/STDQ")]
    );

    // Counts follow assignments.
    w.sim
        .add_vpp_assignments(
            w.loc,
            NUMBERS,
            VppPricing::Stdq,
            &[
                VppAssignee::SerialNumber("C02AAA000001".into()),
                VppAssignee::ClientUserId("u1".into()),
            ],
        )
        .unwrap();
    let n = w.asset(NUMBERS).await;
    assert_eq!(
        (n["assignedCount"].as_u64(), n["availableCount"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(
        ids(w.get("/assets?minAssignedCount=1").await.json()),
        vec![format!("{NUMBERS}/STDQ")]
    );
    assert_eq!(ids(w.get("/assets?maxAssignedCount=0").await.json()).len(), 4);

    for bad in [
        "pageIndex=-1",
        "pageIndex=x",
        "pricingParam=stdq",
        "productType=app",
        "revocable=yes",
        "deviceAssignable=1",
        "maxAvailableCount=-2",
        "adamId=abc",
        "pageIndex=0&pageIndex=1",
    ] {
        assert_error(&w.get(&format!("/assets?{bad}")).await, 400, 9602);
    }
}

#[tokio::test]
async fn assignments_pages_filters_and_versions() {
    let w = W::new().await;
    w.buy_catalogue();
    let serials: Vec<String> = (0..5).map(|i| format!("C02TEST{i:05}")).collect();
    let r = w.get("/assignments").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["assignments"], json!([]));
    let v0: u64 = r.json()["versionId"].as_str().unwrap().parse().unwrap();

    let e = w
        .submit(
            "/assets/associate",
            json!({"assets": [{"adamId": PAGES, "pricingParam": "STDQ"}], "serialNumbers": serials}),
        )
        .await;
    assert_eq!(w.wait(&e).await["eventStatus"], "COMPLETE");
    let e = w
        .submit(
            "/assets/associate",
            json!({"assets": [{"adamId": BOOK, "pricingParam": "STDQ"}], "clientUserIds": ["ava", "ben"]}),
        )
        .await;
    assert_eq!(w.wait(&e).await["eventStatus"], "COMPLETE");

    w.sim.set_vpp_page_size(3);
    let first = w.get("/assignments").await.json();
    assert_eq!(first["size"], 7);
    assert_eq!(first["totalPages"], 3);
    assert_eq!(first["nextPageIndex"], 1);
    assert_eq!(
        first["assignments"][0],
        json!({"adamId": PAGES, "pricingParam": "STDQ", "serialNumber": serials[0]})
    );
    let last = w.get("/assignments?pageIndex=2").await.json();
    assert!(last.get("nextPageIndex").is_none());
    assert_eq!(
        last["assignments"],
        json!([{"adamId": BOOK, "pricingParam": "STDQ", "clientUserId": "ben"}])
    );
    let v1: u64 = first["versionId"].as_str().unwrap().parse().unwrap();
    assert!(v1 > v0);

    w.sim.set_vpp_page_size(100);
    let by = |q: &str| {
        let q = q.to_owned();
        let w = &w;
        async move {
            let r = w.get(&format!("/assignments?{q}")).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.json()["assignments"].as_array().unwrap().clone()
        }
    };
    assert_eq!(by(&format!("serialNumber={}", serials[2])).await.len(), 1);
    assert_eq!(
        by("clientUserId=ava").await,
        vec![json!({"adamId": BOOK, "pricingParam": "STDQ", "clientUserId": "ava"})]
    );
    assert_eq!(by(&format!("adamId={PAGES}")).await.len(), 5);
    assert_eq!(by(&format!("adamId={BOOK}&clientUserId=ben")).await.len(), 1);
    assert_eq!(by("serialNumber=NOPE").await.len(), 0);

    // sinceVersionId: only what was assigned after that version.
    assert_eq!(by(&format!("sinceVersionId={v1}")).await.len(), 0);
    let e = w
        .submit(
            "/assets/associate",
            json!({"assets": [{"adamId": NUMBERS}], "serialNumbers": [serials[0]]}),
        )
        .await;
    w.wait(&e).await;
    let since = by(&format!("sinceVersionId={v1}")).await;
    assert_eq!(
        since,
        vec![json!({"adamId": NUMBERS, "pricingParam": "STDQ", "serialNumber": serials[0]})]
    );
    assert_eq!(by(&format!("sinceVersionId={v0}")).await.len(), 8);
    for bad in ["sinceVersionId=abc", "sinceVersionId=999999", "sinceVersionId="] {
        assert_error(&w.get(&format!("/assignments?{bad}")).await, 400, 9721);
    }
    assert_error(&w.get("/assignments?pageIndex=1").await, 400, 9650);
    assert_error(&w.get("/assignments?serialNumber=").await, 400, 9602);

    // The Rust view agrees.
    let all = w.sim.vpp_assignments(w.loc);
    assert_eq!(all.len(), 8);
    assert_eq!(all[0].assignee, VppAssignee::SerialNumber(serials[0].clone()));
    assert_eq!(w.sim.vpp_location(w.loc).unwrap().assignments, 8);
}

#[tokio::test]
async fn associate_is_pending_then_complete_and_counts_follow() {
    let w = W::new().await;
    w.buy_catalogue();
    // Without the hold the event would be due at once.
    w.sim.set_vpp_event_delay(Duration::ZERO);
    w.sim.hold_vpp_events(true);
    let body = json!({"assets": [{"adamId": PAGES, "pricingParam": "STDQ"}, {"adamId": NUMBERS, "pricingParam": "STDQ"}],
                      "serialNumbers": ["C02A", "C02B"], "clientUserIds": ["ava"]});
    let r = w.post("/assets/associate", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let event = v["eventId"].as_str().unwrap().to_owned();
    assert_eq!(event.len(), 36);
    assert_eq!(v["uId"], w.sim.vpp_location(w.loc).unwrap().uid);
    assert!(v["tokenExpirationDate"].is_string());

    let s = w.get(&format!("/status?eventId={event}")).await.json();
    assert_eq!(s["eventStatus"], "PENDING");
    assert_eq!(s["eventType"], "ASSOCIATE");
    assert_eq!(s["numRequested"], 6);
    assert_eq!(s["numCompleted"], 0);
    assert_eq!(
        w.asset(PAGES).await["assignedCount"],
        0,
        "nothing happens before the event runs"
    );
    assert_eq!(w.sim.vpp_location(w.loc).unwrap().pending_events, 1);

    w.sim.hold_vpp_events(false);
    let s = w.wait(&event).await;
    assert_eq!(s["eventStatus"], "COMPLETE", "{s}");
    assert_eq!(s["numCompleted"], 6);
    assert_eq!(s["failures"], json!([]));
    assert_eq!(s["eventId"], event.as_str());
    let p = w.asset(PAGES).await;
    assert_eq!(
        (p["assignedCount"].as_u64(), p["availableCount"].as_u64()),
        (Some(3), Some(7))
    );
    assert_eq!(w.asset(NUMBERS).await["availableCount"], 2);

    // Associating what is already assigned is not a failure and uses no licence.
    let e = w.submit("/assets/associate", body).await;
    let s = w.wait(&e).await;
    assert_eq!(
        (s["eventStatus"].as_str(), s["numCompleted"].as_u64()),
        (Some("COMPLETE"), Some(6))
    );
    assert_eq!(s["failures"], json!([]));
    assert_eq!(w.asset(PAGES).await["assignedCount"], 3);

    // Disassociate gives licences back (an unassigned target is no failure either).
    let e = w
        .submit(
            "/assets/disassociate",
            json!({"assets": [{"adamId": PAGES, "pricingParam": "STDQ"}], "serialNumbers": ["C02A", "C02Z"]}),
        )
        .await;
    let s = w.wait(&e).await;
    assert_eq!(
        (s["eventStatus"].as_str(), s["eventType"].as_str()),
        (Some("COMPLETE"), Some("DISASSOCIATE"))
    );
    assert_eq!(s["numRequested"], 2);
    assert_eq!(w.asset(PAGES).await["assignedCount"], 2);

    // Revoke without assets takes back every revocable licence of the device.
    let e = w.submit("/assets/revoke", json!({"serialNumbers": ["C02B"]})).await;
    let s = w.wait(&e).await;
    assert_eq!(
        (s["eventStatus"].as_str(), s["eventType"].as_str()),
        (Some("COMPLETE"), Some("REVOKE"))
    );
    assert_eq!(s["numRequested"], 1);
    let left: Vec<VppAssignee> = w.sim.vpp_assignments(w.loc).into_iter().map(|a| a.assignee).collect();
    assert!(!left.contains(&VppAssignee::SerialNumber("C02B".into())), "{left:?}");
    assert_eq!(w.asset(NUMBERS).await["assignedCount"], 2);
    assert_eq!(w.asset(PAGES).await["assignedCount"], 1);

    // The Rust API sees the same event.
    let info = w.sim.vpp_event(&e).unwrap();
    assert_eq!(info.num_completed, 1);

    // Unknown events; events of another location are unknown too.
    assert_error(
        &w.get("/status?eventId=00000000-0000-4000-8000-000000000000").await,
        400,
        9708,
    );
    assert_error(&w.get("/status").await, 400, 9602);
    let other = w.sim.create_vpp_location(w.org, "Lyon");
    let other_token = w.sim.download_vpp_token(other).unwrap();
    let r = w
        .get_as(&format!("/status?eventId={e}"), Some(&format!("Bearer {other_token}")))
        .await;
    assert_error(&r, 400, 9708);
}

#[tokio::test]
async fn running_out_of_licences_fails_with_9709() {
    let w = W::new().await;
    w.buy_catalogue(); // Keynote: 2 licences.
    let e = w
        .submit(
            "/assets/associate",
            json!({"assets": [{"adamId": KEYNOTE, "pricingParam": "STDQ"}], "serialNumbers": ["S1", "S2", "S3"]}),
        )
        .await;
    let s = w.wait(&e).await;
    assert_eq!(s["eventStatus"], "FAILED", "{s}");
    assert_eq!(
        (s["numRequested"].as_u64(), s["numCompleted"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        s["failures"],
        json!([{"adamId": KEYNOTE, "pricingParam": "STDQ", "serialNumber": "S3",
                "errorNumber": 9709, "errorMessage": "Not enough licenses."}])
    );
    let k = w.asset(KEYNOTE).await;
    assert_eq!(
        (k["assignedCount"].as_u64(), k["availableCount"].as_u64()),
        (Some(2), Some(0))
    );

    // More licences bought: the same request now completes (S1 and S2 are already done).
    w.sim.add_vpp_asset(w.loc, VppAssetSpec::app(KEYNOTE, 1)).unwrap();
    let e = w
        .submit(
            "/assets/associate",
            json!({"assets": [{"adamId": KEYNOTE, "pricingParam": "STDQ"}], "serialNumbers": ["S1", "S2", "S3"]}),
        )
        .await;
    assert_eq!(w.wait(&e).await["eventStatus"], "COMPLETE");
    assert_eq!(w.asset(KEYNOTE).await["availableCount"], 0);

    // The Rust side refuses too many as a whole.
    assert!(
        w.sim
            .add_vpp_assignments(
                w.loc,
                KEYNOTE,
                VppPricing::Stdq,
                &[VppAssignee::ClientUserId("x".into())]
            )
            .is_err()
    );
}

#[tokio::test]
async fn manage_requests_are_validated_before_anything_happens() {
    let w = W::new().await;
    w.buy_catalogue();
    let one = json!([{"adamId": PAGES, "pricingParam": "STDQ"}]);
    let many = |n: usize, prefix: &str| -> Vec<String> { (0..n).map(|i| format!("{prefix}{i}")).collect() };
    let assets26: Vec<Value> = (0..26).map(|i| json!({"adamId": format!("{}", 100 + i)})).collect();

    let cases: Vec<(&str, Value, u16, u64)> = vec![
        (
            "/assets/associate",
            json!({"assets": assets26, "serialNumbers": ["S"]}),
            400,
            9700,
        ),
        (
            "/assets/associate",
            json!({"assets": one, "clientUserIds": many(1001, "u")}),
            400,
            9701,
        ),
        (
            "/assets/associate",
            json!({"assets": one, "serialNumbers": many(1001, "S")}),
            400,
            9702,
        ),
        (
            "/assets/associate",
            json!({"assets": [{"adamId": PAGES, "pricingParam": "STDQ"}, {"adamId": PAGES}], "serialNumbers": ["S"]}),
            400,
            9703,
        ),
        (
            "/assets/associate",
            json!({"assets": one, "clientUserIds": ["a", "b", "a"]}),
            400,
            9704,
        ),
        (
            "/assets/disassociate",
            json!({"assets": one, "serialNumbers": ["S", "S"]}),
            400,
            9705,
        ),
        (
            "/assets/associate",
            json!({"assets": [{"adamId": "999"}], "serialNumbers": ["S"]}),
            400,
            9602,
        ),
        (
            "/assets/associate",
            json!({"assets": [{"adamId": KEYNOTE, "pricingParam": "PLUS"}], "serialNumbers": ["S"]}),
            400,
            9602,
        ),
        (
            "/assets/associate",
            json!({"assets": [{"adamId": 361309726}], "serialNumbers": ["S"]}),
            400,
            9602,
        ),
        (
            "/assets/associate",
            json!({"assets": [{"adamId": PAGES, "pricingParam": "GOLD"}], "serialNumbers": ["S"]}),
            400,
            9602,
        ),
        (
            "/assets/associate",
            json!({"assets": one, "serialNumbers": [""]}),
            400,
            9602,
        ),
        (
            "/assets/associate",
            json!({"assets": one, "serialNumbers": "S"}),
            400,
            9602,
        ),
        (
            "/assets/associate",
            json!({"assets": [{"adamId": BOOK}], "serialNumbers": ["S"]}),
            400,
            9707,
        ),
        (
            "/assets/disassociate",
            json!({"assets": [{"adamId": BOOK}], "clientUserIds": ["u"]}),
            400,
            9706,
        ),
        (
            "/assets/revoke",
            json!({"assets": [{"adamId": BOOK}], "clientUserIds": ["u"]}),
            400,
            9706,
        ),
        ("/assets/associate", json!({"serialNumbers": ["S"]}), 400, 9718),
        (
            "/assets/disassociate",
            json!({"assets": [], "serialNumbers": ["S"]}),
            400,
            9718,
        ),
        ("/assets/associate", json!({"assets": one}), 400, 9719),
        ("/assets/revoke", json!({}), 400, 9719),
        ("/assets/associate", json!("assets"), 400, 9602),
    ];
    for (path, body, status, number) in cases {
        let r = w.post(path, body.clone()).await;
        assert_eq!(
            (r.status, error_number(&r)),
            (status, number),
            "{path} {body}: {}",
            r.text
        );
    }
    // errorInfo names what is wrong.
    let r = w
        .post(
            "/assets/associate",
            json!({"assets": [{"adamId": "999"}, {"adamId": PAGES}], "serialNumbers": ["S"]}),
        )
        .await;
    assert_eq!(
        r.json()["errorInfo"],
        json!({"assets": [{"adamId": "999", "pricingParam": "STDQ"}]})
    );
    let r = w
        .post(
            "/assets/associate",
            json!({"assets": one, "serialNumbers": ["S", "T", "S", "T"]}),
        )
        .await;
    assert_eq!(r.json()["errorInfo"], json!({"serialNumbers": ["S", "T"]}));

    // Exactly at the limits is fine; limits can be lowered for tests.
    let r = w
        .post(
            "/assets/associate",
            json!({"assets": one, "serialNumbers": many(1000, "S")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    w.sim.set_vpp_limits(VppLimits {
        max_assets: 1,
        max_client_user_ids: 2,
        max_serial_numbers: 2,
    });
    let r = w
        .post(
            "/assets/associate",
            json!({"assets": one, "serialNumbers": ["A", "B", "C"]}),
        )
        .await;
    assert_error(&r, 400, 9702);
    let r = w
        .post(
            "/assets/associate",
            json!({"assets": [{"adamId": PAGES}, {"adamId": NUMBERS}], "serialNumbers": ["A"]}),
        )
        .await;
    assert_error(&r, 400, 9700);

    // Only the one valid request made an event.
    let e = w
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/mdm/v2/assets/associate" && r.status == Some(200))
        .count();
    assert_eq!(e, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.sim.vpp_location(w.loc).unwrap().pending_events > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Pages has 10 licences: 10 of the 1000 serials got one.
    assert_eq!(w.sim.vpp_location(w.loc).unwrap().assignments, 10);
}

#[tokio::test]
async fn every_token_problem_is_a_401_with_its_number() {
    let w = W::new().await;
    let path = "/client/config";
    assert_error(&w.get_as(path, None).await, 401, 9601);
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b", &w.token] {
        assert_error(&w.get_as(path, Some(header)).await, 401, 9722);
    }
    // Well-formed but unknown: a token file made elsewhere, or the inner token alone.
    let b64 = base64::engine::general_purpose::STANDARD;
    let forged = b64
        .encode(json!({"token": "AAAA", "expDate": "2099-01-01T00:00:00+0000", "orgName": "Example Org"}).to_string());
    assert_error(&w.get_as(path, Some(&format!("Bearer {forged}"))).await, 401, 9622);
    let inner = decode_token(&w.token)["token"].as_str().unwrap().to_owned();
    assert_error(&w.get_as(path, Some(&format!("Bearer {inner}"))).await, 401, 9622);
    // The scheme is case-insensitive.
    assert_eq!(w.get_as(path, Some(&format!("bearer {}", w.token))).await.status, 200);

    // Expiry follows the sim clock.
    let short = w
        .sim
        .download_vpp_token_expiring(w.loc, w.sim.clock().now() + time::Duration::days(2))
        .unwrap();
    let auth = format!("Bearer {short}");
    assert_eq!(w.get_as(path, Some(&auth)).await.status, 200);
    w.sim.clock().advance(time::Duration::days(3));
    assert_error(&w.get_as(path, Some(&auth)).await, 401, 9621);
    assert_eq!(w.get("/assets").await.status, 200, "the year-long token still works");
    let r = w.get_as(path, Some(&auth)).await;
    assert!(
        r.json()["errorMessage"]
            .as_str()
            .unwrap()
            .contains("business.apple.com")
    );
    let past = w
        .sim
        .download_vpp_token_expiring(w.loc, w.sim.clock().now() - time::Duration::hours(1))
        .unwrap();
    assert_error(&w.get_as(path, Some(&format!("Bearer {past}"))).await, 401, 9621);
    w.sim.clock().advance(time::Duration::days(365));
    assert_error(&w.get("/assets").await, 401, 9621);
    w.sim.clock().advance(-time::Duration::days(366));

    // Revoking one token leaves the others working; revoking all stops every one.
    let other = w.sim.download_vpp_token(w.loc).unwrap();
    let stale = w
        .sim
        .download_vpp_token_expiring(w.loc, w.sim.clock().now() - time::Duration::minutes(1))
        .unwrap();
    assert_error(&w.get_as(path, Some(&format!("Bearer {stale}"))).await, 401, 9621);
    w.sim.revoke_vpp_token(&format!("{}\n", w.token)).unwrap();
    assert_error(&w.get(path).await, 401, 9625);
    assert_eq!(w.get_as(path, Some(&format!("Bearer {other}"))).await.status, 200);
    assert!(w.sim.revoke_vpp_token("not a token").is_err());
    // short, past, other and stale were not revoked yet.
    assert_eq!(w.sim.revoke_vpp_tokens(w.loc).unwrap(), 4);
    assert_error(&w.get_as(path, Some(&format!("Bearer {other}"))).await, 401, 9625);
    // Revoked is reported before expired.
    assert_error(&w.get_as(path, Some(&format!("Bearer {stale}"))).await, 401, 9625);
    let info = w.sim.vpp_location(w.loc).unwrap();
    assert_eq!((info.tokens_downloaded, info.tokens_valid), (5, 0));
    // A new download works again.
    let fresh = w.sim.download_vpp_token(w.loc).unwrap();
    assert_eq!(w.get_as(path, Some(&format!("Bearer {fresh}"))).await.status, 200);

    // Every endpoint but /service/config checks the token.
    for p in ["/assets", "/assignments", "/status?eventId=x"] {
        assert_error(&w.get_as(p, None).await, 401, 9601);
    }
    let r = read(
        w.http
            .post(w.url("/assets/associate"))
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 401, 9601);
}

#[tokio::test]
async fn faults_with_retry_after_and_errors_in_ok_bodies() {
    let w = W::new().await;
    w.buy_catalogue();
    w.sim.push_vpp_faults(vec![
        VppFault::on("/assets", 2, VppFaultKind::too_many_requests(30)),
        VppFault::on("/assignments", 1, VppFaultKind::service_unavailable(7)),
        VppFault::on("/client/config", 1, VppFaultKind::error_in_ok_body(9603)),
    ]);
    assert_eq!(w.sim.pending_vpp_faults().len(), 3);
    // Other paths are not affected.
    assert_eq!(w.get("/assets/associate").await.status, 405);
    let r = w.get("/assets").await;
    assert_error(&r, 429, 9646);
    assert_eq!(r.header("retry-after").as_deref(), Some("30"));
    assert_eq!(
        r.json()["errorMessage"],
        "Too many recent calls to manage licenses with identical requests."
    );
    // Faults come before authentication.
    assert_error(&w.get_as("/assets", None).await, 429, 9646);
    assert_eq!(w.get("/assets").await.status, 200);
    let r = w.get("/assignments").await;
    assert_error(&r, 503, 9603);
    assert_eq!(r.header("retry-after").as_deref(), Some("7"));
    let r = w.get("/client/config").await;
    assert_error(&r, 200, 9603);
    assert_eq!(r.json()["errorMessage"], "Internal error.");
    assert_eq!(w.get("/client/config").await.json().get("errorNumber"), None);
    assert!(w.sim.pending_vpp_faults().is_empty());

    // A fault without a path applies to the next request whatever it is; Pass lets one through.
    w.sim.push_vpp_faults(vec![
        VppFault::new(1, VppFaultKind::Pass),
        VppFault::new(1, VppFaultKind::internal_error()),
        VppFault::new(1, VppFaultKind::token_revoked()),
        VppFault::new(1, VppFaultKind::token_invalid()),
    ]);
    assert_eq!(w.get("/service/config").await.status, 200);
    assert_error(&w.get("/service/config").await, 500, 9603);
    assert_error(&w.get("/assets").await, 401, 9625);
    assert_error(&w.get("/assets").await, 401, 9622);
    assert_eq!(w.get("/assets").await.status, 200);

    // An event that fails in the background (e.g. maintenance mode).
    w.sim.push_vpp_faults(vec![VppFault::on(
        "/assets/associate",
        1,
        VppFaultKind::FailEvent { error_number: 9644 },
    )]);
    let e = w
        .submit(
            "/assets/associate",
            json!({"assets": [{"adamId": PAGES}], "serialNumbers": ["S1"], "clientUserIds": ["u1"]}),
        )
        .await;
    let s = w.wait(&e).await;
    assert_eq!(s["eventStatus"], "FAILED");
    assert_eq!(s["numCompleted"], 0);
    let f = s["failures"].as_array().unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0]["errorNumber"], 9644);
    assert_eq!(f[0]["serialNumber"], "S1");
    assert_eq!(f[1]["clientUserId"], "u1");
    assert_eq!(w.asset(PAGES).await["assignedCount"], 0);

    // Slow answers, and connections dropped without an answer.
    w.sim.push_vpp_faults(vec![
        VppFault::on("/assets", 1, VppFaultKind::Slow(Duration::from_millis(150))),
        VppFault::on("/assets", 1, VppFaultKind::DropConnection),
    ]);
    let t = Instant::now();
    assert_eq!(w.get("/assets").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    let err = w
        .http
        .get(w.url("/assets"))
        .header("Authorization", format!("Bearer {}", w.token))
        .send()
        .await
        .expect_err("the connection must close without a response");
    assert!(err.status().is_none(), "{err:?}");
    assert_eq!(w.get("/assets").await.status, 200);

    // Every call is in the request log, with the fault applied.
    let log = w.sim.requests();
    let vpp: Vec<_> = log.iter().filter(|r| r.path.starts_with("/mdm/v2/")).collect();
    assert!(vpp.len() >= 15, "{}", vpp.len());
    let throttled = vpp.iter().find(|r| r.status == Some(429)).unwrap();
    assert_eq!(throttled.path, "/mdm/v2/assets");
    assert!(throttled.fault.as_deref().unwrap().contains("9646"));
    let dropped = vpp.iter().find(|r| r.status.is_none()).unwrap();
    assert!(dropped.fault.as_deref().unwrap().contains("DropConnection"));
    let assoc = vpp
        .iter()
        .find(|r| r.path == "/mdm/v2/assets/associate" && r.status == Some(200))
        .unwrap();
    assert_eq!(assoc.serials, Some(1));

    w.sim
        .push_vpp_faults(vec![VppFault::new(3, VppFaultKind::internal_error())]);
    w.sim.clear_vpp_faults();
    assert_eq!(w.get("/assets").await.status, 200);
}

#[tokio::test]
async fn admin_http_api_mirrors_the_rust_api() {
    let sim = AppleSim::new();
    sim.set_vpp_event_delay(Duration::from_millis(1));
    let run = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let admin = |method: &str, path: &str, body: Option<Value>| {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = http.request(m, format!("{}/abm{path}", run.base_url));
        if let Some(b) = body {
            rb = rb.header("Content-Type", "application/json").body(b.to_string());
        }
        async move { read(rb.send().await.unwrap()).await }
    };

    let org = admin("POST", "/orgs", Some(json!({"name": "Acme", "kind": "business"})))
        .await
        .json()["org_id"]
        .as_u64()
        .unwrap();
    let r = admin(
        "POST",
        &format!("/orgs/{org}/vpp-locations"),
        Some(json!({"name": "HQ", "country": "de"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let loc = r.json()["location_id"].as_u64().unwrap();
    let uid = r.json()["uid"].as_str().unwrap().to_owned();
    assert_eq!(
        admin("POST", "/orgs/99/vpp-locations", Some(json!({"name": "x"})))
            .await
            .status,
        404
    );
    let r = admin(
        "POST",
        &format!("/orgs/{org}/vpp-locations"),
        Some(json!({"name": "x", "country": "Germany"})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(sim.vpp_locations().len(), 1, "a refused location is not created");

    let r = admin(
        "POST",
        &format!("/vpp-locations/{loc}/assets"),
        Some(json!({"adam_id": PAGES, "product_type": "App", "total": 3, "platforms": ["iOS"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["total_count"], 3);
    assert_eq!(r.json()["available_count"], 3);
    let r = admin(
        "POST",
        &format!("/vpp-locations/{loc}/assets"),
        Some(json!({"adam_id": "12ab", "product_type": "App", "total": 3})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = admin("POST", &format!("/vpp-locations/{loc}/token"), None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(r.header("content-disposition").unwrap().contains(".vpptoken"));
    let token = r.text.clone();
    assert_eq!(decode_token(&token)["orgName"], "Acme");

    // The token works on the API.
    let api = |path: &str, tok: &str| {
        let rb = http
            .get(format!("{}{path}", run.vpp_url))
            .header("Authorization", format!("Bearer {}", tok.trim()));
        async move { read(rb.send().await.unwrap()).await }
    };
    let c = api("/client/config", &token).await.json();
    assert_eq!(
        (
            c["uId"].as_str(),
            c["countryISO2ACode"].as_str(),
            c["locationName"].as_str()
        ),
        (Some(uid.as_str()), Some("DE"), Some("HQ"))
    );

    let r = admin(
        "PUT",
        &format!("/vpp-locations/{loc}/mdm-info"),
        Some(json!({"id": "o1", "name": "Other"})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(api("/client/config", &token).await.json()["mdmInfo"]["name"], "Other");
    assert_eq!(
        admin("GET", &format!("/vpp-locations/{loc}/mdm-info"), None)
            .await
            .json()["id"],
        "o1"
    );
    assert_eq!(
        admin("DELETE", &format!("/vpp-locations/{loc}/mdm-info"), None)
            .await
            .status,
        204
    );
    assert!(api("/client/config", &token).await.json().get("mdmInfo").is_none());

    let r = admin(
        "POST",
        &format!("/vpp-locations/{loc}/assignments"),
        Some(json!({"adam_id": PAGES, "serial_numbers": ["S1"], "client_user_ids": ["u1"]})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let a = admin("GET", &format!("/vpp-locations/{loc}/assignments"), None)
        .await
        .json();
    assert_eq!(a.as_array().unwrap().len(), 2);
    assert_eq!(a[0]["assignee"], json!({"serial_number": "S1"}));
    let l = admin("GET", &format!("/vpp-locations/{loc}"), None).await.json();
    assert_eq!(
        (l["assignments"].as_u64(), l["assigned_licenses"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(l["uid"], uid.as_str());
    let all = admin("GET", "/vpp-locations", None).await.json();
    assert_eq!(all.as_array().unwrap().len(), 1);
    let r = admin(
        "PUT",
        &format!("/vpp-locations/{loc}"),
        Some(json!({"name": "Head Office"})),
    )
    .await;
    assert_eq!(r.json()["name"], "Head Office");

    // Settings and faults.
    let r = admin(
        "PUT",
        "/vpp-settings",
        Some(json!({"page_size": 1, "max_serial_numbers": 5, "hold_events": true})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json()["page_size"].as_u64(), r.json()["max_assets"].as_u64()),
        (Some(1), Some(25))
    );
    let page = api("/assignments", &token).await.json();
    assert_eq!(
        (page["totalPages"].as_u64(), page["nextPageIndex"].as_u64()),
        (Some(2), Some(1))
    );
    let r = admin(
        "POST",
        "/vpp-faults",
        Some(json!({"faults": [
            {"path": "/assets", "kind": "too_many_requests", "retry_after_seconds": 12},
            {"kind": "error", "status": 200, "error_number": 9603},
            {"kind": "fail_event", "error_number": 9644, "count": 2}
        ]})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let listed = admin("GET", "/vpp-faults", None).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[0]["error_number"], 9646);
    let r = api("/assets", &token).await;
    assert_eq!((r.status, r.header("retry-after").as_deref()), (429, Some("12")));
    let r = api("/assignments", &token).await;
    assert_eq!((r.status, r.json()["errorNumber"].as_u64()), (200, Some(9603)));
    assert_eq!(admin("DELETE", "/vpp-faults", None).await.status, 204);
    assert_eq!(admin("GET", "/vpp-faults", None).await.json(), json!([]));
    for bad in [
        json!({"faults": [{"kind": "explode"}]}),
        json!({"faults": [{"kind": "error", "status": 429}]}),
        json!({"faults": [{"kind": "pass", "path": "assets"}]}),
    ] {
        assert_eq!(admin("POST", "/vpp-faults", Some(bad)).await.status, 400);
    }

    // Events can be looked up; held ones stay pending.
    let r = http
        .post(format!("{}/assets/associate", run.vpp_url))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(json!({"assets": [{"adamId": PAGES}], "serialNumbers": ["S2"]}).to_string())
        .send()
        .await
        .unwrap();
    let event = read(r).await.json()["eventId"].as_str().unwrap().to_owned();
    let e = admin("GET", &format!("/vpp-events/{event}"), None).await.json();
    assert_eq!(
        (e["status"].as_str(), e["event_type"].as_str()),
        (Some("PENDING"), Some("ASSOCIATE"))
    );
    admin("PUT", "/vpp-settings", Some(json!({"hold_events": false}))).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = admin("GET", &format!("/vpp-events/{event}"), None).await.json();
        if e["status"] == "COMPLETE" {
            break;
        }
        assert!(Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(admin("GET", "/vpp-events/nope", None).await.status, 404);

    // Revoke one token by its content, then all of the location's.
    let second = admin(
        "POST",
        &format!("/vpp-locations/{loc}/token"),
        Some(json!({"expires": "2099-01-01T00:00:00Z"})),
    )
    .await
    .text;
    assert_eq!(decode_token(&second)["expDate"], "2099-01-01T00:00:00+0000");
    let r = http
        .post(format!("{}/abm/vpp-tokens/revoke", run.base_url))
        .body(format!("{token}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(api("/client/config", &token).await.json()["errorNumber"], 9625);
    assert_eq!(api("/client/config", &second).await.status, 200);
    let r = admin("DELETE", &format!("/vpp-locations/{loc}/tokens"), None).await;
    assert_eq!(r.json()["revoked"], 1);
    assert_eq!(api("/client/config", &second).await.json()["errorNumber"], 9625);
    let r = http
        .post(format!("{}/abm/vpp-tokens/revoke", run.base_url))
        .body("nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
