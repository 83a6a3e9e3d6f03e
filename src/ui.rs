//! MLflow's own web UI, served as MLflow's server serves it: the static build that ships
//! inside the user's installed `mlflow` package (`mlflow/server/js/build`), found at start
//! from a `python3` on PATH or given with `--ui DIR`. Nothing of it is kept in this
//! repository; the pages call the same REST routes as the client (`/ajax-api/...`).
//!
//! Architecture invariant: this module serves files from the build folder and nothing else;
//! it knows no store, no workspace and no route of the API.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Asked of `python3` to find the build folder of its `mlflow` package without importing it.
const FIND_BUILD: &str = "import importlib.util, os\n\
s = importlib.util.find_spec('mlflow')\n\
print(os.path.join(os.path.dirname(s.origin), 'server', 'js', 'build') if s and s.origin else '')";

/// Where a UI build comes from, for the start-up message.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    Given(PathBuf),
    Python(PathBuf),
    /// No build: why, and how to get one.
    Missing(String),
}

/// The MLflow UI build this server serves.
#[derive(Clone)]
pub struct Ui {
    dir: Arc<PathBuf>,
    /// Files read once: the build never changes while the server runs.
    cache: Arc<RwLock<HashMap<String, (bytes::Bytes, &'static str)>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("--ui {0}: no MLflow UI build there (expected index.html; the build ships in the full `mlflow` package as mlflow/server/js/build)")]
pub struct NotABuild(pub String);

impl Ui {
    /// The UI at `given`, or else the one of the `mlflow` package of `python3` on PATH.
    pub fn find(given: Option<&Path>) -> Result<(Option<Ui>, Found), NotABuild> {
        if let Some(dir) = given {
            if !dir.join("index.html").is_file() {
                return Err(NotABuild(dir.display().to_string()));
            }
            return Ok((Some(Ui::at(dir)), Found::Given(dir.to_owned())));
        }
        let out = std::process::Command::new("python3")
            .args(["-c", FIND_BUILD])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output();
        let missing = |why: &str| {
            Found::Missing(format!("{why}; install the full `mlflow` package (pip install mlflow) for a python3 on PATH, or pass --ui DIR (a folder holding MLflow's index.html)"))
        };
        let Ok(out) = out else {
            return Ok((None, missing("no python3 on PATH")));
        };
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.as_os_str().is_empty() {
            return Ok((None, missing("python3 on PATH has no mlflow package")));
        }
        if !dir.join("index.html").is_file() {
            return Ok((
                None,
                missing("python3's mlflow package has no UI build (mlflow-skinny ships none)"),
            ));
        }
        Ok((Some(Ui::at(&dir)), Found::Python(dir)))
    }

    pub fn at(dir: &Path) -> Ui {
        Ui {
            dir: Arc::new(dir.to_owned()),
            cache: Arc::default(),
        }
    }

    /// `/`: the UI's index page.
    pub async fn index(&self) -> Response {
        self.file("index.html", false).await
    }

    /// `/static-files/PATH`: a file of the build, cached by the browser for four weeks as
    /// MLflow does (the names of the scripts carry their content hash).
    pub async fn static_file(&self, path: &str) -> Response {
        self.file(path, true).await
    }

    async fn file(&self, path: &str, long_cache: bool) -> Response {
        if !safe(path) {
            return not_found();
        }
        let cached = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned();
        let (bytes, mime) = match cached {
            Some(c) => c,
            None => match tokio::fs::read(self.dir.join(path)).await {
                Ok(b) => {
                    let entry = (bytes::Bytes::from(b), content_type(path));
                    self.cache
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(path.to_owned(), entry.clone());
                    entry
                }
                Err(_) => return not_found(),
            },
        };
        let mut r = Response::new(Body::from(bytes));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if long_cache {
                "public, max-age=2419200"
            } else {
                "no-cache"
            }),
        );
        r
    }
}

/// `/` when there is no UI build: what to do about it.
pub fn missing_page(why: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tandem</title></head><body>\
         <h1>tandem</h1><p>This server has no MLflow UI to show: {}.</p>\
         <p>The REST API is served as usual (point the mlflow client here), and the \
         disaster-recovery dashboard is at <a href=\"tandem/\">/tandem/</a>.</p></body></html>",
        html_escape(why)
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Plain relative paths only: no `..`, no absolute paths, no backslashes or NULs.
fn safe(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") | Some("map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("ttf") => "font/ttf",
        Some("wasm") => "application/wasm",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 Not Found: the requested URL was not found on the server.\n",
    )
        .into_response()
}

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_served() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a\0b",
        ] {
            assert!(!safe(bad), "{bad:?}");
        }
        assert!(safe("static/js/main.1234.js"));
        assert!(safe("favicon.ico"));
    }

    #[tokio::test]
    async fn serves_the_build_and_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let build = dir.path().join("build");
        std::fs::create_dir_all(build.join("static")).unwrap();
        std::fs::write(build.join("index.html"), "<html>mlflow</html>").unwrap();
        std::fs::write(build.join("static/app.js"), "1").unwrap();
        std::fs::write(dir.path().join("secret"), "no").unwrap();
        assert!(Ui::find(Some(dir.path())).is_err());
        let (ui, found) = Ui::find(Some(&build)).unwrap();
        let ui = ui.unwrap();
        assert_eq!(found, Found::Given(build.clone()));
        let r = ui.index().await;
        assert_eq!(r.status(), 200);
        let r = ui.static_file("static/app.js").await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(ui.static_file("../secret").await.status(), 404);
        assert_eq!(ui.static_file("static/none.js").await.status(), 404);
    }
}
