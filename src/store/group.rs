//! Group commit: ordinary writes to one workspace that queue up while another is being
//! written go into the next transaction together, led by the first of them.
//!
//! Writes to one workspace are serialized anyway (its lock is held from the first read to the
//! commit), so a write that arrives while another holds the lock can only wait. Waiting in a
//! queue instead lets one thread run a whole queue in one transaction: one lock, one look at
//! the workspace's standing, one head update, one commit (and one fsync) for all of them. On
//! PostgreSQL those are two round trips per group instead of per write (begin, lock and
//! standing travel together, as do head and commit; a write's savepoint travels with its first
//! statement); on SQLite, one fsync for many writes. Each write keeps its own outcome: it runs
//! under its own savepoint, and is acknowledged only after the shared commit. See
//! docs/design/storage.md.
//!
//! Architecture invariant: the queue is per process. Servers sharing a PostgreSQL database
//! still serialize through the workspace's advisory lock, taken by every transaction.

use super::{Error, Result, Store, Tx};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use tandem_core::Op;

/// At most this many writes share one transaction (on PostgreSQL each holds a savepoint, a
/// subtransaction, until the commit; PostgreSQL tracks 64 per transaction cheaply).
const MAX_GROUP: usize = 32;

/// A write's decision: the operations to log, read from the transaction it runs in.
pub(super) type Decide<'a> = dyn FnMut(&mut dyn Tx) -> Result<Vec<Op>> + Send + 'a;

/// One queued write.
pub(super) struct Job<'a> {
    pub principal: &'a str,
    pub decide: &'a mut Decide<'a>,
}

/// A queued write, owned by the thread that submitted it, which waits until it is done.
struct Queued {
    id: u64,
    job: *mut Job<'static>,
}

// SAFETY: the job (and what its closure borrows) lives on the stack of a thread that does
// nothing but wait until the job's outcome is recorded; only the leading thread touches it
// meanwhile, and the closure is `Send`.
unsafe impl Send for Queued {}

#[derive(Default)]
struct Group {
    queue: Vec<Queued>,
    /// A thread is running a transaction for this workspace.
    leading: bool,
    /// The queued write whose thread leads next.
    next_leader: Option<u64>,
    done: HashMap<u64, Result<()>>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    groups: HashMap<String, Group>,
}

#[derive(Default)]
pub(super) struct Groups {
    state: Mutex<State>,
    wake: Condvar,
    /// Writes that shared their transaction with at least one other.
    pub(super) shared: AtomicU64,
}

/// Runs `decide` and logs its operations, in a transaction shared with the writes to the
/// same workspace queued beside it. Returns once that transaction has committed (or not).
pub(super) fn submit(
    store: &Store,
    workspace: &str,
    principal: &str,
    decide: &mut Decide<'_>,
) -> Result<()> {
    let groups = &*store.groups;
    let mut job = Job { principal, decide };
    // SAFETY: only the lifetime changes. This function does not return before the job's
    // outcome is in `done`, which the leader records after its last use of the pointer.
    let ptr =
        unsafe { std::mem::transmute::<*mut Job<'_>, *mut Job<'static>>(&mut job as *mut Job<'_>) };
    let mut state = groups.state.lock().unwrap_or_else(|e| e.into_inner());
    state.next_id += 1;
    let id = state.next_id;
    let group = state.groups.entry(workspace.to_owned()).or_default();
    group.queue.push(Queued { id, job: ptr });
    let mut lead = !group.leading;
    group.leading = true;
    loop {
        let group = state
            .groups
            .get_mut(workspace)
            .expect("a workspace with a queued write has a group");
        if let Some(outcome) = group.done.remove(&id) {
            forget_if_idle(&mut state, workspace);
            return outcome;
        }
        if group.next_leader == Some(id) {
            group.next_leader = None;
            lead = true;
        }
        if lead {
            break;
        }
        state = groups.wake.wait(state).unwrap_or_else(|e| e.into_inner());
    }

    // Leading: this write is first in the queue (a leader hands over to the first queued).
    let group = state
        .groups
        .get_mut(workspace)
        .expect("a workspace with a queued write has a group");
    let n = group.queue.len().min(MAX_GROUP);
    let batch: Vec<Queued> = group.queue.drain(..n).collect();
    debug_assert_eq!(batch.first().map(|q| q.id), Some(id));
    drop(state);
    if batch.len() > 1 {
        groups
            .shared
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    }

    // SAFETY: every job in the batch is waiting in this function for its outcome (above), so
    // its stack frame is alive, and no other thread touches it.
    let mut jobs: Vec<&mut Job<'static>> = batch.iter().map(|q| unsafe { &mut *q.job }).collect();
    let outcomes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.write_group(workspace, &mut jobs)
    }))
    .unwrap_or_else(|_| {
        jobs.iter()
            .map(|_| {
                Err(Error::Backend(
                    "a group of writes panicked; nothing of it was kept".into(),
                ))
            })
            .collect()
    });
    drop(jobs);

    let mut state = groups.state.lock().unwrap_or_else(|e| e.into_inner());
    let group = state
        .groups
        .get_mut(workspace)
        .expect("a workspace with a queued write has a group");
    for (q, outcome) in batch.iter().zip(outcomes) {
        group.done.insert(q.id, outcome);
    }
    match group.queue.first() {
        Some(next) => group.next_leader = Some(next.id),
        None => group.leading = false,
    }
    let mine = group
        .done
        .remove(&id)
        .expect("the leader's own write was in its group");
    forget_if_idle(&mut state, workspace);
    groups.wake.notify_all();
    mine
}

fn forget_if_idle(state: &mut State, workspace: &str) {
    if state
        .groups
        .get(workspace)
        .is_some_and(|g| !g.leading && g.queue.is_empty() && g.done.is_empty())
    {
        state.groups.remove(workspace);
    }
}
