//! OAuth 1.0a (RFC 5849) verification of `GET /session`, HMAC-SHA1 only, as Apple requires.

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (RFC 5849 §3.6).
const OAUTH_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encode per RFC 5849 §3.6.
pub fn pct(s: &str) -> String {
    utf8_percent_encode(s, OAUTH_SET).to_string()
}

/// The protocol parameters of an `Authorization: OAuth …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthParams {
    /// `oauth_consumer_key`.
    pub consumer_key: String,
    /// `oauth_token`.
    pub token: String,
    /// `oauth_signature_method`.
    pub signature_method: String,
    /// `oauth_signature` (decoded, still base64).
    pub signature: String,
    /// `oauth_timestamp`.
    pub timestamp: String,
    /// `oauth_nonce`.
    pub nonce: String,
    /// `oauth_version`, if present.
    pub version: Option<String>,
}

/// Why an OAuth request was refused. `problem()` gives OAuth Problem Reporting text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    /// 400: no `Authorization: OAuth` header at all.
    MissingHeader,
    /// 400: a required parameter is missing.
    ParameterAbsent(&'static str),
    /// 400: a parameter is duplicated, unsupported or malformed.
    ParameterRejected(String),
    /// 400: not HMAC-SHA1.
    SignatureMethodRejected,
    /// 400: `oauth_version` other than `1.0`.
    VersionRejected,
    /// 401: unknown consumer key.
    ConsumerKeyUnknown,
    /// 401: unknown access token.
    TokenRejected,
    /// 401: the token was replaced by a newer download.
    TokenRevoked,
    /// 401: the token's `access_token_expiry` has passed.
    TokenExpired,
    /// 401: wrong signature.
    SignatureInvalid,
    /// 401: nonce already used.
    NonceUsed,
}

impl OAuthError {
    /// HTTP status: 400 for malformed requests, 401 for rejected credentials.
    pub fn status(&self) -> u16 {
        match self {
            OAuthError::MissingHeader
            | OAuthError::ParameterAbsent(_)
            | OAuthError::ParameterRejected(_)
            | OAuthError::SignatureMethodRejected
            | OAuthError::VersionRejected => 400,
            _ => 401,
        }
    }

    /// OAuth Problem Reporting body, e.g. `oauth_problem=signature_invalid`.
    pub fn problem(&self) -> String {
        match self {
            OAuthError::MissingHeader => {
                "oauth_problem=parameter_absent&oauth_parameters_absent=oauth_consumer_key%26oauth_token%26oauth_signature_method%26oauth_signature%26oauth_timestamp%26oauth_nonce".into()
            }
            OAuthError::ParameterAbsent(p) => format!("oauth_problem=parameter_absent&oauth_parameters_absent={p}"),
            OAuthError::ParameterRejected(p) => {
                format!("oauth_problem=parameter_rejected&oauth_parameters_rejected={}", pct(p))
            }
            OAuthError::SignatureMethodRejected => {
                "oauth_problem=signature_method_rejected&oauth_acceptable_signature_methods=HMAC-SHA1".into()
            }
            OAuthError::VersionRejected => {
                "oauth_problem=version_rejected&oauth_acceptable_versions=1.0-1.0".into()
            }
            OAuthError::ConsumerKeyUnknown => "oauth_problem=consumer_key_unknown".into(),
            OAuthError::TokenRejected => "oauth_problem=token_rejected".into(),
            OAuthError::TokenRevoked => "oauth_problem=token_revoked".into(),
            OAuthError::TokenExpired => "oauth_problem=token_expired".into(),
            OAuthError::SignatureInvalid => "oauth_problem=signature_invalid".into(),
            OAuthError::NonceUsed => "oauth_problem=nonce_used".into(),
        }
    }
}

/// Parse `Authorization: OAuth realm="ADM", oauth_consumer_key="…", …`.
/// `realm` is optional and ignored. Unknown `oauth_*` parameters, duplicates and a missing
/// required parameter are refused (400).
pub fn parse_header(value: Option<&str>) -> Result<OAuthParams, OAuthError> {
    let value = value.ok_or(OAuthError::MissingHeader)?.trim();
    let rest = match value.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("OAuth") => rest,
        _ => {
            if value.eq_ignore_ascii_case("OAuth") {
                ""
            } else {
                return Err(OAuthError::MissingHeader);
            }
        }
    };
    let mut fields: [Option<String>; 7] = Default::default();
    const NAMES: [&str; 7] = [
        "oauth_consumer_key",
        "oauth_token",
        "oauth_signature_method",
        "oauth_signature",
        "oauth_timestamp",
        "oauth_nonce",
        "oauth_version",
    ];
    let mut realm_seen = false;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, raw) = part
            .split_once('=')
            .ok_or_else(|| OAuthError::ParameterRejected(part.to_owned()))?;
        let name = name.trim();
        let raw = raw.trim();
        let unquoted = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .ok_or_else(|| OAuthError::ParameterRejected(name.to_owned()))?;
        let decoded = percent_decode_str(unquoted)
            .decode_utf8()
            .map_err(|_| OAuthError::ParameterRejected(name.to_owned()))?
            .into_owned();
        if name == "realm" {
            if realm_seen {
                return Err(OAuthError::ParameterRejected("realm".into()));
            }
            realm_seen = true;
            continue;
        }
        match NAMES.iter().position(|n| *n == name) {
            Some(i) => {
                if fields[i].is_some() {
                    return Err(OAuthError::ParameterRejected(name.to_owned()));
                }
                fields[i] = Some(decoded);
            }
            // oauth_callback, oauth_verifier, oauth_body_hash, …: unsupported here.
            None => return Err(OAuthError::ParameterRejected(name.to_owned())),
        }
    }
    let [ck, tok, method, sig, ts, nonce, version] = fields;
    let consumer_key = ck.ok_or(OAuthError::ParameterAbsent("oauth_consumer_key"))?;
    let token = tok.ok_or(OAuthError::ParameterAbsent("oauth_token"))?;
    let signature_method = method.ok_or(OAuthError::ParameterAbsent("oauth_signature_method"))?;
    let signature = sig.ok_or(OAuthError::ParameterAbsent("oauth_signature"))?;
    let timestamp = ts.ok_or(OAuthError::ParameterAbsent("oauth_timestamp"))?;
    let nonce = nonce.ok_or(OAuthError::ParameterAbsent("oauth_nonce"))?;
    if signature_method != "HMAC-SHA1" {
        return Err(OAuthError::SignatureMethodRejected);
    }
    if version.as_deref().is_some_and(|v| v != "1.0") {
        return Err(OAuthError::VersionRejected);
    }
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OAuthError::ParameterRejected("oauth_timestamp".into()));
    }
    if nonce.is_empty() {
        return Err(OAuthError::ParameterRejected("oauth_nonce".into()));
    }
    Ok(OAuthParams {
        consumer_key,
        token,
        signature_method,
        signature,
        timestamp,
        nonce,
        version,
    })
}

/// Normalise `scheme://host[:port]/path` per RFC 5849 §3.4.1.2: scheme and host
/// lower-cased, default port dropped, no query.
pub fn normalise_url(scheme: &str, host_header: &str, path: &str) -> String {
    let scheme = scheme.to_ascii_lowercase();
    let host = host_header.trim().to_ascii_lowercase();
    let host = match (scheme.as_str(), host.rsplit_once(':')) {
        ("http", Some((h, "80"))) | ("https", Some((h, "443"))) if !h.ends_with(':') => h.to_owned(),
        _ => host,
    };
    let path = if path.is_empty() { "/" } else { path };
    format!("{scheme}://{host}{path}")
}

/// The signature base string (RFC 5849 §3.4.1): method, normalised URL, and the sorted,
/// encoded protocol parameters (without `oauth_signature`) plus query parameters.
pub fn base_string(method: &str, normalised_url: &str, params: &OAuthParams, query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = vec![
        (pct("oauth_consumer_key"), pct(&params.consumer_key)),
        (pct("oauth_nonce"), pct(&params.nonce)),
        (pct("oauth_signature_method"), pct(&params.signature_method)),
        (pct("oauth_timestamp"), pct(&params.timestamp)),
        (pct("oauth_token"), pct(&params.token)),
    ];
    if let Some(v) = &params.version {
        pairs.push((pct("oauth_version"), pct(v)));
    }
    if let Some(q) = query {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            pairs.push((pct(&k), pct(&v)));
        }
    }
    pairs.sort();
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        pct(normalised_url),
        pct(&joined)
    )
}

/// base64(HMAC-SHA1(pct(consumer_secret)&pct(access_secret), base)).
pub fn sign(base: &str, consumer_secret: &str, access_secret: &str) -> Option<String> {
    let key = format!("{}&{}", pct(consumer_secret), pct(access_secret));
    let pkey = PKey::hmac(key.as_bytes()).ok()?;
    let mut signer = Signer::new(MessageDigest::sha1(), &pkey).ok()?;
    let mac = signer.sign_oneshot_to_vec(base.as_bytes()).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(mac))
}

/// Constant-time check of the request's signature against one computed base string.
pub fn signature_matches(params: &OAuthParams, base: &str, consumer_secret: &str, access_secret: &str) -> bool {
    match sign(base, consumer_secret, access_secret) {
        Some(expected) => {
            expected.len() == params.signature.len()
                && openssl::memcmp::eq(expected.as_bytes(), params.signature.as_bytes())
        }
        None => false,
    }
}

/// A complete `Authorization: OAuth …` value for a request without query parameters,
/// signed with HMAC-SHA1 (a convenience for tools and benchmarks driving the simulator).
pub fn authorization_header(
    creds: &crate::SimCredentials,
    method: &str,
    url: &str,
    nonce: &str,
    timestamp: u64,
) -> Option<String> {
    let params = OAuthParams {
        consumer_key: creds.consumer_key.clone(),
        token: creds.access_token.clone(),
        signature_method: "HMAC-SHA1".into(),
        signature: String::new(),
        timestamp: timestamp.to_string(),
        nonce: nonce.to_owned(),
        version: Some("1.0".into()),
    };
    let parsed = url::Url::parse(url).ok()?;
    let host = match parsed.port() {
        Some(p) => format!("{}:{p}", parsed.host_str()?),
        None => parsed.host_str()?.to_owned(),
    };
    let base = base_string(
        method,
        &normalise_url(parsed.scheme(), &host, parsed.path()),
        &params,
        None,
    );
    let sig = sign(&base, &creds.consumer_secret, &creds.access_secret)?;
    Some(format!(
        "OAuth oauth_consumer_key=\"{}\", oauth_nonce=\"{}\", oauth_signature=\"{}\", oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"{timestamp}\", oauth_token=\"{}\", oauth_version=\"1.0\"",
        pct(&creds.consumer_key),
        pct(nonce),
        pct(&sig),
        pct(&creds.access_token)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The research's test vector (nanodep's real client against a loopback mock).
    #[test]
    fn research_test_vector() {
        let header = r#"OAuth oauth_consumer_key="CK_test", oauth_nonce="8a3941c71673f50c", oauth_signature="BO8c2rfUPO55EQCCIPZ9Doci1Bc%3D", oauth_signature_method="HMAC-SHA1", oauth_timestamp="1795455974", oauth_token="AT_tok", oauth_version="1.0""#;
        let p = parse_header(Some(header)).unwrap();
        assert_eq!(p.signature, "BO8c2rfUPO55EQCCIPZ9Doci1Bc=");
        let url = normalise_url("http", "127.0.0.1:18080", "/session");
        let base = base_string("GET", &url, &p, None);
        assert_eq!(
            base,
            "GET&http%3A%2F%2F127.0.0.1%3A18080%2Fsession&oauth_consumer_key%3DCK_test%26oauth_nonce%3D8a3941c71673f50c%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1795455974%26oauth_token%3DAT_tok%26oauth_version%3D1.0"
        );
        assert_eq!(
            sign(&base, "CS_secret&x", "AS_secret+y").unwrap(),
            "BO8c2rfUPO55EQCCIPZ9Doci1Bc="
        );
        assert!(signature_matches(&p, &base, "CS_secret&x", "AS_secret+y"));
        assert!(!signature_matches(&p, &base, "CS_secret&x", "AS_secret+z"));
    }

    #[test]
    fn realm_and_problems() {
        let ok = r#"OAuth realm="ADM", oauth_consumer_key="a", oauth_nonce="n", oauth_signature="s", oauth_signature_method="HMAC-SHA1", oauth_timestamp="1", oauth_token="t""#;
        assert!(parse_header(Some(ok)).is_ok());
        let plaintext = ok.replace("HMAC-SHA1", "PLAINTEXT");
        assert_eq!(parse_header(Some(&plaintext)), Err(OAuthError::SignatureMethodRejected));
        let missing = ok.replace(r#", oauth_nonce="n""#, "");
        assert_eq!(
            parse_header(Some(&missing)),
            Err(OAuthError::ParameterAbsent("oauth_nonce"))
        );
        let dup = format!(r#"{ok}, oauth_nonce="m""#);
        assert!(matches!(
            parse_header(Some(&dup)),
            Err(OAuthError::ParameterRejected(_))
        ));
        let cb = format!(r#"{ok}, oauth_callback="oob""#);
        assert!(matches!(parse_header(Some(&cb)), Err(OAuthError::ParameterRejected(_))));
        assert_eq!(parse_header(None), Err(OAuthError::MissingHeader));
        assert_eq!(parse_header(Some("Bearer x")), Err(OAuthError::MissingHeader));
    }

    #[test]
    fn url_normalisation() {
        assert_eq!(
            normalise_url("HTTP", "Example.COM:80", "/session"),
            "http://example.com/session"
        );
        assert_eq!(
            normalise_url("https", "example.com:443", "/session"),
            "https://example.com/session"
        );
        assert_eq!(
            normalise_url("https", "example.com:8443", "/session"),
            "https://example.com:8443/session"
        );
        assert_eq!(normalise_url("http", "[::1]:80", "/session"), "http://[::1]/session");
    }
}
