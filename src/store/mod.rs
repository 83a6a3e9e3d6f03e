//! The metadata store: workspace state and its change log in one database.
//!
//! Backends implement only [`Backend`] and [`Tx`] (connections, transactions, parameter
//! binding). Everything else, the schema, how an event changes the state, how entities are
//! read, is portable SQL written once in this module's children and shared by every backend.
//!
//! Architecture invariant: the only way to change workspace state is [`Store::write`] (or
//! [`Store::replay`]), which applies an [`Op`] and appends its event in the same transaction.
//! `apply` is the single place where an operation becomes SQL.

pub mod apply;
mod group;
pub mod postgres;
pub mod queries;
pub mod schema;
pub mod sqlite;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tandem_core::event::{verify_chain_from, ChainError, Event, GENESIS_CHECKSUM};
use tandem_core::{ErrorCode, Hlc, MlflowError, Op};

/// A value bound to or read from SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Text(s.clone())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Real(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Int(b as i64)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map(Into::into).unwrap_or(Value::Null)
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn text(&self, i: usize) -> String {
        match &self.0[i] {
            Value::Text(s) => s.clone(),
            Value::Int(n) => n.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Null => String::new(),
        }
    }
    /// Column `i` as text, moved out of the row (which then holds NULL there): for readers
    /// that build their own values from many rows and need not copy each string.
    pub fn take_text(&mut self, i: usize) -> Option<String> {
        match std::mem::replace(&mut self.0[i], Value::Null) {
            Value::Text(s) => Some(s),
            Value::Null => None,
            other => {
                self.0[i] = other;
                self.opt_text(i)
            }
        }
    }
    pub fn opt_text(&self, i: usize) -> Option<String> {
        match &self.0[i] {
            Value::Null => None,
            _ => Some(self.text(i)),
        }
    }
    pub fn int(&self, i: usize) -> i64 {
        self.opt_int(i).unwrap_or(0)
    }
    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match &self.0[i] {
            Value::Int(n) => Some(*n),
            Value::Real(f) => Some(*f as i64),
            Value::Text(s) => s.parse().ok(),
            Value::Null => None,
        }
    }
    pub fn real(&self, i: usize) -> f64 {
        match &self.0[i] {
            Value::Real(f) => *f,
            Value::Int(n) => *n as f64,
            Value::Text(s) => s.parse().unwrap_or(f64::NAN),
            Value::Null => f64::NAN,
        }
    }
}

/// Store failures, saying whether trying again can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request is wrong or conflicts with the state; nothing was changed.
    #[error(transparent)]
    Rejected(#[from] MlflowError),
    /// A uniqueness rule was violated (a concurrent writer got there first).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database is busy or unreachable; the same request may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The stored data breaks an invariant (bad checksum, gap, undecodable event).
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// Events from a superseded epoch: a fenced leader's writes, refused.
    #[error("stale epoch: {0}")]
    Stale(String),
    /// Anything else the backend reported.
    #[error("store error: {0}")]
    Backend(String),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<Error> for MlflowError {
    fn from(e: Error) -> MlflowError {
        match e {
            Error::Rejected(m) => m,
            Error::Conflict(m) => MlflowError::exists(m),
            Error::Unavailable(m) => MlflowError::new(ErrorCode::TemporarilyUnavailable, m),
            Error::Corrupt(m) => MlflowError::new(ErrorCode::DataLoss, m),
            Error::Stale(m) => MlflowError::new(ErrorCode::InvalidState, m),
            Error::Backend(m) => MlflowError::internal(m),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One open transaction. Placeholders are `?`; backends translate if they need to.
pub trait Tx {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<usize>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;

    /// Runs a statement whose row count the caller does not need. A backend may hold it and
    /// send it with the next statement of the transaction (PostgreSQL: one round trip for
    /// both); its error, if any, is then returned by that next call, by `flush`, or by the
    /// commit. So a caller that matches on a statement's error (a uniqueness conflict it
    /// handles) must `flush` or `exec` before that statement, or it may see another's error.
    /// `params` are given, not lent, so a backend that holds the statement keeps them without
    /// copying (a metric batch's inserts bind thousands of values).
    fn exec_later(&mut self, sql: &str, params: Vec<Value>) -> Result<()> {
        self.exec(sql, &params).map(|_| ())
    }

    /// Sends whatever `exec_later` held, returning the first error among them.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Holds a lock named `key` until the transaction ends, against every other writer of
    /// the same database (other servers included). A backend whose write transactions are
    /// already exclusive (SQLite) has nothing to do.
    fn lock(&mut self, _key: &str) -> Result<()> {
        Ok(())
    }

    /// Whether this is SQLite (for the schema's one dialect difference).
    fn is_sqlite(&self) -> bool {
        false
    }
}

/// A database that can run serializable write transactions and snapshot reads.
pub trait Backend: Send + Sync + 'static {
    /// Runs `f` in a write transaction: committed if it returns Ok, rolled back otherwise.
    /// Writers to one workspace are serialized, so log sequence numbers never race.
    fn write_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()>;
    /// Runs `f` on a consistent read-only snapshot.
    fn read_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()>;
    /// A short name for logs and errors ("sqlite", "postgres").
    fn kind(&self) -> &'static str;
}

/// The clock the store stamps events with; tests may substitute their own.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock;
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// What a write closure decides: the answer to return, and the operations to log, each its
/// own event, all in one transaction (none when the request turned out to change nothing,
/// e.g. re-logging an identical param).
pub struct Decision<T> {
    pub answer: T,
    pub ops: Vec<Op>,
}

impl<T> Decision<T> {
    pub fn change(answer: T, op: Op) -> Self {
        Decision {
            answer,
            ops: vec![op],
        }
    }
    pub fn changes(answer: T, ops: Vec<Op>) -> Self {
        Decision { answer, ops }
    }
    pub fn no_change(answer: T) -> Self {
        Decision {
            answer,
            ops: Vec::new(),
        }
    }
}

/// Where a workspace's log stands.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHead {
    pub seq: u64,
    pub hlc: Hlc,
    pub checksum: String,
    /// The highest epoch of any event in the log.
    pub epoch: u64,
}

impl LogHead {
    pub fn genesis() -> LogHead {
        LogHead {
            seq: 0,
            hlc: Hlc(0),
            checksum: GENESIS_CHECKSUM.to_owned(),
            epoch: 0,
        }
    }
}

/// Who may write. A single-region server may always write, in epoch 0; in a multi-region
/// deployment only the region holding a workspace's lease may, in the lease's epoch, and
/// only while the lease is safely unexpired.
pub trait Fence: Send + Sync + 'static {
    /// The epoch to stamp a write to `workspace` with, or why this process may not write it.
    fn epoch_for_write(&self, workspace: &str) -> Result<u64, MlflowError>;

    /// Whether `workspace` belongs in this store even while the store holds none of it (a
    /// region of a deployment before the leader created the workspace or replication brought
    /// it): requests for it are then told to retry, not that it does not exist.
    fn expects(&self, _workspace: &str) -> bool {
        false
    }
}

/// The fence of a server that is the only writer of its store.
pub struct SoleWriter;
impl Fence for SoleWriter {
    fn epoch_for_write(&self, _workspace: &str) -> Result<u64, MlflowError> {
        Ok(0)
    }
}

#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    fence: Arc<dyn Fence>,
    /// The region this store's writes originate in.
    region: Arc<str>,
    /// Ordinary writes waiting to share a transaction (group commit).
    groups: Arc<group::Groups>,
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>, clock: Arc<dyn Clock>, region: &str) -> Result<Store> {
        let store = Store {
            backend,
            clock,
            fence: Arc::new(SoleWriter),
            region: region.into(),
            groups: Arc::default(),
        };
        store.backend.write_tx(&mut |tx| schema::migrate(tx))?;
        Ok(store)
    }

    /// The same store, reading time from `clock` (tests move time by hand).
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Store {
        Store {
            clock,
            ..self.clone()
        }
    }

    /// The same store, writing only as `fence` allows.
    pub fn with_fence(&self, fence: Arc<dyn Fence>) -> Store {
        Store {
            fence,
            ..self.clone()
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms() as i64
    }

    /// The one write path. `decide` reads what it needs and returns the operation; the
    /// operation is applied and its event appended in the same transaction, or nothing is.
    pub fn write<T>(
        &self,
        workspace: &str,
        principal: &str,
        decide: impl FnMut(&mut dyn Tx) -> Result<Decision<T>>,
    ) -> Result<T> {
        self.write_checked(workspace, principal, false, decide)
    }

    /// [`Store::write`] for an ordinary request: refused before `decide` runs unless the
    /// workspace is live (exists, not deleted, not being restored). The check shares the
    /// write's transaction, so a request costs one transaction, not two.
    ///
    /// Ordinary writes to one workspace that arrive while another is being written share the
    /// next transaction (group commit: one lock, one look at the workspace, one commit and
    /// one fsync for all of them), each under its own savepoint, so that a refused write
    /// takes back only its own changes. Each is acknowledged only once that transaction has
    /// committed. `decide` may run on another request's thread, hence `Send`.
    pub fn write_live<T: Send>(
        &self,
        workspace: &str,
        principal: &str,
        mut decide: impl FnMut(&mut dyn Tx) -> Result<Decision<T>> + Send,
    ) -> Result<T> {
        let mut answer = None;
        let mut run = |tx: &mut dyn Tx| -> Result<Vec<Op>> {
            let decision = decide(tx)?;
            answer = Some(decision.answer);
            Ok(decision.ops)
        };
        group::submit(self, workspace, principal, &mut run)?;
        Ok(answer.expect("a write that succeeded was decided"))
    }

    /// Runs queued ordinary writes to `workspace` in one transaction; one outcome per job.
    fn write_group(&self, workspace: &str, jobs: &mut [&mut group::Job<'_>]) -> Vec<Result<()>> {
        let grouped = jobs.len() > 1;
        let mut outcomes: Vec<Option<Result<()>>> = jobs.iter().map(|_| None).collect();
        let result = self.backend.write_tx(&mut |tx| {
            outcomes.iter_mut().for_each(|o| *o = None);
            tx.lock(&format!("workspace:{workspace}"))?;
            let mut standing = queries::standing(tx, workspace)?;
            let mut head = standing.head.clone().unwrap_or_else(LogHead::genesis);
            let mut moved = false;
            for (job, outcome) in jobs.iter_mut().zip(outcomes.iter_mut()) {
                if !standing.live {
                    *outcome = Some(Err(self.not_live(workspace, &standing).into()));
                    continue;
                }
                if grouped {
                    tx.exec_later("SAVEPOINT tandem_write", vec![])?;
                }
                let before = head.clone();
                let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                    || -> Result<Vec<Op>> {
                        let ops = (job.decide)(tx)?;
                        self.append(tx, workspace, job.principal, &standing, &mut head, &ops)?;
                        // Errors of this write's held statements are this write's, not the next one's.
                        tx.flush()?;
                        Ok(ops)
                    },
                ))
                .unwrap_or_else(|_| {
                    Err(Error::Backend(
                        "a write panicked; nothing of it was kept".into(),
                    ))
                });
                match done {
                    Ok(ops) => {
                        moved |= !ops.is_empty();
                        if ops.iter().any(changes_standing) {
                            // Rare in an ordinary request; the rest of the group must see it.
                            set_head(tx, workspace, &head, standing.head.is_some())?;
                            moved = false;
                            standing = queries::standing(tx, workspace)?;
                        }
                        if grouped && tx.is_sqlite() {
                            // SQLite keeps a copy of every page a write changes for each open
                            // savepoint (in memory); releasing it keeps one group's copies from
                            // piling up. On PostgreSQL the release would be a round trip more.
                            tx.exec("RELEASE SAVEPOINT tandem_write", &[])?;
                        }
                        *outcome = Some(Ok(()));
                    }
                    Err(e) if grouped => {
                        // Statements still held belong to this write and are taken back with
                        // it; their own errors, if any, add nothing to `e`.
                        let _ = tx.flush();
                        tx.exec("ROLLBACK TO SAVEPOINT tandem_write", &[])?;
                        head = before;
                        *outcome = Some(Err(e));
                    }
                    // Alone in its transaction: the whole transaction is rolled back.
                    Err(e) => return Err(e),
                }
            }
            if moved {
                set_head(tx, workspace, &head, standing.head.is_some())?;
            }
            Ok(())
        });
        match result {
            Ok(()) => outcomes
                .into_iter()
                .map(|o| {
                    o.unwrap_or_else(|| Err(Error::Backend("a grouped write was not run".into())))
                })
                .collect(),
            // Nothing of the transaction was kept: every write in it gets the error.
            Err(e) => jobs.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// Stamps `ops` as events after `head` and applies them (the part of a write after its
    /// decision). `head` moves past them; the caller writes it to the log's head row.
    fn append(
        &self,
        tx: &mut dyn Tx,
        workspace: &str,
        principal: &str,
        standing: &queries::Standing,
        head: &mut LogHead,
        ops: &[Op],
    ) -> Result<()> {
        let Some(first) = ops.first() else {
            return Ok(());
        };
        // A deleted workspace takes only its own restore or purge.
        let allowed = match first {
            Op::CreateWorkspace { .. } => true,
            Op::RestoreWorkspace { .. } | Op::PurgeWorkspace {} => standing.deleted.is_some(),
            _ => standing.live,
        };
        if !allowed {
            return Err(
                MlflowError::not_found(format!("Workspace '{workspace}' does not exist.")).into(),
            );
        }
        // Asked inside the transaction, after the workspace lock: a region whose lease lapsed
        // while it waited must not commit.
        let epoch = self.fence.epoch_for_write(workspace)?;
        if epoch < head.epoch {
            return Err(MlflowError::unavailable(format!("workspace '{workspace}' has moved on to epoch {}; this region writes in epoch {epoch}", head.epoch)).into());
        }
        for op in ops {
            let hlc = Hlc::tick(head.hlc, self.clock.now_ms());
            let event = Event::seal(
                workspace,
                head.seq + 1,
                epoch,
                hlc,
                &self.region,
                principal,
                op,
                &head.checksum,
            );
            apply::apply(tx, workspace, op)?;
            insert_event(tx, &event)?;
            *head = LogHead {
                seq: event.seq,
                hlc,
                checksum: event.checksum,
                epoch,
            };
        }
        Ok(())
    }

    fn write_checked<T>(
        &self,
        workspace: &str,
        principal: &str,
        require_live: bool,
        mut decide: impl FnMut(&mut dyn Tx) -> Result<Decision<T>>,
    ) -> Result<T> {
        let mut answer = None;
        self.backend.write_tx(&mut |tx| {
            // Serializes writers of this workspace across servers before anything is read, so
            // decisions see the latest state and sequence numbers cannot race.
            tx.lock(&format!("workspace:{workspace}"))?;
            let standing = queries::standing(tx, workspace)?;
            if require_live && !standing.live {
                return Err(self.not_live(workspace, &standing).into());
            }
            let decision = decide(tx)?;
            if !decision.ops.is_empty() {
                let mut head = standing.head.clone().unwrap_or_else(LogHead::genesis);
                self.append(
                    tx,
                    workspace,
                    principal,
                    &standing,
                    &mut head,
                    &decision.ops,
                )?;
                // The head moves once per transaction, whatever the number of events.
                set_head(tx, workspace, &head, standing.head.is_some())?;
            }
            answer = Some(decision.answer);
            Ok(())
        })?;
        Ok(answer.expect("write_tx ran the closure"))
    }

    /// Reads from a consistent snapshot, refused unless the workspace is live (the check is
    /// in the same snapshot).
    pub fn read_live<T>(
        &self,
        workspace: &str,
        mut f: impl FnMut(&mut dyn Tx) -> Result<T>,
    ) -> Result<T> {
        self.read(|tx| {
            let standing = queries::standing(tx, workspace)?;
            if !standing.live {
                return Err(self.not_live(workspace, &standing).into());
            }
            f(tx)
        })
    }

    /// A write transaction on this store's own bookkeeping (restores in progress), never on
    /// workspace state: that changes only through [`Store::write`] and [`Store::replay`].
    pub fn bookkeeping<T>(&self, mut f: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.backend.write_tx(&mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        Ok(out.expect("write_tx ran the closure"))
    }

    /// Reads from a consistent snapshot.
    pub fn read<T>(&self, mut f: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.backend.read_tx(&mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        Ok(out.expect("read_tx ran the closure"))
    }

    /// Applies events that were accepted elsewhere (replication, restore, rebuild), after
    /// checking that they continue this workspace's chain. All or nothing.
    pub fn replay(&self, workspace: &str, events: &[Event]) -> Result<LogHead> {
        let mut out = None;
        self.backend.write_tx(&mut |tx| {
            tx.lock(&format!("workspace:{workspace}"))?;
            let existing = queries::log_head(tx, workspace)?;
            let head = existing.clone().unwrap_or_else(LogHead::genesis);
            verify_chain_from(head.seq, &head.checksum, head.hlc, head.epoch, events).map_err(
                |e| match e {
                    ChainError::StaleEpoch { .. } => {
                        Error::Stale(format!("workspace {workspace}: {e}"))
                    }
                    other => Error::Corrupt(format!("workspace {workspace}: {other}")),
                },
            )?;
            for e in events {
                if e.workspace != workspace {
                    return Err(Error::Corrupt(format!(
                        "event {} belongs to workspace '{}', not '{workspace}'",
                        e.seq, e.workspace
                    )));
                }
                let op = e
                    .decode_op()
                    .map_err(|err| Error::Corrupt(err.to_string()))?;
                apply::apply(tx, workspace, &op)?;
                insert_event(tx, e)?;
            }
            out = Some(match events.last() {
                Some(last) => {
                    let moved = LogHead {
                        seq: last.seq,
                        hlc: last.hlc,
                        checksum: last.checksum.clone(),
                        epoch: last.epoch,
                    };
                    set_head(tx, workspace, &moved, existing.is_some())?;
                    moved
                }
                None => head.clone(),
            });
            Ok(())
        })?;
        Ok(out.unwrap_or_else(LogHead::genesis))
    }

    /// Installs a snapshot of a workspace into a store that does not have it: `events` are a
    /// compacted log (gaps allowed) whose replay gives the state after its last event, which
    /// becomes the head. The log here is then complete only after that event (`log_base`).
    pub fn install(&self, workspace: &str, events: &[Event]) -> Result<LogHead> {
        let Some(last) = events.last() else {
            return Ok(LogHead::genesis());
        };
        let mut out = None;
        self.backend.write_tx(&mut |tx| {
            tx.lock(&format!("workspace:{workspace}"))?;
            if queries::log_head(tx, workspace)?.is_some() {
                return Err(MlflowError::invalid(format!("workspace '{workspace}' already has a log here; a snapshot installs only into a store without it")).into());
            }
            for e in events {
                if e.workspace != workspace {
                    return Err(Error::Corrupt(format!("event {} belongs to workspace '{}', not '{workspace}'", e.seq, e.workspace)));
                }
                apply::apply(tx, workspace, &e.decode_op().map_err(|err| Error::Corrupt(err.to_string()))?)?;
                insert_event(tx, e)?;
            }
            let moved = LogHead { seq: last.seq, hlc: last.hlc, checksum: last.checksum.clone(), epoch: last.epoch };
            set_head(tx, workspace, &moved, false)?;
            tx.exec("UPDATE log_heads SET base_seq = ? WHERE workspace = ?", &[(last.seq as i64).into(), workspace.into()])?;
            out = Some(moved);
            Ok(())
        })?;
        Ok(out.unwrap_or_else(LogHead::genesis))
    }

    /// Forgets this store's copy of a workspace, log and state (its events are known to be in
    /// the history about to replace them). Diverged events stay.
    pub fn reset(&self, workspace: &str) -> Result<()> {
        self.backend.write_tx(&mut |tx| {
            tx.lock(&format!("workspace:{workspace}"))?;
            apply::clear_state(tx, workspace)?;
            tx.exec(
                "DELETE FROM change_log WHERE workspace = ?",
                &[workspace.into()],
            )?;
            tx.exec(
                "DELETE FROM log_heads WHERE workspace = ?",
                &[workspace.into()],
            )?;
            Ok(())
        })
    }

    /// Takes back every event after `keep` (which this region and the leader share): the
    /// events move to `diverged_events`, kept for an operator, and the workspace's state is
    /// rebuilt from the events that remain. All in one transaction. Returns how many moved.
    pub fn rewind(&self, workspace: &str, keep: u64) -> Result<u64> {
        let now = self.now_ms();
        let mut moved = 0;
        self.backend.write_tx(&mut |tx| {
            tx.lock(&format!("workspace:{workspace}"))?;
            let base = queries::log_base(tx, workspace)?;
            if keep < base {
                return Err(MlflowError::invalid(format!("workspace '{workspace}': this store's log begins at a snapshot of event {base}; it cannot be taken back to {keep}")).into());
            }
            let extra = queries::changes(tx, workspace, keep, usize::MAX >> 1)?;
            moved = extra.len() as u64;
            for e in &extra {
                tx.exec(
                    "INSERT INTO diverged_events (workspace, seq, epoch, hlc, origin, principal, op, payload, checksum, detected_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT DO NOTHING",
                    &[e.workspace.as_str().into(), (e.seq as i64).into(), (e.epoch as i64).into(), (e.hlc.0 as i64).into(), e.origin.as_str().into(), e.principal.as_str().into(), e.op.as_str().into(), e.payload.as_str().into(), e.checksum.as_str().into(), now.into()],
                )?;
            }
            tx.exec("DELETE FROM change_log WHERE workspace = ? AND seq > ?", &[workspace.into(), (keep as i64).into()])?;
            apply::clear_state(tx, workspace)?;
            let kept = queries::changes(tx, workspace, 0, usize::MAX >> 1)?;
            for e in &kept {
                apply::apply(tx, workspace, &e.decode_op().map_err(|err| Error::Corrupt(err.to_string()))?)?;
            }
            match kept.last() {
                Some(last) => {
                    tx.exec(
                        "UPDATE log_heads SET seq = ?, hlc = ?, checksum = ?, epoch = ? WHERE workspace = ?",
                        &[(last.seq as i64).into(), (last.hlc.0 as i64).into(), last.checksum.as_str().into(), (last.epoch as i64).into(), workspace.into()],
                    )?;
                }
                None => {
                    tx.exec("DELETE FROM log_heads WHERE workspace = ?", &[workspace.into()])?;
                }
            }
            Ok(())
        })?;
        Ok(moved)
    }

    /// This region's diverged events of a workspace (not workspace state: local bookkeeping).
    pub fn diverged(&self, workspace: &str) -> Result<Vec<(Event, String)>> {
        self.read(|tx| {
            Ok(tx
                .query(
                    "SELECT seq, epoch, hlc, origin, principal, op, payload, checksum, status FROM diverged_events WHERE workspace = ? ORDER BY epoch, seq",
                    &[workspace.into()],
                )?
                .iter()
                .map(|r| {
                    (
                        Event { workspace: workspace.to_owned(), seq: r.int(0) as u64, epoch: r.int(1) as u64, hlc: Hlc(r.int(2) as u64), origin: r.text(3), principal: r.text(4), op: r.text(5), payload: r.text(6), checksum: r.text(7) },
                        r.text(8),
                    )
                })
                .collect())
        })
    }

    /// Marks a diverged event `reapplied` or `discarded`. Returns whether it was pending.
    pub fn settle_diverged(
        &self,
        workspace: &str,
        epoch: u64,
        seq: u64,
        status: &str,
    ) -> Result<bool> {
        let mut changed = false;
        self.backend.write_tx(&mut |tx| {
            changed = tx.exec(
                "UPDATE diverged_events SET status = ? WHERE workspace = ? AND epoch = ? AND seq = ? AND status = 'pending'",
                &[status.into(), workspace.into(), (epoch as i64).into(), (seq as i64).into()],
            )? > 0;
            Ok(())
        })?;
        Ok(changed)
    }

    /// How many writes so far shared their transaction with another (group commit).
    pub fn writes_grouped(&self) -> u64 {
        self.groups
            .shared
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn backend_kind(&self) -> &'static str {
        self.backend.kind()
    }
}

fn insert_event(tx: &mut dyn Tx, e: &Event) -> Result<()> {
    tx.exec_later(
        "INSERT INTO change_log (workspace, seq, epoch, hlc, origin, principal, op, payload, checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        vec![e.workspace.as_str().into(), (e.seq as i64).into(), (e.epoch as i64).into(), (e.hlc.0 as i64).into(), e.origin.as_str().into(), e.principal.as_str().into(), e.op.as_str().into(), e.payload.as_str().into(), e.checksum.as_str().into()],
    )?;
    Ok(())
}

/// Moves the head of `ws`'s log (`exists`: it has a head row already).
fn set_head(tx: &mut dyn Tx, ws: &str, head: &LogHead, exists: bool) -> Result<()> {
    let params = vec![
        (head.seq as i64).into(),
        (head.hlc.0 as i64).into(),
        head.checksum.as_str().into(),
        (head.epoch as i64).into(),
        ws.into(),
    ];
    if exists {
        tx.exec_later(
            "UPDATE log_heads SET seq = ?, hlc = ?, checksum = ?, epoch = ? WHERE workspace = ?",
            params,
        )?;
    } else {
        tx.exec_later(
            "INSERT INTO log_heads (seq, hlc, checksum, epoch, workspace) VALUES (?, ?, ?, ?, ?)",
            params,
        )?;
    }
    Ok(())
}

/// Whether an operation changes what `queries::standing` reports.
fn changes_standing(op: &Op) -> bool {
    matches!(
        op,
        Op::CreateWorkspace { .. }
            | Op::DeleteWorkspace { .. }
            | Op::RestoreWorkspace { .. }
            | Op::PurgeWorkspace {}
    )
}

/// Why an ordinary request cannot use a workspace that is not live.
impl Store {
    /// Why an ordinary request may not use `ws` now.
    fn not_live(&self, ws: &str, standing: &queries::Standing) -> MlflowError {
        if standing.restoring {
            MlflowError::unavailable(format!(
                "Workspace '{ws}' is being restored; try again when the restore is done."
            ))
        } else if standing.head.is_none() && self.fence.expects(ws) {
            // Not a single event of it here yet: a pause the client retries, not an absence.
            MlflowError::unavailable(
                format!("Workspace '{ws}' is not in this region's store yet (its leader is creating it, or replication has not brought it); try again"),
            )
        } else {
            MlflowError::not_found(format!("Workspace '{ws}' not found."))
        }
    }
}
