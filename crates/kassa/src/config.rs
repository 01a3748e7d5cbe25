//! Configuration: command-line flags, then `KASSA_*` environment variables, then an optional
//! TOML file (`--config`), then defaults — the first that sets a value wins. clap handles
//! flags and environment; this module fills what is left from the file and the defaults.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://kassa-data/kassa.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "kassa-data";
pub const DEFAULT_COLLECT_ORDER_LIFETIME: &str = "30m";

/// The TOML file. Every key is optional; unknown keys are an error, to catch typos.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub collect_order_lifetime: Option<String>,
    pub pix_order_lifetime: Option<String>,
    pub callback_retry_interval: Option<String>,
    pub callback_max_age: Option<String>,
    pub callback_timeout: Option<String>,
    pub allow_private_callbacks: Option<bool>,
    pub timezone: Option<String>,
    pub expiry_sweep_interval: Option<String>,
    pub max_in_flight: Option<usize>,
    pub header_read_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub app_rate_limit: Option<u32>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig, String> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }
}

/// Parses durations such as `500ms`, `90s`, `30m`, `24h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Picks the first value that is set: flag/env (clap), file, default.
pub fn pick<T>(from_cli: Option<T>, from_file: Option<T>, default: impl FnOnce() -> T) -> T {
    from_cli.or(from_file).unwrap_or_else(default)
}

/// The data directory: where the demo keys live. Defaults next to the SQLite file.
pub fn default_data_dir(database_url: &str) -> PathBuf {
    kassa_store::sqlite_path(database_url)
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("--listen {text:?} is not an address such as 127.0.0.1:8080"))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn precedence() {
        assert_eq!(pick(Some(1), Some(2), || 3), 1);
        assert_eq!(pick(None, Some(2), || 3), 2);
        assert_eq!(pick(None::<i32>, None, || 3), 3);
    }

    #[test]
    fn file_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kassa.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\n").unwrap();
        assert_eq!(
            FileConfig::load(Some(&path)).unwrap().listen.as_deref(),
            Some("127.0.0.1:9000")
        );
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        assert!(FileConfig::load(Some(&path)).unwrap_err().contains("lisen"));
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
