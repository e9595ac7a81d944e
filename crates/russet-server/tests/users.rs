//! `/api/v1/users` over real HTTP on 127.0.0.1, against SQLite and (when configured)
//! PostgreSQL: the whole lifecycle, JSON errors, the OpenAPI document, and no password or
//! hash in any answer or audit entry.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// Fails if an answer gives away a password or a hash.
fn no_secrets(v: &Value, passwords: &[&str]) {
    let text = v.to_string();
    assert!(!text.contains("argon2"), "a hash in {text}");
    assert!(!text.contains("password_hash"), "a hash field in {text}");
    for p in passwords {
        assert!(!text.contains(p), "a password in {text}");
    }
}

#[tokio::test]
async fn users_through_the_api() {
    for s in servers("users::users_through_the_api", Options::default()).await {
        let created = s
            .json(
                s.req(Method::POST, "/api/v1/users").json(&json!({
                    "username": "Jane.Doe", "display_name": "Jane Doe", "email": "jane@example.com", "password": PASSWORD
                })),
                StatusCode::CREATED,
            )
            .await;
        no_secrets(&created, &[PASSWORD]);
        let id = created["id"].as_i64().unwrap();
        assert_eq!(created["username"], "Jane.Doe");
        assert_eq!(created["status"], "active");
        assert_eq!(created["source"], "local");
        assert_eq!(created["created_at"], "2026-06-01T12:00:00Z");

        // Taken ignoring case; bad fields named; unknown fields and bad JSON refused.
        let r = s
            .json(
                s.req(Method::POST, "/api/v1/users")
                    .json(&json!({ "username": "jane.doe", "password": PASSWORD })),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&r), "username_taken");
        let r = s
            .json(
                s.req(Method::POST, "/api/v1/users")
                    .json(&json!({ "username": "bad name", "password": "short" })),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert_eq!(code(&r), "invalid_user");
        assert!(r["error"]["details"]["fields"]["username"].is_string(), "{r}");
        assert!(r["error"]["details"]["fields"]["password"].is_string(), "{r}");
        no_secrets(&r, &["short"]);
        let r = s
            .json(
                s.req(Method::POST, "/api/v1/users")
                    .json(&json!({ "username": "x", "password": PASSWORD, "admin": true })),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(code(&r), "invalid_json");
        no_secrets(&r, &[PASSWORD]);

        // List, filter by username (ignoring case), show.
        let list = s.json(s.req(Method::GET, "/api/v1/users"), StatusCode::OK).await;
        assert_eq!(list["users"].as_array().unwrap().len(), 1);
        no_secrets(&list, &[PASSWORD]);
        let one = s
            .json(
                s.req(Method::GET, "/api/v1/users").query(&[("username", "JANE.DOE")]),
                StatusCode::OK,
            )
            .await;
        assert_eq!(one["users"][0]["id"], id);
        let none = s
            .json(
                s.req(Method::GET, "/api/v1/users").query(&[("username", "john")]),
                StatusCode::OK,
            )
            .await;
        assert!(none["users"].as_array().unwrap().is_empty());
        let shown = s
            .json(s.req(Method::GET, &format!("/api/v1/users/{id}")), StatusCode::OK)
            .await;
        assert_eq!(shown["email"], "jane@example.com");
        no_secrets(&shown, &[PASSWORD]);
        let r = s
            .json(s.req(Method::GET, "/api/v1/users/999"), StatusCode::NOT_FOUND)
            .await;
        assert_eq!(code(&r), "user_not_found");
        let r = s
            .json(s.req(Method::GET, "/api/v1/users/abc"), StatusCode::BAD_REQUEST)
            .await;
        assert_eq!(code(&r), "invalid_path");

        // Update: partial, null removes the email; an empty change is refused.
        let r = s
            .json(
                s.req(Method::PATCH, &format!("/api/v1/users/{id}")).json(&json!({})),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(code(&r), "no_changes");
        let u = s
            .json(
                s.req(Method::PATCH, &format!("/api/v1/users/{id}"))
                    .json(&json!({ "email": null, "disabled": true })),
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            (u["email"].clone(), u["status"].clone()),
            (Value::Null, json!("disabled"))
        );
        assert_eq!(u["display_name"], "Jane Doe");
        let r = s
            .json(
                s.req(Method::PATCH, &format!("/api/v1/users/{id}"))
                    .json(&json!({ "email": "nope" })),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert!(r["error"]["details"]["fields"]["email"].is_string(), "{r}");

        // Sign-in (the domain's, which the ADE sign-in page calls) locks after five failures;
        // the API shows it and unlocks.
        let core = &s.server.core;
        s.json(
            s.req(Method::PATCH, &format!("/api/v1/users/{id}"))
                .json(&json!({ "disabled": false })),
            StatusCode::OK,
        )
        .await;
        for _ in 0..5 {
            let _ = core.user_sign_in("jane.doe", "wrong password").await;
        }
        let locked = s
            .json(s.req(Method::GET, &format!("/api/v1/users/{id}")), StatusCode::OK)
            .await;
        assert_eq!(locked["status"], "locked");
        assert_eq!(locked["locked_until"], "2026-06-01T12:15:00Z");
        assert_eq!(locked["failed_attempts"], 5);
        let u = s
            .json(
                s.req(Method::POST, &format!("/api/v1/users/{id}/unlock")),
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            (u["status"].clone(), u["failed_attempts"].clone()),
            (json!("active"), json!(0))
        );

        // A new password: checked, set, never echoed.
        let r = s
            .json(
                s.req(Method::PUT, &format!("/api/v1/users/{id}/password"))
                    .json(&json!({ "password": "too short" })),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert_eq!(code(&r), "invalid_password");
        no_secrets(&r, &["too short"]);
        let u = s
            .json(
                s.req(Method::PUT, &format!("/api/v1/users/{id}/password"))
                    .json(&json!({ "password": "a brand new passphrase" })),
                StatusCode::OK,
            )
            .await;
        no_secrets(&u, &["a brand new passphrase"]);
        assert_eq!(
            core.user_sign_in("Jane.Doe", "a brand new passphrase")
                .await
                .unwrap()
                .id,
            id
        );
        let after = s
            .json(s.req(Method::GET, &format!("/api/v1/users/{id}")), StatusCode::OK)
            .await;
        assert_eq!(after["last_sign_in_at"], "2026-06-01T12:00:00Z");

        // The audit log tells every change, with no secret in it.
        let log = s
            .json(
                s.req(Method::GET, "/api/v1/audit")
                    .query(&[("target_type", "user"), ("target_id", &id.to_string())]),
                StatusCode::OK,
            )
            .await;
        let actions: Vec<&str> = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "user.create",
                "user.update",
                "user.update",
                "user.lock",
                "user.unlock",
                "user.set_password"
            ]
        );
        no_secrets(&log, &[PASSWORD, "wrong password", "a brand new passphrase"]);

        // Delete.
        let r = s
            .req(Method::DELETE, &format!("/api/v1/users/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let r = s
            .json(
                s.req(Method::DELETE, &format!("/api/v1/users/{id}")),
                StatusCode::NOT_FOUND,
            )
            .await;
        assert_eq!(code(&r), "user_not_found");

        // Without the admin key: 401, and nothing is created.
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/users", s.url))
            .json(&json!({ "username": "eve", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let list = s.json(s.req(Method::GET, "/api/v1/users"), StatusCode::OK).await;
        assert!(list["users"].as_array().unwrap().is_empty());

        // The OpenAPI document describes the endpoints, and its user schema has no hash.
        let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", s.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for path in [
            "/api/v1/users",
            "/api/v1/users/{id}",
            "/api/v1/users/{id}/password",
            "/api/v1/users/{id}/unlock",
        ] {
            assert!(
                doc["paths"][path].is_object(),
                "{path} missing from the OpenAPI document"
            );
        }
        for m in ["get", "patch", "delete"] {
            assert!(doc["paths"]["/api/v1/users/{id}"][m].is_object(), "{m}");
        }
        let user_schema = &doc["components"]["schemas"]["User"];
        assert!(user_schema["properties"]["username"].is_object(), "{user_schema}");
        assert!(user_schema["properties"].get("password").is_none());
        assert!(user_schema["properties"].get("password_hash").is_none());
        assert!(doc["components"]["schemas"]["NewUserRequest"]["properties"]["password"].is_object());
        s.stop().await;
    }
}
