//! The witness: on every store the test run has, it proves create-only writes are enforced,
//! and of many regions racing for one epoch exactly one wins.

use std::sync::Arc;
use tandem::region::witness::{Witness, WitnessError};

async fn witnesses() -> Vec<(String, Witness)> {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut out = vec![("folder".to_owned(), Witness::folder(&dir).unwrap())];
    let required = std::env::var("TANDEM_TEST_REQUIRE_SERVICES").is_ok();
    for var in ["TANDEM_TEST_AZURITE", "TANDEM_TEST_S3"] {
        match std::env::var(var) {
            Ok(base) => {
                let url = format!("{base}/witness-{}", std::process::id());
                let (store, prefix) = tandem::artifacts::object_store_for(&url).unwrap();
                out.push((url.clone(), Witness::new(store, prefix, url)));
            }
            Err(_) if required => panic!("{var} is not set but TANDEM_TEST_REQUIRE_SERVICES is"),
            Err(_) => eprintln!("note: {var} is not set; that witness backend is skipped"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_winner_per_epoch_on_every_store() {
    crate::support::init();
    for (name, w) in witnesses().await {
        w.probe()
            .await
            .unwrap_or_else(|e| panic!("{name}: probe failed: {e}"));
        assert!(w.current("ws").await.unwrap().is_none(), "{name}");
        for epoch in 1..=3u64 {
            let w = Arc::new(w.clone());
            let racers: Vec<_> = (0..8)
                .map(|i| {
                    let w = w.clone();
                    tokio::spawn(async move {
                        w.claim("ws", epoch, &format!("region{i}"), 0, "test").await
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for r in racers {
                match r.await.unwrap() {
                    Ok(c) => winners.push(c.region),
                    Err(WitnessError::Taken) => {}
                    Err(e) => panic!("{name}: {e}"),
                }
            }
            assert_eq!(winners.len(), 1, "{name}: epoch {epoch} won by {winners:?}");
            let current = w.current("ws").await.unwrap().unwrap();
            assert_eq!(
                (current.epoch, current.region.as_str()),
                (epoch, winners[0].as_str()),
                "{name}"
            );
        }
        // Renewals are create-only too, and the latest one is found.
        for k in 1..=4 {
            w.renew("ws", 3, k).await.unwrap();
        }
        assert!(
            matches!(w.renew("ws", 3, 4).await, Err(WitnessError::Taken)),
            "{name}"
        );
        assert_eq!(w.last_renewal("ws", 3).await.unwrap(), 4, "{name}");
        w.prune("ws", 3, 3).await.unwrap();
        assert_eq!(w.last_renewal("ws", 3).await.unwrap(), 4, "{name}");
    }
}

/// A failure-injecting store: a real in-memory object store that silently ignores
/// create-only writes (turns them into overwrites), as some S3-compatible stores do.
#[derive(Debug)]
struct IgnoresCreateOnly(object_store::memory::InMemory);

impl std::fmt::Display for IgnoresCreateOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IgnoresCreateOnly")
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for IgnoresCreateOnly {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        mut opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        opts.mode = object_store::PutMode::Overwrite; // the fault
        self.0.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures_util::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>
    {
        self.0.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
    {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_store_that_ignores_create_only_writes_is_refused() {
    // The same in-memory store without the fault passes: the probe tests the store, not the kind.
    let honest = Witness::new(
        Arc::new(object_store::memory::InMemory::new()),
        object_store::path::Path::from(""),
        "memory".into(),
    );
    honest.probe().await.unwrap();
    let faulty = Witness::new(
        Arc::new(IgnoresCreateOnly(object_store::memory::InMemory::new())),
        object_store::path::Path::from(""),
        "faulty://witness".into(),
    );
    match faulty.probe().await {
        Err(WitnessError::Unusable(m)) => assert!(
            m.contains("does not enforce create-only writes") && m.contains("faulty://witness"),
            "{m}"
        ),
        other => panic!("a store that ignores create-only writes was accepted: {other:?}"),
    }
}
