//! `/session` (OAuth 1.0a) and session handling.

use crate::common::*;
use applesim::{Endpoint, Fault, FaultKind};

#[tokio::test]
async fn good_signature_gives_a_session_that_works() {
    let w = World::new().await;
    let mut d = w.dep();
    let tok = d.login().await;
    assert_eq!(tok.len(), 32);
    let r = d.get("/account").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json;charset=UTF8")
    );
}

#[tokio::test]
async fn realm_is_accepted() {
    let w = World::new().await;
    let d = w.dep();
    let h = oauth_header(
        &w.creds,
        &format!("{}/session", w.run.base_url),
        &nonce(),
        unix_now(),
        true,
    );
    let r = d.session_raw(Some(h)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn bad_signature_is_401() {
    let w = World::new().await;
    let d = w.dep();
    let mut wrong = w.creds.clone();
    wrong.access_secret.push('x');
    let h = oauth_header(
        &wrong,
        &format!("{}/session", w.run.base_url),
        &nonce(),
        unix_now(),
        false,
    );
    let r = d.session_raw(Some(h)).await;
    assert_eq!(r.status, 401);
    assert!(r.text.contains("signature_invalid"), "{}", r.text);

    // Signed for another URL (path) → invalid too.
    let h = oauth_header(
        &w.creds,
        &format!("{}/sessions", w.run.base_url),
        &nonce(),
        unix_now(),
        false,
    );
    assert_eq!(d.session_raw(Some(h)).await.status, 401);

    // Unknown token / consumer key.
    let mut other = w.creds.clone();
    other.access_token = "AT_unknown".into();
    let h = oauth_header(
        &other,
        &format!("{}/session", w.run.base_url),
        &nonce(),
        unix_now(),
        false,
    );
    let r = d.session_raw(Some(h)).await;
    assert_eq!(r.status, 401);
    assert!(r.text.contains("token_rejected"), "{}", r.text);
    let mut other = w.creds.clone();
    other.consumer_key = "CK_unknown".into();
    let h = oauth_header(
        &other,
        &format!("{}/session", w.run.base_url),
        &nonce(),
        unix_now(),
        false,
    );
    let r = d.session_raw(Some(h)).await;
    assert_eq!(r.status, 401);
    assert!(r.text.contains("consumer_key_unknown"), "{}", r.text);
}

#[tokio::test]
async fn malformed_oauth_is_400() {
    let w = World::new().await;
    let d = w.dep();
    let good = d.signed_header();
    // No header at all.
    let r = d.session_raw(None).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("parameter_absent"), "{}", r.text);
    // Missing nonce.
    let without_nonce: String = good
        .split(", ")
        .filter(|p| !p.starts_with("oauth_nonce"))
        .collect::<Vec<_>>()
        .join(", ");
    let r = d.session_raw(Some(without_nonce)).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("oauth_nonce"), "{}", r.text);
    // Another signature method.
    let r = d.session_raw(Some(good.replace("HMAC-SHA1", "PLAINTEXT"))).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("signature_method_rejected"), "{}", r.text);
    // Duplicate parameter.
    let r = d.session_raw(Some(format!("{good}, oauth_token=\"x\""))).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn nonce_replay_is_refused() {
    let w = World::new().await;
    let d = w.dep();
    let h = oauth_header(
        &w.creds,
        &format!("{}/session", w.run.base_url),
        "fixed-nonce-1",
        unix_now(),
        false,
    );
    assert_eq!(d.session_raw(Some(h.clone())).await.status, 200);
    let r = d.session_raw(Some(h)).await;
    assert_eq!(r.status, 401);
    assert!(r.text.contains("nonce_used"), "{}", r.text);
}

#[tokio::test]
async fn new_download_invalidates_the_old_token_and_its_sessions() {
    let w = World::new().await;
    let mut old = w.logged_in().await;
    let (_, cert) = test_key();
    w.sim
        .upload_public_key(w.server, &String::from_utf8(cert.to_pem().unwrap()).unwrap())
        .unwrap();
    w.sim.download_token(w.server).unwrap();
    let new_creds = w.sim.current_credentials(w.server).unwrap();
    assert_ne!(new_creds.access_token, w.creds.access_token);

    // The old session stops working, and the old token cannot get a new one.
    assert_eq!(old.get("/account").await.status, 401);
    let r = old.session_raw(Some(old.signed_header())).await;
    assert_eq!(r.status, 401);
    assert!(r.text.contains("token_revoked"), "{}", r.text);

    let mut new = Dep::new(&w.run.base_url, new_creds);
    new.login().await;
    assert_eq!(new.get("/account").await.status, 200);

    // register_credentials invalidates too.
    let third = test_credentials(w.sim.clock().now());
    w.sim.register_credentials(w.server, third.clone());
    assert_eq!(new.get("/account").await.status, 401);
    let mut t = Dep::new(&w.run.base_url, third);
    t.login().await;
    assert_eq!(t.get("/account").await.status, 200);
}

#[tokio::test]
async fn token_expires_after_a_year() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    w.sim.clock().advance(time::Duration::days(364));
    d.login().await;
    assert_eq!(d.get("/account").await.status, 200);
    w.sim.clock().advance(time::Duration::days(2));
    assert_eq!(d.get("/account").await.status, 401, "session of an expired token");
    let r = d.session_raw(Some(d.signed_header())).await;
    assert_eq!(r.status, 401);
    assert!(r.text.contains("token_expired"), "{}", r.text);
}

#[tokio::test]
async fn terms_pending_blocks_everything() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    w.sim.set_terms_pending(w.org, true);
    let r = d.get("/account").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text, "T_C_NOT_SIGNED");
    let r = d.post("/server/devices", serde_json::json!({})).await;
    assert_eq!(r.status, 403);
    let r = d.session_raw(Some(d.signed_header())).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text, "T_C_NOT_SIGNED");
    w.sim.set_terms_pending(w.org, false);
    d.login().await;
    assert_eq!(d.get("/account").await.status, 200);
}

#[tokio::test]
async fn missing_or_unknown_session_is_401() {
    let w = World::new().await;
    let mut d = w.dep();
    let r = d.get("/account").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.text, "UNAUTHORIZED");
    d.session = Some("0123456789abcdef0123456789abcdef".into());
    assert_eq!(d.get("/account").await.status, 401);
}

#[tokio::test]
async fn user_agent_is_required_everywhere() {
    let w = World::new().await;
    let mut d = w.logged_in().await;
    d.user_agent = None;
    let r = d.get("/account").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text, "USER_AGENT_MISSING");
    let r = d.session_raw(Some(d.signed_header())).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text, "USER_AGENT_MISSING");
    let r = d.post("/server/devices", serde_json::json!({})).await;
    assert_eq!(r.status, 400);
    // The request log shows the missing agent.
    let last = w.sim.requests().pop().unwrap();
    assert_eq!(last.user_agent, None);
    assert_eq!(last.status, Some(400));
    assert_eq!(last.endpoint, Some(Endpoint::FetchDevices));
}

#[tokio::test]
async fn session_expires_after_its_lifetime() {
    let w = World::new().await;
    w.sim.set_session_policy(time::Duration::minutes(5), None);
    let mut d = w.logged_in().await;
    assert_eq!(d.get("/account").await.status, 200);
    w.sim.clock().advance(time::Duration::minutes(4));
    assert_eq!(d.get("/account").await.status, 200);
    w.sim.clock().advance(time::Duration::minutes(2));
    assert_eq!(d.get("/account").await.status, 401);
    d.login().await;
    assert_eq!(d.get("/account").await.status, 200);
}

#[tokio::test]
async fn session_rotation() {
    let w = World::new().await;
    w.sim.set_session_policy(time::Duration::minutes(30), Some(3));
    let mut d = w.logged_in().await;
    let first = d.session.clone().unwrap();
    for i in 1..=2 {
        let r = d.get("/account").await;
        assert_eq!(r.status, 200);
        assert!(r.header("x-adm-auth-session").is_none(), "rotated early at {i}");
    }
    let r = d.get("/account").await;
    assert_eq!(r.status, 200);
    let second = r.header("x-adm-auth-session").expect("rotation on the third response");
    assert_ne!(second, first);
    assert_eq!(d.session.as_deref(), Some(second.as_str()));
    // The new token works; the old one does not.
    assert_eq!(d.get("/account").await.status, 200);
    d.session = Some(first);
    d.follow_rotation = false;
    assert_eq!(d.get("/account").await.status, 401);
}

#[tokio::test]
async fn session_fault_list_like_depsim() {
    let w = World::new().await;
    w.sim.push_faults(
        Endpoint::Session,
        vec![
            Fault::new(1, FaultKind::Pass),
            Fault::new(2, FaultKind::TooManyRequests { retry_after: None }),
        ],
    );
    let mut d = w.dep();
    d.login().await;
    for _ in 0..2 {
        let r = d.session_raw(Some(d.signed_header())).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.text, "TOO_MANY_REQUESTS");
    }
    d.login().await;
    assert!(w.sim.pending_faults(Endpoint::Session).is_empty());
}
