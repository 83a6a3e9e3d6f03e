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
    /// Where workspace metadata and change logs live.
    pub store: StoreLocation,
    /// Where artifact bytes live.
    pub artifacts: ArtifactLocation,
    /// Where the change log is continuously archived (None: no backup).
    pub archive: Option<String>,
    /// HTTPS: the server's certificate chain and private key (PEM files). None: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Whether requests must authenticate (off only on a loopback address).
    pub auth: crate::auth::AuthMode,
    /// Whether `/metrics` asks for credentials too (when `auth` is on).
    pub metrics_auth: bool,
    /// This region's compute targets for jobs (`[[compute]]` in the config file; by default
    /// one, `local`, running attempts as processes on this machine).
    pub compute: Vec<crate::jobs::ComputeTarget>,
}

/// A certificate chain and its private key, PEM.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://user@host:port/db`).
    Postgres(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactLocation {
    /// A local folder.
    Folder(PathBuf),
    /// Object storage: `s3://bucket/prefix`, `azure://container/prefix`, `gs://bucket/prefix`.
    Object(String),
}

/// A URL safe to print: the password, if any, replaced.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn parse_store(s: &str, data: &Path) -> Result<StoreLocation, ConfigError> {
    if s.is_empty() || s == "sqlite" {
        return Ok(StoreLocation::Sqlite(data.join("metadata.sqlite")));
    }
    if let Some(path) = s.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "store",
                message:
                    "sqlite:// needs a file path, e.g. sqlite:///var/lib/tandem/metadata.sqlite"
                        .into(),
            });
        }
        return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Ok(StoreLocation::Postgres(s.to_owned()));
    }
    Err(ConfigError::Invalid {
        setting: "store",
        message: format!(
            "'{}' is not a store URL: use sqlite:///PATH or postgres://USER@HOST:PORT/DB",
            redact(s)
        ),
    })
}

fn parse_artifacts(s: &str, data: &Path) -> Result<ArtifactLocation, ConfigError> {
    if s.is_empty() {
        return Ok(ArtifactLocation::Folder(data.join("artifacts")));
    }
    if let Some(path) = s.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(ConfigError::Invalid {
                setting: "artifacts",
                message: format!(
                    "'{s}': file:// URLs need an absolute path, e.g. file:///srv/tandem/artifacts"
                ),
            });
        }
        return Ok(ArtifactLocation::Folder(PathBuf::from(path)));
    }
    for scheme in ["s3://", "azure://", "az://", "gs://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            if rest.split('/').next().unwrap_or("").is_empty() {
                return Err(ConfigError::Invalid {
                    setting: "artifacts",
                    message: format!("'{s}' names no bucket or container"),
                });
            }
            return Ok(ArtifactLocation::Object(s.to_owned()));
        }
    }
    Err(ConfigError::Invalid { setting: "artifacts", message: format!("'{s}' is not an artifact store URL: use file:///PATH, s3://BUCKET/PREFIX, azure://CONTAINER/PREFIX or gs://BUCKET/PREFIX") })
}

/// What the config file may say; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub region: Option<String>,
    pub durability: Option<String>,
    pub store: Option<String>,
    pub artifacts: Option<String>,
    pub archive: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub auth: Option<String>,
    pub metrics_auth: Option<bool>,
    pub compute: Option<Vec<crate::jobs::ComputeTarget>>,
}

/// Settings given on the command line or in the environment (clap merges those two).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub region: Option<String>,
    pub durability: Option<String>,
    pub store: Option<String>,
    pub artifacts: Option<String>,
    pub archive: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub auth: Option<String>,
    pub metrics_auth: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("setting '{setting}': {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
pub const DEFAULT_DATA: &str = "./tandem-data";
pub const DEFAULT_REGION: &str = "local";

impl Config {
    pub fn load(file: Option<&Path>, over: &Overrides) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let listen = over
            .listen
            .clone()
            .or(from_file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = parse_listen(&listen)?;
        let data = over
            .data
            .clone()
            .or(from_file.data)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let region = over
            .region
            .clone()
            .or(from_file.region)
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::Invalid {
                setting: "region",
                message: format!("'{region}' is not a region name (letters, digits, '-' and '_')"),
            });
        }
        let durability = match over
            .durability
            .clone()
            .or(from_file.durability)
            .as_deref()
            .unwrap_or("full")
        {
            "full" => crate::store::sqlite::Durability::Full,
            "normal" => crate::store::sqlite::Durability::Normal,
            other => {
                return Err(ConfigError::Invalid {
                    setting: "durability",
                    message: format!("'{other}' is not one of full, normal"),
                })
            }
        };
        let store = parse_store(
            &over.store.clone().or(from_file.store).unwrap_or_default(),
            &data,
        )?;
        let artifacts = parse_artifacts(
            &over
                .artifacts
                .clone()
                .or(from_file.artifacts)
                .unwrap_or_default(),
            &data,
        )?;
        let archive = over
            .archive
            .clone()
            .or(from_file.archive)
            .filter(|a| !a.is_empty());
        if let Some(a) = &archive {
            if !["file:///", "s3://", "azure://", "az://", "gs://"]
                .iter()
                .any(|p| a.starts_with(p))
            {
                return Err(ConfigError::Invalid { setting: "archive", message: format!("'{a}' is not an archive URL: use file:///PATH, s3://BUCKET/PREFIX, azure://CONTAINER/PREFIX or gs://BUCKET/PREFIX") });
            }
        }
        let tls = match (
            over.tls_cert.clone().or(from_file.tls_cert),
            over.tls_key.clone().or(from_file.tls_key),
        ) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    setting: "tls_key",
                    message: "tls_cert is set: give the private key's PEM file too".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    setting: "tls_cert",
                    message: "tls_key is set: give the certificate chain's PEM file too".into(),
                })
            }
        };
        let auth = auth_mode(over.auth.clone().or(from_file.auth), &listen)?;
        let metrics_auth = over.metrics_auth.or(from_file.metrics_auth).unwrap_or(true);
        let compute = match from_file.compute {
            Some(c) => {
                crate::jobs::validate_compute(&c).map_err(|message| ConfigError::Invalid {
                    setting: "compute",
                    message,
                })?;
                c
            }
            None => vec![crate::jobs::ComputeTarget::local_default()],
        };
        Ok(Config {
            compute,
            listen,
            data,
            region,
            durability,
            store,
            artifacts,
            archive,
            tls,
            auth,
            metrics_auth,
        })
    }
}

/// `on` (the default) or `off`; off only where nobody but this machine can connect.
pub fn auth_mode(
    setting: Option<String>,
    listen: &SocketAddr,
) -> Result<crate::auth::AuthMode, ConfigError> {
    let text = setting.unwrap_or_else(|| "on".into());
    let mode = crate::auth::AuthMode::parse(&text).ok_or_else(|| ConfigError::Invalid {
        setting: "auth",
        message: format!("'{text}' is not one of on, off"),
    })?;
    if mode == crate::auth::AuthMode::Off && !listen.ip().is_loopback() {
        return Err(ConfigError::Invalid {
            setting: "auth",
            message: format!("authentication may be off only on a loopback address, and {listen} is not one: turn auth on (the default) or listen on 127.0.0.1"),
        });
    }
    Ok(mode)
}

fn parse_listen(s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse::<SocketAddr>().map_err(|_| ConfigError::Invalid {
        setting: "listen",
        message: format!(
            "'{s}' is not ADDRESS:PORT, e.g. 127.0.0.1:5000 (port 0 picks a free port)"
        ),
    })
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
        let c = Config::load(
            Some(&f),
            &Overrides {
                listen: Some("127.0.0.1:0".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 0);
    }

    #[test]
    fn store_and_artifact_urls() {
        let c = Config::load(
            None,
            &Overrides {
                store: Some("postgres://u:secret@h:5/db".into()),
                artifacts: Some("azure://c/p".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            c.store,
            StoreLocation::Postgres("postgres://u:secret@h:5/db".into())
        );
        assert_eq!(c.artifacts, ArtifactLocation::Object("azure://c/p".into()));
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        let e = Config::load(
            None,
            &Overrides {
                store: Some("mysql://u:pw@h/db".into()),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("setting 'store'") && !e.contains("pw"), "{e}");
        assert!(Config::load(
            None,
            &Overrides {
                artifacts: Some("s3://".into()),
                ..Default::default()
            }
        )
        .is_err());
        assert!(Config::load(
            None,
            &Overrides {
                artifacts: Some("file://relative".into()),
                ..Default::default()
            }
        )
        .is_err());
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(
            c.store,
            StoreLocation::Sqlite(PathBuf::from(DEFAULT_DATA).join("metadata.sqlite"))
        );
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let e = Config::load(
            None,
            &Overrides {
                listen: Some("nope".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("setting 'listen'"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tandem.toml");
        std::fs::write(&f, "lissten = 1\n").unwrap();
        assert!(Config::load(Some(&f), &Overrides::default())
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
    }
}
