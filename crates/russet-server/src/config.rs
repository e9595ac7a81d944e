//! Configuration of `russet serve`: built-in defaults, then `russet.toml`, then `RUSSET_*`
//! environment variables, then command-line flags, each layer overriding the one before.
//! Nothing is required: with no file and no variables Russet serves on 127.0.0.1:8080 with
//! SQLite in `./russet-data`.
//!
//! Every key has one environment variable: the key path upper-cased, dots as underscores,
//! prefixed with `RUSSET_` (`tls.cert` → `RUSSET_TLS_CERT`). [`KEYS`] is the reference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One configuration key, for overrides and documentation.
pub struct KeySpec {
    /// Dotted path in `russet.toml`.
    pub path: &'static str,
    pub kind: ValueKind,
    pub default: &'static str,
    pub help: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Str,
    Int,
    Bool,
}

/// Every configuration key.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        path: "listen",
        kind: ValueKind::Str,
        default: "127.0.0.1:8080",
        help: "address and port to listen on",
    },
    KeySpec {
        path: "public_url",
        kind: ValueKind::Str,
        default: "http(s)://<listen>",
        help: "the URL devices and browsers reach Russet at; every device-facing URL is built from it",
    },
    KeySpec {
        path: "data_dir",
        kind: ValueKind::Str,
        default: "./russet-data",
        help: "directory for the SQLite database, master.key and admin-api-key",
    },
    KeySpec {
        path: "database_url",
        kind: ValueKind::Str,
        default: "sqlite://<data_dir>/russet.db",
        help: "sqlite://PATH, or postgres://USER@HOST/DB to share one database between several servers",
    },
    KeySpec {
        path: "log_format",
        kind: ValueKind::Str,
        default: "text",
        help: "text or json",
    },
    KeySpec {
        path: "log_level",
        kind: ValueKind::Str,
        default: "info",
        help: "a tracing filter: error, warn, info, debug, or e.g. russet=debug,sqlx=warn",
    },
    KeySpec {
        path: "expiry_warning_days",
        kind: ValueKind::Int,
        default: "30",
        help: "a credential expiring within this many days is reported as expiring",
    },
    KeySpec {
        path: "tls.cert",
        kind: ValueKind::Str,
        default: "",
        help: "PEM certificate (chain) file; enables HTTPS with tls.key",
    },
    KeySpec {
        path: "tls.key",
        kind: ValueKind::Str,
        default: "",
        help: "PEM private key file for tls.cert",
    },
    KeySpec {
        path: "tls.client_certificates",
        kind: ValueKind::Bool,
        default: "true",
        help: "with HTTPS, ask clients for a certificate (optional) so devices can identify by their TLS client certificate",
    },
    KeySpec {
        path: "apple.dep_url",
        kind: ValueKind::Str,
        default: "https://mdmenrollment.apple.com",
        help: "Apple's device assignment (DEP) API; point it at applesim for tests and demos",
    },
    KeySpec {
        path: "apple.apns_url",
        kind: ValueKind::Str,
        default: "https://api.push.apple.com",
        help: "Apple's push notification service (APNs); point it at applesim for tests and demos",
    },
    KeySpec {
        path: "apple.apns_ca_file",
        kind: ValueKind::Str,
        default: "",
        help: "extra PEM root certificates to trust for apple.apns_url (applesim's APNs CA); Apple's needs none",
    },
    KeySpec {
        path: "apple.device_ca_file",
        kind: ValueKind::Str,
        default: "",
        help: "PEM root certificates of the device identities that sign MachineInfo during Automated Device \
               Enrollment (Apple's device CA; applesim's for tests); without it only the signature is checked",
    },
    KeySpec {
        path: "apple.vpp_url",
        kind: ValueKind::Str,
        default: "https://vpp.itunes.apple.com/mdm/v2",
        help: "Apple's Apps and Books (VPP) API v2; point it at applesim (<applesim>/mdm/v2) for tests and demos",
    },
    KeySpec {
        path: "mdm.organization",
        kind: ValueKind::Str,
        default: "Russet",
        help: "the organisation's name, shown in push certificate requests and enrollment profiles",
    },
    KeySpec {
        path: "mdm.vendor_certificate_file",
        kind: ValueKind::Str,
        default: "",
        help: "PEM MDM vendor signing certificate from Apple (may be followed by its chain); with \
               mdm.vendor_key_file, Russet signs push certificate requests itself",
    },
    KeySpec {
        path: "mdm.vendor_key_file",
        kind: ValueKind::Str,
        default: "",
        help: "PEM private key of mdm.vendor_certificate_file",
    },
    KeySpec {
        path: "mdm.vendor_chain_file",
        kind: ValueKind::Str,
        default: "",
        help: "PEM chain of the vendor certificate up to Apple's root (WWDR intermediate, Apple Root CA), when \
               not in mdm.vendor_certificate_file",
    },
    KeySpec {
        path: "mdm.identity_lifetime_days",
        kind: ValueKind::Int,
        default: "365",
        help: "lifetime of the device identity certificates Russet's SCEP CA issues (1-825)",
    },
    KeySpec {
        path: "mdm.ca_key_type",
        kind: ValueKind::Str,
        default: "ec-p256",
        help: "key of the device CA Russet creates on its first start: \"ec-p256\" (fast; devices encrypt to the RSA \
               RA) or \"rsa-3072\" (for SCEP clients that encrypt to the CA itself); an existing CA is kept",
    },
    KeySpec {
        path: "mdm.setup_stuck_minutes",
        kind: ValueKind::Int,
        default: "60",
        help: "a device still waiting in Setup Assistant (awaiting configuration) this long after it enrolled is \
               shown as stuck (1-10080)",
    },
    KeySpec {
        path: "mdm.scep_allow_single_des",
        kind: ValueKind::Bool,
        default: "false",
        help: "accept SCEP requests encrypted with single DES (old clients such as scepclient 2.1; Apple devices never need it)",
    },
    KeySpec {
        path: "mdm.profile_signing_certificate_file",
        kind: ValueKind::Str,
        default: "",
        help: "PEM certificate (then its chain) that signs enrollment profiles, so devices show them as verified",
    },
    KeySpec {
        path: "mdm.profile_signing_key_file",
        kind: ValueKind::Str,
        default: "",
        help: "PEM private key of mdm.profile_signing_certificate_file",
    },
    KeySpec {
        path: "mdm.anchor_certificate_file",
        kind: ValueKind::Str,
        default: "",
        help: "PEM certificates enrollment profiles make devices trust (the CA of a private TLS certificate of public_url)",
    },
    KeySpec {
        path: "mdm.client_cert_header",
        kind: ValueKind::Str,
        default: "",
        help: "behind a TLS-terminating proxy that checks client certificates: the header carrying the device's \
               certificate (RFC 9440 Client-Cert, or nginx's $ssl_client_escaped_cert); trusted, so set it only \
               behind such a proxy",
    },
    KeySpec {
        path: "sync.enabled",
        kind: ValueKind::Bool,
        default: "true",
        help: "run background work in this process: automatic syncs, assignment retries, purging",
    },
    KeySpec {
        path: "sync.interval_hours",
        kind: ValueKind::Int,
        default: "12",
        help: "automatic delta sync of every token",
    },
    KeySpec {
        path: "sync.device_retention_days",
        kind: ValueKind::Int,
        default: "30",
        help: "devices removed from ABM are deleted this many days later",
    },
    KeySpec {
        path: "sync.page_size",
        kind: ValueKind::Int,
        default: "1000",
        help: "devices per page from Apple (1-1000)",
    },
    KeySpec {
        path: "sync.batch_devices",
        kind: ValueKind::Int,
        default: "10000",
        help: "devices a full fetch commits per transaction on SQLite (1-100000)",
    },
    KeySpec {
        path: "sync.assign_concurrency",
        kind: ValueKind::Int,
        default: "4",
        help: "profile assignment requests in flight at once per token (1-16)",
    },
    KeySpec {
        path: "sync.vpp_interval_hours",
        kind: ValueKind::Int,
        default: "12",
        help: "automatic sync of every Apps and Books token's apps and licences (1-168); at least daily, so one \
               failed sync does not flag the token",
    },
    KeySpec {
        path: "health.critical_days",
        kind: ValueKind::Int,
        default: "7",
        help: "a credential expiring within this many days is critical (the warning threshold is expiry_warning_days)",
    },
    KeySpec {
        path: "health.sync_warning_hours",
        kind: ValueKind::Int,
        default: "24",
        help: "a token with no successful sync for longer than this is sync_failing (warning)",
    },
    KeySpec {
        path: "health.sync_critical_hours",
        kind: ValueKind::Int,
        default: "72",
        help: "a token with no successful sync for this long is sync_failing (critical)",
    },
    KeySpec {
        path: "health.webhook_url",
        kind: ValueKind::Str,
        default: "",
        help: "http(s) URL that receives a signed JSON notification when a credential's health changes or it is renewed",
    },
    KeySpec {
        path: "health.webhook_secret",
        kind: ValueKind::Str,
        default: "",
        help: "HMAC-SHA256 key (at least 16 characters) of the X-Russet-Signature header; required with health.webhook_url",
    },
    KeySpec {
        path: "health.webhook_max_attempts",
        kind: ValueKind::Int,
        default: "10",
        help: "attempts before a notification is given up (1-100); retries wait 30 s, 1 min, 2 min, … up to an hour",
    },
    KeySpec {
        path: "metrics.token",
        kind: ValueKind::Str,
        default: "",
        help: "bearer token Prometheus must send to /metrics; empty leaves /metrics open (names and counts, no secrets)",
    },
    KeySpec {
        path: "users.lockout_attempts",
        kind: ValueKind::Int,
        default: "5",
        help: "consecutive failed sign-ins that lock a user account (1-100)",
    },
    KeySpec {
        path: "users.lockout_minutes",
        kind: ValueKind::Int,
        default: "15",
        help: "how long a locked user account stays locked, in minutes (1-1440); an administrator can unlock it sooner",
    },
];

/// TLS settings: both files or neither.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Ask clients for a certificate they may decline (devices present their identity).
    pub client_certificates: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            client_certificates: true,
        }
    }
}

/// Apple's services.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppleConfig {
    pub dep_url: String,
    pub vpp_url: String,
    pub apns_url: String,
    pub apns_ca_file: Option<PathBuf>,
    pub device_ca_file: Option<PathBuf>,
}

impl Default for AppleConfig {
    fn default() -> Self {
        AppleConfig {
            dep_url: russet_apple::dep::APPLE_DEP_URL.to_string(),
            vpp_url: russet_apple::vpp::APPLE_VPP_URL.to_string(),
            apns_url: russet_apple::apns::APNS_URL.to_string(),
            apns_ca_file: None,
            device_ca_file: None,
        }
    }
}

/// The MDM side: the organisation's name and the MDM vendor signing identity.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MdmConfig {
    pub organization: String,
    pub vendor_certificate_file: Option<PathBuf>,
    pub vendor_key_file: Option<PathBuf>,
    pub vendor_chain_file: Option<PathBuf>,
    pub identity_lifetime_days: u32,
    pub ca_key_type: String,
    pub setup_stuck_minutes: u32,
    pub scep_allow_single_des: bool,
    pub profile_signing_certificate_file: Option<PathBuf>,
    pub profile_signing_key_file: Option<PathBuf>,
    pub anchor_certificate_file: Option<PathBuf>,
    pub client_cert_header: Option<String>,
}

impl Default for MdmConfig {
    fn default() -> Self {
        MdmConfig {
            organization: "Russet".into(),
            vendor_certificate_file: None,
            vendor_key_file: None,
            vendor_chain_file: None,
            identity_lifetime_days: 365,
            ca_key_type: "ec-p256".into(),
            setup_stuck_minutes: 60,
            scep_allow_single_des: false,
            profile_signing_certificate_file: None,
            profile_signing_key_file: None,
            anchor_certificate_file: None,
            client_cert_header: None,
        }
    }
}

/// Device sync and background work.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    pub enabled: bool,
    pub interval_hours: u32,
    pub device_retention_days: u32,
    pub page_size: u32,
    pub batch_devices: u32,
    pub assign_concurrency: u32,
    pub vpp_interval_hours: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            enabled: true,
            interval_hours: 12,
            device_retention_days: 30,
            page_size: 1000,
            batch_devices: 10_000,
            assign_concurrency: 4,
            vpp_interval_hours: 12,
        }
    }
}

/// End users who sign in during enrollment.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {
    pub lockout_attempts: u32,
    pub lockout_minutes: u32,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            lockout_attempts: 5,
            lockout_minutes: 15,
        }
    }
}

/// Credential health thresholds and notifications.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub critical_days: u32,
    pub sync_warning_hours: u32,
    pub sync_critical_hours: u32,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub webhook_max_attempts: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            critical_days: 7,
            sync_warning_hours: 24,
            sync_critical_hours: 72,
            webhook_url: None,
            webhook_secret: None,
            webhook_max_attempts: 10,
        }
    }
}

/// The metrics endpoint.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub token: Option<String>,
}

/// The effective configuration.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub expiry_warning_days: u32,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub apple: AppleConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub mdm: MdmConfig,
    #[serde(default)]
    pub users: UsersConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            data_dir: PathBuf::from("./russet-data"),
            database_url: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            expiry_warning_days: 30,
            tls: TlsConfig::default(),
            apple: AppleConfig::default(),
            sync: SyncConfig::default(),
            mdm: MdmConfig::default(),
            users: UsersConfig::default(),
            health: HealthConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// A configuration that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("the configuration file {path} is not valid: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("{source_desc} sets {key} to \"{value}\", which is not valid: {detail}")]
    Value {
        source_desc: String,
        key: String,
        value: String,
        detail: String,
    },
    #[error("the configuration is not valid: {0}")]
    Invalid(String),
}

/// Where a value came from, for error messages.
fn env_name(path: &str) -> String {
    format!("RUSSET_{}", path.replace('.', "_").to_uppercase())
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or(path);
    let mut cur = table;
    for part in parts {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        cur = next;
    }
    cur.insert(last.to_string(), value);
}

fn typed(spec: &KeySpec, raw: &str, source_desc: &str) -> Result<toml::Value, ConfigError> {
    match spec.kind {
        ValueKind::Str => Ok(toml::Value::String(raw.to_string())),
        ValueKind::Int => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| ConfigError::Value {
                source_desc: source_desc.to_string(),
                key: spec.path.to_string(),
                value: raw.to_string(),
                detail: "expected a whole number".into(),
            }),
        ValueKind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(ConfigError::Value {
                source_desc: source_desc.to_string(),
                key: spec.path.to_string(),
                value: raw.to_string(),
                detail: "expected true or false".into(),
            }),
        },
    }
}

/// Builds the configuration from the layers.
#[derive(Debug)]
pub struct Loader {
    table: toml::Table,
}

impl Loader {
    /// Starts from the defaults, then reads `file` if given (it must exist), else
    /// `./russet.toml` if present.
    pub fn new(file: Option<&Path>) -> Result<Loader, ConfigError> {
        let mut table =
            toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Invalid(format!("defaults: {e}")))?;
        let default_file = Path::new("russet.toml");
        let path = match file {
            Some(p) => Some(p.to_path_buf()),
            None if default_file.exists() => Some(default_file.to_path_buf()),
            None => None,
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            let file_table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            merge(&mut table, file_table);
        }
        Ok(Loader { table })
    }

    /// Applies `RUSSET_*` variables for every key in [`KEYS`], read through `get`.
    pub fn env(mut self, get: impl Fn(&str) -> Option<String>) -> Result<Loader, ConfigError> {
        for spec in KEYS {
            let name = env_name(spec.path);
            if let Some(raw) = get(&name).filter(|v| !v.is_empty()) {
                let value = typed(spec, &raw, &format!("the environment variable {name}"))?;
                set_path(&mut self.table, spec.path, value);
            }
        }
        Ok(self)
    }

    /// Applies one command-line flag.
    pub fn flag(mut self, path: &str, raw: Option<&str>) -> Result<Loader, ConfigError> {
        let Some(raw) = raw else { return Ok(self) };
        let spec = KEYS
            .iter()
            .find(|k| k.path == path)
            .ok_or_else(|| ConfigError::Invalid(format!("unknown configuration key {path}")))?;
        let value = typed(spec, raw, &format!("the flag --{}", path.replace(['.', '_'], "-")))?;
        set_path(&mut self.table, path, value);
        Ok(self)
    }

    /// The validated configuration.
    pub fn finish(self) -> Result<Config, ConfigError> {
        let config: Config = toml::Value::Table(self.table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Config {
    /// Checks values that deserialising alone does not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if let Some(url) = &self.public_url {
            parse_public_url(url)?;
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(format!(
                "database_url must start with sqlite: or postgres:// (got {})",
                russet_store::redact_url(url)
            )));
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "tls.cert and tls.key must be given together".into(),
                ));
            }
            _ => {}
        }
        if !(self.apple.dep_url.starts_with("https://") || self.apple.dep_url.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!(
                "apple.dep_url must be an http(s) URL (got {})",
                self.apple.dep_url
            )));
        }
        if !(self.apple.vpp_url.starts_with("https://") || self.apple.vpp_url.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!(
                "apple.vpp_url must be an http(s) URL (got {})",
                self.apple.vpp_url
            )));
        }
        if !self.apple.apns_url.starts_with("https://") {
            return Err(ConfigError::Invalid(format!(
                "apple.apns_url must be an https URL: the push certificate is a TLS client certificate (got {})",
                self.apple.apns_url
            )));
        }
        let org = self.mdm.organization.trim();
        if org.is_empty() || org.chars().count() > 64 || org.chars().any(char::is_control) {
            return Err(ConfigError::Invalid(format!(
                "mdm.organization must be 1 to 64 printable characters (got \"{}\")",
                self.mdm.organization
            )));
        }
        match (&self.mdm.vendor_certificate_file, &self.mdm.vendor_key_file) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "mdm.vendor_certificate_file and mdm.vendor_key_file must be given together".into(),
                ));
            }
            _ => {}
        }
        match (
            &self.mdm.profile_signing_certificate_file,
            &self.mdm.profile_signing_key_file,
        ) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "mdm.profile_signing_certificate_file and mdm.profile_signing_key_file must be given together"
                        .into(),
                ));
            }
            _ => {}
        }
        if let Err(e) = self.mdm.ca_key_type.parse::<russet_apple::scep::CaKeyType>() {
            return Err(ConfigError::Invalid(format!("mdm.ca_key_type: {e}")));
        }
        let ranges = [
            ("sync.interval_hours", self.sync.interval_hours, 1, 168),
            ("sync.device_retention_days", self.sync.device_retention_days, 1, 3650),
            ("sync.page_size", self.sync.page_size, 1, 1000),
            ("sync.batch_devices", self.sync.batch_devices, 1, 100_000),
            ("sync.assign_concurrency", self.sync.assign_concurrency, 1, 16),
            ("mdm.identity_lifetime_days", self.mdm.identity_lifetime_days, 1, 825),
            ("mdm.setup_stuck_minutes", self.mdm.setup_stuck_minutes, 1, 10_080),
            ("users.lockout_attempts", self.users.lockout_attempts, 1, 100),
            ("users.lockout_minutes", self.users.lockout_minutes, 1, 1440),
            ("sync.vpp_interval_hours", self.sync.vpp_interval_hours, 1, 168),
            ("health.critical_days", self.health.critical_days, 1, 365),
            ("health.sync_warning_hours", self.health.sync_warning_hours, 1, 8760),
            ("health.sync_critical_hours", self.health.sync_critical_hours, 1, 8760),
            ("health.webhook_max_attempts", self.health.webhook_max_attempts, 1, 100),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::Invalid(format!(
                    "{key} must be between {min} and {max} (got {value})"
                )));
            }
        }
        if self.expiry_warning_days == 0 || self.expiry_warning_days > 365 {
            return Err(ConfigError::Invalid(format!(
                "expiry_warning_days must be between 1 and 365 (got {})",
                self.expiry_warning_days
            )));
        }
        if self.health.critical_days >= self.expiry_warning_days {
            return Err(ConfigError::Invalid(format!(
                "health.critical_days ({}) must be less than expiry_warning_days ({}), the warning threshold",
                self.health.critical_days, self.expiry_warning_days
            )));
        }
        if self.health.sync_warning_hours >= self.health.sync_critical_hours {
            return Err(ConfigError::Invalid(format!(
                "health.sync_warning_hours ({}) must be less than health.sync_critical_hours ({})",
                self.health.sync_warning_hours, self.health.sync_critical_hours
            )));
        }
        match (
            self.health.webhook_url.as_deref(),
            self.health.webhook_secret.as_deref(),
        ) {
            (Some(url), secret) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) || url.chars().any(char::is_whitespace)
                {
                    return Err(ConfigError::Invalid(format!(
                        "health.webhook_url must be an http(s) URL (got {url})"
                    )));
                }
                if secret.is_none_or(|s| s.chars().count() < 16) {
                    return Err(ConfigError::Invalid(
                        "health.webhook_url needs health.webhook_secret, at least 16 characters (e.g. the output of \
                         `openssl rand -hex 32`), so the receiver can check each notification's signature"
                            .into(),
                    ));
                }
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "health.webhook_secret is set but health.webhook_url is not: set both, or neither".into(),
                ));
            }
            (None, None) => {}
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "listen must be an IP address and port such as 127.0.0.1:8080 (got {})",
                self.listen
            ))
        })
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls.cert.is_some() && self.tls.key.is_some()
    }

    /// The database URL: the configured one, or SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("russet.db").display()),
        }
    }

    /// The public URL without a trailing slash: the configured one, or derived from `listen`.
    pub fn effective_public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!(
                "{}://{}",
                if self.tls_enabled() { "https" } else { "http" },
                self.listen
            ),
        }
    }
}

fn parse_public_url(url: &str) -> Result<(), ConfigError> {
    let bad = |detail: &str| ConfigError::Invalid(format!("public_url {url} is not usable: {detail}"));
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("it must start with https:// (or http:// for testing)"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(bad("it has no host name"));
    }
    if url.contains('?') || url.contains('#') {
        return Err(bad("it must not have a query or fragment"));
    }
    if url.chars().any(|c| c.is_whitespace()) {
        return Err(bad("it must not contain spaces"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_need_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = Loader::new(Some(&write(&dir, "")))
            .unwrap()
            .env(env(&[]))
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.effective_public_url(), "http://127.0.0.1:8080");
        assert_eq!(c.effective_database_url(), "sqlite://./russet-data/russet.db?mode=rwc");
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("russet.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            &dir,
            "listen = \"0.0.0.0:9000\"\npublic_url = \"https://mdm.example.com/\"\nexpiry_warning_days = 20\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        );
        let c = Loader::new(Some(&file))
            .unwrap()
            .env(env(&[
                ("RUSSET_LISTEN", "127.0.0.1:9001"),
                ("RUSSET_TLS_KEY", "env.pem"),
                ("RUSSET_EXPIRY_WARNING_DAYS", "14"),
            ]))
            .unwrap()
            .flag("listen", Some("127.0.0.1:9002"))
            .unwrap()
            .flag("data_dir", None)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9002", "flag beats env beats file");
        assert_eq!(c.tls.cert.as_deref(), Some(Path::new("c.pem")), "file value kept");
        assert_eq!(c.tls.key.as_deref(), Some(Path::new("env.pem")), "env beats file");
        assert_eq!(c.expiry_warning_days, 14);
        assert_eq!(c.effective_public_url(), "https://mdm.example.com");
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "");
        let e = Loader::new(Some(&file))
            .unwrap()
            .env(env(&[("RUSSET_EXPIRY_WARNING_DAYS", "soon")]))
            .unwrap_err();
        assert!(e.to_string().contains("RUSSET_EXPIRY_WARNING_DAYS"), "{e}");
        let e = Loader::new(Some(&write(&dir, "lisen = \"x\"\n")))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(e.to_string().contains("lisen"), "unknown keys are refused by name: {e}");
        let e = Loader::new(Some(&write(&dir, "listen = \"localhost\"\n")))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
        let e = Loader::new(Some(&write(&dir, "public_url = \"mdm.example.com\"\n")))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
        let e = Loader::new(Some(&write(&dir, "[tls]\ncert = \"c.pem\"\n")))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(e.to_string().contains("together"), "{e}");
        let e = Loader::new(Some(&write(&dir, "database_url = \"mysql://x\"\n")))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(e.to_string().contains("postgres://"), "{e}");
        let e = Loader::new(Some(&write(&dir, "[mdm]\nca_key_type = \"rsa-1024\"\n")))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(
            e.to_string().contains("mdm.ca_key_type") && e.to_string().contains("rsa-3072"),
            "{e}"
        );
        let e = Loader::new(Some(&write(&dir, "listen = [\n"))).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        let e = Loader::new(Some(&dir.path().join("missing.toml"))).err().unwrap();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    }

    #[test]
    fn apple_and_sync_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            &dir,
            "[apple]\ndep_url = \"http://127.0.0.1:9800\"\n[sync]\ninterval_hours = 6\n",
        );
        let c = Loader::new(Some(&file))
            .unwrap()
            .env(env(&[
                ("RUSSET_SYNC_ENABLED", "false"),
                ("RUSSET_SYNC_PAGE_SIZE", "500"),
            ]))
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(c.apple.dep_url, "http://127.0.0.1:9800");
        assert_eq!(
            (c.sync.enabled, c.sync.interval_hours, c.sync.page_size),
            (false, 6, 500)
        );
        let c = Loader::new(Some(&write(&dir, ""))).unwrap().finish().unwrap();
        assert_eq!(c.apple.dep_url, "https://mdmenrollment.apple.com");
        let e = Loader::new(Some(&write(&dir, "")))
            .unwrap()
            .env(env(&[("RUSSET_SYNC_ENABLED", "maybe")]))
            .unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
        let e = Loader::new(Some(&write(&dir, "[sync]\npage_size = 5000\n")))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(
            e.to_string().contains("sync.page_size must be between 1 and 1000"),
            "{e}"
        );
        let e = Loader::new(Some(&write(&dir, "[apple]\ndep_url = \"mdmenrollment.apple.com\"\n")))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(e.to_string().contains("apple.dep_url"), "{e}");
        let e = Loader::new(Some(&write(&dir, "[sync]\nintervall_hours = 6\n")))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(e.to_string().contains("intervall_hours"), "{e}");
    }

    #[test]
    fn user_lockout_settings() {
        let dir = tempfile::tempdir().unwrap();
        let c = Loader::new(Some(&write(&dir, ""))).unwrap().finish().unwrap();
        assert_eq!(c.users, UsersConfig::default());
        assert_eq!((c.users.lockout_attempts, c.users.lockout_minutes), (5, 15));
        let c = Loader::new(Some(&write(&dir, "[users]\nlockout_attempts = 3\n")))
            .unwrap()
            .env(env(&[("RUSSET_USERS_LOCKOUT_MINUTES", "30")]))
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!((c.users.lockout_attempts, c.users.lockout_minutes), (3, 30));
        let e = Loader::new(Some(&write(&dir, "[users]\nlockout_attempts = 0\n")))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("users.lockout_attempts must be between 1 and 100"),
            "{e}"
        );
    }

    #[test]
    fn every_key_has_a_spec_and_every_spec_a_field() {
        let full = Config {
            public_url: Some("https://x".into()),
            database_url: Some("sqlite://x".into()),
            tls: TlsConfig {
                cert: Some("c".into()),
                key: Some("k".into()),
                client_certificates: true,
            },
            health: HealthConfig {
                webhook_url: Some("https://hooks.example.com/x".into()),
                webhook_secret: Some("0123456789abcdef".into()),
                ..HealthConfig::default()
            },
            metrics: MetricsConfig {
                token: Some("t".into()),
            },
            apple: AppleConfig {
                apns_ca_file: Some("ca".into()),
                device_ca_file: Some("dca".into()),
                ..AppleConfig::default()
            },
            mdm: MdmConfig {
                vendor_certificate_file: Some("v".into()),
                vendor_key_file: Some("vk".into()),
                vendor_chain_file: Some("vc".into()),
                profile_signing_certificate_file: Some("pc".into()),
                profile_signing_key_file: Some("pk".into()),
                anchor_certificate_file: Some("a".into()),
                client_cert_header: Some("Client-Cert".into()),
                ..MdmConfig::default()
            },
            ..Config::default()
        };
        let table = toml::Table::try_from(full).unwrap();
        let mut paths = Vec::new();
        for (k, v) in &table {
            match v {
                toml::Value::Table(t) => paths.extend(t.keys().map(|sub| format!("{k}.{sub}"))),
                _ => paths.push(k.clone()),
            }
        }
        paths.sort();
        let mut specs: Vec<String> = KEYS.iter().map(|k| k.path.to_string()).collect();
        specs.sort();
        assert_eq!(paths, specs);
    }
}
