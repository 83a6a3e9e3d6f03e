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
        w.probe().await.unwrap_or_else(|e| panic!("{name}: probe failed: {e}"));
        assert!(w.current("ws").await.unwrap().is_none(), "{name}");
        for epoch in 1..=3u64 {
            let w = Arc::new(w.clone());
            let racers: Vec<_> = (0..8)
                .map(|i| {
                    let w = w.clone();
                    tokio::spawn(async move { w.claim("ws", epoch, &format!("region{i}"), 0, "test").await })
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
            assert_eq!((current.epoch, current.region.as_str()), (epoch, winners[0].as_str()), "{name}");
        }
        // Renewals are create-only too, and the latest one is found.
        for k in 1..=4 {
            w.renew("ws", 3, k).await.unwrap();
        }
        assert!(matches!(w.renew("ws", 3, 4).await, Err(WitnessError::Taken)), "{name}");
        assert_eq!(w.last_renewal("ws", 3).await.unwrap(), 4, "{name}");
        w.prune("ws", 3, 3).await.unwrap();
        assert_eq!(w.last_renewal("ws", 3).await.unwrap(), 4, "{name}");
    }
}
