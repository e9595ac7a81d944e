//! The connection to Apple Business Manager: one DEP API client per token (cached, so the
//! session is reused), Apple's errors in the administrator's terms, and the token flags
//! Apple's answers set (terms not signed) or clear.

use russet_apple::dep::{self, DepClient, DepError, OAuthCredentials};
use russet_apple::server_token::ServerToken;
use russet_store::ade_tokens::AbmAccount;
use secrecy::ExposeSecret;

use crate::error::{CoreError, ErrorKind};
use crate::{Core, fmt_time};

impl Core {
    /// The DEP client for a token's current credentials (cached per token; a renewal's new
    /// credentials get a new client).
    pub(crate) async fn dep_client(&self, token_id: i64) -> Result<DepClient, CoreError> {
        let json = self.store.ade_token_credentials(token_id).await?.ok_or_else(|| {
            CoreError::conflict(
                "ade_token_pending",
                "this token has no server token yet: upload one first",
            )
        })?;
        let token = ServerToken::from_message(json.expose_secret().as_bytes()).map_err(|e| {
            tracing::error!(token_id, error = %e, "stored credentials unreadable");
            CoreError::new(
                ErrorKind::Internal,
                "secret_unreadable",
                "the stored server token could not be read",
            )
        })?;
        let fingerprint = crate::ade_tokens::consumer_key_fingerprint(&format!(
            "{}{}",
            token.consumer_key,
            token.access_token.expose_secret()
        ));
        let mut cache = self.dep_clients.lock().await;
        if let Some((fp, client)) = cache.get(&token_id)
            && *fp == fingerprint
        {
            return Ok(client.clone());
        }
        let client = self.new_dep_client(&token)?;
        cache.insert(token_id, (fingerprint, client.clone()));
        Ok(client)
    }

    /// A client for credentials not stored yet (an upload being checked).
    pub(crate) fn new_dep_client(&self, token: &ServerToken) -> Result<DepClient, CoreError> {
        DepClient::new(self.settings.dep.clone(), OAuthCredentials::from(token)).map_err(|e| {
            CoreError::new(
                ErrorKind::Internal,
                "dep_client",
                format!("cannot set up the connection to Apple: {e}"),
            )
        })
    }

    /// Keeps the token's terms flag in step with Apple's answer: set on T_C_NOT_SIGNED,
    /// cleared by any success.
    pub(crate) async fn note_apple_answer<T>(&self, token_id: i64, result: &Result<T, DepError>) {
        let flag = match result {
            Ok(_) => None,
            Err(e) if e.is_terms_not_signed() => Some(self.clock.now()),
            Err(_) => return,
        };
        let current = match self.store.ade_token_terms(token_id).await {
            Ok(t) => t,
            Err(_) => return,
        };
        if current.is_some() != flag.is_some()
            && let Err(e) = self.store.ade_token_set_terms(token_id, flag).await
        {
            tracing::warn!(token_id, error = %e, "cannot record the terms flag");
        }
        if flag.is_some() && current.is_none() {
            tracing::warn!(
                token_id,
                "Apple Business Manager has new terms and conditions to accept"
            );
        }
    }

    /// Calls `/account` and stores what Apple says about the token's MDM server.
    pub(crate) async fn refresh_account(&self, token_id: i64, client: &DepClient) -> Result<AbmAccount, DepError> {
        let result = client.account().await;
        self.note_apple_answer(token_id, &result).await;
        let account = account_from(&result?, self.clock.now());
        if let Err(e) = self.store.ade_token_set_account(token_id, &account).await {
            tracing::warn!(token_id, error = %e, "cannot store the ABM account details");
        }
        Ok(account)
    }
}

/// Apple's `/account` answer as stored.
pub(crate) fn account_from(a: &dep::Account, now: time::OffsetDateTime) -> AbmAccount {
    AbmAccount {
        server_name: a.server_name.clone(),
        server_uuid: a.server_uuid.clone(),
        admin_id: a
            .admin_id
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| a.facilitator_id.clone()),
        org_name: a.org_name.clone(),
        org_email: a.org_email.clone(),
        org_phone: a.org_phone.clone(),
        org_type: a.org_type.clone(),
        org_id: a.org_id.clone(),
        checked_at: Some(now),
    }
}

/// The message administrators see when Apple wants its terms accepted.
pub const TERMS_MESSAGE: &str = "Apple Business Manager (or School Manager) has new terms and conditions: an \
     administrator of the organisation must sign in at business.apple.com (or school.apple.com) and accept them. Russet \
     syncs again at the next attempt after that";

/// Apple's error as the administrator's error, for an operation described by `what`
/// ("syncing devices", "defining the profile", …).
pub fn apple_error(e: &DepError, what: &str) -> CoreError {
    let (kind, code, message) = if e.is_terms_not_signed() {
        (
            ErrorKind::Upstream,
            "abm_terms_not_signed",
            format!("Apple refused {what}: {TERMS_MESSAGE}"),
        )
    } else {
        match e {
            DepError::AccessDenied => (
                ErrorKind::Upstream,
                "abm_access_denied",
                format!(
                    "Apple refused {what} with ACCESS_DENIED: the server token was revoked or replaced. Download a new \
                     token for this MDM server in Apple Business Manager and renew the token"
                ),
            ),
            DepError::Unauthorized { .. } => (
                ErrorKind::Upstream,
                "abm_unauthorized",
                format!(
                    "Apple did not accept the server token while {what} (it was replaced by a newer download, revoked or \
                     expired): download the token again in Apple Business Manager and renew it in Russet"
                ),
            ),
            DepError::RateLimited { .. } => (
                ErrorKind::RateLimited,
                "abm_rate_limited",
                format!("Apple asked Russet to slow down while {what}; Russet retries later"),
            ),
            DepError::ServerError { .. } | DepError::Transport { .. } => (
                ErrorKind::Unavailable,
                "abm_unavailable",
                format!(
                    "Apple's device assignment service could not be reached while {what} ({e}); Russet retries later"
                ),
            ),
            _ => (ErrorKind::Upstream, "abm_error", format!("Apple refused {what}: {e}")),
        }
    };
    let mut err = CoreError::new(kind, code, message);
    err.retry_after = e.retry_after().map(|d| d.as_secs());
    if let Some(c) = e.code() {
        err = err.with_details(serde_json::json!({ "apple_code": c }));
    }
    err
}

/// "at 2026-01-01T10:00:00Z" for messages.
pub(crate) fn at(t: time::OffsetDateTime) -> String {
    format!("at {}", fmt_time(t))
}
