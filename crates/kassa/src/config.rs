//! Configuration, declared once. Each option of `kassa serve` is one field of [`ServeOptions`]:
//! its doc comment is the help, its attribute names the flag and the `KASSA_*` variable and
//! holds the default, and its name is the key in the TOML file (`--config`). The first that
//! sets a value wins: flag, then environment variable, then file, then default.

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://kassa-data/kassa.db";
pub const DEFAULT_DATA_DIR: &str = "kassa-data";
/// The one key of the file that is not an option of `serve`: every command reads it.
const DATABASE_URL_KEY: &str = "database_url";

/// A span of time written as `500ms`, `90s`, `30m`, `24h` or `7d`; held in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub ms: u64,
}

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Span, String> {
        parse_duration(text).map(|d| Span {
            ms: d.as_millis() as u64,
        })
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{}ms", self.ms))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Span, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What `--order-retention` and `--callback-retention` ask for (`kassa serve`, `kassa prune`).
pub fn retention_policy(
    order_retention: Option<Span>,
    callback_retention: Option<Span>,
) -> kassa_server::retention::RetentionPolicy {
    kassa_server::retention::RetentionPolicy {
        order_retention_ms: order_retention.map(|span| span.ms),
        callback_retention_ms: callback_retention.map(|span| span.ms),
    }
}

/// Every option of `kassa serve`.
#[derive(Args, Serialize, Deserialize, Clone, Debug)]
pub struct ServeOptions {
    /// Address to listen on.
    #[arg(long, env = "KASSA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Base URL payers reach kassa at; payUrl starts with it. [default: http://LISTEN]
    #[arg(long, env = "KASSA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Folder for files kassa writes (demo keys). [default: the SQLite file's folder, or kassa-data]
    #[arg(long, env = "KASSA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// How long a collect order waits for its payer, e.g. 30m.
    #[arg(long, env = "KASSA_COLLECT_ORDER_LIFETIME", default_value = "30m")]
    pub collect_order_lifetime: Span,
    /// How long a PIX order waits for its payment, e.g. 24h.
    #[arg(long, env = "KASSA_PIX_ORDER_LIFETIME", default_value = "24h")]
    pub pix_order_lifetime: Span,
    /// Create (once) a demo merchant with EUR, USD and BRL apps and print how to use it.
    /// Implies --allow-private-callbacks.
    #[arg(long, env = "KASSA_DEMO")]
    pub demo: bool,
    /// How often an unacknowledged callback is retried, e.g. 60s.
    #[arg(long, env = "KASSA_CALLBACK_RETRY_INTERVAL", default_value = "60s")]
    pub callback_retry_interval: Span,
    /// How long a callback is retried before it is marked dead, e.g. 24h.
    #[arg(long, env = "KASSA_CALLBACK_MAX_AGE", default_value = "24h")]
    pub callback_max_age: Span,
    /// How often the channels are read again from the database (a change made on any node
    /// takes effect within this time), e.g. 5s.
    #[arg(long, env = "KASSA_CHANNEL_REFRESH_INTERVAL", default_value = "5s")]
    pub channel_refresh_interval: Span,
    /// How long after an order is opened at an upstream kassa first asks the upstream about it
    /// (if no callback came); the pause doubles after each check, e.g. 60s.
    #[arg(long, env = "KASSA_RECONCILE_AFTER", default_value = "60s")]
    pub reconcile_after: Span,
    /// The longest pause between two checks of one upstream order, e.g. 10m.
    #[arg(long, env = "KASSA_RECONCILE_MAX_INTERVAL", default_value = "10m")]
    pub reconcile_max_interval: Span,
    /// How long past kassa's expiry an upstream may still call an order in progress before it
    /// becomes an exception for the operator, e.g. 1h.
    #[arg(long, env = "KASSA_RECONCILE_GRACE", default_value = "1h")]
    pub reconcile_grace: Span,
    /// Consecutive failed calls after which a channel's circuit opens (routing passes it by).
    #[arg(long, env = "KASSA_CIRCUIT_FAILURES", default_value_t = 5)]
    pub circuit_failures: u32,
    /// How long an open circuit stays open before one call probes the channel again, e.g. 30s.
    #[arg(long, env = "KASSA_CIRCUIT_COOL_DOWN", default_value = "30s")]
    pub circuit_cool_down: Span,
    /// How long one callback request may take, e.g. 10s.
    #[arg(long, env = "KASSA_CALLBACK_TIMEOUT", default_value = "10s")]
    pub callback_timeout: Span,
    /// Allow callback and redirect targets on loopback and private addresses (sandboxes, tests).
    #[arg(long, env = "KASSA_ALLOW_PRIVATE_CALLBACKS")]
    pub allow_private_callbacks: bool,
    /// The only ports callback and redirect targets may use, e.g. 443,8443. [default: any]
    #[arg(long, env = "KASSA_ALLOWED_TARGET_PORTS", value_delimiter = ',')]
    pub allowed_target_ports: Vec<u16>,
    /// The operator's time zone (IANA name) for times shown to merchants, such as payTime. Kept
    /// in the database, so every node and every command dates alike. [default: the zone kept
    /// there, else UTC]
    #[arg(long, env = "KASSA_TIMEZONE")]
    pub timezone: Option<String>,
    /// Most requests handled at once; more are answered 503 with Retry-After.
    #[arg(long, env = "KASSA_MAX_IN_FLIGHT", default_value_t = 1_024)]
    pub max_in_flight: usize,
    /// How often each node checks the books' invariants (the metric kassa_ledger_breaks), e.g.
    /// 15m; 0s turns the check off. It reads the whole ledger: keep it minutes apart.
    #[arg(long, env = "KASSA_LEDGER_CHECK_INTERVAL", default_value = "15m")]
    pub ledger_check_interval: Span,
    /// Move final orders older than this to the archive (out of the hot table; merchants still
    /// query them, reports and the books still count them), e.g. 400d; at least 30d.
    /// [default: keep every order in the hot table]
    #[arg(long, env = "KASSA_ORDER_RETENTION")]
    pub order_retention: Option<Span>,
    /// Delete callbacks delivered or given up longer ago than this, with their attempts, e.g.
    /// 90d; at least 1d. [default: keep them]
    #[arg(long, env = "KASSA_CALLBACK_RETENTION")]
    pub callback_retention: Option<Span>,
    /// How often orders past their expiry are failed, e.g. 5s.
    #[arg(long, env = "KASSA_EXPIRY_SWEEP_INTERVAL", default_value = "5s")]
    pub expiry_sweep_interval: Span,
    /// Time a client has to send a request's headers, and the longest a kept-alive connection
    /// may sit idle, e.g. 10s.
    #[arg(long, env = "KASSA_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: Span,
    /// Time one request may take, body upload included, e.g. 30s.
    #[arg(long, env = "KASSA_REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: Span,
    /// Time a request's body may take to arrive, e.g. 10s (at most the request timeout). A
    /// request holds no slot of --max-in-flight until its body is in.
    #[arg(long, env = "KASSA_BODY_READ_TIMEOUT", default_value = "10s")]
    pub body_read_timeout: Span,
    /// Request bodies one client address may be sending at once; more are answered 503.
    #[arg(long, env = "KASSA_MAX_UPLOADS_PER_ADDRESS", default_value_t = 16)]
    pub max_uploads_per_address: usize,
    /// On SIGTERM or Ctrl-C, how long kassa keeps serving with /readyz answering 503, so that a
    /// load balancer stops sending it traffic before it stops, e.g. 2s (0s: stop at once).
    #[arg(long, env = "KASSA_DRAIN_PERIOD", default_value = "2s")]
    pub drain_period: Span,
    /// Open client connections at once; more wait to be accepted.
    #[arg(long, env = "KASSA_MAX_CONNECTIONS", default_value_t = 4_096)]
    pub max_connections: usize,
    /// Open connections from one client address; more are closed at once.
    #[arg(long, env = "KASSA_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: usize,
    /// Requests per second each app may make to the merchant APIs (bursts of as many); above
    /// it, 429 with Retry-After. 0 turns the limit off.
    #[arg(long, env = "KASSA_APP_RATE_LIMIT", default_value_t = 0)]
    pub app_rate_limit: u32,
    /// Address of the admin listener: /metrics (Prometheus), /healthz and /readyz, apart from
    /// the public port. Must be a loopback address unless --admin-listen-public is given.
    #[arg(long, env = "KASSA_ADMIN_LISTEN", default_value = "127.0.0.1:9464")]
    pub admin_listen: SocketAddr,
    /// Allow --admin-listen on an address other hosts can reach (behind a firewall that only
    /// lets the monitoring in: the admin listener asks nobody for credentials).
    #[arg(long, env = "KASSA_ADMIN_LISTEN_PUBLIC")]
    pub admin_listen_public: bool,
    /// Address of the back office (the operator's console and the merchants' portal, under
    /// /admin/). Loopback by default: put it behind the operator's own network or proxy.
    #[arg(
        long,
        env = "KASSA_BACKOFFICE_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub backoffice_listen: SocketAddr,
    /// The back office is reached over plain HTTP from other hosts: its cookies then go
    /// without `Secure` (browsers refuse secure cookies over plain HTTP except on loopback).
    /// Only on a network you trust; serve it over HTTPS instead where you can.
    #[arg(long, env = "KASSA_BACKOFFICE_PLAIN_HTTP")]
    pub backoffice_plain_http: bool,
    /// Record and export metrics on the admin listener (false: nothing is recorded and
    /// /metrics answers 404; health stays).
    #[arg(long, env = "KASSA_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
}

impl ServeOptions {
    pub fn retention(&self) -> kassa_server::retention::RetentionPolicy {
        retention_policy(self.order_retention, self.callback_retention)
    }

    /// The TOML keys: the options' names.
    fn keys() -> Vec<String> {
        ServeOptions::augment_args(clap::Command::new("serve"))
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .collect()
    }

    /// Fills in, from the file, every option that neither a flag nor the environment set.
    pub fn with_file(
        self,
        matches: &ArgMatches,
        file: &ConfigFile,
    ) -> Result<ServeOptions, String> {
        let mut values = match serde_json::to_value(&self) {
            Ok(serde_json::Value::Object(values)) => values,
            _ => unreachable!("options serialise to an object"),
        };
        for (key, value) in &file.table {
            let given = matches!(
                matches.value_source(key),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            if values.contains_key(key) && !given {
                values.insert(
                    key.clone(),
                    serde_json::to_value(value).map_err(|e| e.to_string())?,
                );
            }
        }
        serde_json::from_value(serde_json::Value::Object(values))
            .map_err(|e| format!("config file {}: {e}", file.shown()))
    }

    /// Refuses settings that cannot work.
    pub fn check(&self) -> Result<(), String> {
        let spans = [
            ("callback-retry-interval", self.callback_retry_interval),
            ("callback-timeout", self.callback_timeout),
            ("expiry-sweep-interval", self.expiry_sweep_interval),
            ("header-read-timeout", self.header_read_timeout),
            ("request-timeout", self.request_timeout),
            ("body-read-timeout", self.body_read_timeout),
            ("channel-refresh-interval", self.channel_refresh_interval),
            ("reconcile-after", self.reconcile_after),
            ("reconcile-max-interval", self.reconcile_max_interval),
            ("circuit-cool-down", self.circuit_cool_down),
        ];
        if let Some((flag, _)) = spans.iter().find(|(_, span)| span.ms == 0) {
            return Err(format!("--{flag} must be above zero"));
        }
        self.retention().check()?;
        if self.circuit_failures == 0 {
            return Err("--circuit-failures must be above zero".into());
        }
        if !self.admin_listen.ip().is_loopback() && !self.admin_listen_public {
            return Err(format!(
                "--admin-listen {} is not a loopback address; the admin listener (metrics, \
                 health) asks for no credentials, so say --admin-listen-public if other hosts \
                 are meant to reach it",
                self.admin_listen
            ));
        }
        Ok(())
    }
}

/// The TOML file: every key optional; an unknown key is an error, to catch typos.
#[derive(Debug, Default)]
pub struct ConfigFile {
    path: Option<PathBuf>,
    table: toml::Table,
}

impl ConfigFile {
    pub fn load(path: Option<&Path>) -> Result<ConfigFile, String> {
        let Some(path) = path else {
            return Ok(ConfigFile::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        let known = ServeOptions::keys();
        if let Some(unknown) = table
            .keys()
            .find(|key| *key != DATABASE_URL_KEY && !known.contains(key))
        {
            return Err(format!(
                "config file {}: unknown key {unknown:?}; known keys: {DATABASE_URL_KEY}, {}",
                path.display(),
                known.join(", ")
            ));
        }
        Ok(ConfigFile {
            path: Some(path.to_path_buf()),
            table,
        })
    }

    /// The file's `database_url`, if it sets one.
    pub fn database_url(&self) -> Result<Option<String>, String> {
        match self.table.get(DATABASE_URL_KEY) {
            None => Ok(None),
            Some(toml::Value::String(url)) => Ok(Some(url.clone())),
            Some(_) => Err(format!(
                "config file {}: database_url must be a string",
                self.shown()
            )),
        }
    }

    fn shown(&self) -> String {
        self.path
            .as_deref()
            .map_or_else(String::new, |p| p.display().to_string())
    }
}

/// Parses durations such as `500ms`, `90s`, `30m`, `24h`, `7d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 30m or 24h"))?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?} needs a unit: ms, s, m, h or d")),
    };
    number
        .checked_mul(millis_per_unit)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// The data directory: where the demo keys live. Defaults next to the SQLite file.
pub fn default_data_dir(database_url: &str) -> PathBuf {
    kassa_store::sqlite_path(database_url)
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// Parses `kassa serve` options as the command line would, for tests.
#[cfg(test)]
fn parse_serve(args: &[&str], file: &ConfigFile) -> Result<ServeOptions, String> {
    use clap::FromArgMatches;
    let command = ServeOptions::augment_args(clap::Command::new("serve"));
    let matches = command
        .try_get_matches_from(std::iter::once("serve").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    let options = ServeOptions::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    options.with_file(&matches, file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }

    fn file(text: &str) -> (tempfile::TempDir, Result<ConfigFile, String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kassa.toml");
        std::fs::write(&path, text).unwrap();
        let loaded = ConfigFile::load(Some(&path));
        (dir, loaded)
    }

    #[test]
    fn precedence_flag_then_file_then_default() {
        let (_dir, loaded) = file("request_timeout = \"5s\"\nmax_in_flight = 7\n");
        let config = loaded.unwrap();
        let from_file = parse_serve(&[], &config).unwrap();
        assert_eq!(from_file.request_timeout, Span { ms: 5_000 });
        assert_eq!(from_file.max_in_flight, 7);
        assert_eq!(
            from_file.header_read_timeout,
            Span { ms: 10_000 },
            "default"
        );
        let flagged = parse_serve(&["--max-in-flight", "9"], &config).unwrap();
        assert_eq!(flagged.max_in_flight, 9, "a flag beats the file");
        assert_eq!(flagged.request_timeout, Span { ms: 5_000 });
    }

    #[test]
    fn file_rejects_unknown_keys_and_bad_values() {
        let (_dir, loaded) = file("listen = \"127.0.0.1:9000\"\n");
        let listened = parse_serve(&[], &loaded.unwrap()).unwrap();
        assert_eq!(listened.listen.to_string(), "127.0.0.1:9000");
        let (_dir, loaded) = file("lisen = \"x\"\n");
        assert!(loaded.unwrap_err().contains("lisen"));
        let (_dir, loaded) = file("request_timeout = \"soon\"\n");
        assert!(
            parse_serve(&[], &loaded.unwrap())
                .unwrap_err()
                .contains("soon")
        );
    }

    /// The library defaults the tests build servers with are the ones an operator gets.
    #[test]
    fn option_defaults_are_the_libraries_defaults() {
        let options = parse_serve(&[], &ConfigFile::default()).unwrap();
        let server = kassa_server::ServerConfig::default();
        assert_eq!(
            options.collect_order_lifetime.ms as i64,
            server.collect_order_lifetime_ms
        );
        assert_eq!(
            options.pix_order_lifetime.ms as i64,
            server.pix_order_lifetime_ms
        );
        assert_eq!(options.request_timeout.ms, server.request_timeout_ms);
        assert_eq!(options.max_in_flight, server.max_in_flight);
        assert_eq!(options.app_rate_limit, server.app_rate_limit_per_s);
        let limits = kassa_server::listen::ConnectionLimits::default();
        assert_eq!(
            options.header_read_timeout.ms,
            limits.header_read_timeout_ms
        );
        assert_eq!(options.max_connections, limits.max_connections);
        assert_eq!(
            options.max_connections_per_address,
            limits.max_connections_per_address
        );
        assert_eq!(options.body_read_timeout.ms, server.body_read_timeout_ms);
        assert_eq!(
            options.max_uploads_per_address,
            server.max_uploads_per_address
        );
        let retry = kassa_core::RetryPolicy::default();
        assert_eq!(options.callback_retry_interval.ms, retry.retry_interval_ms);
        assert_eq!(options.callback_max_age.ms, retry.max_age_ms);
        let dispatcher = kassa_server::dispatcher::DispatcherConfig::default();
        assert_eq!(options.callback_timeout.ms, dispatcher.request_timeout_ms);
        assert_eq!(options.listen.to_string(), "127.0.0.1:8080");
        assert!(options.check().is_ok());
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let options = parse_serve(&["--request-timeout", "0s"], &ConfigFile::default()).unwrap();
        assert!(options.check().unwrap_err().contains("--request-timeout"));
    }

    #[test]
    fn data_dir_follows_sqlite_file() {
        assert_eq!(default_data_dir("sqlite://x/y/k.db"), PathBuf::from("x/y"));
        assert_eq!(
            default_data_dir("sqlite://k.db"),
            PathBuf::from("kassa-data")
        );
        assert_eq!(
            default_data_dir("postgres://h/db"),
            PathBuf::from("kassa-data")
        );
    }
}
