//! A small client of the admin API: finds the server and the key, sends requests, and turns
//! the API's JSON errors into messages for the terminal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use russet_server::config::{Config, Loader};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::ClientArgs;

/// An error the API returned, shown as `error: <message>` with its code.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, HTTP {})", self.message, self.code, self.status.as_u16())
    }
}

impl std::error::Error for ApiFailure {}

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// The local configuration (russet.toml and RUSSET_* variables), if it can be read.
fn local_config() -> Option<Config> {
    Loader::new(None)
        .ok()?
        .env(|k| std::env::var(k).ok())
        .ok()?
        .finish()
        .ok()
}

/// The URL of the server on this machine, from its listen address.
fn local_server_url(config: &Config) -> String {
    let scheme = if config.tls_enabled() { "https" } else { "http" };
    let listen = config
        .listen
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:");
    format!("{scheme}://{listen}")
}

fn read_key_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "no admin API key given and {} cannot be read: pass --api-key, set RUSSET_API_KEY, or run this on the \
             server machine (`russet admin-key rotate` makes a new key)",
            path.display()
        )
    })?;
    let key = text.trim().to_string();
    if key.is_empty() {
        bail!(
            "{} is empty: `russet admin-key rotate` writes a new key",
            path.display()
        );
    }
    Ok(key)
}

impl Client {
    pub fn new(args: &ClientArgs) -> Result<Client> {
        let config = local_config();
        let base = match &args.server {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => config
                .as_ref()
                .map(local_server_url)
                .unwrap_or_else(|| "http://127.0.0.1:8080".to_string()),
        };
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--server must be a URL such as http://127.0.0.1:8080 (got {base})");
        }
        let key = match &args.api_key {
            Some(k) if !k.trim().is_empty() => k.trim().to_string(),
            _ => {
                let dir: PathBuf = args
                    .data_dir
                    .clone()
                    .or_else(|| config.as_ref().map(|c| c.data_dir.clone()))
                    .unwrap_or_else(|| PathBuf::from("./russet-data"));
                read_key_file(&dir.join(russet_server::serve::ADMIN_KEY_FILE))?
            }
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("russet-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120));
        if let Some(ca) = &args.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read --ca-cert {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("--ca-cert {} is not a PEM certificate", ca.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(Client {
            http: builder.build()?,
            base,
            key,
        })
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.key)
    }

    /// Sends a request; a non-2xx answer becomes an [`ApiFailure`].
    pub async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let response = req.send().await.map_err(|e| {
            if e.is_connect() || e.is_timeout() {
                anyhow!(
                    "cannot reach Russet at {}: {} (is `russet serve` running? choose the server with --server or RUSSET_SERVER)",
                    self.base,
                    root_cause(&e)
                )
            } else {
                anyhow!("request to {} failed: {}", self.base, root_cause(&e))
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("http_error").to_string();
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "the server answered {status}: {}",
                    text.chars().take(200).collect::<String>()
                )
            });
        Err(ApiFailure { status, code, message }.into())
    }

    pub async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let response = self.send(req).await?;
        response
            .json::<T>()
            .await
            .context("the server's answer is not the JSON expected")
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
