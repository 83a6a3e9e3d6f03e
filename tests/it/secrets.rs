//! The vault: versions, disable, validity, soft delete, recover, purge and purge protection
//! on every metadata store; no value in clear in the database, the change log, an archive
//! segment or a snapshot; a master-key rotation, and a restore of an archive written before it.

use crate::support::{metadata_stores, Meta, TestServer};
use serde_json::{json, Value};
use std::sync::Arc;

const S: &str = "/api/tandem/v1/workspaces/default/secrets";
const V1: &str = "sk-tandem-CLEARTEXT-7f3a9c-one";
const V2: &str = "sk-tandem-CLEARTEXT-7f3a9c-two";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_versioned_soft_deleted_and_never_stored_in_clear() {
    for meta in metadata_stores() {
        secrets_on(meta).await;
    }
}

fn value_of(v: &Value) -> &str {
    v["value"].as_str().unwrap_or_default()
}

async fn secrets_on(meta: Meta) {
    let s = TestServer::start_on(meta, None).await;
    let created = s
        .ok("POST", S, json!({"name": "openai", "value": V1, "content_type": "text/plain", "tags": {"team": "a"}}))
        .await;
    assert_eq!(created["secret"]["version"], 1);
    assert!(
        !created.to_string().contains(V1),
        "a value is never in a metadata answer"
    );
    s.ok("POST", S, json!({"name": "openai", "value": V2}))
        .await;
    assert_eq!(
        value_of(&s.ok("GET", &format!("{S}/openai/value"), json!({})).await),
        V2
    );
    assert_eq!(
        value_of(
            &s.ok("GET", &format!("{S}/openai/value"), json!({"version": "1"}))
                .await
        ),
        V1
    );
    // A disabled version is skipped by `latest` and refused by number.
    s.ok("POST", &format!("{S}/openai/versions/2/disable"), json!({}))
        .await;
    assert_eq!(
        value_of(&s.ok("GET", &format!("{S}/openai/value"), json!({})).await),
        V1
    );
    let (status, _) = s
        .call("GET", &format!("{S}/openai/value?version=2"), None)
        .await;
    assert_eq!(status, 400);
    s.ok("POST", &format!("{S}/openai/versions/2/enable"), json!({}))
        .await;
    // Not valid yet, and expired.
    let later = s.store.now_ms() + 3_600_000;
    s.ok(
        "POST",
        S,
        json!({"name": "future", "value": "x", "not_before": later}),
    )
    .await;
    let (status, body) = s.call("GET", &format!("{S}/future/value"), None).await;
    assert_eq!(status, 400, "{body}");
    s.ok(
        "POST",
        S,
        json!({"name": "old", "value": "x", "expires": 1}),
    )
    .await;
    let (status, _) = s.call("GET", &format!("{S}/old/value"), None).await;
    assert_eq!(status, 400);
    let meta_json = s.ok("GET", &format!("{S}/openai"), json!({})).await;
    let versions: Vec<i64> = meta_json["secret"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1]);

    // Soft delete: hidden, unreadable, its name kept until recovered or purged.
    s.ok("DELETE", &format!("{S}/openai"), json!({})).await;
    let (status, _) = s.call("GET", &format!("{S}/openai/value"), None).await;
    assert_eq!(status, 400);
    let listed = s.ok("GET", S, json!({})).await;
    assert!(!listed.to_string().contains("\"openai\""));
    let (status, body) = s
        .call("POST", S, Some(json!({"name": "openai", "value": "y"})))
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("RESOURCE_ALREADY_EXISTS"))
    );
    s.ok("POST", &format!("{S}/openai/recover"), json!({}))
        .await;
    assert_eq!(
        value_of(&s.ok("GET", &format!("{S}/openai/value"), json!({})).await),
        V2
    );

    // Nothing in clear: the state tables, the change log, the SQLite files, an archive
    // segment, a snapshot.
    // (The store's reads block: off the async workers, as on PostgreSQL they must be.)
    let store = s.store.clone();
    let (dump, log) = tokio::task::spawn_blocking(move || {
        let dump = store
            .read(|tx| tandem::store::queries::dump(tx, "default"))
            .unwrap()
            .to_string();
        let log = serde_json::to_string(
            &store
                .read(|tx| tandem::store::queries::changes(tx, "default", 0, 1 << 20))
                .unwrap(),
        )
        .unwrap();
        (dump, log)
    })
    .await
    .unwrap();
    for v in [V1, V2] {
        assert!(
            !dump.contains(v) && !log.contains(v),
            "{v} in clear in the store or the log"
        );
    }
    if meta == Meta::Sqlite {
        for entry in std::fs::read_dir(s.data_dir()).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                for v in [V1, V2] {
                    assert!(
                        !bytes.windows(v.len()).any(|w| w == v.as_bytes()),
                        "{v} in clear in {}",
                        p.display()
                    );
                }
            }
        }
    }
    let arch_dir = tempfile::tempdir().unwrap();
    let archive =
        tandem::backup::Archive::open(&format!("file://{}", arch_dir.path().display())).unwrap();
    archive.archive_once(&s.store, "default").await.unwrap();
    s.ok("POST", S, json!({"name": "later", "value": "z"}))
        .await;
    archive.archive_once(&s.store, "default").await.unwrap();
    assert_no_cleartext(arch_dir.path()); // the segments
    let compacted = archive.compact("default", 0, u64::MAX / 4).await.unwrap();
    assert!(compacted.is_some(), "a snapshot was written");
    assert_no_cleartext(arch_dir.path()); // the snapshot

    // A master-key rotation: data keys re-wrapped, values unchanged; the old key is kept in
    // the keyring, so the archive written before the rotation restores and opens.
    let old_ring = tandem::vault::Keyring::load(s.data_dir()).unwrap().0;
    let old_key = old_ring.current().clone();
    let new_ring = Arc::new(tandem::vault::Keyring::new(
        tandem::vault::Key::random(),
        vec![old_key.clone()],
        "test".into(),
    ));
    let store = s.store.clone();
    let ring = new_ring.clone();
    let rewrapped =
        tokio::task::spawn_blocking(move || tandem::api::secrets::rewrap(&ctx_plain(store, ring)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(rewrapped, 1);
    let only_new = Arc::new(tandem::vault::Keyring::new(
        new_ring.current().clone(),
        vec![],
        "test".into(),
    ));
    let store = s.store.clone();
    let got = tokio::task::spawn_blocking(move || {
        tandem::api::secrets::reveal_bytes(&ctx_plain(store, only_new), "openai", None)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        got.1,
        V2.as_bytes(),
        "after the rotation the new master key alone opens the values"
    );
    // The archive from before the rotation, restored elsewhere: opens with the keyring.
    let target_dir = tempfile::tempdir().unwrap();
    let target = tandem::store::Store::new(
        Arc::new(
            tandem::store::sqlite::Sqlite::open(
                &target_dir.path().join("m.sqlite"),
                tandem::store::sqlite::Durability::Normal,
            )
            .unwrap(),
        ),
        Arc::new(tandem::store::SystemClock),
        "restore",
    )
    .unwrap();
    archive.restore("default", None, &target).await.unwrap();
    let t2 = target.clone();
    let ring = new_ring.clone();
    let got = tokio::task::spawn_blocking(move || {
        tandem::api::secrets::reveal_bytes(&ctx_plain(t2, ring), "openai", None)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(got.1, V2.as_bytes());
    let lacking = Arc::new(tandem::vault::Keyring::new(
        new_ring.current().clone(),
        vec![],
        "test".into(),
    ));
    let t3 = target.clone();
    let err = tokio::task::spawn_blocking(move || {
        tandem::api::secrets::reveal_bytes(&ctx_plain(t3, lacking), "openai", None)
    })
    .await
    .unwrap();
    assert!(
        err.is_err(),
        "without the old key the pre-rotation archive's data key stays wrapped"
    );

    // Purge: refused for a live secret and under purge protection.
    let (status, _) = s.call("POST", &format!("{S}/openai/purge"), None).await;
    assert_eq!(status, 400);
    s.ok("DELETE", &format!("{S}/old"), json!({})).await;
    s.ok("POST", &format!("{S}/old/purge"), json!({})).await;
    let (status, _) = s.call("GET", &format!("{S}/old"), None).await;
    assert_eq!(status, 404);
    s.ok(
        "PATCH",
        "/api/tandem/v1/workspaces/default/retention",
        json!({"purge_protection": true}),
    )
    .await;
    s.ok("DELETE", &format!("{S}/future"), json!({})).await;
    let (status, body) = s.call("POST", &format!("{S}/future/purge"), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("Purge protection"));
    s.stop().await;
}

fn ctx_plain(store: tandem::store::Store, ring: Arc<tandem::vault::Keyring>) -> tandem::api::Ctx {
    tandem::api::Ctx {
        store,
        artifacts: tandem::artifacts::Artifacts::folder(&std::env::temp_dir()).unwrap(),
        workspace: "default".into(),
        principal: "test".into(),
        require_live: true,
        authenticated: false,
        compute: Default::default(),
        vault: Some(ring),
    }
}

fn assert_no_cleartext(dir: &std::path::Path) {
    let mut files = 0;
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        files += 1;
        for v in [V1, V2] {
            assert!(
                !bytes.windows(v.len()).any(|w| w == v.as_bytes()),
                "{v} in clear in {}",
                entry.display()
            );
        }
    }
    assert!(files >= 1, "the archive holds something to look at");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Bad requests of the vault's routes: a clear 4xx, nothing written.
pub fn bad_input_cases() -> Vec<crate::support::Case> {
    const IPV: (u16, &str) = (400, "INVALID_PARAMETER_VALUE");
    const RDNE: (u16, &str) = (404, "RESOURCE_DOES_NOT_EXIST");
    let big = "x".repeat(tandem::api::secrets::MAX_VALUE_BYTES + 1);
    let cases: Vec<(&str, String, Value, (u16, &str))> = vec![
        ("POST", S.into(), json!({"value": "v"}), IPV),
        ("POST", S.into(), json!({"name": "a/b", "value": "v"}), IPV),
        ("POST", S.into(), json!({"name": "n"}), IPV),
        ("POST", S.into(), json!({"name": "n", "value": big}), IPV),
        (
            "POST",
            S.into(),
            json!({"name": "n", "value": "v", "not_before": 5, "expires": 1}),
            IPV,
        ),
        (
            "POST",
            S.into(),
            json!({"name": "n", "value": "v", "tags": {"k": 1}}),
            IPV,
        ),
        (
            "GET",
            "/api/tandem/v1/workspaces/BAD/secrets".into(),
            json!({}),
            IPV,
        ),
        ("GET", format!("{S}/nobody"), json!({}), RDNE),
        ("GET", format!("{S}/nobody/value"), json!({}), RDNE),
        (
            "GET",
            format!("{S}/nobody/value"),
            json!({"version": "x"}),
            IPV,
        ),
        (
            "POST",
            format!("{S}/nobody/versions/1/disable"),
            json!({}),
            RDNE,
        ),
        (
            "POST",
            format!("{S}/nobody/versions/1/enable"),
            json!({}),
            RDNE,
        ),
        ("DELETE", format!("{S}/nobody"), json!({}), RDNE),
        ("POST", format!("{S}/nobody/recover"), json!({}), RDNE),
        ("POST", format!("{S}/nobody/purge"), json!({}), RDNE),
        (
            "POST",
            "/api/tandem/v1/workspaces/BAD/vault/rewrap".into(),
            json!({}),
            IPV,
        ),
    ];
    crate::support::static_cases(cases)
}
