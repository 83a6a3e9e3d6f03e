//! Authentication and authorization at the edge: every route, called by every kind of caller,
//! checked against one table written out here (not computed by the code under test).

use crate::support::{Meta, TestServer};
use serde_json::{json, Value};
use tandem::api::access::{self, NewPrincipal};
use tandem::auth::AuthMode;
use tandem_core::access::Scope;

const WS: &str = "team";

/// What each built-in role, assigned at `workspaces/team`, may do. `service` says the route
/// acts on the whole service (nobody but an admin at `*`).
fn expected(role: &str, action: &str, service: bool) -> bool {
    let contributor_writes = [
        "experiments/write",
        "runs/write",
        "models/write",
        "logged-models/write",
        "artifacts/write",
    ];
    let read = action.ends_with("/read");
    match role {
        _ if action == "any" => true,
        "admin" => true,
        _ if service => false,
        "reader" => read,
        "contributor" => read || contributor_writes.contains(&action),
        "owner" => {
            read || contributor_writes.contains(&action)
                || action.ends_with("/delete")
                || ["workspaces/write", "retention/write", "access/manage"].contains(&action)
        }
        _ => false,
    }
}

/// A concrete request path for a route key, aimed at workspace `team` and at objects that
/// do not exist (so that allowed calls change nothing the test relies on).
fn concrete(key: &str) -> (String, String) {
    let filled = key
        .replace("{workspace_name}", WS)
        .replace("{name}", "nobody")
        .replace("{model_id}", "m-00000000000000000000000000000000")
        .replace("{tag_key}", "k")
        .replace("{token_id}", "t-0")
        .replace("{assignment_id}", "a-0")
        .replace("{path}", "1/r/artifacts/f.txt")
        .replace("{upload}", "u0/parts/1")
        .replace("{epoch}", "1")
        .replace("{seq}", "1")
        .replace("{action}", "discard");
    let url = if let Some(rest) = filled.strip_prefix("tandem/") {
        format!("/api/tandem/v1/{rest}")
    } else if let Some(rest) = filled.strip_prefix("ui/") {
        format!("/{rest}")
    } else if filled == "metrics" {
        "/metrics".to_owned()
    } else {
        format!("/api/2.0/{filled}")
    };
    (filled, url)
}

struct Caller {
    role: &'static str,
    token: String,
}

async fn server_with_people() -> (TestServer, Vec<Caller>) {
    let server = TestServer::start_with(Meta::Sqlite, None, AuthMode::On).await;
    let store = server.store.clone();
    let callers = tokio::task::spawn_blocking(move || {
        tandem::api::workspaces::ensure(&store, WS, "", "test").unwrap();
        let mut out = Vec::new();
        for (role, scope) in [
            ("reader", format!("workspaces/{WS}")),
            ("contributor", format!("workspaces/{WS}")),
            ("owner", format!("workspaces/{WS}")),
            ("admin", "*".to_owned()),
        ] {
            let name = format!("{role}-1");
            access::create_principal(
                &store,
                "test",
                NewPrincipal {
                    name: &name,
                    kind: "user",
                    workspace: None,
                    password_hash: None,
                    roles: vec![(role.to_owned(), Scope::parse(&scope).unwrap())],
                },
            )
            .unwrap();
            let t = access::issue_token(&store, "test", &name, "", None).unwrap();
            out.push(Caller {
                role,
                token: t["token"].as_str().unwrap().to_owned(),
            });
        }
        out
    })
    .await
    .unwrap();
    (server, callers)
}

async fn send(
    server: &TestServer,
    method: &str,
    url: &str,
    auth: Option<&str>,
    workspace: &str,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = server
        .http
        .request(m.clone(), format!("{}{url}", server.url))
        .header("X-MLFLOW-WORKSPACE", workspace);
    if let Some(a) = auth {
        rb = rb.header("Authorization", a);
    }
    if m != reqwest::Method::GET {
        rb = rb.header("Content-Type", "application/json").body("{}");
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn every_route_has_an_access_rule() {
    let mut missing = Vec::new();
    let keys = tandem::http::route_keys();
    for (m, key) in &keys {
        let (filled, _) = concrete(key);
        if tandem::api::access_rule(m, &filled).is_none() {
            missing.push(format!("{m} {key}"));
        }
    }
    assert!(
        missing.is_empty(),
        "routes without an access rule: {missing:?}"
    );
    // And no rule is left over from a route that is gone.
    for (m, pattern, _, _) in tandem::api::ACCESS {
        let used = keys.iter().any(|(km, key)| {
            let filled = concrete(key).0;
            km == m
                && match pattern.strip_suffix("/*") {
                    Some(prefix) => filled.starts_with(&format!("{prefix}/")),
                    None => tandem::api::match_pattern(pattern, &filled).is_some(),
                }
        });
        assert!(used, "access rule {m} {pattern} matches no route");
    }
}

#[tokio::test]
async fn every_route_by_every_caller_matches_the_table() {
    let (server, callers) = server_with_people().await;
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (m, key) in tandem::http::route_keys() {
        let (filled, url) = concrete(&key);
        let (action, scope_of, _) = tandem::api::access_rule(m, &filled).unwrap();
        // Region routes exist only on a region (tests/python/test_access.py covers them).
        if action.starts_with("regions/") {
            continue;
        }
        // Anonymous: always refused, in MLflow's shape.
        let (status, body) = send(&server, m, &url, None, WS).await;
        if status != 401 || body["error_code"] != "UNAUTHENTICATED" {
            wrong.push(format!("anonymous {m} {url}: {status} {body}"));
        }
        for c in &callers {
            let service = scope_of == tandem::api::ScopeOf::Service;
            let allow = expected(c.role, action, service);
            let (status, body) =
                send(&server, m, &url, Some(&format!("Bearer {}", c.token)), WS).await;
            checked += 1;
            let refused = status == 401 || status == 403;
            if allow == refused || (refused && body["error_code"] != "PERMISSION_DENIED") {
                wrong.push(format!(
                    "{} {m} {url} ({action}): expected {}, got {status} {body}",
                    c.role,
                    if allow { "allowed" } else { "403" }
                ));
            }
            // INVALID_STATE is MLflow's own 500 (deleting a workspace that still has runs).
            if status >= 500
                && status != 501
                && status != 503
                && body["error_code"] != "INVALID_STATE"
            {
                wrong.push(format!("{} {m} {url}: {status} {body}", c.role));
            }
        }
    }
    assert!(checked > 300, "only {checked} calls checked");
    assert!(
        wrong.is_empty(),
        "{} wrong outcomes:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    server.stop().await;
}

#[tokio::test]
async fn narrow_rights_do_not_reach_other_workspaces() {
    let (server, callers) = server_with_people().await;
    let owner = format!("Bearer {}", callers[2].token);
    // The owner of `team` is a stranger in `default`.
    let (s, b) = send(
        &server,
        "GET",
        "/api/2.0/mlflow/experiments/get?experiment_id=0",
        Some(&owner),
        "default",
    )
    .await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{b}"
    );
    let (s, b) = send(
        &server,
        "POST",
        "/api/tandem/v1/workspaces/default/purge",
        Some(&owner),
        WS,
    )
    .await;
    assert_eq!(s, 403, "{b}");
    // The workspace list shows only what the caller may read.
    let (s, b) = send(
        &server,
        "GET",
        "/api/3.0/mlflow/workspaces",
        Some(&owner),
        WS,
    )
    .await;
    assert_eq!(s, 200);
    let names: Vec<&str> = b["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![WS]);
    let admin = format!("Bearer {}", callers[3].token);
    let (_, b) = send(
        &server,
        "GET",
        "/api/3.0/mlflow/workspaces",
        Some(&admin),
        WS,
    )
    .await;
    let names: Vec<&str> = b["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["default", WS],
        "the access workspace is never listed"
    );
    // `_access` is not an MLflow workspace, and its log is for administrators only.
    let (s, _) = send(
        &server,
        "GET",
        "/api/2.0/mlflow/experiments/search?max_results=1",
        Some(&admin),
        "_access",
    )
    .await;
    assert_eq!(s, 400);
    let reader = format!("Bearer {}", callers[0].token);
    let (s, _) = send(
        &server,
        "GET",
        "/api/tandem/v1/workspaces/_access/changes",
        Some(&reader),
        WS,
    )
    .await;
    assert_eq!(s, 403);
    let (s, b) = send(
        &server,
        "GET",
        "/api/tandem/v1/workspaces/_access/changes",
        Some(&admin),
        WS,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    // No secret is in the access log: token hashes only.
    let text = b.to_string();
    for c in &callers {
        assert!(
            !text.contains(&c.token),
            "a token is in the access log in clear"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn credentials_are_checked_and_bad_ones_change_nothing() {
    let server = TestServer::start_with(Meta::Sqlite, None, AuthMode::On).await;
    let store = server.store.clone();
    let head = move |s: &tandem::store::Store| {
        s.read(|tx| tandem::store::queries::log_head(tx, "default"))
            .unwrap()
            .map(|h| h.seq)
    };
    let before = head(&server.store);
    tokio::task::spawn_blocking(move || {
        access::create_principal(
            &store,
            "test",
            NewPrincipal {
                name: "alice",
                kind: "user",
                workspace: None,
                password_hash: Some(tandem::auth::hash_password("correct horse").unwrap()),
                roles: vec![(
                    "contributor".into(),
                    Scope::parse("workspaces/default").unwrap(),
                )],
            },
        )
        .unwrap();
    })
    .await
    .unwrap();
    use base64::Engine;
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let create = "/api/2.0/mlflow/experiments/create";
    for bad in [
        basic("alice", "wrong"),
        basic("bob", "correct horse"),
        basic("alice", ""),
        "Basic !!!not-base64".into(),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("no-colon")
        ),
        "Bearer".into(),
        "Bearer tdm_unknown".into(),
        "Digest username=alice".into(),
        "".into(),
    ] {
        let resp = server
            .http
            .post(format!("{}{create}", server.url))
            .header("Authorization", bad.as_str())
            .json(&json!({"name": "never"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{bad}");
        assert!(resp.headers().get("www-authenticate").is_some(), "{bad}");
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["error_code"], "UNAUTHENTICATED", "{bad}: {b}");
    }
    // A header that is not even text.
    let resp = server
        .http
        .post(format!("{}{create}", server.url))
        .header(
            "Authorization",
            reqwest::header::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        )
        .json(&json!({"name": "never"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        head(&server.store),
        before,
        "a refused request wrote something"
    );
    // The right password works, and the event names who asked.
    let (s, b) = {
        let resp = server
            .http
            .post(format!("{}{create}", server.url))
            .header("Authorization", basic("alice", "correct horse"))
            .json(&json!({"name": "by-alice"}))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(s, 200, "{b}");
    let events = server
        .store
        .read(|tx| tandem::store::queries::changes(tx, "default", 0, 1000))
        .unwrap();
    assert_eq!(events.last().unwrap().principal, "alice");
    // Guessing is slowed down: after ten failures in a minute, 429.
    let mut last = 0;
    for _ in 0..12 {
        let resp = server
            .http
            .get(format!(
                "{}/api/2.0/mlflow/experiments/get?experiment_id=0",
                server.url
            ))
            .header("Authorization", basic("alice", "guess"))
            .send()
            .await
            .unwrap();
        last = resp.status().as_u16();
    }
    assert_eq!(last, 429);
    server.stop().await;
}

#[tokio::test]
async fn tokens_expire_and_revocation_applies_at_once() {
    let server = TestServer::start_with(Meta::Sqlite, None, AuthMode::On).await;
    let store = server.store.clone();
    let (short, long) = tokio::task::spawn_blocking(move || {
        access::create_principal(
            &store,
            "test",
            NewPrincipal {
                name: "svc",
                kind: "service",
                workspace: Some("default"),
                password_hash: None,
                roles: vec![("reader".into(), Scope::parse("workspaces/default").unwrap())],
            },
        )
        .unwrap();
        let short = access::issue_token(&store, "test", "svc", "short", Some(store.now_ms() + 300))
            .unwrap();
        let long = access::issue_token(&store, "test", "svc", "long", None).unwrap();
        (short, long)
    })
    .await
    .unwrap();
    let get = |t: String| {
        let (http, url) = (server.http.clone(), server.url.clone());
        async move {
            http.get(format!(
                "{url}/api/2.0/mlflow/experiments/get?experiment_id=0"
            ))
            .bearer_auth(t)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
        }
    };
    let short_token = short["token"].as_str().unwrap().to_owned();
    assert_eq!(get(short_token.clone()).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(get(short_token).await, 401, "an expired token still works");
    let long_token = long["token"].as_str().unwrap().to_owned();
    assert_eq!(get(long_token.clone()).await, 200);
    // Revoked through the API by an administrator: refused on the very next request.
    let store = server.store.clone();
    let admin = tokio::task::spawn_blocking(move || {
        access::create_principal(
            &store,
            "test",
            NewPrincipal {
                name: "root",
                kind: "user",
                workspace: None,
                password_hash: None,
                roles: vec![("admin".into(), Scope::Service)],
            },
        )
        .unwrap();
        access::issue_token(&store, "test", "root", "", None).unwrap()
    })
    .await
    .unwrap();
    let resp = server
        .http
        .delete(format!(
            "{}/api/tandem/v1/access/principals/svc/tokens/{}",
            server.url,
            long["token_id"].as_str().unwrap()
        ))
        .bearer_auth(admin["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(get(long_token).await, 401, "a revoked token still works");
    server.stop().await;
}
