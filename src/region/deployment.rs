//! The deployment file: regions, the witness, the front door, and each workspace's mode.
//! Documented in docs/operations/deployment-file.md. Every error names the file, the line
//! and what to do.

use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAck {
    /// Acknowledge after the local commit.
    Async,
    /// Acknowledge only after the standby region has made the change durable (RPO 0).
    Sync,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub name: String,
    pub listen: std::net::SocketAddr,
    pub url: String,
    pub store: String,
    pub artifacts: String,
    /// HTTPS for this region (its url then defaults to https://LISTEN).
    pub tls: Option<crate::config::TlsFiles>,
    /// The region's compute targets for jobs (`[[region.compute]]`; by default `local`).
    pub compute: Vec<crate::jobs::ComputeTarget>,
}

/// How a workspace uses its two regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The standby replicates continuously and takes over by itself (RTO seconds).
    HotWarm,
    /// The secondary region has its stores and the archive, and runs nothing for the
    /// workspace until `tandem failover`, which restores it from the archive.
    HotCold,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::HotWarm => "hot/warm",
            Mode::HotCold => "hot/cold",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkspacePlan {
    pub name: String,
    pub mode: Mode,
    pub write_ack: WriteAck,
    pub preferred_leader: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub lease_ms: u64,
    pub renew_ms: u64,
}

/// `tandem up`'s and a deployment file's defaults, chosen from the measurements in
/// BENCHMARKS.md ("How long a lease"): a two-second lease keeps the stock client's pause on
/// a leader's loss near two and a half seconds, and a renewal every half second means a
/// leader paused for less than a lease is never replaced.
pub const DEFAULT_LEASE_MS: u64 = 2000;
pub const DEFAULT_RENEW_MS: u64 = 500;

impl Timing {
    /// The margin on either side of a lease: a leader stops writing `safety_ms` before its
    /// lease ends (counted from when it sent its last renewal), and a standby claims the next
    /// epoch only `safety_ms` after the lease ended (counted from when it saw the renewal).
    /// Covers clock-rate differences and a write that passed its fence check just before
    /// the deadline. A quarter of the lease: at least as long as one renewal interval, so a
    /// leader paused for less than a lease always renews before anyone may take over.
    pub fn safety_ms(&self) -> u64 {
        self.lease_ms / 4
    }
}

/// How the front door holds requests while a workspace has no leader that accepts writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// How long one request is held at most before the client gets the 503 (0: never held).
    pub hold_ms: u64,
    /// How many requests may be held at once; more are answered 503 at once.
    pub max_held: usize,
}

impl Default for Hold {
    fn default() -> Self {
        Hold {
            hold_ms: 10_000,
            max_held: 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub path: PathBuf,
    pub witness: String,
    pub timing: Timing,
    pub regions: Vec<Region>,
    pub front_door: Option<std::net::SocketAddr>,
    /// `[front_door] hold_ms / max_held`: how the front door rides through a failover.
    pub hold: Hold,
    /// HTTPS for the front door.
    pub front_door_tls: Option<crate::config::TlsFiles>,
    /// `[tls] ca`: a PEM bundle regions, the front door and the CLI trust for https URLs
    /// (a private CA), beside the usual public roots.
    pub tls_ca: Option<PathBuf>,
    /// The continuous backup every leader writes its workspaces' change logs to, outside
    /// both regions (required by hot/cold workspaces).
    pub archive: Option<String>,
    pub workspaces: Vec<WorkspacePlan>,
    /// `[access] auth`: on (default) or off (loopback regions only).
    pub auth: String,
    /// `[access] key_file`: the deployment's key, which regions, the front door and the
    /// operator's CLI present to each other (required with auth on).
    pub key_file: Option<PathBuf>,
}

impl Deployment {
    /// The PEM bundle of `[tls] ca`, read.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, DeploymentError> {
        let Some(path) = &self.tls_ca else {
            return Ok(None);
        };
        std::fs::read(path).map(Some).map_err(|e| DeploymentError {
            file: self.path.display().to_string(),
            line: 0,
            message: format!("[tls] ca {}: {e}", path.display()),
        })
    }

    /// The deployment's key, read from `key_file`.
    pub fn key(&self) -> Result<Option<String>, DeploymentError> {
        let Some(path) = &self.key_file else {
            return Ok(None);
        };
        let key = std::fs::read_to_string(path).map_err(|e| DeploymentError {
            file: self.path.display().to_string(),
            line: 0,
            message: format!("[access] key_file {}: {e}", path.display()),
        })?;
        let key = key.trim().to_owned();
        if key.len() < 32 {
            return Err(DeploymentError {
                file: self.path.display().to_string(),
                line: 0,
                message: format!("[access] key_file {}: the key must be at least 32 characters (e.g. `openssl rand -hex 32`)", path.display()),
            });
        }
        Ok(Some(key))
    }

    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }
    pub fn workspace(&self, name: &str) -> Option<&WorkspacePlan> {
        self.workspaces.iter().find(|w| w.name == name)
    }
    /// The other region of a workspace (tandem pairs two regions).
    pub fn peer_of(&self, region: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name != region)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct DeploymentError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    witness: Spanned<RawWitness>,
    timing: Option<RawTiming>,
    #[serde(rename = "region", default)]
    regions: Vec<Spanned<RawRegion>>,
    front_door: Option<RawFrontDoor>,
    archive: Option<Spanned<RawArchive>>,
    #[serde(rename = "workspace", default)]
    workspaces: Vec<Spanned<RawWorkspace>>,
    access: Option<Spanned<RawAccess>>,
    tls: Option<RawTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    auth: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    write_ack: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWitness {
    location: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    location: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiming {
    lease_ms: Option<Spanned<u64>>,
    renew_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    name: Spanned<String>,
    listen: Spanned<String>,
    url: Option<String>,
    store: Spanned<String>,
    artifacts: Spanned<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    compute: Option<Vec<crate::jobs::ComputeTarget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrontDoor {
    listen: Spanned<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    hold_ms: Option<Spanned<u64>>,
    max_held: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    name: Spanned<String>,
    mode: Spanned<String>,
    write_ack: Option<Spanned<String>>,
    preferred_leader: Option<Spanned<String>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// A path from the deployment file: relative ones are relative to the file.
fn relative_to(file: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_relative() {
        file.parent().unwrap_or(Path::new(".")).join(p)
    } else {
        p
    }
}

/// `tls_cert` and `tls_key`: both or neither.
fn tls_pair(
    cert: &Option<String>,
    key: &Option<String>,
    file: &Path,
) -> Result<Option<crate::config::TlsFiles>, String> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => Ok(Some(crate::config::TlsFiles {
            cert: relative_to(file, c),
            key: relative_to(file, k),
        })),
        _ => Err("give tls_cert and tls_key together (PEM files), or neither".into()),
    }
}

pub fn load(path: &Path) -> Result<Deployment, DeploymentError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| DeploymentError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read the deployment file: {e}"),
    })?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Deployment, DeploymentError> {
    let file = path.display().to_string();
    let err = |span: std::ops::Range<usize>, message: String| DeploymentError {
        file: file.clone(),
        line: line_of(text, span.start),
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| DeploymentError {
        file: file.clone(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
        message: format!(
            "{}; see docs/operations/deployment-file.md for the format",
            e.message()
        ),
    })?;

    let witness = raw.witness.get_ref().location.clone();
    let wloc = witness.get_ref().trim().to_owned();
    if !["file://", "azure://", "az://", "s3://", "gs://"]
        .iter()
        .any(|s| wloc.starts_with(s))
    {
        return Err(err(witness.span(), format!("witness location '{wloc}' must be file:///PATH, azure://CONTAINER/PREFIX, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")));
    }

    let timing = match raw.timing {
        None => Timing {
            lease_ms: DEFAULT_LEASE_MS,
            renew_ms: DEFAULT_RENEW_MS,
        },
        Some(t) => {
            let lease = t.lease_ms.map(|v| (v.span(), *v.get_ref()));
            let renew = t.renew_ms.map(|v| (v.span(), *v.get_ref()));
            let lease_ms = lease.as_ref().map(|l| l.1).unwrap_or(DEFAULT_LEASE_MS);
            let renew_ms = renew
                .as_ref()
                .map(|r| r.1)
                .unwrap_or((lease_ms / 4).clamp(100, DEFAULT_RENEW_MS));
            if !(1000..=600_000).contains(&lease_ms) {
                return Err(err(
                    lease.map(|l| l.0).unwrap_or(0..0),
                    format!("lease_ms = {lease_ms}: use 1000 to 600000"),
                ));
            }
            if renew_ms * 4 > lease_ms || renew_ms < 100 {
                return Err(err(renew.map(|r| r.0).unwrap_or(0..0), format!("renew_ms = {renew_ms}: renew at least four times per lease (renew_ms <= lease_ms / 4, here {}) and at most every 100 ms", lease_ms / 4)));
            }
            Timing { lease_ms, renew_ms }
        }
    };

    let mut regions = Vec::new();
    let mut names = HashSet::new();
    let mut stores = HashSet::new();
    let mut artifact_stores = HashSet::new();
    for r in &raw.regions {
        let rr = r.get_ref();
        let name = rr.name.get_ref().clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                rr.name.span(),
                format!("region name '{name}': use letters, digits, '-' and '_'"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(err(
                rr.name.span(),
                format!("region '{name}' is defined twice; give each region its own name"),
            ));
        }
        let listen: std::net::SocketAddr = rr.listen.get_ref().parse().map_err(|_| {
            err(
                rr.listen.span(),
                format!("listen = '{}' is not ADDRESS:PORT", rr.listen.get_ref()),
            )
        })?;
        let store = rr.store.get_ref().clone();
        if !(store.starts_with("sqlite://")
            || store.starts_with("postgres://")
            || store.starts_with("postgresql://"))
        {
            return Err(err(
                rr.store.span(),
                format!(
                    "store '{}' must be sqlite:///PATH or postgres://USER@HOST:PORT/DB",
                    crate::config::redact(&store)
                ),
            ));
        }
        if !stores.insert(store.clone()) {
            return Err(err(rr.store.span(), format!("region '{name}' shares its metadata store with another region; each region needs its own, or losing one loses both")));
        }
        let artifacts = rr.artifacts.get_ref().clone();
        if !artifact_stores.insert(artifacts.clone()) {
            return Err(err(rr.artifacts.span(), format!("region '{name}' shares its artifact store with another region; each region needs its own")));
        }
        if artifacts == wloc {
            return Err(err(
                rr.artifacts.span(),
                "the witness must be outside both regions: give it its own location".into(),
            ));
        }
        let tls = tls_pair(&rr.tls_cert, &rr.tls_key, path)
            .map_err(|m| err(r.span(), format!("region '{name}': {m}")))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = rr
            .url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{listen}"));
        let compute = match &rr.compute {
            Some(c) => {
                crate::jobs::validate_compute(c)
                    .map_err(|m| err(r.span(), format!("region '{name}': {m}")))?;
                c.clone()
            }
            None => vec![crate::jobs::ComputeTarget::local_default()],
        };
        regions.push(Region {
            name,
            listen,
            url,
            store,
            artifacts,
            tls,
            compute,
        });
    }
    if regions.len() != 2 {
        return Err(err(0..0, format!("a deployment has exactly two [[region]] tables (found {}); hot/warm pairs a leader region with a standby", regions.len())));
    }

    let front_door_tls = match &raw.front_door {
        None => None,
        Some(f) => tls_pair(&f.tls_cert, &f.tls_key, path)
            .map_err(|m| err(f.listen.span(), format!("[front_door]: {m}")))?,
    };
    let tls_ca = raw
        .tls
        .as_ref()
        .and_then(|t| t.ca.as_ref())
        .map(|c| relative_to(path, c));
    let mut hold = Hold::default();
    if let Some(f) = &raw.front_door {
        if let Some(h) = &f.hold_ms {
            if !(0..=120_000).contains(h.get_ref()) {
                return Err(err(
                    h.span(),
                    format!(
                        "hold_ms = {}: use 0 to 120000 (the client's own timeout is 120 s)",
                        h.get_ref()
                    ),
                ));
            }
            hold.hold_ms = *h.get_ref();
        }
        if let Some(m) = &f.max_held {
            if !(1..=1_000_000).contains(m.get_ref()) {
                return Err(err(
                    m.span(),
                    format!("max_held = {}: use 1 to 1000000", m.get_ref()),
                ));
            }
            hold.max_held = *m.get_ref();
        }
    }
    let front_door = match raw.front_door {
        None => None,
        Some(f) => Some(f.listen.get_ref().parse().map_err(|_| {
            err(
                f.listen.span(),
                format!(
                    "front_door listen = '{}' is not ADDRESS:PORT",
                    f.listen.get_ref()
                ),
            )
        })?),
    };

    let archive = match &raw.archive {
        None => None,
        Some(a) => {
            let loc = a.get_ref().location.clone();
            let url = loc.get_ref().trim().to_owned();
            if !["file://", "azure://", "az://", "s3://", "gs://"]
                .iter()
                .any(|s| url.starts_with(s))
            {
                return Err(err(loc.span(), format!("archive location '{url}' must be file:///PATH, azure://CONTAINER/PREFIX, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")));
            }
            if regions.iter().any(|r| r.artifacts == url) || url == wloc {
                return Err(err(loc.span(), "the archive must have its own location, outside both regions' artifact stores and apart from the witness".into()));
            }
            Some((loc.span(), url))
        }
    };
    let mut workspaces = Vec::new();
    let mut ws_names = HashSet::new();
    for w in &raw.workspaces {
        let ww = w.get_ref();
        let name = ww.name.get_ref().clone();
        if name != "default" {
            crate::api::workspaces::validate_name(&name)
                .map_err(|e| err(ww.name.span(), e.message))?;
        }
        if !ws_names.insert(name.clone()) {
            return Err(err(
                ww.name.span(),
                format!("workspace '{name}' is listed twice"),
            ));
        }
        let mode = match ww.mode.get_ref().as_str() {
            "hot/warm" => Mode::HotWarm,
            "hot/cold" if archive.is_some() => Mode::HotCold,
            "hot/cold" => return Err(err(ww.mode.span(), "mode \"hot/cold\" restores from the archive: add an [archive] table with a location outside both regions".into())),
            "hot/hot" => return Err(err(ww.mode.span(), "mode 'hot/hot' is not available yet; use \"hot/warm\" or \"hot/cold\"".into())),
            other => return Err(err(ww.mode.span(), format!("mode '{other}' is unknown; use \"hot/warm\" or \"hot/cold\""))),
        };
        let write_ack = match ww.write_ack.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("async") => WriteAck::Async,
            Some("sync") => WriteAck::Sync,
            Some(other) => {
                return Err(err(
                    ww.write_ack.as_ref().map(|s| s.span()).unwrap_or(0..0),
                    format!("write_ack '{other}' is unknown; use \"async\" or \"sync\""),
                ))
            }
        };
        let preferred_leader = match &ww.preferred_leader {
            None => regions[0].name.clone(),
            Some(p) if names.contains(p.get_ref()) => p.get_ref().clone(),
            Some(p) => {
                return Err(err(
                    p.span(),
                    format!(
                        "preferred_leader '{}' is not a region of this deployment (regions: {})",
                        p.get_ref(),
                        regions
                            .iter()
                            .map(|r| r.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        };
        if mode == Mode::HotCold && write_ack == WriteAck::Sync {
            return Err(err(ww.write_ack.as_ref().map(|s| s.span()).unwrap_or(0..0), "write_ack \"sync\" needs a standby that replicates (hot/warm); a hot/cold workspace's loss is bounded by the archive lag instead".into()));
        }
        workspaces.push(WorkspacePlan {
            name,
            mode,
            write_ack,
            preferred_leader,
        });
    }
    if !ws_names.contains("default") {
        workspaces.insert(
            0,
            WorkspacePlan {
                name: "default".into(),
                mode: Mode::HotWarm,
                write_ack: WriteAck::Async,
                preferred_leader: regions[0].name.clone(),
            },
        );
    }
    // Access state: always replicated, hot/warm, led where the default workspace is led.
    let (auth, key_file, access_ack) = match &raw.access {
        None => ("on".to_owned(), None, WriteAck::Sync),
        Some(a) => {
            let a = a.get_ref();
            let auth = a
                .auth
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_else(|| "on".into());
            if auth != "on" && auth != "off" {
                return Err(err(
                    a.auth.as_ref().map(|s| s.span()).unwrap_or(0..0),
                    format!("auth '{auth}' is unknown; use \"on\" or \"off\""),
                ));
            }
            let ack = match a.write_ack.as_ref().map(|s| s.get_ref().as_str()) {
                None | Some("sync") => WriteAck::Sync,
                Some("async") => WriteAck::Async,
                Some(other) => {
                    return Err(err(
                        a.write_ack.as_ref().map(|s| s.span()).unwrap_or(0..0),
                        format!("write_ack '{other}' is unknown; use \"sync\" or \"async\""),
                    ))
                }
            };
            let key_file = a.key_file.as_ref().map(|k| {
                let p = PathBuf::from(k.get_ref());
                // Relative to the deployment file, like a config include.
                if p.is_relative() {
                    path.parent().unwrap_or(Path::new(".")).join(p)
                } else {
                    p
                }
            });
            (auth, key_file, ack)
        }
    };
    if auth == "on" && key_file.is_none() {
        return Err(err(raw.access.as_ref().map(|a| a.span()).unwrap_or(0..0), "authentication is on (the default), so the regions need a shared key to call each other: add [access] key_file = \"PATH\" (a file with at least 32 random characters, e.g. `openssl rand -hex 32 > PATH`), or auth = \"off\" for regions on loopback addresses".into()));
    }
    if auth == "off" {
        if let Some(r) = regions.iter().find(|r| !r.listen.ip().is_loopback()) {
            return Err(err(raw.access.as_ref().map(|a| a.span()).unwrap_or(0..0), format!("auth = \"off\" is allowed only when every region listens on a loopback address, and region '{}' listens on {}", r.name, r.listen)));
        }
    }
    let access_leader = workspaces
        .iter()
        .find(|w| w.name == "default")
        .map(|w| w.preferred_leader.clone())
        .unwrap_or_else(|| regions[0].name.clone());
    workspaces.push(WorkspacePlan {
        name: tandem_core::access::ACCESS_WORKSPACE.into(),
        mode: Mode::HotWarm,
        write_ack: access_ack,
        preferred_leader: access_leader,
    });
    Ok(Deployment {
        front_door_tls,
        tls_ca,
        auth,
        key_file,
        path: path.to_owned(),
        witness: wloc,
        timing,
        regions,
        front_door,
        hold,
        archive: archive.map(|(_, a)| a),
        workspaces,
    })
}

/// The deployment `tandem up` writes when given none: two regions on this machine, each its
/// own process with its own SQLite file and artifact folder, and a witness folder.
pub fn local_default(
    data: &Path,
    front_door_port: u16,
    write_ack: WriteAck,
    base_port: u16,
) -> String {
    local_default_with_mode(data, front_door_port, write_ack, base_port, Mode::HotWarm)
}

/// As [`local_default`], with the default workspace in `mode`.
pub fn local_default_with_mode(
    data: &Path,
    front_door_port: u16,
    write_ack: WriteAck,
    base_port: u16,
    mode: Mode,
) -> String {
    let d = data.display();
    let mode = mode.as_str();
    let ack = match write_ack {
        WriteAck::Async => "async",
        WriteAck::Sync => "sync",
    };
    format!(
        r#"# Written by `tandem up`: two regions on one machine. See docs/operations/deployment-file.md.
[witness]
location = "file://{d}/witness"

[timing]
lease_ms = {lease}
renew_ms = {renew}

[[region]]
name = "east"
listen = "127.0.0.1:{east}"
store = "sqlite://{d}/east/metadata.sqlite"
artifacts = "file://{d}/east/artifacts"

[[region]]
name = "west"
listen = "127.0.0.1:{west}"
store = "sqlite://{d}/west/metadata.sqlite"
artifacts = "file://{d}/west/artifacts"

[front_door]
listen = "127.0.0.1:{front_door_port}"

# Continuous backup of every workspace's change log (tandem backup / restore read it).
[archive]
location = "file://{d}/archive"

[[workspace]]
name = "default"
mode = "{mode}"
write_ack = "{ack}"
preferred_leader = "east"

# Who may do what lives in the `_access` workspace (replicated like the others); regions
# prove themselves to each other with this key. `tandem up` wrote a random one.
[access]
auth = "on"
key_file = "{d}/deployment.key"
"#,
        east = base_port,
        west = base_port + 1,
        lease = DEFAULT_LEASE_MS,
        renew = DEFAULT_RENEW_MS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Deployment, DeploymentError> {
        parse(text, Path::new("deploy.toml"))
    }

    #[test]
    fn hot_cold_needs_an_archive() {
        let good = local_default_with_mode(
            Path::new("/tmp/x"),
            5000,
            WriteAck::Async,
            5101,
            Mode::HotCold,
        );
        assert_eq!(
            p(&good).unwrap().workspace("default").unwrap().mode,
            Mode::HotCold
        );
        let start = good.find("# Continuous backup").unwrap();
        let end = good.find("[[workspace]]").unwrap();
        let without = format!("{}{}", &good[..start], &good[end..]);
        let e = p(&without).unwrap_err().to_string();
        assert!(e.contains("add an [archive] table"), "{e}");
    }

    #[test]
    fn the_local_default_parses() {
        let d = p(&local_default(
            Path::new("/tmp/x"),
            5000,
            WriteAck::Sync,
            5101,
        ))
        .unwrap();
        assert_eq!(d.regions.len(), 2);
        assert_eq!(d.workspace("default").unwrap().write_ack, WriteAck::Sync);
        assert_eq!(d.front_door.unwrap().port(), 5000);
        assert_eq!(d.hold, Hold::default());
        assert_eq!(d.timing.safety_ms(), DEFAULT_LEASE_MS / 4);
        let held = p(
            &local_default(Path::new("/tmp/x"), 5000, WriteAck::Sync, 5101).replace(
                "[front_door]\n",
                "[front_door]\nhold_ms = 0\nmax_held = 7\n",
            ),
        )
        .unwrap();
        assert_eq!((held.hold.hold_ms, held.hold.max_held), (0, 7));
        assert_eq!(d.peer_of("east").unwrap().name, "west");
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_fix() {
        let good = local_default(Path::new("/tmp/x"), 5000, WriteAck::Async, 5101);
        let cases = [
            (
                good.replace(
                    "preferred_leader = \"east\"",
                    "preferred_leader = \"north\"",
                ),
                "not a region of this deployment",
            ),
            (
                good.replace("mode = \"hot/warm\"", "mode = \"hot/hot\""),
                "not available yet",
            ),
            (
                good.replace("mode = \"hot/warm\"", "mode = \"hot/cold\"")
                    .replace("[archive]", "[archives]"),
                "deployment-file.md",
            ),
            (
                good.replace("mode = \"hot/warm\"", "mode = \"hot/cold\"")
                    .replace("write_ack = \"async\"", "write_ack = \"sync\""),
                "needs a standby",
            ),
            (
                good.replace("file:///tmp/x/archive", "file:///tmp/x/east/artifacts"),
                "its own location",
            ),
            (
                good.replace("/west/metadata.sqlite", "/east/metadata.sqlite"),
                "shares its metadata store",
            ),
            (
                good.replace("name = \"west\"", "name = \"east\""),
                "defined twice",
            ),
            (
                good.replace("write_ack = \"async\"", "write_ack = \"maybe\""),
                "use \"async\" or \"sync\"",
            ),
            (
                good.replace("file:///tmp/x/witness", "ftp://w"),
                "witness location",
            ),
            (
                good.replace("lease_ms = 2000", "lease_ms = 10"),
                "use 1000 to 600000",
            ),
            (
                good.replace("renew_ms = 500", "renew_ms = 600"),
                "renew_ms <= lease_ms / 4",
            ),
            (
                good.replace("[front_door]", "[front_doors]"),
                "deployment-file.md",
            ),
            (
                good.replace("[front_door]\n", "[front_door]\nhold_ms = 999999\n"),
                "use 0 to 120000",
            ),
            (
                good.replace("[front_door]\n", "[front_door]\nmax_held = 0\n"),
                "use 1 to 1000000",
            ),
        ];
        for (text, expect) in cases {
            let e = p(&text).unwrap_err();
            let shown = e.to_string();
            assert!(
                shown.starts_with("deploy.toml:") && e.line > 0 && shown.contains(expect),
                "{shown}"
            );
        }
        // The line points at the offending value.
        let bad = good.replace(
            "preferred_leader = \"east\"",
            "preferred_leader = \"north\"",
        );
        let line = bad.lines().position(|l| l.contains("north")).unwrap() + 1;
        assert_eq!(p(&bad).unwrap_err().line, line);
    }
}
