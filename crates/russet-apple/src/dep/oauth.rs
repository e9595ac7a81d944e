//! OAuth 1.0a (RFC 5849) HMAC-SHA1 signing of the `GET /session` request.
//!
//! Apple's `/session` endpoint is the only OAuth-signed call of the device assignment API; it
//! trades the server token's four credentials for a short-lived session token. The signature
//! follows RFC 5849 §3.4 the way `gomodule/oauth1` (used by nanodep) writes it:
//!
//! * base string = `METHOD` `&` pct(normalised URL, no query) `&` pct(sorted `k=v` pairs joined
//!   by `&`), the pairs being the six `oauth_*` parameters plus any query parameters;
//! * the URL is normalised by lower-casing scheme and host and dropping `:443` for https and
//!   `:80` for http;
//! * key = pct(consumer secret) `&` pct(access secret);
//! * pct is RFC 3986 percent-encoding of everything but `A-Z a-z 0-9 - . _ ~`, with uppercase
//!   hex digits.

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::ExposeSecret;
use secrecy::zeroize::Zeroizing;
use url::Url;

use super::{DepError, OAuthCredentials};

/// Everything but RFC 3986's unreserved characters is encoded.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// RFC 3986 percent-encoding as OAuth 1.0a (RFC 5849 §3.6) requires it.
pub(crate) fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// The base string URI of RFC 5849 §3.4.1.2: scheme and host lower-cased, the default port
/// dropped, the path kept, query and fragment removed.
pub(crate) fn normalize_url(url: &Url) -> Result<String, DepError> {
    let scheme = url.scheme().to_ascii_lowercase();
    let host = url.host_str().ok_or_else(|| DepError::InvalidConfig {
        detail: format!("the URL {url} has no host name"),
    })?;
    let host = host.to_ascii_lowercase();
    let port = match (scheme.as_str(), url.port()) {
        ("https", Some(443)) | ("http", Some(80)) | (_, None) => String::new(),
        (_, Some(port)) => format!(":{port}"),
    };
    let path = if url.path().is_empty() { "/" } else { url.path() };
    Ok(format!("{scheme}://{host}{port}{path}"))
}

/// The signature base string (RFC 5849 §3.4.1) for `method` and `url` with the given
/// (unencoded) OAuth parameters; query parameters of `url` are included.
pub(crate) fn signature_base_string(
    method: &str,
    url: &Url,
    oauth_params: &[(&str, &str)],
) -> Result<String, DepError> {
    let mut pairs: Vec<(String, String)> = oauth_params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    pairs.extend(url.query_pairs().map(|(k, v)| (percent_encode(&k), percent_encode(&v))));
    pairs.sort();
    let parameters = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    Ok(format!(
        "{}&{}&{}",
        percent_encode(&method.to_ascii_uppercase()),
        percent_encode(&normalize_url(url)?),
        percent_encode(&parameters)
    ))
}

/// base64(HMAC-SHA1(key, base string)).
fn hmac_sha1_base64(key: &[u8], data: &[u8]) -> Result<String, DepError> {
    let crypto = |e: openssl::error::ErrorStack| DepError::Crypto {
        detail: format!("HMAC-SHA1 failed: {e}"),
    };
    let pkey = PKey::hmac(key).map_err(crypto)?;
    let mut signer = Signer::new(MessageDigest::sha1(), &pkey).map_err(crypto)?;
    signer.update(data).map_err(crypto)?;
    let mac = signer.sign_to_vec().map_err(crypto)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(mac))
}

/// The OAuth 1.0a `Authorization` header value for a request (Apple only signs `GET /session`).
///
/// `nonce` must be fresh for every request (the client uses 16 random bytes in hex) and
/// `timestamp` is the current time in Unix seconds. The value has the form
/// `OAuth oauth_consumer_key="…", oauth_nonce="…", oauth_signature="…",
/// oauth_signature_method="HMAC-SHA1", oauth_timestamp="…", oauth_token="…", oauth_version="1.0"`
/// with percent-encoded values, as nanodep sends it (no `realm`).
///
/// The returned string contains the access token: do not log it.
pub fn oauth_authorization(
    method: &str,
    url: &str,
    creds: &OAuthCredentials,
    nonce: &str,
    timestamp: u64,
) -> Result<String, DepError> {
    let parsed = Url::parse(url).map_err(|e| DepError::InvalidConfig {
        detail: format!("the URL {url:?} cannot be parsed: {e}"),
    })?;
    let timestamp = timestamp.to_string();
    let access_token = creds.access_token.expose_secret();
    let params = [
        ("oauth_consumer_key", creds.consumer_key.as_str()),
        ("oauth_nonce", nonce),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", timestamp.as_str()),
        ("oauth_token", access_token),
        ("oauth_version", "1.0"),
    ];
    let base = signature_base_string(method, &parsed, &params)?;
    let key = Zeroizing::new(format!(
        "{}&{}",
        percent_encode(creds.consumer_secret.expose_secret()),
        percent_encode(creds.access_secret.expose_secret())
    ));
    let signature = hmac_sha1_base64(key.as_bytes(), base.as_bytes())?;
    Ok(format!(
        "OAuth oauth_consumer_key=\"{}\", oauth_nonce=\"{}\", oauth_signature=\"{}\", \
         oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"{}\", oauth_token=\"{}\", \
         oauth_version=\"1.0\"",
        percent_encode(&creds.consumer_key),
        percent_encode(nonce),
        percent_encode(&signature),
        timestamp,
        percent_encode(access_token),
    ))
}

/// A fresh nonce: 16 random bytes in lowercase hex.
pub(crate) fn new_nonce() -> Result<String, DepError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| DepError::Crypto {
        detail: format!("the operating system's random number generator failed: {e}"),
    })?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The research's test vector (nanodep's client against a loopback mock, re-verified
    /// independently in Python).
    fn vector_credentials() -> OAuthCredentials {
        OAuthCredentials {
            consumer_key: "CK_test".to_owned(),
            consumer_secret: "CS_secret&x".into(),
            access_token: "AT_tok".into(),
            access_secret: "AS_secret+y".into(),
        }
    }

    #[test]
    fn test_vector_base_string() {
        let url = Url::parse("http://127.0.0.1:18080/session").unwrap();
        let base = signature_base_string(
            "GET",
            &url,
            &[
                ("oauth_consumer_key", "CK_test"),
                ("oauth_nonce", "8a3941c71673f50c"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", "1795455974"),
                ("oauth_token", "AT_tok"),
                ("oauth_version", "1.0"),
            ],
        )
        .unwrap();
        assert_eq!(
            base,
            "GET&http%3A%2F%2F127.0.0.1%3A18080%2Fsession&oauth_consumer_key%3DCK_test%26\
             oauth_nonce%3D8a3941c71673f50c%26oauth_signature_method%3DHMAC-SHA1%26\
             oauth_timestamp%3D1795455974%26oauth_token%3DAT_tok%26oauth_version%3D1.0"
        );
    }

    #[test]
    fn test_vector_signature_and_header() {
        let header = oauth_authorization(
            "GET",
            "http://127.0.0.1:18080/session",
            &vector_credentials(),
            "8a3941c71673f50c",
            1795455974,
        )
        .unwrap();
        assert_eq!(
            header,
            "OAuth oauth_consumer_key=\"CK_test\", oauth_nonce=\"8a3941c71673f50c\", \
             oauth_signature=\"BO8c2rfUPO55EQCCIPZ9Doci1Bc%3D\", oauth_signature_method=\"HMAC-SHA1\", \
             oauth_timestamp=\"1795455974\", oauth_token=\"AT_tok\", oauth_version=\"1.0\""
        );
    }

    #[test]
    fn test_vector_key_encoding() {
        // The key is pct(consumer secret) & pct(access secret): the '&' and '+' inside the
        // secrets must be encoded or the signature changes.
        let key = format!("{}&{}", percent_encode("CS_secret&x"), percent_encode("AS_secret+y"));
        assert_eq!(key, "CS_secret%26x&AS_secret%2By");
        let base = "GET&http%3A%2F%2F127.0.0.1%3A18080%2Fsession&oauth_consumer_key%3DCK_test%26\
                    oauth_nonce%3D8a3941c71673f50c%26oauth_signature_method%3DHMAC-SHA1%26\
                    oauth_timestamp%3D1795455974%26oauth_token%3DAT_tok%26oauth_version%3D1.0";
        assert_eq!(
            hmac_sha1_base64(key.as_bytes(), base.as_bytes()).unwrap(),
            "BO8c2rfUPO55EQCCIPZ9Doci1Bc="
        );
    }

    #[test]
    fn signature_depends_on_every_input() {
        let creds = vector_credentials();
        let reference = oauth_authorization("GET", "http://127.0.0.1:18080/session", &creds, "n", 1).unwrap();
        let mut other = vector_credentials();
        other.access_secret = "AS_secret+z".into();
        for changed in [
            oauth_authorization("GET", "http://127.0.0.1:18080/session", &other, "n", 1).unwrap(),
            oauth_authorization("GET", "http://127.0.0.1:18080/session", &creds, "m", 1).unwrap(),
            oauth_authorization("GET", "http://127.0.0.1:18080/session", &creds, "n", 2).unwrap(),
            oauth_authorization("POST", "http://127.0.0.1:18080/session", &creds, "n", 1).unwrap(),
            oauth_authorization("GET", "http://127.0.0.1:18081/session", &creds, "n", 1).unwrap(),
        ] {
            assert_ne!(signature_of(&changed), signature_of(&reference));
        }
    }

    fn signature_of(header: &str) -> &str {
        let start = header.find("oauth_signature=\"").unwrap() + "oauth_signature=\"".len();
        let end = start + header[start..].find('"').unwrap();
        &header[start..end]
    }

    #[test]
    fn percent_encoding_of_reserved_characters() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(
            percent_encode("!*'();:@&=+$,/?#[] %"),
            "%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D%20%25"
        );
        // Non-ASCII is encoded as UTF-8 bytes with uppercase hex.
        assert_eq!(percent_encode("é☃"), "%C3%A9%E2%98%83");
        // base64 signatures contain '+', '/' and '='.
        assert_eq!(percent_encode("a+b/c="), "a%2Bb%2Fc%3D");
    }

    #[test]
    fn url_normalisation() {
        let cases = [
            (
                "HTTPS://MDMEnrollment.Apple.COM:443/session",
                "https://mdmenrollment.apple.com/session",
            ),
            ("http://Example.com:80/session", "http://example.com/session"),
            ("http://example.com:443/session", "http://example.com:443/session"),
            ("https://example.com:80/session", "https://example.com:80/session"),
            (
                "https://example.com:8443/a/b/session?x=1#frag",
                "https://example.com:8443/a/b/session",
            ),
            ("http://127.0.0.1:18080/session", "http://127.0.0.1:18080/session"),
            ("https://example.com", "https://example.com/"),
            ("http://[::1]:8080/session", "http://[::1]:8080/session"),
        ];
        for (input, expected) in cases {
            let url = Url::parse(input).unwrap();
            assert_eq!(normalize_url(&url).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn query_parameters_are_signed_and_sorted() {
        let url = Url::parse("https://example.com/profile?z=1&b=two+words&a=%2F").unwrap();
        let base = signature_base_string("get", &url, &[("oauth_nonce", "n")]).unwrap();
        // Parameters sorted by encoded name: a, b, oauth_nonce, z; values re-encoded.
        assert_eq!(
            base,
            "GET&https%3A%2F%2Fexample.com%2Fprofile&a%3D%252F%26b%3Dtwo%2520words%26oauth_nonce%3Dn%26z%3D1"
        );
    }

    #[test]
    fn nonces_are_fresh_hex() {
        let a = new_nonce().unwrap();
        let b = new_nonce().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
