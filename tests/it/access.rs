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
    // `+`: the role held as an elevation (time-bounded), which alone grants destructive and
    // administrative actions.
    let elevated = role.ends_with('+');
    let role = role.trim_end_matches('+');
    let elevation_only = action.ends_with("/delete")
        || [
            "retention/write",
            "restore/in-place",
            "locks/lift",
            "access/manage",
            "regions/failover",
        ]
        .contains(&action);
    if action != "any" && elevation_only && !elevated {
        return false;
    }
    let contributor_writes = [
        "experiments/write",
        "runs/write",
        "models/write",
        "logged-models/write",
        "artifacts/write",
        "assets/write",
        "jobs/write",
        "secrets/write",
        "gateway/write",
        "gateway/invoke",
        "traces/write",
        "genai/write",
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
                || [
                    "workspaces/write",
                    "retention/write",
                    "access/manage",
                    "secrets/reveal",
                ]
                .contains(&action)
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
    } else if filled == "otlp/traces" {
        "/v1/traces".to_owned()
    } else if filled == "gateway/invoke" {
        "/gateway/nobody/mlflow/invocations".to_owned()
    } else {
        format!("/api/2.0/{filled}")
    };
    (filled, url)
}

struct Caller {
    role: &'static str,
    token: String,
}

/// An elevation for an hour from now.
fn hour(store: &tandem::store::Store) -> access::Grant<'static> {
    access::Grant::Until {
        until_ms: store.now_ms() + 3_600_000,
        reason: "test",
    }
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
            ("owner+", format!("workspaces/{WS}")),
            ("admin+", "*".to_owned()),
        ] {
            let name = format!("{}-1", role.replace('+', "-elevated"));
            let base = role.trim_end_matches('+');
            let scope = Scope::parse(&scope).unwrap();
            access::create_principal(
                &store,
                "test",
                NewPrincipal {
                    name: &name,
                    kind: "user",
                    workspace: None,
                    password_hash: None,
                    roles: match role.ends_with('+') {
                        true => vec![],
                        false => vec![(base.to_owned(), scope.clone())],
                    },
                },
            )
            .unwrap();
            if role.ends_with('+') {
                access::assign(&store, "test", &name, base, &scope, hour(&store)).unwrap();
            }
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
    let admin = format!("Bearer {}", callers[5].token);
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
                roles: vec![],
            },
        )
        .unwrap();
        access::assign(
            &store,
            "test",
            "root",
            "admin",
            &Scope::Service,
            hour(&store),
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

/// Sends JSON as `token` to workspace `team`.
async fn as_(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let query: Vec<String> = body
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            format!("{k}={}", tandem::http::encode_segment(&v))
        })
        .collect();
    let url = match m == reqwest::Method::GET {
        true => format!("{}{path}?{}", server.url, query.join("&")),
        false => format!("{}{path}", server.url),
    };
    let mut rb = server
        .http
        .request(m.clone(), url)
        .header("X-MLFLOW-WORKSPACE", WS)
        .bearer_auth(token);
    if m != reqwest::Method::GET {
        rb = rb.json(&body);
    }
    let resp = rb.send().await.unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rights_on_one_experiment_or_model_reach_only_it() {
    let (server, callers) = server_with_people().await;
    let admin = callers[3].token.clone();
    let mk_exp = |name: &'static str| {
        let (server, admin) = (&server, admin.clone());
        async move {
            let (s, b) = as_(
                server,
                &admin,
                "POST",
                "/api/2.0/mlflow/experiments/create",
                json!({"name": name}),
            )
            .await;
            assert_eq!(s, 200, "{b}");
            b["experiment_id"].as_str().unwrap().to_owned()
        }
    };
    let (a, b) = (mk_exp("exp-a").await, mk_exp("exp-b").await);
    let mut runs = Vec::new();
    for e in [&a, &b] {
        let (s, r) = as_(
            &server,
            &admin,
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": e}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        runs.push(r["run"]["info"]["run_id"].as_str().unwrap().to_owned());
    }
    for m in ["m1", "m2"] {
        let (s, r) = as_(
            &server,
            &admin,
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            json!({"name": m}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
    }
    let store = server.store.clone();
    let (ext, modr) = {
        let (a, store) = (a.clone(), store.clone());
        tokio::task::spawn_blocking(move || {
            let mut tokens = Vec::new();
            for (name, role, scope) in [
                (
                    "ext",
                    "contributor",
                    format!("workspaces/{WS}/experiments/{a}"),
                ),
                ("modr", "reader", format!("workspaces/{WS}/models/m1")),
            ] {
                access::create_principal(
                    &store,
                    "test",
                    NewPrincipal {
                        name,
                        kind: "user",
                        workspace: None,
                        password_hash: None,
                        roles: vec![(role.into(), Scope::parse(&scope).unwrap())],
                    },
                )
                .unwrap();
                tokens.push(
                    access::issue_token(&store, "test", name, "", None).unwrap()["token"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            (tokens[0].clone(), tokens[1].clone())
        })
        .await
        .unwrap()
    };
    let (ra, rb) = (&runs[0], &runs[1]);
    let cases: Vec<(&str, &str, &str, Value, u16)> = vec![
        (
            &ext,
            "GET",
            "/api/2.0/mlflow/experiments/get",
            json!({"experiment_id": a}),
            200,
        ),
        (
            &ext,
            "GET",
            "/api/2.0/mlflow/experiments/get",
            json!({"experiment_id": b}),
            403,
        ),
        (
            &ext,
            "GET",
            "/api/2.0/mlflow/experiments/get-by-name",
            json!({"experiment_name": "exp-a"}),
            200,
        ),
        (
            &ext,
            "GET",
            "/api/2.0/mlflow/experiments/get-by-name",
            json!({"experiment_name": "exp-b"}),
            403,
        ),
        (
            &ext,
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": a}),
            200,
        ),
        (
            &ext,
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": b}),
            403,
        ),
        (
            &ext,
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": ra, "params": [{"key": "p", "value": "1"}]}),
            200,
        ),
        (
            &ext,
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": rb, "params": [{"key": "p", "value": "1"}]}),
            403,
        ),
        (
            &ext,
            "GET",
            "/api/2.0/mlflow/runs/get",
            json!({"run_id": rb}),
            403,
        ),
        (
            &ext,
            "GET",
            "/api/2.0/mlflow/runs/get",
            json!({"run_id": "0123456789abcdef0123456789abcdef"}),
            403,
        ),
        (
            &ext,
            "POST",
            "/api/2.0/mlflow/runs/delete",
            json!({"run_id": ra}),
            403,
        ),
        (
            &ext,
            "POST",
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": [a]}),
            200,
        ),
        (
            &ext,
            "POST",
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": [a, b]}),
            403,
        ),
        (
            &ext,
            "POST",
            "/api/2.0/mlflow/experiments/create",
            json!({"name": "new"}),
            403,
        ),
        (
            &ext,
            "GET",
            "/api/2.0/mlflow/artifacts/list",
            json!({"run_id": ra}),
            200,
        ),
        (
            &ext,
            "GET",
            "/api/2.0/mlflow-artifacts/artifacts",
            json!({"path": format!("{b}/{rb}/artifacts")}),
            403,
        ),
        (
            &ext,
            "GET",
            "/api/2.0/mlflow/registered-models/get",
            json!({"name": "m1"}),
            403,
        ),
        (
            &modr,
            "GET",
            "/api/2.0/mlflow/registered-models/get",
            json!({"name": "m1"}),
            200,
        ),
        (
            &modr,
            "GET",
            "/api/2.0/mlflow/registered-models/get",
            json!({"name": "m2"}),
            403,
        ),
        (
            &modr,
            "POST",
            "/api/2.0/mlflow/registered-models/set-tag",
            json!({"name": "m1", "key": "k", "value": "v"}),
            403,
        ),
        (
            &modr,
            "GET",
            "/api/2.0/mlflow/experiments/get",
            json!({"experiment_id": a}),
            403,
        ),
    ];
    for (token, m, path, body, want) in cases {
        let (s, v) = as_(&server, token, m, path, body.clone()).await;
        assert_eq!(s, want, "{m} {path} {body}: {v}");
        if want == 403 {
            assert_eq!(v["error_code"], "PERMISSION_DENIED");
        }
    }
    // Artifact bytes go where the experiment allows.
    for (exp, run, want) in [(&a, ra, 200), (&b, rb, 403)] {
        let resp = server
            .http
            .put(format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/f.txt",
                server.url
            ))
            .header("X-MLFLOW-WORKSPACE", WS)
            .bearer_auth(&ext)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want);
    }
    // Lists show only what may be read.
    let (s, v) = as_(
        &server,
        &ext,
        "POST",
        "/api/2.0/mlflow/experiments/search",
        json!({"max_results": 100}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<&str> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["experiment_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a.as_str()]);
    let (s, v) = as_(
        &server,
        &modr,
        "GET",
        "/api/2.0/mlflow/registered-models/search",
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["registered_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["m1"]);
    server.stop().await;
}

/// A clock the test moves by hand.
struct Clock(std::sync::atomic::AtomicU64);
impl tandem::store::Clock for Clock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn deletes_need_an_elevation_that_expires_and_locks_refuse_everyone() {
    let clock = std::sync::Arc::new(Clock(std::sync::atomic::AtomicU64::new({
        use tandem::store::Clock as _;
        tandem::store::SystemClock.now_ms()
    })));
    let server =
        TestServer::start_with_clock(Meta::Sqlite, None, AuthMode::On, Some(clock.clone())).await;
    let store = server.store.clone();
    let (root, olly) = tokio::task::spawn_blocking(move || {
        tandem::api::workspaces::ensure(&store, WS, "", "test").unwrap();
        let mk = |name: &str, roles: Vec<(String, Scope)>| {
            access::create_principal(
                &store,
                "test",
                NewPrincipal {
                    name,
                    kind: "user",
                    workspace: None,
                    password_hash: None,
                    roles,
                },
            )
            .unwrap();
            access::issue_token(&store, "test", name, "", None).unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let team = Scope::parse(&format!("workspaces/{WS}")).unwrap();
        let root = mk("root", vec![("admin".into(), Scope::Service)]);
        let olly = mk("olly", vec![("owner".into(), team.clone())]);
        access::assign(
            &store,
            "test",
            "olly",
            "deleter",
            &team,
            access::Grant::Eligible { for_ms: 3_600_000 },
        )
        .unwrap();
        (root, olly)
    })
    .await
    .unwrap();
    let (s, e) = as_(
        &server,
        &root,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "e1"}),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let e1 = e["experiment_id"].as_str().unwrap().to_owned();
    let (_, e) = as_(
        &server,
        &root,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "e2"}),
    )
    .await;
    let e2 = e["experiment_id"].as_str().unwrap().to_owned();
    let mut runs = Vec::new();
    for e in [&e1, &e1, &e2] {
        let (_, r) = as_(
            &server,
            &root,
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": e}),
        )
        .await;
        runs.push(r["run"]["info"]["run_id"].as_str().unwrap().to_owned());
    }
    let delete = |token: String, run: String| {
        let server = &server;
        async move {
            as_(
                server,
                &token,
                "POST",
                "/api/2.0/mlflow/runs/delete",
                json!({"run_id": run}),
            )
            .await
        }
    };
    // No standing delete: an owner, and even an administrator, must elevate first.
    for t in [&olly, &root] {
        let (s, b) = delete(t.clone(), runs[0].clone()).await;
        assert_eq!(s, 403, "{b}");
        assert!(b["message"].as_str().unwrap().contains("elevation"), "{b}");
    }
    let elevate = |token: String, body: Value| {
        let server = &server;
        async move {
            as_(
                server,
                &token,
                "POST",
                "/api/tandem/v1/access/elevate",
                body,
            )
            .await
        }
    };
    let (s, b) = elevate(olly.clone(), json!({"role": "deleter", "scope": format!("workspaces/{WS}"), "for_seconds": 7200, "reason": "too long"})).await;
    assert_eq!(s, 403, "longer than the eligibility allows: {b}");
    let (s, b) = elevate(
        olly.clone(),
        json!({"role": "deleter", "scope": "*", "for_seconds": 60, "reason": "wider"}),
    )
    .await;
    assert_eq!(s, 403, "wider than the eligibility: {b}");
    let (s, _) = elevate(olly.clone(), json!({"role": "deleter", "scope": format!("workspaces/{WS}"), "for_seconds": 60, "reason": " "})).await;
    assert_eq!(s, 400, "an elevation needs a reason");
    let (s, b) = elevate(olly.clone(), json!({"role": "deleter", "scope": format!("workspaces/{WS}"), "for_seconds": 1800, "reason": "clean up run 0"})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(delete(olly.clone(), runs[0].clone()).await.0, 200);
    // The elevation is an event of the access log, with its reason.
    let events = server
        .store
        .read(|tx| tandem::store::queries::changes(tx, "_access", 0, 1000))
        .unwrap();
    let last = events.iter().rev().find(|e| e.op == "Assign").unwrap();
    assert_eq!(last.principal, "olly");
    assert!(last.payload.contains("clean up run 0") && last.payload.contains("until_ms"));
    // The audit trail names who deleted what, under which elevation and why.
    let (s, audit) = as_(
        &server,
        &root,
        "GET",
        &format!("/api/tandem/v1/workspaces/{WS}/audit"),
        json!({"principal": "olly", "action": "runs/delete"}),
    )
    .await;
    assert_eq!(s, 200, "{audit}");
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["object"], format!("run:{}", runs[0]));
    assert_eq!(events[0]["elevation"]["reason"], "clean up run 0");
    assert_eq!(events[0]["elevation"]["role"], "deleter");
    let (_, all) = as_(
        &server,
        &root,
        "GET",
        &format!("/api/tandem/v1/workspaces/{WS}/audit"),
        json!({"object": format!("run:{}", runs[0])}),
    )
    .await;
    assert_eq!(
        all["events"].as_array().unwrap().len(),
        2,
        "created by root, deleted by olly: {all}"
    );
    let (s, _) = as_(
        &server,
        &olly,
        "GET",
        "/api/tandem/v1/workspaces/_access/audit",
        json!({}),
    )
    .await;
    assert_eq!(s, 403, "the access log's audit is for administrators");
    let (s, _) = as_(
        &server,
        &root,
        "GET",
        &format!("/api/tandem/v1/workspaces/{WS}/audit"),
        json!({"from": "yesterday"}),
    )
    .await;
    assert_eq!(s, 400);
    // Thirty-one minutes later it is over, on this clock, with no event needed.
    clock
        .0
        .fetch_add(31 * 60_000, std::sync::atomic::Ordering::SeqCst);
    let (s, b) = delete(olly.clone(), runs[1].clone()).await;
    assert_eq!(s, 403, "an expired elevation still deletes: {b}");
    assert_eq!(
        as_(
            &server,
            &olly,
            "POST",
            "/api/2.0/mlflow/runs/restore",
            json!({"run_id": runs[0]})
        )
        .await
        .0,
        200,
        "standing rights remain"
    );

    // Locks: set by an administrator (standing right), refusing everyone, admins included.
    let (s, b) = elevate(
        root.clone(),
        json!({"role": "admin", "scope": "*", "for_seconds": 3600, "reason": "lock drill"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, lock) = as_(
        &server,
        &root,
        "POST",
        "/api/tandem/v1/access/locks",
        json!({"scope": format!("workspaces/{WS}"), "kind": "no-delete", "reason": "production"}),
    )
    .await;
    assert_eq!(s, 200, "{lock}");
    let lock_id = lock["lock"]["id"].as_str().unwrap().to_owned();
    for (m, path, body) in [
        (
            "POST",
            "/api/2.0/mlflow/runs/delete".to_owned(),
            json!({"run_id": runs[1]}),
        ),
        (
            "POST",
            "/api/2.0/mlflow/experiments/delete".to_owned(),
            json!({"experiment_id": e2}),
        ),
        (
            "DELETE",
            format!("/api/3.0/mlflow/workspaces/{WS}"),
            json!({}),
        ),
        (
            "POST",
            format!("/api/tandem/v1/workspaces/{WS}/purge"),
            json!({"now": true}),
        ),
        (
            "PATCH",
            format!("/api/tandem/v1/workspaces/{WS}/retention"),
            json!({"days": 30}),
        ),
    ] {
        let (s, b) = as_(&server, &root, m, &path, body).await;
        assert_eq!(s, 403, "{m} {path}: {b}");
        let msg = b["message"].as_str().unwrap();
        assert!(
            msg.contains("is locked (no-delete on workspaces/team, set by root")
                && msg.contains("production"),
            "{msg}"
        );
    }
    assert_eq!(
        as_(
            &server,
            &root,
            "POST",
            "/api/2.0/mlflow/runs/set-tag",
            json!({"run_id": runs[1], "key": "k", "value": "v"})
        )
        .await
        .0,
        200,
        "no-delete allows changes"
    );
    // The paths that do not come through HTTP hold the same lock.
    let store = server.store.clone();
    let cli = tokio::task::spawn_blocking(move || {
        let purge = tandem::retention::purge(&store, WS, "tandem-cli", true)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let retention = tandem::retention::set(&store, WS, "tandem-cli", Some(30), None)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let rewind = tandem::restore::in_place(&store, WS, store.now_ms() as u64, "tandem-cli")
            .map(|_| ())
            .map_err(|e| e.to_string());
        vec![purge, retention, rewind]
    })
    .await
    .unwrap();
    for r in cli {
        assert!(r.as_ref().is_err_and(|e| e.contains("is locked")), "{r:?}");
    }
    // Only an (elevated) lock administrator lifts it; an owner cannot.
    let (s, _) = as_(
        &server,
        &olly,
        "DELETE",
        &format!("/api/tandem/v1/access/locks/{lock_id}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, b) = as_(
        &server,
        &root,
        "DELETE",
        &format!("/api/tandem/v1/access/locks/{lock_id}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    // A read-only lock on one experiment: its runs take no change, the others do.
    let (s, _) = as_(&server, &root, "POST", "/api/tandem/v1/access/locks", json!({"scope": format!("workspaces/{WS}/experiments/{e1}"), "kind": "read-only", "reason": "frozen results"})).await;
    assert_eq!(s, 200);
    let (s, b) = as_(
        &server,
        &root,
        "POST",
        "/api/2.0/mlflow/runs/set-tag",
        json!({"run_id": runs[1], "key": "k", "value": "w"}),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(
        as_(
            &server,
            &root,
            "POST",
            "/api/2.0/mlflow/runs/set-tag",
            json!({"run_id": runs[2], "key": "k", "value": "w"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        as_(
            &server,
            &root,
            "GET",
            "/api/2.0/mlflow/runs/get",
            json!({"run_id": runs[1]})
        )
        .await
        .0,
        200,
        "reads are never locked"
    );
    // A deleted experiment under a no-delete lock is not purged; the rest is.
    assert_eq!(
        as_(
            &server,
            &root,
            "POST",
            "/api/2.0/mlflow/experiments/delete",
            json!({"experiment_id": e2})
        )
        .await
        .0,
        200
    );
    let (s, _) = as_(&server, &root, "POST", "/api/tandem/v1/access/locks", json!({"scope": format!("workspaces/{WS}/experiments/{e2}"), "kind": "no-delete", "reason": "legal hold"})).await;
    assert_eq!(s, 200);
    let store = server.store.clone();
    let purged = tokio::task::spawn_blocking(move || {
        tandem::retention::purge(&store, WS, "tandem-cli", true).unwrap()
    })
    .await
    .unwrap();
    assert!(
        !purged.experiments.contains(&e2),
        "a locked experiment was purged"
    );
    server.stop().await;
}

#[tokio::test]
async fn custom_roles_and_groups_grant_what_they_say() {
    let (server, callers) = server_with_people().await;
    let admin = callers[5].token.clone(); // elevated: access changes need it
    let post = |path: &'static str, body: Value| {
        let (server, admin) = (&server, admin.clone());
        async move { as_(server, &admin, "POST", path, body).await }
    };
    let (_, e) = post("/api/2.0/mlflow/experiments/create", json!({"name": "cr"})).await;
    let exp = e["experiment_id"].as_str().unwrap().to_owned();
    let (_, r) = post("/api/2.0/mlflow/runs/create", json!({"experiment_id": exp})).await;
    let run = r["run"]["info"]["run_id"].as_str().unwrap().to_owned();
    // Bad roles are refused with MLflow's error shape.
    for bad in [
        json!({"name": "x", "actions": ["runs"]}),
        json!({"name": "reader", "actions": ["*/read"]}),
        json!({"name": "x", "actions": []}),
        json!({"name": "x"}),
    ] {
        let (s, b) = post("/api/tandem/v1/access/roles", bad.clone()).await;
        assert_eq!(
            (s, b["error_code"].as_str()),
            (400, Some("INVALID_PARAMETER_VALUE")),
            "{bad}: {b}"
        );
    }
    let (s, b) = post(
        "/api/tandem/v1/access/roles",
        json!({"name": "run-logger", "actions": ["runs/write", "*/read"]}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = post(
        "/api/tandem/v1/access/principals",
        json!({"name": "ml-team", "kind": "group"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = post(
        "/api/tandem/v1/access/assignments",
        json!({"principal": "ml-team", "role": "run-logger", "scope": format!("workspaces/{WS}")}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = post("/api/tandem/v1/access/principals", json!({"name": "gina"})).await;
    assert_eq!(s, 200);
    let (_, t) = post("/api/tandem/v1/access/principals/gina/tokens", json!({})).await;
    let gina = t["token"].as_str().unwrap().to_owned();
    let log = |token: String| {
        let (server, run) = (&server, run.clone());
        async move {
            as_(
                server,
                &token,
                "POST",
                "/api/2.0/mlflow/runs/log-batch",
                json!({"run_id": run, "params": [{"key": "p", "value": "1"}]}),
            )
            .await
            .0
        }
    };
    assert_eq!(log(gina.clone()).await, 403, "not a member yet");
    let (s, b) = post(
        "/api/tandem/v1/access/groups/ml-team/members",
        json!({"member": "gina"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(log(gina.clone()).await, 200, "the group's role is hers");
    let (s, _) = as_(
        &server,
        &gina,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "no"}),
    )
    .await;
    assert_eq!(s, 403, "run-logger does not create experiments");
    // A role naming one experiment, in the issue's long form.
    let (s, b) = post("/api/tandem/v1/access/roles", json!({"name": "one-exp", "actions": [format!("workspaces/*/experiments/{exp}/read"), format!("workspaces/*/runs/{exp}/read")]})).await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = post("/api/tandem/v1/access/principals", json!({"name": "hal"})).await;
    assert_eq!(s, 200);
    post(
        "/api/tandem/v1/access/assignments",
        json!({"principal": "hal", "role": "one-exp", "scope": "*"}),
    )
    .await;
    let (_, t) = post("/api/tandem/v1/access/principals/hal/tokens", json!({})).await;
    let hal = t["token"].as_str().unwrap().to_owned();
    assert_eq!(
        as_(
            &server,
            &hal,
            "GET",
            "/api/2.0/mlflow/runs/get",
            json!({"run_id": run})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        as_(
            &server,
            &hal,
            "GET",
            "/api/2.0/mlflow/experiments/get",
            json!({"experiment_id": "0"})
        )
        .await
        .0,
        403
    );
    let (s, v) = as_(
        &server,
        &hal,
        "POST",
        "/api/2.0/mlflow/experiments/search",
        json!({"max_results": 10}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["experiments"].as_array().unwrap().len(), 1);
    // A role in use cannot be dropped; out of the group, Gina is refused again.
    let (s, _) = as_(
        &server,
        &admin,
        "DELETE",
        "/api/tandem/v1/access/roles/run-logger",
        json!({}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = as_(
        &server,
        &admin,
        "DELETE",
        "/api/tandem/v1/access/groups/ml-team/members/gina",
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(log(gina.clone()).await, 403);
    server.stop().await;
}

#[tokio::test]
async fn mlflow_2_permission_routes_grant_and_revoke() {
    let (server, callers) = server_with_people().await;
    let admin = callers[5].token.clone();
    let reader = callers[0].token.clone();
    let (_, e) = as_(
        &server,
        &admin,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "perm"}),
    )
    .await;
    let exp = e["experiment_id"].as_str().unwrap().to_owned();
    let (s, b) = as_(
        &server,
        &admin,
        "POST",
        "/api/tandem/v1/access/principals",
        json!({"name": "ken"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (_, t) = as_(
        &server,
        &admin,
        "POST",
        "/api/tandem/v1/access/principals/ken/tokens",
        json!({}),
    )
    .await;
    let ken = t["token"].as_str().unwrap().to_owned();
    assert_eq!(
        as_(
            &server,
            &ken,
            "GET",
            "/api/2.0/mlflow/experiments/get",
            json!({"experiment_id": exp})
        )
        .await
        .0,
        403
    );
    let (s, b) = as_(
        &server,
        &admin,
        "POST",
        "/api/2.0/mlflow/experiments/permissions/create",
        json!({"experiment_id": exp, "username": "ken", "permission": "EDIT"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["experiment_permission"]["permission"], "EDIT");
    assert_eq!(
        as_(
            &server,
            &ken,
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": exp})
        )
        .await
        .0,
        200
    );
    let (s, b) = as_(
        &server,
        &reader,
        "POST",
        "/api/2.0/mlflow/experiments/permissions/create",
        json!({"experiment_id": exp, "username": "ken", "permission": "MANAGE"}),
    )
    .await;
    assert_eq!(s, 403, "a reader changes no access: {b}");
    let (s, b) = as_(
        &server,
        &admin,
        "PATCH",
        "/api/2.0/mlflow/experiments/permissions/update",
        json!({"experiment_id": exp, "username": "ken", "permission": "READ"}),
    )
    .await;
    assert_eq!(
        (s, b["experiment_permission"]["permission"].as_str()),
        (200, Some("READ")),
        "{b}"
    );
    assert_eq!(
        as_(
            &server,
            &ken,
            "POST",
            "/api/2.0/mlflow/runs/create",
            json!({"experiment_id": exp})
        )
        .await
        .0,
        403
    );
    let (s, _) = as_(
        &server,
        &admin,
        "DELETE",
        "/api/2.0/mlflow/experiments/permissions/delete",
        json!({"experiment_id": exp, "username": "ken"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        as_(
            &server,
            &ken,
            "GET",
            "/api/2.0/mlflow/experiments/get",
            json!({"experiment_id": exp})
        )
        .await
        .0,
        403
    );
    let (s, _) = as_(
        &server,
        &admin,
        "GET",
        "/api/2.0/mlflow/experiments/permissions/get",
        json!({"experiment_id": exp, "username": "ken"}),
    )
    .await;
    assert_eq!(s, 404);
    // Registered models, by name.
    as_(
        &server,
        &admin,
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        json!({"name": "kmodel"}),
    )
    .await;
    let (s, b) = as_(
        &server,
        &admin,
        "POST",
        "/api/2.0/mlflow/registered-models/permissions/create",
        json!({"name": "kmodel", "username": "ken", "permission": "READ"}),
    )
    .await;
    assert_eq!(
        (s, b["registered_model_permission"]["permission"].as_str()),
        (200, Some("READ")),
        "{b}"
    );
    assert_eq!(
        as_(
            &server,
            &ken,
            "GET",
            "/api/2.0/mlflow/registered-models/get",
            json!({"name": "kmodel"})
        )
        .await
        .0,
        200
    );
    server.stop().await;
}
