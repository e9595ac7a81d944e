//! Apps and Books tokens end to end over HTTP, against applesim's Apps and Books API, on
//! SQLite and (when configured) PostgreSQL: bad files, upload, take-over, duplicate upload
//! refused, renewal in place before and after expiry, syncs with Apple's faults, another MDM
//! taking the location, delete.

mod common;

use applesim::{VppAssetSpec, VppFault, VppFaultKind, VppMdmInfo};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{NOW, Options, TestServer, code, message};
use reqwest::{Method, StatusCode};
use russet_testkit::TestDb;
use serde_json::Value;
use time::Duration;

async fn start(db: TestDb) -> TestServer {
    TestServer::start_configured(db, Options::default(), |c, _, run| {
        c.apple.vpp_url = run.vpp_url.clone();
    })
    .await
}

impl TestServer {
    fn vpp_upload(&self, file: &str, query: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.req(Method::POST, "/api/v1/vpp-tokens")
            .query(query)
            .header("content-type", "application/octet-stream")
            .body(file.to_string())
    }

    fn vpp_renew(&self, id: i64, file: &str, query: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.req(Method::PUT, &format!("/api/v1/vpp-tokens/{id}/token"))
            .query(query)
            .header("content-type", "application/octet-stream")
            .body(file.to_string())
    }

    async fn vpp_sync(&self, id: i64, expect: StatusCode) -> Value {
        self.json(self.req(Method::POST, &format!("/api/v1/vpp-tokens/{id}/sync")), expect)
            .await
    }

    async fn vpp_token(&self, id: i64) -> Value {
        self.json(
            self.req(Method::GET, &format!("/api/v1/vpp-tokens/{id}")),
            StatusCode::OK,
        )
        .await
    }
}

#[tokio::test]
async fn bad_files_are_refused_in_plain_words() {
    for db in TestDb::all("vpp::bad_files").await {
        let s = start(db).await;
        let cases: Vec<(String, StatusCode, &str)> = vec![
            (
                "not base64 at all!".into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "vpp_token_not_base64",
            ),
            (
                STANDARD.encode("hello"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "vpp_token_not_json",
            ),
            (
                STANDARD.encode(r#"{"expDate":"2027-01-01T00:00:00+0000","orgName":"X"}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                "vpp_token_missing_fields",
            ),
            (
                STANDARD.encode(r#"{"token":"abc","expDate":"next year","orgName":"X"}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                "vpp_token_bad_expiry",
            ),
            ("A".repeat(20 * 1024), StatusCode::PAYLOAD_TOO_LARGE, ""),
            (String::new(), StatusCode::BAD_REQUEST, "missing_file"),
        ];
        for (file, status, expected) in cases {
            let e = s.json(s.vpp_upload(&file, &[]), status).await;
            if !expected.is_empty() {
                assert_eq!(code(&e), expected, "{e}");
                assert!(
                    message(&e).contains("Apple Business Manager") || expected == "missing_file",
                    "{e}"
                );
            }
        }
        // An expired file, and a well-formed file Apple does not know.
        let loc = s.sim.create_vpp_location(s.org, "Paris");
        let expired = s.sim.download_vpp_token_expiring(loc, NOW - Duration::days(1)).unwrap();
        let e = s
            .json(s.vpp_upload(&expired, &[]), StatusCode::UNPROCESSABLE_ENTITY)
            .await;
        assert_eq!(code(&e), "vpp_token_expired", "{e}");
        let unknown = STANDARD.encode(r#"{"token":"forged","expDate":"2027-01-01T00:00:00+0000","orgName":"X"}"#);
        let e = s.json(s.vpp_upload(&unknown, &[]), StatusCode::BAD_GATEWAY).await;
        assert_eq!(code(&e), "vpp_token_invalid", "{e}");
        let list = s.json(s.req(Method::GET, "/api/v1/vpp-tokens"), StatusCode::OK).await;
        assert_eq!(list["tokens"].as_array().unwrap().len(), 0, "nothing stored");
        s.stop().await;
    }
}

#[tokio::test]
async fn tokens_from_upload_to_delete() {
    for db in TestDb::all("vpp::lifecycle").await {
        let s = start(db).await;
        let sim = &s.sim;
        let paris = sim.create_vpp_location(s.org, "Paris Office");
        sim.add_vpp_asset(paris, VppAssetSpec::app("361309726", 10)).unwrap();
        sim.add_vpp_asset(paris, VppAssetSpec::book("222222222", 5)).unwrap();
        let lyon = sim.create_vpp_location(s.org, "Lyon Office");
        sim.add_vpp_asset(lyon, VppAssetSpec::app("361309726", 3)).unwrap();

        // Upload: Russet claims the unclaimed location at Apple.
        let file = sim.download_vpp_token(paris).unwrap();
        let out = s
            .json(
                s.vpp_upload(&file, &[("apple_id", "apps@example.com"), ("name", "Apps – Paris")]),
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(out["result"], "created");
        let paris_id = out["token"]["id"].as_i64().unwrap();
        assert_eq!(out["token"]["location_name"], "Paris Office");
        assert_eq!(out["token"]["owner"]["is_russet"], true, "{out}");
        assert_eq!(out["token"]["status"], "valid");
        let russet_mdm = sim.vpp_mdm_info(paris).expect("Russet wrote its mdmInfo");
        assert_eq!(
            Some(russet_mdm.id.clone()),
            out["token"]["owner"]["id"].as_str().map(String::from)
        );
        let t = s.vpp_sync(paris_id, StatusCode::OK).await;
        assert_eq!(
            (t["app_count"].as_i64(), t["licences_total"].as_i64()),
            (Some(2), Some(15)),
            "{t}"
        );

        // Another MDM manages Lyon: refused, then taken over when asked.
        sim.set_vpp_mdm_info(lyon, Some(VppMdmInfo::new("other-mdm-1", "Other MDM", "4.2")))
            .unwrap();
        let lyon_file = sim.download_vpp_token(lyon).unwrap();
        let e = s.json(s.vpp_upload(&lyon_file, &[]), StatusCode::CONFLICT).await;
        assert_eq!(code(&e), "vpp_owned_by_other_mdm", "{e}");
        assert!(message(&e).contains("Other MDM"), "{e}");
        assert_eq!(
            sim.vpp_mdm_info(lyon).unwrap().id,
            "other-mdm-1",
            "nothing written at Apple"
        );
        let out = s
            .json(s.vpp_upload(&lyon_file, &[("take_over", "true")]), StatusCode::CREATED)
            .await;
        assert_eq!(out["taken_over_from"], "Other MDM");
        assert_eq!(
            out["token"]["name"], "Lyon Office",
            "named after the location by default"
        );
        let lyon_id = out["token"]["id"].as_i64().unwrap();
        assert_eq!(sim.vpp_mdm_info(lyon).unwrap().id, russet_mdm.id);
        s.vpp_sync(lyon_id, StatusCode::OK).await;

        // The app both locations own appears once, with each token's licences.
        let assets = s.json(s.req(Method::GET, "/api/v1/vpp-assets"), StatusCode::OK).await;
        let assets = assets["assets"].as_array().unwrap();
        assert_eq!(assets.len(), 2, "{assets:?}");
        let app = assets.iter().find(|a| a["adam_id"] == "361309726").unwrap();
        assert_eq!(app["licences"].as_array().unwrap().len(), 2);
        assert_eq!(app["total"], 13);
        assert!(app["platforms"].as_array().map(Vec::len).unwrap_or(0) > 0);

        // A second file for Paris uploaded as a new token: refused, pointing at the token.
        let paris_file2 = sim.download_vpp_token(paris).unwrap();
        let e = s.json(s.vpp_upload(&paris_file2, &[]), StatusCode::CONFLICT).await;
        assert_eq!(code(&e), "vpp_location_exists", "{e}");
        assert_eq!(e["error"]["details"]["existing_token_id"], paris_id);
        assert!(
            message(&e).contains(&format!("russet vpp-token renew {paris_id}")),
            "{e}"
        );

        // Renewal before expiry: same id, apps kept.
        let out = s.json(s.vpp_renew(paris_id, &paris_file2, &[]), StatusCode::OK).await;
        assert_eq!(out["result"], "renewed");
        assert_eq!(out["token"]["id"], paris_id);
        assert_eq!(out["token"]["app_count"], 2, "licences kept: {out}");
        let again = s.json(s.vpp_renew(paris_id, &paris_file2, &[]), StatusCode::OK).await;
        assert_eq!(again["result"], "unchanged");
        // A file of another location is not a renewal.
        let e = s
            .json(s.vpp_renew(paris_id, &lyon_file, &[]), StatusCode::CONFLICT)
            .await;
        assert_eq!(code(&e), "vpp_location_mismatch", "{e}");
        assert!(message(&e).contains(&format!("token {lyon_id}")), "{e}");

        // Apple's faults: a 503 longer than Russet waits is recorded with its delay; a short
        // 429 is waited out.
        sim.push_vpp_faults(vec![VppFault::on("/assets", 1, VppFaultKind::service_unavailable(120))]);
        let e = s.vpp_sync(paris_id, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(code(&e), "apple_unavailable", "{e}");
        let t = s.vpp_token(paris_id).await;
        assert_eq!(t["sync"]["last_result"], "failed");
        assert_eq!(t["status"], "valid", "a busy Apple says nothing about the token");
        assert_eq!(t["app_count"], 2, "licences kept after a failed sync");
        sim.clear_vpp_faults();
        sim.push_vpp_faults(vec![VppFault::on("/assets", 1, VppFaultKind::too_many_requests(1))]);
        let t = s.vpp_sync(paris_id, StatusCode::OK).await;
        assert_eq!(t["sync"]["last_result"], "succeeded");
        sim.push_vpp_faults(vec![VppFault::on(
            "/client/config",
            1,
            VppFaultKind::error_in_ok_body(9602),
        )]);
        let e = s.vpp_sync(paris_id, StatusCode::BAD_GATEWAY).await;
        assert_eq!(code(&e), "apple_error", "an error inside a 200 answer is an error: {e}");
        assert_eq!(s.vpp_token(paris_id).await["status"], "valid");
        sim.clear_vpp_faults();

        // Another MDM takes Lyon: the next sync says so, and the audit log records it.
        sim.set_vpp_mdm_info(lyon, Some(VppMdmInfo::new("other-mdm-2", "Rival MDM", "")))
            .unwrap();
        let t = s.vpp_sync(lyon_id, StatusCode::OK).await;
        assert_eq!(t["status"], "owned_by_other_mdm", "{t}");
        assert!(t["status_message"].as_str().unwrap().contains("Rival MDM"));
        let audit = s.audit().await;
        assert!(audit.iter().any(|a| a["action"] == "vpp_token.taken_over_by_other_mdm"));

        // Revoked at Apple: recorded, shown, and the renewal is the way back.
        sim.revoke_vpp_tokens(paris).unwrap();
        let e = s.vpp_sync(paris_id, StatusCode::BAD_GATEWAY).await;
        assert_eq!(code(&e), "vpp_token_revoked", "{e}");
        let t = s.vpp_token(paris_id).await;
        assert_eq!(t["status"], "revoked");
        assert!(
            t["status_message"]
                .as_str()
                .unwrap()
                .contains(&format!("russet vpp-token renew {paris_id}"))
        );

        // Renewal after expiry: a year later, with a new file; still the same token and apps.
        s.advance(Duration::days(400));
        let t = s.vpp_token(paris_id).await;
        assert_eq!(t["status"], "revoked", "revoked stays the first thing to fix");
        let fresh = sim.download_vpp_token(paris).unwrap();
        let out = s
            .json(
                s.vpp_renew(paris_id, &fresh, &[("apple_id", "apps2@example.com")]),
                StatusCode::OK,
            )
            .await;
        assert_eq!(out["result"], "renewed");
        assert_eq!(out["token"]["status"], "valid", "{out}");
        assert_eq!(out["token"]["apple_id"], "apps2@example.com");
        assert_eq!(out["token"]["app_count"], 2);
        s.vpp_sync(paris_id, StatusCode::OK).await;

        // Delete: refused with what goes, then confirmed.
        let e = s
            .json(
                s.req(Method::DELETE, &format!("/api/v1/vpp-tokens/{paris_id}")),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&e), "vpp_delete_needs_confirmation", "{e}");
        assert_eq!(e["error"]["details"]["apps_removed"], serde_json::json!(["222222222"]));
        assert_eq!(e["error"]["details"]["apps_kept"], 1);
        let gone = s
            .json(
                s.req(Method::DELETE, &format!("/api/v1/vpp-tokens/{paris_id}"))
                    .query(&[("confirm", "true")]),
                StatusCode::OK,
            )
            .await;
        assert_eq!(gone["licences_total"], 15);
        let assets = s.json(s.req(Method::GET, "/api/v1/vpp-assets"), StatusCode::OK).await;
        let ids: Vec<&str> = assets["assets"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["adam_id"].as_str())
            .collect();
        assert_eq!(ids, vec!["361309726"], "the app Lyon holds stays");
        s.json(
            s.req(Method::GET, &format!("/api/v1/vpp-tokens/{paris_id}")),
            StatusCode::NOT_FOUND,
        )
        .await;
        let audit = s.audit().await;
        for action in ["vpp_token.create", "vpp_token.renew", "vpp_token.delete"] {
            assert!(audit.iter().any(|a| a["action"] == action), "{action} audited");
        }
        s.stop().await;
    }
}
