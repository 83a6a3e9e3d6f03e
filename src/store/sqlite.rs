//! The embedded backend: one SQLite file in WAL mode. One writer connection (SQLite allows
//! one writer at a time anyway, and serializing here keeps log sequence numbers trivially
//! gap-free), and a small pool of reader connections that see committed snapshots.

use super::{Backend, Error, Result, Row, Tx, Value};
use rusqlite::{types::ValueRef, Connection, ErrorCode, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How hard a commit is pushed to disk before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit: survives power loss (the default).
    Full,
    /// fsync at checkpoints only: survives a killed process, not a power cut.
    Normal,
}

pub struct Sqlite {
    path: PathBuf,
    durability: Durability,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// The checkpoint thread runs while this lives.
    _alive: std::sync::Arc<()>,
}

/// How often the background thread copies committed WAL pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

fn map_err(e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                Error::Unavailable(e.to_string())
            }
            ErrorCode::ConstraintViolation => Error::Conflict(e.to_string()),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Error::Corrupt(e.to_string()),
            _ => Error::Backend(e.to_string()),
        },
        _ => Error::Backend(e.to_string()),
    }
}

impl Sqlite {
    pub fn open(path: &Path, durability: Durability) -> Result<Sqlite> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let writer = Self::connect(path, durability, false)?;
        let alive = std::sync::Arc::new(());
        let checkpointer = Self::connect(path, durability, false)?;
        let token = std::sync::Arc::downgrade(&alive);
        // Checkpointing (and its fsync of the database file) off the request path: a commit
        // only appends to the WAL. PASSIVE never waits for readers or the writer.
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while token.strong_count() > 0 {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    if let Err(e) =
                        checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!("checkpoint: {e}");
                    }
                }
            })
            .map_err(|e| Error::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Sqlite {
            path: path.to_owned(),
            durability,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            _alive: alive,
        })
    }

    fn connect(path: &Path, durability: Durability, read_only: bool) -> Result<Connection> {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(map_err)?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        if !read_only {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(map_err)?;
        }
        conn.pragma_update(None, "synchronous", sync)
            .map_err(map_err)?;
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(map_err)?;
        // Statement journals (multi-row inserts) and sorts stay in memory: a temporary file
        // on disk cost the log-batch path 14% of its time in pwrite.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(map_err)?;
        if !read_only {
            // Checkpoints run on a background thread (`Sqlite::open`), not inside a request's
            // commit; this is only the backstop should that thread fall behind (~64 MiB).
            conn.pragma_update(None, "wal_autocheckpoint", 16384)
                .map_err(map_err)?;
        }
        conn.set_prepared_statement_cache_capacity(256);
        Ok(conn)
    }

    fn reader(&self) -> Result<Connection> {
        if let Some(c) = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(c);
        }
        Self::connect(&self.path, self.durability, true)
    }
}

struct SqliteTx<'a>(&'a rusqlite::Transaction<'a>);

/// Binds without copying: text is lent to SQLite for the statement's run.
impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput::Borrowed;
        Ok(match self {
            Value::Null => Borrowed(ValueRef::Null),
            Value::Int(i) => Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl Tx for SqliteTx<'_> {
    fn is_sqlite(&self) -> bool {
        true
    }

    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<usize> {
        let mut stmt = self.0.prepare_cached(sql).map_err(map_err)?;
        stmt.execute(rusqlite::params_from_iter(params))
            .map_err(map_err)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let mut stmt = self.0.prepare_cached(sql).map_err(map_err)?;
        let n = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(map_err)? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                vals.push(match r.get_ref(i).map_err(map_err)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Int(i),
                    ValueRef::Real(f) => Value::Real(f),
                    // (Checked in one pass; only text that is not UTF-8 takes the lossy copy.)
                    ValueRef::Text(t) => Value::Text(match std::str::from_utf8(t) {
                        Ok(s) => s.to_owned(),
                        Err(_) => String::from_utf8_lossy(t).into_owned(),
                    }),
                    ValueRef::Blob(b) => Value::Text(String::from_utf8_lossy(b).into_owned()),
                });
            }
            out.push(Row(vals));
        }
        Ok(out)
    }
}

impl Backend for Sqlite {
    fn write_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        f(&mut SqliteTx(&tx))?;
        tx.commit().map_err(map_err)
    }

    fn read_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut conn = self.reader()?;
        let result = (|| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(map_err)?;
            f(&mut SqliteTx(&tx))?;
            tx.commit().map_err(map_err)
        })();
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        result
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}
