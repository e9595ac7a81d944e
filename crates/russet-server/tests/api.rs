//! The admin API over real HTTP on 127.0.0.1, against SQLite and (when configured)
//! PostgreSQL, with server tokens made by the `openssl` command line and Apple played by
//! applesim.

mod common;

use std::sync::Arc;

use common::*;
use reqwest::{Method, StatusCode};
use russet_core::ManualClock;
use russet_server::config::Config;
use russet_server::serve::{StartOptions, start};
use russet_testkit::{
    SmimeForm, TestDb, apple_token_payload, contains, have_command, openssl_self_signed, smime_encrypt,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use time::macros::datetime;

async fn start_on(db: TestDb) -> TestServer {
    TestServer::start(db, Options::default()).await
}

async fn all(test: &str) -> Vec<TestServer> {
    servers(test, Options::default()).await
}

/// A profile made through the API (the simplest valid settings).
async fn add_profile(s: &TestServer, token_id: i64, name: &str) -> i64 {
    s.json(
        s.req(Method::POST, &format!("/api/v1/ade-tokens/{token_id}/profiles"))
            .json(&json!({ "name": name })),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

/// What is uploaded, with which query, and the status, error code and message text expected.
type BadUpload<'a> = (&'a str, Vec<u8>, &'a [(&'a str, &'a str)], StatusCode, &'a str, &'a str);

#[tokio::test]
async fn health_auth_and_openapi() {
    for s in all("api::health_auth_and_openapi").await {
        let plain = reqwest::Client::new();
        let r = plain.get(format!("{}/healthz", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r: Value = plain
            .get(format!("{}/readyz", s.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["status"], "ready");

        // No key, a malformed header, a wrong key: 401 with a JSON error.
        let r = plain.get(format!("{}/api/v1/ade-tokens", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(code(&body), "unauthorized");
        assert!(message(&body).contains("admin-api-key"));
        let r = plain
            .get(format!("{}/api/v1/ade-tokens", s.url))
            .header("authorization", "Basic abc")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = plain
            .get(format!("{}/api/v1/ade-tokens", s.url))
            .bearer_auth("rst_nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(code(&r.json::<Value>().await.unwrap()), "unauthorized");
        // A refused request changes nothing, and writes nothing to the audit log.
        let r = plain
            .post(format!("{}/api/v1/ade-tokens", s.url))
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(
            s.json(s.req(Method::GET, "/api/v1/ade-tokens"), StatusCode::OK).await["tokens"]
                .as_array()
                .unwrap()
                .is_empty()
        );

        // The OpenAPI document, generated from the code, describes the token endpoints.
        let doc: Value = plain
            .get(format!("{}/api/v1/openapi.json", s.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for path in [
            "/api/v1/ade-tokens",
            "/api/v1/ade-tokens/{id}",
            "/api/v1/ade-tokens/{id}/public-key",
            "/api/v1/ade-tokens/{id}/server-token",
            "/api/v1/audit",
        ] {
            assert!(
                doc["paths"][path].is_object(),
                "{path} missing from the OpenAPI document"
            );
        }
        assert!(doc["components"]["schemas"]["AdeToken"].is_object());
        assert!(doc["components"]["securitySchemes"]["admin_key"].is_object());

        let info = s.json(s.req(Method::GET, "/api/v1/info"), StatusCode::OK).await;
        assert_eq!(info["public_url"].as_str().unwrap(), s.url);
        // Unknown routes and bad ids get JSON errors too.
        let r = s.json(s.req(Method::GET, "/api/v1/nope"), StatusCode::NOT_FOUND).await;
        assert_eq!(code(&r), "not_found");
        let r = s
            .json(s.req(Method::GET, "/api/v1/ade-tokens/abc"), StatusCode::BAD_REQUEST)
            .await;
        assert_eq!(code(&r), "invalid_path");
        let r = s
            .json(s.req(Method::GET, "/api/v1/ade-tokens/999"), StatusCode::NOT_FOUND)
            .await;
        assert_eq!(code(&r), "ade_token_not_found");
        s.stop().await;
    }
}

#[tokio::test]
async fn create_upload_list_expire() {
    if !have_command("api::create_upload_list_expire", "openssl", "openssl") {
        return;
    }
    for s in all("api::create_upload_list_expire").await {
        let t = s.create("ABM – Head office").await;
        let id = t["id"].as_i64().unwrap();
        assert_eq!(t["status"], "pending");
        assert!(t["expires_at"].is_null() && t["days_left"].is_null());
        let pem = s.public_key(id).await;
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let cert = openssl::x509::X509::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(cert.public_key().unwrap().rsa().unwrap().size() * 8, 2048);
        // The key pair stays with the pending token: asking again gives the same certificate.
        assert_eq!(s.public_key(id).await, pem);

        let file = s.abm_token(id, "CK_headoffice", "1", EXPIRY).await;
        let out = s
            .json(
                s.upload(id, file, &[("apple_id", "it-admin@example.com")]),
                StatusCode::OK,
            )
            .await;
        assert_eq!(out["result"], "activated");
        let t = &out["token"];
        assert_eq!(
            (t["status"].as_str(), t["apple_id"].as_str()),
            (Some("active"), Some("it-admin@example.com"))
        );
        assert_eq!(t["expires_at"], EXPIRY);
        assert_eq!(t["days_left"], 365);
        assert!(t["consumer_key_fingerprint"].as_str().unwrap().len() == 16);

        let list = s.json(s.req(Method::GET, "/api/v1/ade-tokens"), StatusCode::OK).await;
        assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
        // Time passes: within 30 days it is expiring, after the expiry it is expired.
        s.clock.set(datetime!(2027-05-10 12:00 UTC));
        let t = s.token(id).await;
        assert_eq!(
            (t["status"].as_str(), t["days_left"].as_i64()),
            (Some("expiring"), Some(22))
        );
        s.clock.set(datetime!(2027-06-03 12:00 UTC));
        let t = s.token(id).await;
        assert_eq!(
            (t["status"].as_str(), t["days_left"].as_i64()),
            (Some("expired"), Some(-2))
        );

        let audit = s.audit().await;
        let actions: Vec<&str> = audit.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["ade_token.upload", "ade_token.create", "admin_key.create"]);
        assert!(audit[0]["actor"].as_str().unwrap().starts_with("admin-key:"));
        assert!(audit[0]["actor_key_id"].is_i64());
        assert_eq!(audit[0]["details"]["apple_id"], "it-admin@example.com");
        assert_eq!(audit[0]["target_id"], id.to_string());
        let text = serde_json::to_string(&audit).unwrap();
        assert!(
            !text.contains("AT_token1") && !text.contains("CS_secret1"),
            "no secret in the audit log"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn the_real_apple_token_names_the_key_it_was_made_for() {
    // The real token was made for a key Russet does not hold; the error says so. With the
    // real key it decrypts (tested in russet-apple); here we check the API's answer.
    let s = start_on(TestDb::sqlite()).await;
    let id = s.create("real").await["id"].as_i64().unwrap();
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/abm-server-token/apple-mdm-client-tests-1-server-token.p7m"
    ))
    .unwrap();
    let r = s
        .json(
            s.upload(id, file, &[("apple_id", "a@example.com")]),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(code(&r), "server_token_wrong_key");
    assert!(message(&r).contains("apple-mdm-client-tests"), "{}", message(&r));
    assert!(message(&r).contains("\"real\""));
}

#[tokio::test]
async fn bad_uploads_are_explained_and_change_nothing() {
    if !have_command("api::bad_uploads", "openssl", "openssl") {
        return;
    }
    for s in all("api::bad_uploads").await {
        let id = s.create("Main").await["id"].as_i64().unwrap();
        let other = s.create("Branch").await["id"].as_i64().unwrap();
        let before_token = s.token(id).await;
        let before_audit = s.audit().await.len();
        let ok_file = s.abm_token(id, "CK_main", "m", EXPIRY).await;
        let apple = [("apple_id", "a@example.com")];

        let cases: Vec<BadUpload> = vec![
            (
                "plain text",
                b"hello, this is not a token".to_vec(),
                &apple,
                StatusCode::UNPROCESSABLE_ENTITY,
                "server_token_not_cms",
                "Download Token",
            ),
            (
                "a certificate",
                s.public_key(id).await.into_bytes(),
                &apple,
                StatusCode::UNPROCESSABLE_ENTITY,
                "server_token_not_cms",
                "certificate",
            ),
            (
                "broken base64",
                String::from_utf8(ok_file.clone())
                    .unwrap()
                    .replacen("MIAG", "MI!G", 1)
                    .into_bytes(),
                &apple,
                StatusCode::UNPROCESSABLE_ENTITY,
                "server_token_bad_base64",
                "base64",
            ),
            (
                "token for another Russet token",
                s.abm_token(other, "CK_branch", "b", EXPIRY).await,
                &apple,
                StatusCode::UNPROCESSABLE_ENTITY,
                "server_token_wrong_key",
                "token \"Branch\"",
            ),
            (
                "token for a foreign key",
                smime_encrypt(
                    &openssl_self_signed("other-mdm").0,
                    &apple_token_payload("CK_x", "x", EXPIRY),
                    "-aes256",
                    SmimeForm::Der,
                ),
                &apple,
                StatusCode::UNPROCESSABLE_ENTITY,
                "server_token_wrong_key",
                "upload the public key of token \"Main\"",
            ),
            (
                "missing fields",
                smime_encrypt(
                    &s.public_key(id).await,
                    br#"{"consumer_key":"CK_a","access_token":"AT_b"}"#,
                    "-aes128",
                    SmimeForm::SmimeStream,
                ),
                &apple,
                StatusCode::UNPROCESSABLE_ENTITY,
                "server_token_missing_fields",
                "access_secret",
            ),
            (
                "not JSON inside",
                smime_encrypt(
                    &s.public_key(id).await,
                    b"-----BEGIN MESSAGE-----\nnot json\n-----END MESSAGE-----\n",
                    "-des3",
                    SmimeForm::Pem,
                ),
                &apple,
                StatusCode::UNPROCESSABLE_ENTITY,
                "server_token_not_json",
                "",
            ),
            (
                "expired",
                s.abm_token(id, "CK_expired", "old", "2026-01-17T11:02:21Z").await,
                &apple,
                StatusCode::UNPROCESSABLE_ENTITY,
                "server_token_expired",
                "expired on 2026-01-17T11:02:21Z (135 days ago)",
            ),
            (
                "over 1 MiB",
                vec![b'A'; 1024 * 1024 + 1],
                &apple,
                StatusCode::PAYLOAD_TOO_LARGE,
                "server_token_too_large",
                "1 MiB",
            ),
            (
                "far over the body limit",
                vec![b'A'; 3 * 1024 * 1024],
                &apple,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "",
            ),
            ("empty", Vec::new(), &apple, StatusCode::BAD_REQUEST, "missing_file", ""),
            (
                "no Apple ID",
                ok_file.clone(),
                &[],
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_apple_id",
                "Apple ID",
            ),
            (
                "bad Apple ID",
                ok_file.clone(),
                &[("apple_id", "not an email")],
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_apple_id",
                "",
            ),
            (
                "renewal of a pending token",
                ok_file.clone(),
                &[("apple_id", "a@example.com"), ("intent", "renewal")],
                StatusCode::CONFLICT,
                "ade_token_pending",
                "upload",
            ),
            (
                "unknown option",
                ok_file.clone(),
                &[("apple_id", "a@example.com"), ("forse", "true")],
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "forse",
            ),
        ];
        for (what, file, query, status, want_code, want_text) in cases {
            let r = s.json(s.upload(id, file, query), status).await;
            assert_eq!(code(&r), want_code, "{what}: {r}");
            assert!(
                message(&r).contains(want_text),
                "{what}: message {:?} lacks {want_text:?}",
                message(&r)
            );
            assert_eq!(s.token(id).await, before_token, "{what} changed the token");
        }
        assert_eq!(
            s.audit().await.len(),
            before_audit,
            "refused uploads leave no audit entry"
        );
        // The token still accepts the right file afterwards.
        let out = s.json(s.upload(id, ok_file, &apple), StatusCode::OK).await;
        assert_eq!(out["result"], "activated");
        s.stop().await;
    }
}

#[tokio::test]
async fn renewal_in_place_and_its_guards() {
    if !have_command("api::renewal", "openssl", "openssl") {
        return;
    }
    for s in all("api::renewal").await {
        let id = s.create("Main").await["id"].as_i64().unwrap();
        let first = s.abm_token(id, "CK_main", "v1", EXPIRY).await;
        s.json(
            s.upload(id, first.clone(), &[("apple_id", "a@example.com")]),
            StatusCode::OK,
        )
        .await;
        let server = s.sim_server_for("CK_main");
        s.abm_devices(server, 1);
        s.sync(id, false).await;
        add_profile(&s, id, "Default").await;

        // Uploading the same file again changes nothing.
        let out = s
            .json(
                s.upload(id, first.clone(), &[("apple_id", "a@example.com")]),
                StatusCode::OK,
            )
            .await;
        assert_eq!(out["result"], "unchanged");
        // The same file with another Apple ID only records the Apple ID: no renewal.
        let out = s
            .json(
                s.upload(id, first.clone(), &[("apple_id", "b@example.com")]),
                StatusCode::OK,
            )
            .await;
        assert_eq!(out["result"], "apple_id_updated");
        assert_eq!(
            (out["token"]["apple_id"].as_str(), out["token"]["renewed_at"].as_str()),
            (Some("b@example.com"), None)
        );
        s.json(
            s.upload(id, first.clone(), &[("apple_id", "a@example.com")]),
            StatusCode::OK,
        )
        .await;

        // A first-upload intent on an active token is refused.
        let r = s
            .json(
                s.upload(
                    id,
                    first.clone(),
                    &[("apple_id", "a@example.com"), ("intent", "initial")],
                ),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&r), "ade_token_already_active");

        // Another ABM MDM server's token (different consumer key), encrypted to the same key: refused…
        let foreign = s.abm_token(id, "CK_other_server", "o", "2027-07-01T00:00:00Z").await;
        let r = s
            .json(
                s.upload(
                    id,
                    foreign.clone(),
                    &[("apple_id", "a@example.com"), ("intent", "renewal")],
                ),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&r), "consumer_key_mismatch");
        assert!(
            message(&r).contains("different MDM server")
                && message(&r).contains("the 1 device and 1 enrollment profile of this token"),
            "{}",
            message(&r)
        );
        let kept = s.token(id).await;
        assert_eq!(
            kept["expires_at"], EXPIRY,
            "a refused renewal leaves the old token working"
        );

        // …and an older download too.
        let older = s.abm_token(id, "CK_main", "v0", "2027-03-01T00:00:00Z").await;
        let r = s
            .json(
                s.upload(id, older, &[("apple_id", "a@example.com")]),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&r), "older_server_token");

        // A genuine renewal: same consumer key, later expiry, another Apple ID.
        s.clock.set(datetime!(2027-05-20 9:00 UTC));
        let renewed_file = s.abm_token(id, "CK_main", "v2", "2028-05-20T09:00:00Z").await;
        let out = s
            .json(
                s.upload(
                    id,
                    renewed_file,
                    &[("apple_id", "new-admin@example.com"), ("intent", "renewal")],
                ),
                StatusCode::OK,
            )
            .await;
        assert_eq!(out["result"], "renewed");
        assert_eq!(out["previous_expires_at"], EXPIRY);
        assert_eq!(out["apple_id_changed"], true);
        let t = &out["token"];
        assert_eq!(t["id"], id, "same id");
        assert_eq!(
            (t["device_count"].as_i64(), t["profile_count"].as_i64()),
            (Some(1), Some(1)),
            "devices and profiles kept"
        );
        assert_eq!(t["expires_at"], "2028-05-20T09:00:00Z");
        assert_eq!(t["renewed_at"], "2027-05-20T09:00:00Z");
        assert_eq!(t["apple_id"], "new-admin@example.com");
        assert_eq!(t["status"], "active");
        let creds = s.server.core.store.ade_token_credentials(id).await.unwrap().unwrap();
        assert!(creds.expose_secret().contains("AT_tokenv2"));

        // With force, the other server's token is accepted (the administrator was warned).
        let forced_file = s.abm_token(id, "CK_other_server", "f", "2028-06-01T00:00:00Z").await;
        let out = s
            .json(
                s.upload(
                    id,
                    forced_file,
                    &[("apple_id", "new-admin@example.com"), ("force", "true")],
                ),
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            (out["result"].as_str(), out["forced"].as_bool()),
            (Some("renewed"), Some(true))
        );

        let audit = s.audit().await;
        let renew = audit
            .iter()
            .find(|e| e["action"] == "ade_token.renew" && e["details"]["forced"] == false)
            .unwrap();
        assert_eq!(renew["details"]["previous_apple_id"], "a@example.com");
        assert_eq!(renew["details"]["previous_expires_at"], EXPIRY);
        assert_eq!(audit[0]["details"]["forced"], true);
        s.stop().await;
    }
}

#[tokio::test]
async fn one_abm_server_cannot_be_connected_twice() {
    if !have_command("api::connected_twice", "openssl", "openssl") {
        return;
    }
    let s = start_on(TestDb::sqlite()).await;
    let a = s.create("A").await["id"].as_i64().unwrap();
    let b = s.create("B").await["id"].as_i64().unwrap();
    s.json(
        s.upload(
            a,
            s.abm_token(a, "CK_same", "a", EXPIRY).await,
            &[("apple_id", "x@example.com")],
        ),
        StatusCode::OK,
    )
    .await;
    // The administrator pointed the same ABM MDM server at B's public key and downloaded again.
    let r = s
        .json(
            s.upload(
                b,
                s.abm_token(b, "CK_same", "b", EXPIRY).await,
                &[("apple_id", "x@example.com")],
            ),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(code(&r), "abm_server_already_connected");
    assert!(message(&r).contains("\"A\""));
    assert_eq!(s.token(b).await["status"], "pending");
}

#[tokio::test]
async fn every_cipher_and_form_and_multipart() {
    if !have_command("api::ciphers", "openssl", "openssl") {
        return;
    }
    let s = start_on(TestDb::sqlite()).await;
    let mut n = 0;
    for cipher in ["-aes128", "-aes192", "-aes256", "-des3"] {
        for form in [SmimeForm::SmimeStream, SmimeForm::Der, SmimeForm::Pem] {
            n += 1;
            let id = s.create(&format!("t{n}")).await["id"].as_i64().unwrap();
            let file = s
                .abm_token_with(id, &format!("CK_{n}"), &n.to_string(), EXPIRY, cipher, form)
                .await;
            let out = s
                .json(s.upload(id, file, &[("apple_id", "a@example.com")]), StatusCode::OK)
                .await;
            assert_eq!(out["result"], "activated", "{cipher} {form:?}");
        }
    }
    // multipart/form-data, as a browser form sends it.
    let id = s.create("multipart").await["id"].as_i64().unwrap();
    let file = s.abm_token(id, "CK_mp", "mp", EXPIRY).await;
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(file).file_name("Main_Token_smime.p7m"),
        )
        .text("apple_id", "form@example.com")
        .text("intent", "initial");
    let out = s
        .json(
            s.req(Method::PUT, &format!("/api/v1/ade-tokens/{id}/server-token"))
                .multipart(form),
            StatusCode::OK,
        )
        .await;
    assert_eq!(out["token"]["apple_id"], "form@example.com");
    let form = reqwest::multipart::Form::new()
        .text("apple_id", "x@example.com")
        .text("colour", "red");
    let r = s
        .json(
            s.req(Method::PUT, &format!("/api/v1/ade-tokens/{id}/server-token"))
                .multipart(form),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(message(&r).contains("colour"));
}

#[tokio::test]
async fn names_and_json_bodies_are_checked() {
    let s = start_on(TestDb::sqlite()).await;
    s.create("Main").await;
    for (body, status, want) in [
        (json!({"name": "main "}), StatusCode::CONFLICT, "ade_token_name_taken"),
        (json!({"name": "  "}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
        (
            json!({"name": "x".repeat(101)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            json!({"name": "a\u{7}b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (json!({"nom": "x"}), StatusCode::BAD_REQUEST, "invalid_json"),
        (json!({"name": 5}), StatusCode::BAD_REQUEST, "invalid_json"),
    ] {
        let r = s
            .json(s.req(Method::POST, "/api/v1/ade-tokens").json(&body), status)
            .await;
        assert_eq!(code(&r), want, "{body}");
    }
    let r = s
        .json(
            s.req(Method::POST, "/api/v1/ade-tokens").body("{\"name\":\"x\"}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
        .await;
    assert_eq!(code(&r), "unsupported_media_type");
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(70 * 1024));
    let r = s
        .json(
            s.req(Method::POST, "/api/v1/ade-tokens")
                .header("content-type", "application/json")
                .body(big),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    assert_eq!(code(&r), "body_too_large");
    assert_eq!(
        s.json(s.req(Method::GET, "/api/v1/ade-tokens"), StatusCode::OK).await["tokens"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn delete_rules() {
    if !have_command("api::delete_rules", "openssl", "openssl") {
        return;
    }
    for s in all("api::delete_rules").await {
        // A pending token goes at once.
        let p = s.create("pending").await["id"].as_i64().unwrap();
        let r = s
            .req(Method::DELETE, &format!("/api/v1/ade-tokens/{p}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        s.json(
            s.req(Method::GET, &format!("/api/v1/ade-tokens/{p}")),
            StatusCode::NOT_FOUND,
        )
        .await;
        assert!(
            s.server.core.store.ade_token_private_key(p).await.unwrap().is_none(),
            "key material removed"
        );

        let id = s.create("busy").await["id"].as_i64().unwrap();
        s.json(
            s.upload(
                id,
                s.abm_token(id, "CK_busy", "b", EXPIRY).await,
                &[("apple_id", "a@example.com")],
            ),
            StatusCode::OK,
        )
        .await;
        s.abm_devices(s.sim_server_for("CK_busy"), 2);
        assert_eq!(s.sync(id, false).await.status, "succeeded");
        add_profile(&s, id, "Default").await;
        let r = s
            .json(
                s.req(Method::DELETE, &format!("/api/v1/ade-tokens/{id}")),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&r), "ade_token_in_use");
        assert!(
            message(&r).contains("2 devices and 1 enrollment profile"),
            "{}",
            message(&r)
        );
        assert_eq!(r["error"]["details"]["devices"], 2);
        assert_eq!(s.token(id).await["status"], "active");

        // Without devices and profiles, an active token can go too.
        let free = s.create("free").await["id"].as_i64().unwrap();
        s.json(
            s.upload(
                free,
                s.abm_token(free, "CK_free", "f", EXPIRY).await,
                &[("apple_id", "a@example.com")],
            ),
            StatusCode::OK,
        )
        .await;
        let r = s
            .req(Method::DELETE, &format!("/api/v1/ade-tokens/{free}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let audit = s.audit().await;
        assert_eq!(audit[0]["action"], "ade_token.delete");
        assert_eq!(audit[0]["target_id"], free.to_string());
        s.stop().await;
    }
}

/// The secrets never reach the database in plaintext: not the private keys, not the
/// server token credentials, not the admin key.
#[tokio::test]
async fn plaintext_secrets_appear_nowhere_in_the_database() {
    if !have_command("api::plaintext_secrets", "openssl", "openssl") {
        return;
    }
    for s in all("api::plaintext_secrets").await {
        let mut secrets: Vec<String> = vec![s.key.clone()];
        for n in 0..3 {
            let id = s.create(&format!("t{n}")).await["id"].as_i64().unwrap();
            let tag = format!("UNIQUE{n}x");
            let file = s.abm_token(id, &format!("CK_consumer{tag}"), &tag, EXPIRY).await;
            s.json(s.upload(id, file, &[("apple_id", "a@example.com")]), StatusCode::OK)
                .await;
            secrets.extend([
                format!("CK_consumer{tag}"),
                format!("CS_secret{tag}"),
                format!("AT_token{tag}"),
                format!("AS_secret{tag}"),
            ]);
            let key_pem = s.server.core.store.ade_token_private_key(id).await.unwrap().unwrap();
            // Every line of the key's base64 body.
            secrets.extend(
                key_pem
                    .expose_secret()
                    .lines()
                    .filter(|l| !l.starts_with("-----") && l.len() > 20)
                    .map(str::to_string),
            );
        }
        let dump = s.db.dump();
        assert!(dump.len() > 1000, "the dump holds the database");
        for secret in &secrets {
            assert!(
                !contains(&dump, secret.as_bytes()),
                "a secret ({}…) is in the {:?} database",
                &secret[..8],
                s.db.backend
            );
        }
        // The check can fail: non-secret values are found.
        assert!(contains(&dump, b"a@example.com"));
        s.stop().await;
    }
}

/// Two `russet serve` processes on one PostgreSQL database act as one server.
#[tokio::test]
async fn two_servers_share_one_postgres() {
    if !have_command("api::two_servers", "openssl", "openssl") {
        return;
    }
    let Some(db) = TestDb::postgres("api::two_servers_share_one_postgres").await else {
        return;
    };
    let a = start_on(db).await;
    // The second server has its own data directory; the master key must be the same.
    let master = std::fs::read_to_string(a.db.path().join("data/master.key")).unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut config_b = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir_b.path().to_path_buf(),
        database_url: Some(a.db.url.clone()),
        ..Config::default()
    };
    config_b.apple.dep_url = a.sim_run.as_ref().unwrap().base_url.clone();
    config_b.sync.enabled = false;
    // Without the shared key it refuses to start, saying why.
    let err = start(
        &config_b,
        StartOptions {
            master_key: None,
            clock: Arc::new(a.clock.clone()),
        },
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("master key"), "{err}");
    let b = start(
        &config_b,
        StartOptions {
            master_key: Some(master.trim().into()),
            clock: Arc::new(a.clock.clone()),
        },
    )
    .await
    .unwrap();
    assert!(
        b.admin_key_file.is_none(),
        "only the first start ever creates an admin key"
    );
    let b_url = format!("http://{}", b.local_addr);

    let id = a.create("shared").await["id"].as_i64().unwrap();
    // B serves A's token, with A's admin key, and decrypts A's key pair to accept the upload.
    let file = a.abm_token(id, "CK_shared", "s", EXPIRY).await;
    let r = a
        .http
        .put(format!(
            "{b_url}/api/v1/ade-tokens/{id}/server-token?apple_id=a%40example.com"
        ))
        .bearer_auth(&a.key)
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(a.token(id).await["status"], "active");
    b.shutdown().await.unwrap();
    a.stop().await;
}

/// Two servers starting at the same moment on an empty database: migrations run once, one
/// master key check, one admin key.
#[tokio::test]
async fn simultaneous_first_starts_on_postgres() {
    let Some(db) = TestDb::postgres("api::simultaneous_first_starts_on_postgres").await else {
        return;
    };
    let master = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let configs: Vec<Config> = dirs
        .iter()
        .map(|d| Config {
            listen: "127.0.0.1:0".into(),
            data_dir: d.path().to_path_buf(),
            database_url: Some(db.url.clone()),
            ..Config::default()
        })
        .collect();
    let options = || StartOptions {
        master_key: Some(master.into()),
        clock: Arc::new(ManualClock::new(NOW)),
    };
    let (a, b) = tokio::join!(start(&configs[0], options()), start(&configs[1], options()));
    let (a, b) = (a.expect("first server starts"), b.expect("second server starts"));
    assert_eq!(
        usize::from(a.admin_key_file.is_some()) + usize::from(b.admin_key_file.is_some()),
        1,
        "exactly one start creates the admin key"
    );
    let key_file = a.admin_key_file.clone().or(b.admin_key_file.clone()).unwrap();
    let key = std::fs::read_to_string(key_file).unwrap();
    for server in [&a, &b] {
        let r = reqwest::Client::new()
            .get(format!("http://{}/api/v1/ade-tokens", server.local_addr))
            .bearer_auth(key.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn serves_tls_with_a_configured_certificate() {
    if !have_command("api::tls", "openssl", "openssl") {
        return;
    }
    let db = TestDb::sqlite();
    let (cert, key) = openssl_self_signed("localhost");
    std::fs::write(db.path().join("tls.crt"), &cert).unwrap();
    std::fs::write(db.path().join("tls.key"), &key).unwrap();
    let mut config = config_for(&db, "http://127.0.0.1:9", Options::default());
    config.tls.cert = Some(db.path().join("tls.crt"));
    config.tls.key = Some(db.path().join("tls.key"));
    let server = start(
        &config,
        StartOptions {
            master_key: None,
            clock: Arc::new(ManualClock::new(NOW)),
        },
    )
    .await
    .unwrap();
    assert!(server.public_url.starts_with("https://"));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{}/readyz", server.local_addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP to the TLS port does not get an answer.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{}/healthz", server.local_addr.port()))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );
    server.shutdown().await.unwrap();

    // A key that does not match fails at start with the file names.
    let (_, other_key) = openssl_self_signed("other");
    std::fs::write(db.path().join("tls.key"), &other_key).unwrap();
    let err = start(
        &config,
        StartOptions {
            master_key: None,
            clock: Arc::new(ManualClock::new(NOW)),
        },
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("tls.key"), "{err}");
}

#[tokio::test]
async fn audit_pages() {
    let s = start_on(TestDb::sqlite()).await;
    for n in 0..5 {
        s.create(&format!("t{n}")).await;
    }
    let p1 = s
        .json(
            s.req(Method::GET, "/api/v1/audit?limit=2&target_type=ade_token"),
            StatusCode::OK,
        )
        .await;
    let e1 = p1["entries"].as_array().unwrap();
    assert_eq!(e1.len(), 2);
    assert_eq!(e1[0]["summary"], "created pending token \"t4\"");
    let before = p1["next_before"].as_i64().unwrap();
    let p2 = s
        .json(
            s.req(
                Method::GET,
                &format!("/api/v1/audit?limit=2&target_type=ade_token&before={before}"),
            ),
            StatusCode::OK,
        )
        .await;
    assert_eq!(p2["entries"][0]["summary"], "created pending token \"t2\"");
    let last = s
        .json(s.req(Method::GET, "/api/v1/audit?limit=500"), StatusCode::OK)
        .await;
    assert!(last["next_before"].is_null());
    let r = s
        .json(s.req(Method::GET, "/api/v1/audit?limit=0"), StatusCode::BAD_REQUEST)
        .await;
    assert_eq!(code(&r), "invalid_query");
    let r = s
        .json(s.req(Method::GET, "/api/v1/audit?limit=lots"), StatusCode::BAD_REQUEST)
        .await;
    assert_eq!(code(&r), "invalid_query");
}
