//! Starting and stopping the server: the data directory, the master key, the database and
//! its migrations, the first admin key, the listener (plain HTTP or TLS) and graceful
//! shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use russet_apple::push_cert::VendorIdentity;
use russet_core::enroll::ProfileSigner;
use russet_core::push_cert::PushVendor;
use russet_core::{Clock, Core, Settings};
use russet_store::crypto::{MasterKey, MasterKeySource, write_private_file};
use russet_store::{Store, StoreOptions};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use crate::{AppState, app};

/// Name of the master key file in the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";
/// Name of the file the first admin API key is written to.
pub const ADMIN_KEY_FILE: &str = "admin-api-key";
/// How long in-flight requests get to finish after a stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {detail}")]
    DataDir { path: PathBuf, detail: String },
    #[error(transparent)]
    Crypto(#[from] russet_store::crypto::CryptoError),
    #[error(transparent)]
    Store(#[from] russet_store::StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {detail} (is another server using that port? set listen or --listen)")]
    Bind { addr: SocketAddr, detail: String },
    #[error("cannot load the TLS certificate {cert} and key {key}: {detail}")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
    #[error("cannot write the admin API key to {path}: {detail}")]
    AdminKeyFile { path: PathBuf, detail: String },
    #[error("{0}")]
    Core(#[from] russet_core::CoreError),
    #[error("the MDM vendor signing identity (mdm.vendor_certificate_file, mdm.vendor_key_file) is unusable: {0}")]
    Vendor(String),
    #[error("the server stopped with an error: {0}")]
    Serve(std::io::Error),
}

/// Everything needed to start besides the configuration.
pub struct StartOptions {
    /// `RUSSET_MASTER_KEY`, if set; otherwise `<data-dir>/master.key` is used (and created).
    pub master_key: Option<SecretString>,
    pub clock: Arc<dyn Clock>,
}

/// The data directory, master key and database, ready for commands and the server.
pub struct Opened {
    pub core: Core,
    pub master_key_source: MasterKeySource,
}

/// Creates the data directory (mode 0700) if needed.
pub fn ensure_data_dir(dir: &Path) -> Result<(), StartError> {
    let err = |e: std::io::Error| StartError::DataDir {
        path: dir.to_path_buf(),
        detail: e.to_string(),
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    Ok(())
}

/// Opens the data directory, the master key and the database (applying migrations).
pub async fn open(config: &Config, options: &StartOptions) -> Result<Opened, StartError> {
    ensure_data_dir(&config.data_dir)?;
    let key = match &options.master_key {
        Some(value) => MasterKey::from_base64(value.expose_secret(), MasterKeySource::Environment)?,
        None => MasterKey::load_or_create(&config.data_dir.join(MASTER_KEY_FILE))?,
    };
    let source = key.source().clone();
    let store = Store::open(&StoreOptions::new(config.effective_database_url()), key).await?;
    Ok(Opened {
        core: Core::new(store, options.clock.clone(), settings(config)?),
        master_key_source: source,
    })
}

/// Reads the MDM vendor signing identity named by the configuration, if any.
fn push_vendor(config: &Config) -> Result<Option<PushVendor>, StartError> {
    let (Some(cert), Some(key)) = (&config.mdm.vendor_certificate_file, &config.mdm.vendor_key_file) else {
        return Ok(None);
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| StartError::Vendor(format!("cannot read {}: {e}", path.display())))
    };
    let chain = match &config.mdm.vendor_chain_file {
        Some(p) => Some(read(p)?),
        None => None,
    };
    let vendor = VendorIdentity::from_pem(&read(cert)?, &read(key)?, chain.as_deref())
        .map_err(|e| StartError::Vendor(format!("{} and {}: {e}", cert.display(), key.display())))?;
    Ok(Some(PushVendor(Arc::new(vendor))))
}

/// Reads the enrollment profile signing identity and anchor certificates, if configured.
fn profile_settings(config: &Config) -> Result<(Option<ProfileSigner>, Vec<Vec<u8>>), StartError> {
    let bad = |what: &str, path: &Path, e: String| {
        StartError::Config(crate::config::ConfigError::Invalid(format!(
            "{what} {}: {e}",
            path.display()
        )))
    };
    let signer = match (
        &config.mdm.profile_signing_certificate_file,
        &config.mdm.profile_signing_key_file,
    ) {
        (Some(c), Some(k)) => {
            let cert_pem = std::fs::read(c).map_err(|e| bad("cannot read", c, e.to_string()))?;
            let key_pem = std::fs::read(k).map_err(|e| bad("cannot read", k, e.to_string()))?;
            let mut certs = openssl::x509::X509::stack_from_pem(&cert_pem)
                .map_err(|e| bad("mdm.profile_signing_certificate_file", c, e.to_string()))?;
            if certs.is_empty() {
                return Err(bad(
                    "mdm.profile_signing_certificate_file",
                    c,
                    "holds no certificate".into(),
                ));
            }
            let cert = certs.remove(0);
            let key = openssl::pkey::PKey::private_key_from_pem(&key_pem)
                .map_err(|e| bad("mdm.profile_signing_key_file", k, e.to_string()))?;
            if !russet_apple::push_cert::cert_matches_key(&cert, &key) {
                return Err(bad(
                    "mdm.profile_signing_key_file",
                    k,
                    "does not belong to mdm.profile_signing_certificate_file".into(),
                ));
            }
            Some(ProfileSigner {
                cert,
                key,
                chain: certs,
            })
        }
        _ => None,
    };
    let anchors = match &config.mdm.anchor_certificate_file {
        Some(p) => {
            let pem = std::fs::read(p).map_err(|e| bad("cannot read", p, e.to_string()))?;
            let certs = openssl::x509::X509::stack_from_pem(&pem)
                .map_err(|e| bad("mdm.anchor_certificate_file", p, e.to_string()))?;
            certs
                .iter()
                .map(|c| {
                    c.to_der()
                        .map_err(|e| bad("mdm.anchor_certificate_file", p, e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        None => Vec::new(),
    };
    Ok((signer, anchors))
}

/// The domain's settings from the configuration.
pub fn settings(config: &Config) -> Result<Settings, StartError> {
    let dep = russet_apple::dep::DepConfig {
        base_url: config.apple.dep_url.clone(),
        user_agent: format!("russet/{}", env!("CARGO_PKG_VERSION")),
        ..russet_apple::dep::DepConfig::default()
    };
    let (profile_signer, profile_anchor_certs) = profile_settings(config)?;
    Ok(Settings {
        expiry_warning: time::Duration::days(i64::from(config.expiry_warning_days)),
        public_url: config.effective_public_url(),
        dep,
        sync_interval: time::Duration::hours(i64::from(config.sync.interval_hours)),
        device_retention_days: config.sync.device_retention_days,
        page_size: config.sync.page_size,
        sync_batch_devices: config.sync.batch_devices,
        assign_concurrency: config.sync.assign_concurrency as usize,
        sync_on_upload: config.sync.enabled,
        organization: config.mdm.organization.trim().to_string(),
        apns: russet_apple::apns::ApnsConfig {
            base_url: config.apple.apns_url.trim_end_matches('/').to_string(),
            extra_roots_pem: match &config.apple.apns_ca_file {
                Some(p) => Some(std::fs::read(p).map_err(|e| {
                    StartError::Config(crate::config::ConfigError::Invalid(format!(
                        "cannot read apple.apns_ca_file {}: {e}",
                        p.display()
                    )))
                })?),
                None => None,
            },
            ..russet_apple::apns::ApnsConfig::default()
        },
        push_vendor: push_vendor(config)?,
        identity_lifetime: time::Duration::days(i64::from(config.mdm.identity_lifetime_days)),
        scep_allow_single_des: config.mdm.scep_allow_single_des,
        ca_key_type: config
            .mdm
            .ca_key_type
            .parse()
            .map_err(|e| StartError::Config(crate::config::ConfigError::Invalid(format!("mdm.ca_key_type: {e}"))))?,
        profile_signer,
        profile_anchor_certs,
        device_ca_roots: device_ca_roots(config)?,
        configuration_stuck_after: time::Duration::minutes(i64::from(config.mdm.setup_stuck_minutes)),
        user_lockout_attempts: config.users.lockout_attempts,
        user_lockout_duration: time::Duration::minutes(i64::from(config.users.lockout_minutes)),
        vpp: russet_apple::vpp::VppConfig {
            base_url: config.apple.vpp_url.clone(),
            user_agent: format!("russet/{}", env!("CARGO_PKG_VERSION")),
            ..russet_apple::vpp::VppConfig::default()
        },
        vpp_sync_interval: time::Duration::hours(i64::from(config.sync.vpp_interval_hours)),
        health: russet_core::health::HealthSettings {
            warning: time::Duration::days(i64::from(config.expiry_warning_days)),
            critical: time::Duration::days(i64::from(config.health.critical_days)),
            sync_warning: time::Duration::hours(i64::from(config.health.sync_warning_hours)),
            sync_critical: time::Duration::hours(i64::from(config.health.sync_critical_hours)),
            webhook: match (&config.health.webhook_url, &config.health.webhook_secret) {
                (Some(url), Some(secret)) => Some(russet_core::health::WebhookSettings {
                    url: url.clone(),
                    secret: SecretString::from(secret.as_str()),
                    max_attempts: config.health.webhook_max_attempts,
                }),
                _ => None,
            },
        },
        ..Settings::default()
    })
}

/// Sends webhook notifications with reqwest (10-second timeout, no redirects).
struct ReqwestWebhook(reqwest::Client);

impl russet_core::health::WebhookTransport for ReqwestWebhook {
    fn send(
        &self,
        request: russet_core::health::WebhookRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u16, String>> + Send + '_>> {
        Box::pin(async move {
            let mut builder = self.0.post(&request.url).body(request.body);
            for (name, value) in &request.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            match builder.send().await {
                Ok(response) => Ok(response.status().as_u16()),
                Err(e) => Err(format!("the webhook could not be reached: {e}")),
            }
        })
    }
}

fn webhook_transport() -> Result<ReqwestWebhook, StartError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(format!("russet/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .map(ReqwestWebhook)
        .map_err(|e| {
            StartError::Config(crate::config::ConfigError::Invalid(format!(
                "cannot set up the webhook client: {e}"
            )))
        })
}

/// The roots MachineInfo signatures must chain to (`apple.device_ca_file`).
fn device_ca_roots(config: &Config) -> Result<Vec<openssl::x509::X509>, StartError> {
    let Some(path) = &config.apple.device_ca_file else {
        tracing::warn!(
            "apple.device_ca_file is not set: the MachineInfo of devices enrolling through ADE is checked for its \
             signature only, not for its chain to Apple's device CA"
        );
        return Ok(Vec::new());
    };
    let invalid = |why: String| StartError::Config(crate::config::ConfigError::Invalid(why));
    let pem = std::fs::read(path)
        .map_err(|e| invalid(format!("cannot read apple.device_ca_file {}: {e}", path.display())))?;
    let roots = openssl::x509::X509::stack_from_pem(&pem).map_err(|_| {
        invalid(format!(
            "apple.device_ca_file {} holds no readable PEM certificate",
            path.display()
        ))
    })?;
    if roots.is_empty() {
        return Err(invalid(format!(
            "apple.device_ca_file {} holds no certificate",
            path.display()
        )));
    }
    Ok(roots)
}

/// Writes an admin key to `<data-dir>/admin-api-key`, readable by its owner only.
pub fn write_admin_key(data_dir: &Path, secret: &SecretString) -> Result<PathBuf, StartError> {
    let path = data_dir.join(ADMIN_KEY_FILE);
    write_private_file(&path, format!("{}\n", secret.expose_secret()).as_bytes(), false).map_err(|e| {
        StartError::AdminKeyFile {
            path: path.clone(),
            detail: e.to_string(),
        }
    })?;
    Ok(path)
}

/// A server running in the background of this process.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub public_url: String,
    pub core: Core,
    /// Where the first admin key was written, when this start created it.
    pub admin_key_file: Option<PathBuf>,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_background: tokio::sync::watch::Sender<bool>,
    background: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting connections, lets in-flight requests finish (up to the grace
    /// period), then closes the database.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop_background.send(true);
        self.handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        let result = self.task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Some(bg) = self.background {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, bg).await;
        }
        self.core.store.close().await;
        result
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        (&mut self.task).await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Opens everything, creates the first admin key if this database has none, and starts
/// serving on the configured address.
pub async fn start(config: &Config, options: StartOptions) -> Result<RunningServer, StartError> {
    config.validate()?;
    let opened = open(config, &options).await?;
    match &opened.master_key_source {
        MasterKeySource::Created(p) => {
            tracing::info!(path = %p.display(), "created a new master key; back it up: without it the stored secrets cannot be read")
        }
        MasterKeySource::File(p) => tracing::debug!(path = %p.display(), "master key read"),
        MasterKeySource::Environment => tracing::debug!("master key from RUSSET_MASTER_KEY"),
    }
    let mut core = opened.core;
    let mut admin_key_file = None;
    if let Some(new) = core.admin_key_bootstrap().await? {
        let path = write_admin_key(&config.data_dir, &new.secret)?;
        tracing::info!(path = %path.display(), "created the admin API key; it is stored only as a hash, keep this file safe");
        admin_key_file = Some(path);
    } else if !config.data_dir.join(ADMIN_KEY_FILE).exists() {
        tracing::info!(
            "this database already has an admin API key, but {} is not here; `russet admin-key rotate` makes a new one",
            config.data_dir.join(ADMIN_KEY_FILE).display()
        );
    }
    // The device CA and its SCEP RA: made on the first start, loaded on every later one.
    // Making the CA's RSA-3072 key can take a second, so it happens in the background: the
    // server answers at once, and a device arriving meanwhile waits for the same CA.
    {
        let core = core.clone();
        tokio::spawn(async move {
            if let Err(e) = core.device_ca().await {
                tracing::error!(error = %e, "cannot load or create the device CA; enrollment will fail until it can");
            } else if let Err(e) = core.scep_ra(false).await {
                tracing::error!(error = %e, "cannot load or create the SCEP RA; enrollment will fail until it can");
            }
        });
    }

    let addr = config.listen_addr()?;
    let listener = std::net::TcpListener::bind(addr).map_err(|e| StartError::Bind {
        addr,
        detail: e.to_string(),
    })?;
    let local_addr = listener.local_addr().map_err(|e| StartError::Bind {
        addr,
        detail: e.to_string(),
    })?;
    let public_url = if config.public_url.is_none() {
        // Report the real port when listening on port 0.
        format!(
            "{}://{}",
            if config.tls_enabled() { "https" } else { "http" },
            local_addr
        )
    } else {
        config.effective_public_url()
    };
    core.settings.public_url = public_url.clone();
    if core.settings.health.webhook.is_some() {
        core.set_webhook_transport(Arc::new(webhook_transport()?));
    }
    let state = AppState {
        core: core.clone(),
        public_url: Arc::from(public_url.as_str()),
        client_cert_header: config.mdm.client_cert_header.as_deref().map(Arc::from),
        mdm_signatures: Arc::new(russet_apple::mdm::SignatureVerifier::new(crate::MDM_SIGNATURE_MEMORY)),
        http_metrics: crate::metrics::new_http_metrics(),
        metrics_token: config.metrics.token.as_deref().filter(|t| !t.is_empty()).map(Arc::from),
    };
    let service = app(state).into_make_service();
    let handle = Handle::new();
    let server = axum_server::from_tcp(listener).map_err(|e| StartError::Bind {
        addr,
        detail: e.to_string(),
    })?;
    let task = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => {
            let tls = crate::tls::config(cert, key, config.tls.client_certificates).map_err(|e| StartError::Tls {
                cert: cert.clone(),
                key: key.clone(),
                detail: e.to_string(),
            })?;
            let server = server
                .acceptor(crate::tls::ClientCertAcceptor::new(tls))
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(service).await })
        }
        _ => {
            let server = server.handle(handle.clone());
            tokio::spawn(async move { server.serve(service).await })
        }
    };
    let (stop_background, mut stopped) = tokio::sync::watch::channel(false);
    let background = config.sync.enabled.then(|| {
        let core = core.clone();
        tokio::spawn(async move {
            core.run_scheduler(async move {
                let _ = stopped.changed().await;
            })
            .await
        })
    });
    tracing::info!(
        listen = %local_addr,
        public_url = %public_url,
        database = core.store.backend().as_str(),
        tls = config.tls_enabled(),
        "russet is serving"
    );
    Ok(RunningServer {
        local_addr,
        public_url,
        core,
        admin_key_file,
        handle,
        task,
        stop_background,
        background,
    })
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM from the moment it is called, and returns a
/// future that resolves on the first of them. Registering before the server starts means a
/// signal sent as soon as it reports "serving" stops it gracefully instead of killing it.
pub fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    #[cfg(unix)]
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs until a stop signal, then shuts down gracefully.
pub async fn run(config: &Config, options: StartOptions) -> Result<(), StartError> {
    let stop = stop_signal();
    let mut server = start(config, options).await?;
    tokio::select! {
        result = server.wait() => result.map_err(StartError::Serve)?,
        _ = stop => {
            tracing::info!("stop signal received; finishing in-flight requests");
            server.shutdown().await.map_err(StartError::Serve)?;
            tracing::info!("stopped");
        }
    }
    Ok(())
}
