//! Server settings: command-line flags, then `TANDEM_*` environment variables, then the
//! config file, then defaults.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub region: String,
    pub durability: crate::store::sqlite::Durability,
}

/// What the config file may say; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub region: Option<String>,
    pub durability: Option<String>,
}

/// Settings given on the command line or in the environment (clap merges those two).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub region: Option<String>,
    pub durability: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("setting '{setting}': {message}")]
    Invalid { setting: &'static str, message: String },
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
pub const DEFAULT_DATA: &str = "./tandem-data";
pub const DEFAULT_REGION: &str = "local";

impl Config {
    pub fn load(file: Option<&Path>, over: &Overrides) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?
            }
            None => FileConfig::default(),
        };
        let listen = over.listen.clone().or(from_file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = parse_listen(&listen)?;
        let data = over.data.clone().or(from_file.data).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let region = over.region.clone().or(from_file.region).unwrap_or_else(|| DEFAULT_REGION.to_owned());
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ConfigError::Invalid { setting: "region", message: format!("'{region}' is not a region name (letters, digits, '-' and '_')") });
        }
        let durability = match over.durability.clone().or(from_file.durability).as_deref().unwrap_or("full") {
            "full" => crate::store::sqlite::Durability::Full,
            "normal" => crate::store::sqlite::Durability::Normal,
            other => return Err(ConfigError::Invalid { setting: "durability", message: format!("'{other}' is not one of full, normal") }),
        };
        Ok(Config { listen, data, region, durability })
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse::<SocketAddr>().map_err(|_| ConfigError::Invalid { setting: "listen", message: format!("'{s}' is not ADDRESS:PORT, e.g. 127.0.0.1:5000 (port 0 picks a free port)") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tandem.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:6000\"\nregion = \"west\"\n").unwrap();
        let c = Config::load(Some(&f), &Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 6000);
        assert_eq!(c.region, "west");
        assert_eq!(c.data, PathBuf::from(DEFAULT_DATA));
        let c = Config::load(Some(&f), &Overrides { listen: Some("127.0.0.1:0".into()), ..Default::default() }).unwrap();
        assert_eq!(c.listen.port(), 0);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let e = Config::load(None, &Overrides { listen: Some("nope".into()), ..Default::default() }).unwrap_err();
        assert!(e.to_string().starts_with("setting 'listen'"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tandem.toml");
        std::fs::write(&f, "lissten = 1\n").unwrap();
        assert!(Config::load(Some(&f), &Overrides::default()).unwrap_err().to_string().contains("unknown field"));
    }
}
