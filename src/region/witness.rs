//! The witness: a third location, outside both regions, where leadership is decided. It is
//! nothing but object storage that enforces create-only writes (a local folder, Azure Blob,
//! S3, GCS). See docs/design/failover.md.
//!
//! Layout, per workspace:
//!   leases/<ws>/epoch-<N>                 who owns epoch N (created once, never changed)
//!   leases/<ws>/epoch-<N>.renew-<K>       the owner's K-th renewal of its lease
//!
//! Because an object can be created only once, at most one region ever owns an epoch, and a
//! region claims epoch N+1 only by creating `epoch-<N+1>`: two regions racing for it cannot
//! both win. Renewals are new objects too, so no conditional update is ever needed.

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// Someone else created the object first: the claim lost.
    #[error("already taken")]
    Taken,
    /// The witness could not be reached or answered an error; trying again may help.
    #[error("witness unavailable: {0}")]
    Unavailable(String),
    /// The witness's store does not behave as the protocol needs. Final.
    #[error("witness unusable: {0}")]
    Unusable(String),
}

/// The owner of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochClaim {
    pub epoch: u64,
    pub region: String,
    /// Wall-clock milliseconds at the claim, for people reading `tandem status`.
    pub claimed_at_ms: u64,
    /// Why: "initial", "failover", "switchover".
    pub reason: String,
}

#[derive(Clone)]
pub struct Witness {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    pub description: String,
}

fn unavailable(e: object_store::Error) -> WitnessError {
    WitnessError::Unavailable(e.to_string())
}

impl Witness {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, description: String) -> Witness {
        Witness {
            store,
            prefix,
            description,
        }
    }

    /// A witness on a local folder (what `tandem up` uses).
    pub fn folder(path: &std::path::Path) -> Result<Witness, WitnessError> {
        std::fs::create_dir_all(path)
            .map_err(|e| WitnessError::Unusable(format!("{}: {e}", path.display())))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(path)
            .map_err(|e| WitnessError::Unusable(e.to_string()))?;
        Ok(Witness::new(
            Arc::new(store),
            ObjectPath::from(""),
            format!("file://{}", path.display()),
        ))
    }

    fn path(&self, key: &str) -> ObjectPath {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(key.split('/').filter(|s| !s.is_empty()).map(str::to_owned));
        ObjectPath::from(parts.join("/"))
    }

    /// Creates `key` unless it exists. `Taken` if it does.
    async fn create(&self, key: &str, body: Vec<u8>) -> Result<(), WitnessError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(key), PutPayload::from(Bytes::from(body)), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Err(WitnessError::Taken),
            Err(object_store::Error::NotImplemented { .. })
            | Err(object_store::Error::NotSupported { .. }) => Err(WitnessError::Unusable(
                format!("{} does not support create-only writes", self.description),
            )),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Proves the store refuses a second create of the same object; a store that silently
    /// overwrites would let two regions own one epoch, so it is refused before anything starts.
    pub async fn probe(&self) -> Result<(), WitnessError> {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).map_err(|e| WitnessError::Unusable(e.to_string()))?;
        let key = format!("probe/{}", tandem_core::ids::hex(&b));
        self.create(&key, b"first".to_vec())
            .await
            .map_err(|e| match e {
                WitnessError::Taken => {
                    WitnessError::Unusable("a brand-new probe object already existed".into())
                }
                other => other,
            })?;
        let second = self.create(&key, b"second".to_vec()).await;
        let _ = self.store.delete(&self.path(&key)).await;
        match second {
            Err(WitnessError::Taken) => Ok(()),
            Ok(()) => Err(WitnessError::Unusable(format!("{} accepted a second create of the same object: it does not enforce create-only writes (for S3-compatible stores, enable conditional writes)", self.description))),
            Err(e) => Err(e),
        }
    }

    /// The highest claimed epoch of a workspace, if any.
    pub async fn current(&self, ws: &str) -> Result<Option<EpochClaim>, WitnessError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path(&format!("leases/{ws}"))))
            .await
            .map_err(unavailable)?;
        let best = listed
            .objects
            .iter()
            .filter_map(|o| {
                o.location
                    .filename()
                    .and_then(|n| n.strip_prefix("epoch-"))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .max();
        let Some(epoch) = best else { return Ok(None) };
        let got = self
            .store
            .get(&self.path(&format!("leases/{ws}/epoch-{epoch:020}")))
            .await
            .map_err(unavailable)?;
        let bytes = got.bytes().await.map_err(unavailable)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| WitnessError::Unusable(format!("epoch {epoch} of {ws}: {e}")))
    }

    /// Claims `epoch` for `region`. Exactly one claimant of an epoch ever succeeds.
    pub async fn claim(
        &self,
        ws: &str,
        epoch: u64,
        region: &str,
        now_ms: u64,
        reason: &str,
    ) -> Result<EpochClaim, WitnessError> {
        let claim = EpochClaim {
            epoch,
            region: region.to_owned(),
            claimed_at_ms: now_ms,
            reason: reason.to_owned(),
        };
        let body = serde_json::to_vec(&claim).map_err(|e| WitnessError::Unusable(e.to_string()))?;
        self.create(&format!("leases/{ws}/epoch-{epoch:020}"), body)
            .await?;
        Ok(claim)
    }

    /// Records renewal `k` of `epoch`'s lease.
    pub async fn renew(&self, ws: &str, epoch: u64, k: u64) -> Result<(), WitnessError> {
        self.create(
            &format!("leases/{ws}/epoch-{epoch:020}.renew-{k:020}"),
            Vec::new(),
        )
        .await
    }

    /// The highest renewal number seen for `epoch` (0 if none).
    pub async fn last_renewal(&self, ws: &str, epoch: u64) -> Result<u64, WitnessError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path(&format!("leases/{ws}"))))
            .await
            .map_err(unavailable)?;
        let prefix = format!("epoch-{epoch:020}.renew-");
        Ok(listed
            .objects
            .iter()
            .filter_map(|o| {
                o.location
                    .filename()
                    .and_then(|n| n.strip_prefix(prefix.as_str()))
                    .and_then(|k| k.parse::<u64>().ok())
            })
            .max()
            .unwrap_or(0))
    }

    /// Removes renewals of `epoch` older than `keep_from`, so the witness does not grow.
    pub async fn prune(&self, ws: &str, epoch: u64, keep_from: u64) -> Result<(), WitnessError> {
        let prefix = format!("epoch-{epoch:020}.renew-");
        let old: Vec<ObjectPath> = self
            .store
            .list(Some(&self.path(&format!("leases/{ws}"))))
            .try_filter(|o| {
                let stale = o
                    .location
                    .filename()
                    .and_then(|n| n.strip_prefix(prefix.as_str()))
                    .and_then(|k| k.parse::<u64>().ok())
                    .is_some_and(|k| k < keep_from);
                futures_util::future::ready(stale)
            })
            .map_ok(|o| o.location)
            .try_collect()
            .await
            .map_err(unavailable)?;
        for p in old {
            let _ = self.store.delete(&p).await;
        }
        Ok(())
    }
}
