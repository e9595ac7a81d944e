//! The APNs client for MDM pushes: HTTP/2 over TLS with the MDM push certificate as the
//! client certificate, `POST /3/device/<hex token>` with `{"mdm": PushMagic}`.
//!
//! One [`ApnsClient`] holds one push certificate and multiplexes every push over pooled
//! HTTP/2 connections. Apple's answers are sorted into what the caller must do:
//! [`PushOutcome::Sent`]; [`PushOutcome::BadToken`] (the device token is dead: stop pushing
//! it until the device sends a new TokenUpdate); [`PushOutcome::CertificateRefused`] (the
//! push certificate itself is refused: every push will fail until it is fixed);
//! [`PushOutcome::Retry`] (rate limits, Apple's 5xx, network trouble: try again later);
//! [`PushOutcome::Rejected`] (the request was wrong: retrying it will not help).

use std::time::Duration;

use serde::Deserialize;

/// Apple's production APNs.
pub const APNS_URL: &str = "https://api.push.apple.com";

/// How to reach APNs.
#[derive(Clone, Debug)]
pub struct ApnsConfig {
    /// Base URL without a trailing slash (Apple's, or applesim's in tests).
    pub base_url: String,
    /// Extra trusted root certificates (PEM), for a simulator's TLS certificate.
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// `apns-expiration`: how long APNs keeps a push for an offline device.
    pub expiration: Duration,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        ApnsConfig {
            base_url: APNS_URL.into(),
            extra_roots_pem: None,
            timeout: Duration::from_secs(15),
            expiration: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ApnsError {
    #[error("the push certificate or its key cannot be used for TLS: {0}")]
    Identity(String),
    #[error("the extra APNs root certificate is not usable PEM: {0}")]
    Roots(String),
    #[error("cannot build the APNs HTTP client: {0}")]
    Client(String),
    #[error("the APNs URL {0} is not valid")]
    Url(String),
}

/// What became of one push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// APNs accepted it (`apns-id`).
    Sent { apns_id: Option<String> },
    /// The device token is no longer valid for this topic.
    BadToken { status: u16, reason: String },
    /// APNs refuses the push certificate (expired, revoked, wrong environment or topic).
    CertificateRefused { status: u16, reason: String },
    /// Try again later (after `retry_after` when APNs said).
    Retry {
        status: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The request itself was refused (bad payload, path, header): not worth retrying.
    Rejected { status: u16, reason: String },
}

#[derive(Deserialize)]
struct ErrorBody {
    reason: Option<String>,
}

/// Sorts an APNs error answer (status and `reason`) by what the caller must do.
pub fn classify(status: u16, reason: &str, retry_after: Option<Duration>) -> PushOutcome {
    let reason_s = reason.to_string();
    match reason {
        "BadDeviceToken" | "DeviceTokenNotForTopic" | "Unregistered" | "ExpiredToken" => PushOutcome::BadToken {
            status,
            reason: reason_s,
        },
        "BadCertificate"
        | "BadCertificateEnvironment"
        | "Forbidden"
        | "BadTopic"
        | "TopicDisallowed"
        | "MissingTopic"
        | "InvalidProviderToken"
        | "ExpiredProviderToken" => PushOutcome::CertificateRefused {
            status,
            reason: reason_s,
        },
        "TooManyRequests" | "InternalServerError" | "ServiceUnavailable" | "Shutdown" | "IdleTimeout" => {
            PushOutcome::Retry {
                status: Some(status),
                reason: reason_s,
                retry_after,
            }
        }
        _ if status == 429 || status >= 500 => PushOutcome::Retry {
            status: Some(status),
            reason: reason_s,
            retry_after,
        },
        _ if status == 410 => PushOutcome::BadToken {
            status,
            reason: reason_s,
        },
        _ if status == 403 => PushOutcome::CertificateRefused {
            status,
            reason: reason_s,
        },
        _ => PushOutcome::Rejected {
            status,
            reason: reason_s,
        },
    }
}

/// An APNs client for one push certificate (and so one topic).
#[derive(Clone)]
pub struct ApnsClient {
    http: reqwest::Client,
    base_url: String,
    topic: String,
    expiration: Duration,
}

impl ApnsClient {
    /// A client presenting `certificate_pem` with `key_pem` (PKCS#8 or PKCS#1) for `topic`.
    pub fn new(config: &ApnsConfig, topic: &str, certificate_pem: &str, key_pem: &str) -> Result<Self, ApnsError> {
        let url = url::Url::parse(&config.base_url).map_err(|_| ApnsError::Url(config.base_url.clone()))?;
        if url.scheme() != "https" {
            return Err(ApnsError::Url(format!(
                "{} (APNs needs https: the push certificate is a TLS client certificate)",
                config.base_url
            )));
        }
        // native-tls wants PKCS#8; convert a PKCS#1 key.
        let key = openssl::pkey::PKey::private_key_from_pem(key_pem.as_bytes())
            .and_then(|k| k.private_key_to_pem_pkcs8())
            .map_err(|e| ApnsError::Identity(crate::server_token::openssl_reasons(&e)))?;
        let identity = reqwest::Identity::from_pkcs8_pem(certificate_pem.as_bytes(), &key)
            .map_err(|e| ApnsError::Identity(e.to_string()))?;
        let mut builder = reqwest::Client::builder()
            .identity(identity)
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(300))
            .http2_keep_alive_interval(Duration::from_secs(60))
            .user_agent(concat!("russet/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.extra_roots_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| ApnsError::Roots(e.to_string()))? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| ApnsError::Client(e.to_string()))?;
        Ok(ApnsClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            topic: topic.to_string(),
            expiration: config.expiration,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends one MDM push. `now_unix` is used for `apns-expiration`.
    pub async fn push(&self, token_hex: &str, push_magic: &str, now_unix: i64) -> PushOutcome {
        if token_hex.is_empty() || !token_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return PushOutcome::BadToken {
                status: 0,
                reason: "BadDeviceToken (not hex; never sent)".into(),
            };
        }
        let body = serde_json::json!({ "mdm": push_magic }).to_string();
        let expiration = now_unix + self.expiration.as_secs() as i64;
        let result = self
            .http
            .post(format!("{}/3/device/{token_hex}", self.base_url))
            .header("apns-push-type", "mdm")
            .header("apns-topic", &self.topic)
            .header("apns-expiration", expiration.to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                return PushOutcome::Retry {
                    status: None,
                    reason: format!("cannot reach APNs: {e}"),
                    retry_after: None,
                };
            }
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            let apns_id = resp
                .headers()
                .get("apns-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return PushOutcome::Sent { apns_id };
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<ErrorBody>(&text)
            .ok()
            .and_then(|b| b.reason)
            .unwrap_or_else(|| format!("HTTP {status}"));
        classify(status, &reason, retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apples_reasons_are_sorted_by_what_to_do() {
        for r in [
            "BadDeviceToken",
            "DeviceTokenNotForTopic",
            "Unregistered",
            "ExpiredToken",
        ] {
            assert!(matches!(classify(400, r, None), PushOutcome::BadToken { .. }), "{r}");
        }
        for r in [
            "BadCertificate",
            "BadCertificateEnvironment",
            "Forbidden",
            "BadTopic",
            "TopicDisallowed",
        ] {
            assert!(
                matches!(classify(403, r, None), PushOutcome::CertificateRefused { .. }),
                "{r}"
            );
        }
        let retry = classify(429, "TooManyRequests", Some(Duration::from_secs(5)));
        assert_eq!(
            retry,
            PushOutcome::Retry {
                status: Some(429),
                reason: "TooManyRequests".into(),
                retry_after: Some(Duration::from_secs(5))
            }
        );
        assert!(matches!(
            classify(503, "ServiceUnavailable", None),
            PushOutcome::Retry { .. }
        ));
        assert!(matches!(classify(502, "HTTP 502", None), PushOutcome::Retry { .. }));
        assert!(matches!(classify(410, "Whatever", None), PushOutcome::BadToken { .. }));
        assert!(matches!(
            classify(400, "BadPayload", None),
            PushOutcome::Rejected { .. }
        ));
        assert!(matches!(
            classify(413, "PayloadTooLarge", None),
            PushOutcome::Rejected { .. }
        ));
    }

    #[test]
    fn plain_http_is_refused() {
        let cfg = ApnsConfig {
            base_url: "http://127.0.0.1:1".into(),
            ..ApnsConfig::default()
        };
        let err = ApnsClient::new(&cfg, "t", "", "").err().unwrap();
        assert!(err.to_string().contains("https"), "{err}");
    }
}
