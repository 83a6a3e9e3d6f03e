//! MLflow's rules for the URIs a client gives the server: model-version sources, experiment
//! artifact locations. They are MLflow's own checks (`mlflow/server/handlers.py`:
//! `_validate_source_run`, `_validate_source_model`, `_validate_storage_location_uri`), ported
//! so that tandem accepts what MLflow's server accepts and refuses what it refuses, with the
//! same messages.
//!
//! The parsing is Python's `urllib.parse` (3.11), not a WHATWG URL parser: the checks are
//! defined in terms of what `urlparse` and `unquote` return (a WHATWG parser would, for one,
//! resolve `..` before the check could see it), so matching MLflow means splitting the way it
//! splits. Lookups (a run's or a logged model's artifact root) are passed in by the caller:
//! this module does no IO.

use crate::error::{MlflowError, Result};

/// `urllib.parse.urlparse(url)`: (scheme, netloc, path, params, query, fragment). The scheme
/// is lower-cased, as Python does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlParts {
    pub scheme: String,
    pub netloc: String,
    pub path: String,
    pub params: String,
    pub query: String,
    pub fragment: String,
}

const USES_PARAMS: &[&str] = &[
    "", "ftp", "hdl", "prospero", "http", "imap", "https", "shttp", "rtsp", "rtspu", "sip", "sips",
    "mms", "sftp", "tel",
];

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// Python's `urlsplit` plus `urlparse`'s `;params` split. `allow_fragments` as in Python.
pub fn urlparse_with(url: &str, allow_fragments: bool) -> UrlParts {
    // Python strips leading C0 controls and spaces, and removes tab and newlines anywhere.
    let cleaned: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest = cleaned.as_str();
    let mut out = UrlParts::default();
    if let Some(i) = rest.find(':') {
        let cand = &rest[..i];
        if i > 0
            && cand.starts_with(|c: char| c.is_ascii_alphabetic())
            && cand.chars().all(is_scheme_char)
        {
            out.scheme = cand.to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        out.netloc = after[..end].to_owned();
        rest = &after[end..];
    }
    if allow_fragments {
        if let Some((r, f)) = rest.split_once('#') {
            out.fragment = f.to_owned();
            rest = r;
        }
    }
    if let Some((r, q)) = rest.split_once('?') {
        out.query = q.to_owned();
        rest = r;
    }
    if USES_PARAMS.contains(&out.scheme.as_str()) && rest.contains(';') {
        let i = match rest.rfind('/') {
            Some(slash) => rest[slash..].find(';').map(|j| slash + j),
            None => rest.find(';'),
        };
        if let Some(i) = i {
            out.params = rest[i + 1..].to_owned();
            rest = &rest[..i];
        }
    }
    out.path = rest.to_owned();
    out
}

pub fn urlparse(url: &str) -> UrlParts {
    urlparse_with(url, true)
}

impl UrlParts {
    fn host_port(&self) -> (&str, Option<&str>) {
        let hostinfo = self
            .netloc
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(&self.netloc);
        if let Some(v6) = hostinfo.strip_prefix('[') {
            let (host, after) = v6.split_once(']').unwrap_or((v6, ""));
            (host, after.strip_prefix(':'))
        } else {
            match hostinfo.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostinfo, None),
            }
        }
    }

    /// `urlparse(..).hostname`: lower-cased, None when empty.
    pub fn hostname(&self) -> Option<String> {
        let (h, _) = self.host_port();
        (!h.is_empty()).then(|| h.to_ascii_lowercase())
    }
}

/// `urllib.parse.unquote`: %XX sequences become bytes, read back as UTF-8 (invalid bytes
/// become U+FFFD, as Python's `errors="replace"`).
pub fn unquote(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `urllib.parse.unquote_plus`: `+` is a space, then `unquote`.
pub fn unquote_plus(s: &str) -> String {
    unquote(&s.replace('+', " "))
}

/// Python's `pathlib.PurePosixPath(p).as_posix()` for an absolute path: repeated slashes and
/// `.` segments dropped (a leading `//` is kept, as POSIX allows).
fn pure_posix(p: &str) -> String {
    let lead = if p.starts_with("//") && !p.starts_with("///") {
        "//"
    } else if p.starts_with('/') {
        "/"
    } else {
        ""
    };
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let joined = parts.join("/");
    if lead.is_empty() && joined.is_empty() {
        ".".to_owned()
    } else {
        format!("{lead}{joined}")
    }
}

/// MLflow's `get_uri_scheme`: a one-letter scheme is a Windows drive, so no scheme.
pub fn uri_scheme(uri: &str) -> String {
    let s = urlparse(uri).scheme;
    if s.len() == 1 {
        String::new()
    } else {
        s
    }
}

/// MLflow's `is_local_uri` (for a non-tracking URI on a POSIX server). A `file:` URI naming a
/// remote host is an error there; here too.
pub fn is_local_uri(uri: &str) -> Result<bool> {
    let p = urlparse(uri);
    if p.scheme.is_empty() {
        return Ok(true);
    }
    let remote = p
        .hostname()
        .is_some_and(|h| !(h == "." || h.starts_with("localhost") || h.starts_with("127.0.0.1")));
    if p.scheme == "file" {
        if remote {
            return Err(MlflowError::invalid(format!("{uri} is not a valid remote uri. For remote access on windows, please consider using a different scheme such as SMB (e.g. smb://<hostname>/<path>).")));
        }
        return Ok(true);
    }
    Ok(false)
}

/// MLflow's `local_file_uri_to_path` on POSIX.
pub fn local_file_uri_to_path(uri: &str) -> String {
    if uri.starts_with("file:") {
        unquote(&urlparse(uri).path)
    } else {
        unquote(uri)
    }
}

/// The schemes whose artifact repositories connect to the host the URI names
/// (`mlflow.store.artifact.host_policy`). tandem never connects to them at all, but refuses
/// them where MLflow's server does, so that the same requests succeed and fail on both.
pub const HOST_ADDRESSED_SCHEMES: &[&str] = &[
    "ftp",
    "sftp",
    "hdfs",
    "viewfs",
    "http",
    "https",
    "mlflow-artifacts",
    "r2",
    "b2",
    "abfss",
];

/// `_validate_artifact_uri_scheme(uri, field)`: a URI that would make a server connect to a
/// host is refused unless its scheme is in `allowed` (MLflow's
/// `MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES`). tandem's own artifact stores are never
/// host-addressed, so no host is trusted by being the server's own.
pub fn check_host_addressed(uri: &str, field: &str, allowed: &[String]) -> Result<()> {
    let scheme = uri_scheme(uri);
    if !HOST_ADDRESSED_SCHEMES.contains(&scheme.as_str()) {
        return Ok(());
    }
    if scheme == "mlflow-artifacts" && urlparse(uri).netloc.is_empty() {
        // `mlflow-artifacts:/path` is this server's own artifact store.
        return Ok(());
    }
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(&scheme)) {
        return Ok(());
    }
    Err(MlflowError::invalid(format!(
        "'{field}' cannot use the '{scheme}' scheme: the '{scheme}' scheme addresses a host other than the tracking server's configured artifact storage, so the server would connect to the host named in the URI. Set the MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES environment variable on the server to allow it."
    )))
}

/// MLflow's `_decode`: unquote until stable (at most 10 rounds).
fn decode_fully(url: &str) -> Result<String> {
    let mut url = url.to_owned();
    for _ in 0..10 {
        let decoded = unquote(&url);
        let p = urlparse(&decoded);
        let again = urlunparse(&p);
        if again == url {
            return Ok(url);
        }
        url = again;
    }
    Err(MlflowError::invalid("Failed to decode url"))
}

/// Python's `urlunparse`.
pub fn urlunparse(p: &UrlParts) -> String {
    const USES_NETLOC: &[&str] = &[
        "", "ftp", "http", "gopher", "nntp", "telnet", "imap", "wais", "file", "mms", "https",
        "shttp", "snews", "prospero", "rtsp", "rtspu", "rsync", "svn", "svn+ssh", "sftp", "nfs",
        "git", "git+ssh", "ws", "wss",
    ];
    let mut url = p.path.clone();
    if !p.params.is_empty() {
        url = format!("{url};{}", p.params);
    }
    if !p.netloc.is_empty()
        || (!p.scheme.is_empty()
            && USES_NETLOC.contains(&p.scheme.as_str())
            && !url.starts_with("//"))
    {
        if !url.is_empty() && !url.starts_with('/') {
            url = format!("/{url}");
        }
        url = format!("//{}{url}", p.netloc);
    }
    if !p.scheme.is_empty() {
        url = format!("{}:{url}", p.scheme);
    }
    if !p.query.is_empty() {
        url = format!("{url}?{}", p.query);
    }
    if !p.fragment.is_empty() {
        url = format!("{url}#{}", p.fragment);
    }
    url
}

/// `_validate_storage_location_uri` for an experiment's `artifact_location` (before
/// `resolve_local_location`): no fragments or params, no `..` in the query, no host-addressed
/// scheme, no `runs:` URI, at most `max_len` characters.
pub fn check_artifact_location(
    loc: &str,
    field: &str,
    allowed: &[String],
    max_len: usize,
) -> Result<()> {
    let p = urlparse(loc);
    if !p.fragment.is_empty() || !p.params.is_empty() {
        return Err(MlflowError::invalid(format!(
            "'{field}' URL can't include fragments or params."
        )));
    }
    if decode_fully(&p.query)?.contains("..") {
        return Err(MlflowError::invalid("Invalid query string"));
    }
    check_host_addressed(loc, field, allowed)?;
    if loc.starts_with("runs:") {
        return Err(MlflowError::invalid(format!(
            "Artifact location cannot be a runs:/ URI. Given: '{loc}'"
        )));
    }
    check_artifact_location_length(loc, max_len)
}

pub fn check_artifact_location_length(loc: &str, max_len: usize) -> Result<()> {
    if loc.chars().count() > max_len {
        return Err(MlflowError::invalid(format!(
            "Invalid artifact path length. The length of the artifact path cannot be greater than {max_len} characters. To configure this limit, please set the MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH environment variable."
        )));
    }
    Ok(())
}

/// MLflow's `resolve_uri_if_local`: a relative local path (or `file:` URI) is made absolute
/// against `cwd`, the server's working directory; anything else is returned as given.
pub fn resolve_local_location(loc: &str, cwd: &str) -> Result<String> {
    if !is_local_uri(loc)? {
        return Ok(loc.to_owned());
    }
    let local = local_file_uri_to_path(loc);
    if local.starts_with('/') {
        return Ok(loc.to_owned());
    }
    let joined = pure_posix(&format!("{}/{local}", cwd.trim_end_matches('/')));
    if uri_scheme(loc).is_empty() {
        return Ok(joined);
    }
    let p = urlparse_with(loc, true);
    Ok(urlunparse(&UrlParts {
        scheme: p.scheme,
        netloc: String::new(),
        path: joined,
        params: String::new(),
        query: p.query,
        fragment: p.fragment,
    }))
}

/// A `models:/` URI, as MLflow's `_parse_model_uri` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelUri {
    /// `models:/<model_id>`: a logged model.
    ModelId(String),
    /// `models:/<name>/<version>`.
    Version { name: String, version: String },
    /// `models:/<name>/<stage>`: the latest version in that stage.
    Stage { name: String, stage: String },
    /// `models:/<name>/latest`.
    Latest { name: String },
    /// `models:/<name>@<alias>`.
    Alias { name: String, alias: String },
}

/// `_parse_model_uri(uri)`; Err with MLflow's message when it is not a proper models:/ URI.
pub fn parse_model_uri(uri: &str) -> std::result::Result<ModelUri, String> {
    let improper = || {
        format!(
            "Not a proper models:/ URI: {uri}. Models URIs must be of the form 'models:/name/suffix' or 'models:/name@alias' where suffix is a version, stage, or the string 'latest' and where alias is a registered model alias. Only one of suffix or alias can be defined at a time."
        )
    };
    let p = urlparse_with(uri, false);
    if p.scheme != "models" || !p.path.starts_with('/') || p.path.len() <= 1 {
        return Err(improper());
    }
    let parts: Vec<&str> = p.path.trim_start_matches('/').split('/').collect();
    if parts.len() > 2 || parts[0].trim().is_empty() {
        return Err(improper());
    }
    if parts.len() == 2 {
        let (name, suffix) = (parts[0].to_owned(), parts[1]);
        if suffix.trim().is_empty() {
            return Err(improper());
        }
        if suffix.chars().all(|c| c.is_ascii_digit()) {
            return Ok(ModelUri::Version {
                name,
                version: suffix.to_owned(),
            });
        }
        if suffix.eq_ignore_ascii_case("latest") {
            return Ok(ModelUri::Latest { name });
        }
        return Ok(ModelUri::Stage {
            name,
            stage: suffix.to_owned(),
        });
    }
    if p.path.contains('@') {
        return match parts[0].rsplit_once('@') {
            Some((name, alias)) if !alias.trim().is_empty() => Ok(ModelUri::Alias {
                name: name.to_owned(),
                alias: alias.to_owned(),
            }),
            _ => Err(improper()),
        };
    }
    Ok(ModelUri::ModelId(parts[0].to_owned()))
}

/// `RunsArtifactRepository.parse_runs_uri`: (run_id, artifact path).
pub fn parse_runs_uri(uri: &str) -> std::result::Result<(String, Option<String>), String> {
    let improper = || {
        format!("Not a proper runs:/ URI: {uri}. Runs URIs must be of the form 'runs:/<run_id>/run-relative/path/to/artifact'")
    };
    let p = urlparse(uri);
    if p.scheme != "runs" || !p.path.starts_with('/') || p.path.len() <= 1 {
        return Err(improper());
    }
    let path = &p.path[1..];
    let (run_id, rest) = path.split_once('/').unwrap_or((path, ""));
    if run_id.is_empty() {
        return Err(improper());
    }
    Ok((
        run_id.to_owned(),
        (!rest.is_empty()).then(|| rest.to_owned()),
    ))
}

fn invalid_source(source: &str, id_name: &str) -> MlflowError {
    MlflowError::invalid(format!("Invalid model version source: '{source}'. The {id_name} request parameter must identify the resource that contains the source."))
}

/// `_validate_non_local_source_contains_relative_paths`: no `..`, NUL or anything that a path
/// resolution would change, however many times it is percent-encoded.
fn check_no_relative_parts(original: &str) -> Result<()> {
    let bad = || {
        MlflowError::invalid(format!(
            "Invalid model version source: '{original}'. If supplying a source as an http, https, local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path references present. Please provide an absolute path."
        ))
    };
    let mut source = original.to_owned();
    loop {
        let u = unquote_plus(&source);
        if u == source {
            break;
        }
        source = u;
    }
    let path = urlparse(&source).path;
    let trimmed = path.trim_end_matches('/');
    let mut collapsed = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    if collapsed.contains('\0') || source.split('/').any(|p| p == "..") {
        return Err(bad());
    }
    // `Path(p).resolve()` must give `p` back: absolute, and nothing (`.`) for it to drop.
    // (MLflow also resolves symbolic links of the server's own file system; tandem's sources
    // are never paths on its machine, so there is nothing of the kind to follow.)
    if !collapsed.starts_with('/') || pure_posix(&collapsed) != collapsed {
        return Err(bad());
    }
    Ok(())
}

/// MLflow's `_normalized_uri_parts`: scheme and authority lower-cased, path segments fully
/// unquoted, empty ones dropped.
fn normalized_parts(uri: &str) -> (String, String, Vec<String>) {
    let p = urlparse_with(uri, true);
    let parts = p
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut v = s.to_owned();
            loop {
                let u = unquote(&v);
                if u == v {
                    break v;
                }
                v = u;
            }
        })
        .collect();
    (
        p.scheme.to_ascii_lowercase(),
        p.netloc.to_ascii_lowercase(),
        parts,
    )
}

/// `_is_uri_within_root`.
pub fn is_uri_within_root(source: &str, root: &str) -> bool {
    let (ss, sa, sp) = normalized_parts(source);
    let (rs, ra, rp) = normalized_parts(root);
    ss == rs && sa == ra && !rp.is_empty() && sp.len() >= rp.len() && sp[..rp.len()] == rp[..]
}

/// `_is_mlflow_artifact_source`: an `mlflow-artifacts:` URI, or an HTTP URL through a
/// server's artifact proxy route.
pub fn is_mlflow_artifact_source(source: &str) -> bool {
    let (scheme, _, parts) = normalized_parts(source);
    if scheme == "mlflow-artifacts" {
        return true;
    }
    const ROUTE: [&str; 4] = ["api", "2.0", "mlflow-artifacts", "artifacts"];
    (scheme == "http" || scheme == "https")
        && parts
            .windows(ROUTE.len())
            .any(|w| w.iter().zip(ROUTE).all(|(a, b)| a == b))
}

/// Whether local path `source` is `root` or below it (both as `Path.resolve()` would see
/// them, without following links).
fn local_within(source: &str, root: &str) -> bool {
    let (s, r) = (pure_posix(source), pure_posix(root));
    if !s.starts_with('/')
        || !r.starts_with('/')
        || s.split('/').any(|p| p == "..")
        || r.split('/').any(|p| p == "..")
    {
        return false;
    }
    s == r || s.starts_with(&format!("{}/", r.trim_end_matches('/'))) || r == "/"
}

/// MLflow names the resolved local path once it has looked the owner up (an ID was given),
/// and the source as given otherwise.
fn local_source_message(source: &str, id_given: bool, id_name: &str, owner: &str) -> MlflowError {
    let shown = if id_given {
        pure_posix(&local_file_uri_to_path(source))
    } else {
        source.to_owned()
    };
    MlflowError::invalid(format!(
        "Invalid model version source: '{shown}'. To use a local path as a model version source, the {id_name} request parameter has to be specified and the local path has to be contained within the artifact directory of the {owner} specified by the {id_name}."
    ))
}

/// `_validate_source_run(source, run_id)`. `run_root(id)` gives the artifact root URI of a
/// run this server holds (`Ok(None)`: it holds none by that ID). The run is looked up only
/// where MLflow looks it up: for local and `mlflow-artifacts:` sources.
pub fn check_source_run<E: From<MlflowError>>(
    source: &str,
    run_id: Option<&str>,
    run_root: &mut dyn FnMut(&str) -> std::result::Result<Option<String>, E>,
) -> std::result::Result<(), E> {
    if is_local_uri(source)? {
        if let Some(run_id) = run_id.filter(|r| !r.is_empty()) {
            let root = run_root(run_id)?.ok_or_else(|| invalid_source(source, "run_id"))?;
            if is_local_uri(&root).unwrap_or(false)
                && local_within(
                    &local_file_uri_to_path(source),
                    &local_file_uri_to_path(&root),
                )
            {
                return Ok(());
            }
        }
        return Err(local_source_message(
            source,
            run_id.is_some_and(|r| !r.is_empty()),
            "run_id",
            "run",
        )
        .into());
    }
    check_no_relative_parts(source)?;
    let p = urlparse(source);
    if p.scheme == "runs" {
        if !p.netloc.is_empty() {
            return Err(invalid_source(source, "run_id").into());
        }
        let (source_run, _) = parse_runs_uri(source).map_err(MlflowError::internal)?;
        if run_id.is_some_and(|r| !r.is_empty() && r == source_run) {
            return Ok(());
        }
        return Err(invalid_source(source, "run_id").into());
    }
    if p.scheme == "models" {
        if !p.netloc.is_empty() {
            return Err(invalid_source(source, "model_id").into());
        }
        match parse_model_uri(source) {
            Ok(ModelUri::ModelId(_)) | Err(_) => {
                return Err(invalid_source(source, "model_id").into())
            }
            Ok(_) => {}
        }
    }
    if is_mlflow_artifact_source(source) {
        if let Some(run_id) = run_id.filter(|r| !r.is_empty()) {
            let root = run_root(run_id)?.ok_or_else(|| invalid_source(source, "run_id"))?;
            if is_uri_within_root(source, &root) {
                return Ok(());
            }
        }
        return Err(invalid_source(source, "run_id").into());
    }
    Ok(())
}

/// `_validate_source_model(source, model_id)`; `model_root(id)` gives a logged model's
/// artifact location (`Ok(None)`: no such model here).
pub fn check_source_model<E: From<MlflowError>>(
    source: &str,
    model_id: &str,
    model_root: &mut dyn FnMut(&str) -> std::result::Result<Option<String>, E>,
) -> std::result::Result<(), E> {
    if is_local_uri(source)? {
        if !model_id.is_empty() {
            let root = model_root(model_id)?.ok_or_else(|| invalid_source(source, "model_id"))?;
            if is_local_uri(&root).unwrap_or(false)
                && local_within(
                    &local_file_uri_to_path(source),
                    &local_file_uri_to_path(&root),
                )
            {
                return Ok(());
            }
        }
        return Err(local_source_message(source, !model_id.is_empty(), "model_id", "run").into());
    }
    check_no_relative_parts(source)?;
    let p = urlparse(source);
    if p.scheme == "models" {
        if !p.netloc.is_empty() {
            return Err(invalid_source(source, "model_id").into());
        }
        match parse_model_uri(source) {
            Err(_) => return Err(invalid_source(source, "model_id").into()),
            Ok(ModelUri::ModelId(id)) => {
                if !model_id.is_empty() && id == model_id {
                    return Ok(());
                }
                return Err(invalid_source(source, "model_id").into());
            }
            Ok(_) => {}
        }
    }
    if p.scheme == "runs" {
        return Err(invalid_source(source, "model_id").into());
    }
    if is_mlflow_artifact_source(source) {
        if !model_id.is_empty() {
            let root = model_root(model_id)?.ok_or_else(|| invalid_source(source, "model_id"))?;
            if is_uri_within_root(source, &root) {
                return Ok(());
            }
        }
        return Err(invalid_source(source, "model_id").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_run(_: &str) -> Result<Option<String>> {
        Ok(None)
    }

    #[test]
    fn urlparse_splits_as_python_does() {
        let p = urlparse("http://u@Host:80/a/b;p?q=1#f");
        assert_eq!(
            (
                p.scheme.as_str(),
                p.netloc.as_str(),
                p.path.as_str(),
                p.params.as_str(),
                p.query.as_str(),
                p.fragment.as_str()
            ),
            ("http", "u@Host:80", "/a/b", "p", "q=1", "f")
        );
        assert_eq!(p.hostname().as_deref(), Some("host"));
        let p = urlparse("runs:/abc/model");
        assert_eq!(
            (p.scheme.as_str(), p.netloc.as_str(), p.path.as_str()),
            ("runs", "", "/abc/model")
        );
        assert_eq!(urlparse("/etc").scheme, "");
        assert_eq!(urlparse("C:\\x").scheme, "c");
        assert_eq!(uri_scheme("C:\\x"), "");
        assert_eq!(urlparse("s3://b/x;y").params, "");
    }

    #[test]
    fn unquote_matches_python() {
        assert_eq!(unquote("a%2fb%2F%zz%"), "a/b/%zz%");
        assert_eq!(unquote("%252e"), "%2e");
        assert_eq!(unquote_plus("a+b%20c"), "a b c");
        assert_eq!(unquote("%ff"), "\u{fffd}");
    }

    #[test]
    fn sources_refused_as_mlflow_refuses_them() {
        for bad in [
            "/etc",
            "file:///etc",
            "relative/path",
            "s3://b/x/../y",
            "s3://b/x/%2e%2e/y",
            "s3://b/x/%252e%252e/y",
            "s3://b/x%00",
            "s3://b",
            "s3://b/",
            "s3://b/./x",
            "runs://host/abc/model",
            "runs:/abc/model",
            "mlflow-artifacts:/0/x",
            "models:/m-123",
        ] {
            let e = check_source_run(bad, None, &mut no_run).unwrap_err();
            assert!(
                e.message.starts_with("Invalid model version source"),
                "{bad}: {}",
                e.message
            );
        }
        for ok in [
            "s3://bucket/ok/path",
            "models:/m1/1",
            "models:/m1@champion",
            "gs://b/p/model",
            "dbfs:/x/y",
        ] {
            check_source_run(ok, None, &mut no_run).unwrap();
        }
        // A runs: source must name the request's run, which need not be held here.
        check_source_run("runs:/abc/model", Some("abc"), &mut no_run).unwrap();
        assert!(check_source_run("runs:/abc/model", Some("other"), &mut no_run).is_err());
        // mlflow-artifacts sources must be inside the run's root.
        let mut root = |_: &str| -> Result<Option<String>> {
            Ok(Some("mlflow-artifacts:/1/abc/artifacts".to_owned()))
        };
        check_source_run(
            "mlflow-artifacts:/1/abc/artifacts/model",
            Some("abc"),
            &mut root,
        )
        .unwrap();
        assert!(check_source_run(
            "mlflow-artifacts:/1/other/artifacts/model",
            Some("abc"),
            &mut root
        )
        .is_err());
        assert!(check_source_run(
            "mlflow-artifacts:/1/abc/artifacts/%2e%2e/x",
            Some("abc"),
            &mut root
        )
        .is_err());
        // Local paths only below a local run root.
        let mut local = |_: &str| -> Result<Option<String>> {
            Ok(Some("file:///data/1/abc/artifacts".to_owned()))
        };
        check_source_run("/data/1/abc/artifacts/model", Some("abc"), &mut local).unwrap();
        assert!(check_source_run("/data/1/abc/other", Some("abc"), &mut local).is_err());
        assert!(check_source_run("file://remote/x", Some("abc"), &mut local).is_err());
    }

    #[test]
    fn model_sources() {
        check_source_model("models:/m-1", "m-1", &mut no_run).unwrap();
        assert!(check_source_model("models:/m-2", "m-1", &mut no_run).is_err());
        assert!(check_source_model("runs:/abc/model", "m-1", &mut no_run).is_err());
        check_source_model("s3://b/p", "m-1", &mut no_run).unwrap();
        assert!(check_source_model(
            "mlflow-artifacts:/1/models/m-1/artifacts",
            "m-1",
            &mut no_run
        )
        .is_err());
        let mut root = |_: &str| -> Result<Option<String>> {
            Ok(Some("mlflow-artifacts:/1/models/m-1/artifacts".to_owned()))
        };
        check_source_model(
            "mlflow-artifacts:/1/models/m-1/artifacts/x",
            "m-1",
            &mut root,
        )
        .unwrap();
    }

    #[test]
    fn model_uris() {
        assert_eq!(
            parse_model_uri("models:/a/3"),
            Ok(ModelUri::Version {
                name: "a".into(),
                version: "3".into()
            })
        );
        assert_eq!(
            parse_model_uri("models:/a@b"),
            Ok(ModelUri::Alias {
                name: "a".into(),
                alias: "b".into()
            })
        );
        assert_eq!(
            parse_model_uri("models:/a/Latest"),
            Ok(ModelUri::Latest { name: "a".into() })
        );
        assert_eq!(
            parse_model_uri("models:/a/Production"),
            Ok(ModelUri::Stage {
                name: "a".into(),
                stage: "Production".into()
            })
        );
        assert_eq!(
            parse_model_uri("models:/m-1"),
            Ok(ModelUri::ModelId("m-1".into()))
        );
        assert!(parse_model_uri("models:/a/b/c").is_err());
        assert!(parse_model_uri("models:/").is_err());
    }

    #[test]
    fn artifact_locations() {
        assert_eq!(
            resolve_local_location("rel/dir", "/srv").unwrap(),
            "/srv/rel/dir"
        );
        assert_eq!(
            resolve_local_location("./rel", "/srv/").unwrap(),
            "/srv/rel"
        );
        assert_eq!(
            resolve_local_location("file:rel", "/srv").unwrap(),
            "file:///srv/rel"
        );
        assert_eq!(resolve_local_location("/abs", "/srv").unwrap(), "/abs");
        assert_eq!(
            resolve_local_location("s3://b/p", "/srv").unwrap(),
            "s3://b/p"
        );
        assert!(check_artifact_location("runs:/x", "artifact_location", &[], 2048).is_err());
        assert!(check_artifact_location("s3://b/p#f", "artifact_location", &[], 2048).is_err());
        assert!(check_artifact_location("s3://b/p?x=..", "artifact_location", &[], 2048).is_err());
        assert!(check_artifact_location("http://h/p", "artifact_location", &[], 2048).is_err());
        check_artifact_location(
            "http://h/p",
            "artifact_location",
            &["HTTP".to_owned()],
            2048,
        )
        .unwrap();
        check_artifact_location("mlflow-artifacts:/p", "artifact_location", &[], 2048).unwrap();
        assert!(
            check_artifact_location("mlflow-artifacts://h/p", "artifact_location", &[], 2048)
                .is_err()
        );
    }
}
