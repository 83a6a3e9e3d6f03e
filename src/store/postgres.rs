//! The scale-out backend: PostgreSQL, shared by any number of tandem servers.
//!
//! Ordering and gap-freedom of each workspace's change log across servers come from a
//! transaction-scoped advisory lock per workspace (`Tx::lock`), taken before a write reads
//! anything: writes to one workspace are serialized cluster-wide, writes to different
//! workspaces run in parallel. Writes run at READ COMMITTED, so once the lock is held every
//! statement sees everything committed before it. Reads run at REPEATABLE READ, read-only:
//! one consistent snapshot per request. Statements whose answer is not needed at once are
//! pipelined with the next one (`Tx::exec_later`): round trips inside the workspace's lock
//! are what limits writers of one workspace. See docs/design/storage.md.

use super::{Backend, Error, Result, Row, Tx, Value};
use bytes::BytesMut;
use futures_util::future::join_all;
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Poll;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, Connection, NoTls, Socket, Statement};

/// One connection, driven on the thread that uses it (as the `postgres` crate does: a
/// current-thread runtime per connection, no thread hop per statement), so that several
/// statements can be in flight at once: see [`PgTx`].
struct Conn {
    runtime: tokio::runtime::Runtime,
    client: Client,
    connection: Connection<Socket, NoTlsStream>,
    /// The connection's driver has finished: the server or the network closed it.
    closed: bool,
    statements: HashMap<String, Statement>,
}

impl Conn {
    fn usable(&self) -> bool {
        !self.closed && !self.client.is_closed()
    }
}

/// Runs `request` to completion while driving `connection` (which sends what the request
/// queued and reads the replies).
fn drive<T>(
    runtime: &tokio::runtime::Runtime,
    connection: &mut Connection<Socket, NoTlsStream>,
    closed: &mut bool,
    request: impl Future<Output = Result<T>>,
) -> Result<T> {
    if *closed {
        return Err(Error::Unavailable("connection to PostgreSQL lost".into()));
    }
    let mut request = std::pin::pin!(request);
    runtime.block_on(std::future::poll_fn(|cx| {
        if !*closed {
            if let Poll::Ready(ended) = Pin::new(&mut *connection).poll(cx) {
                // Requests still waiting see their replies' channel closed and fail.
                *closed = true;
                if let Err(e) = ended {
                    tracing::debug!("PostgreSQL connection ended: {e}");
                }
            }
        }
        match request.as_mut().poll(cx) {
            Poll::Pending if *closed => Poll::Ready(Err(Error::Unavailable(
                "connection to PostgreSQL lost".into(),
            ))),
            other => other,
        }
    }))
}

pub struct Postgres {
    url: String,
    pool: Mutex<Vec<Conn>>,
    max_idle: usize,
}

fn map_err(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return match code {
            "23505" => Error::Conflict(db.message().to_owned()),
            // Data exceptions (bad encoding, out-of-range values): the input was wrong.
            c if c.starts_with("22") => Error::Rejected(tandem_core::MlflowError::invalid(
                format!("invalid value: {}", db.message()),
            )),
            "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" => {
                Error::Unavailable(format!("{code}: {}", db.message()))
            }
            _ => Error::Backend(format!("{code}: {}", db.message())),
        };
    }
    if e.is_closed() {
        return Error::Unavailable(format!("connection to PostgreSQL lost: {e}"));
    }
    // Connection failures (refused, reset, timed out) are worth retrying.
    Error::Unavailable(format!("PostgreSQL: {e}"))
}

/// `?` placeholders (outside quotes) become `$1, $2, ...`.
fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut n, mut in_quote) = (0, false);
    for c in sql.chars() {
        match c {
            '\'' => {
                in_quote = !in_quote;
                out.push(c);
            }
            '?' if !in_quote => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// Binds a `Value` as whatever type PostgreSQL inferred for the parameter.
#[derive(Debug)]
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let text = |s: &str, out: &mut BytesMut| s.to_sql(&Type::TEXT, out);
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => text(&i.to_string(), out),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::INT8 => (*f as i64).to_sql(ty, out),
                _ => text(&f.to_string(), out),
            },
            Value::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => s.parse::<i32>()?.to_sql(ty, out),
                Type::FLOAT8 => s.parse::<f64>()?.to_sql(ty, out),
                _ => text(s, out),
            },
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

fn read_row(r: &tokio_postgres::Row) -> Result<Row> {
    let mut vals = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let get_err =
            |e: tokio_postgres::Error| Error::Backend(format!("column {}: {e}", col.name()));
        let v = match *col.type_() {
            Type::INT8 => r
                .try_get::<_, Option<i64>>(i)
                .map_err(get_err)?
                .map(Value::Int),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)
                .map_err(get_err)?
                .map(|v| Value::Int(v as i64)),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)
                .map_err(get_err)?
                .map(|v| Value::Int(v as i64)),
            Type::FLOAT8 => r
                .try_get::<_, Option<f64>>(i)
                .map_err(get_err)?
                .map(Value::Real),
            Type::FLOAT4 => r
                .try_get::<_, Option<f32>>(i)
                .map_err(get_err)?
                .map(|v| Value::Real(v as f64)),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)
                .map_err(get_err)?
                .map(|b| Value::Int(b as i64)),
            Type::VOID => None,
            _ => r
                .try_get::<_, Option<String>>(i)
                .map_err(get_err)?
                .map(Value::Text),
        };
        vals.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(vals))
}

/// At most this many statements are held before they are sent without waiting for a
/// statement that needs an answer: one round trip per this many, and bounded memory.
const MAX_HELD: usize = 128;

/// A statement sent, or waiting to be sent, in a pipeline.
enum Step<'p> {
    /// A statement in the simple protocol, without parameters (BEGIN, COMMIT, ROLLBACK).
    Simple(&'static str),
    Exec(Statement, Cow<'p, [Value]>),
    Query(Statement, Cow<'p, [Value]>),
}

enum Reply {
    Done,
    Count(u64),
    Rows(Vec<tokio_postgres::Row>),
}

fn send_step<'a>(
    client: &'a Client,
    step: &'a Step<'_>,
) -> Pin<Box<dyn Future<Output = Result<Reply, tokio_postgres::Error>> + 'a>> {
    fn bind(params: &[Value]) -> Vec<Param<'_>> {
        params.iter().map(Param).collect()
    }
    match step {
        Step::Simple(sql) => {
            Box::pin(async move { client.batch_execute(sql).await.map(|()| Reply::Done) })
        }
        Step::Exec(stmt, params) => Box::pin(async move {
            let ps = bind(params);
            let refs: Vec<&(dyn ToSql + Sync)> =
                ps.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            client.execute(stmt, &refs).await.map(Reply::Count)
        }),
        Step::Query(stmt, params) => Box::pin(async move {
            let ps = bind(params);
            let refs: Vec<&(dyn ToSql + Sync)> =
                ps.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            client.query(stmt, &refs).await.map(Reply::Rows)
        }),
    }
}

/// A transaction on one connection. Statements whose outcome the caller does not need at
/// once (`exec_later`, and the transaction's own BEGIN) wait in `pending` and go out with the
/// next statement that needs an answer, all in one write to the socket: one round trip for
/// all of them (PostgreSQL runs them in order; each carries its own Sync, so the first
/// failure is reported and the rest fail as "transaction aborted"). The first error of a
/// pipeline is the one returned.
struct PgTx<'a> {
    conn: &'a mut Conn,
    pending: Vec<Step<'static>>,
    /// BEGIN has been sent: the server holds a transaction to end.
    begun: bool,
}

impl PgTx<'_> {
    /// Sends what is pending and then `last`, in one pipeline; returns `last`'s reply.
    fn send(&mut self, last: Option<Step<'_>>) -> Result<Reply> {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() && last.is_none() {
            return Ok(Reply::Done);
        }
        self.begun = true;
        let Conn {
            runtime,
            client,
            connection,
            closed,
            ..
        } = &mut *self.conn;
        let client = &*client;
        let requests: Vec<_> = pending
            .iter()
            .chain(last.as_ref())
            .map(|step| send_step(client, step))
            .collect();
        drive(runtime, connection, closed, async move {
            // Polled in order on the first poll: every request is queued before any reply.
            let mut reply = Reply::Done;
            for r in join_all(requests).await {
                reply = r.map_err(map_err)?;
            }
            Ok(reply)
        })
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.conn.statements.get(sql) {
            return Ok(s.clone());
        }
        self.flush()?;
        let Conn {
            runtime,
            client,
            connection,
            closed,
            ..
        } = &mut *self.conn;
        let translated = translate(sql);
        let s = drive(runtime, connection, closed, async {
            client.prepare(&translated).await.map_err(map_err)
        })?;
        self.conn.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

impl Tx for PgTx<'_> {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<usize> {
        let stmt = self.statement(sql)?;
        match self.send(Some(Step::Exec(stmt, Cow::Borrowed(params))))? {
            Reply::Count(n) => Ok(n as usize),
            _ => Ok(0),
        }
    }

    fn exec_later(&mut self, sql: &str, params: Vec<Value>) -> Result<()> {
        let stmt = self.statement(sql)?;
        self.pending.push(Step::Exec(stmt, Cow::Owned(params)));
        // A long transaction (a replayed chunk of the log, an installed snapshot) would
        // otherwise hold all of its statements, and their parameters, to the commit.
        if self.pending.len() >= MAX_HELD {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.send(None).map(|_| ())
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql)?;
        match self.send(Some(Step::Query(stmt, Cow::Borrowed(params))))? {
            Reply::Rows(rows) => rows.iter().map(read_row).collect(),
            _ => Ok(Vec::new()),
        }
    }

    fn lock(&mut self, key: &str) -> Result<()> {
        // Nothing is read before the next statement, which PostgreSQL runs after the lock
        // is granted: the lock can travel with it.
        self.exec_later(
            "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
            vec![key.into()],
        )
    }
}

impl Postgres {
    /// Connects once to check the URL, the credentials and the database before anything
    /// starts; more connections are opened as requests need them.
    pub fn connect(url: &str) -> Result<Postgres> {
        let pg = Postgres {
            url: url.to_owned(),
            pool: Mutex::new(Vec::new()),
            max_idle: 32,
        };
        let conn = pg.open()?;
        pg.pool.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        Ok(pg)
    }

    fn open(&self) -> Result<Conn> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Error::Unavailable(format!(
                    "cannot start a PostgreSQL connection's runtime: {e}"
                ))
            })?;
        let (client, connection) = runtime
            .block_on(tokio_postgres::connect(&self.url, NoTls))
            .map_err(|e| match e.as_db_error() {
                Some(db) => Error::Backend(format!("{}: {}", db.code().code(), db.message())),
                None => Error::Unavailable(e.to_string()),
            })?;
        Ok(Conn {
            runtime,
            client,
            connection,
            closed: false,
            statements: HashMap::new(),
        })
    }

    fn take(&self) -> Result<Conn> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        // (Connections are taken and given back on blocking threads, where dropping one, and
        // its runtime, is allowed.)
        match pooled {
            Some(c) if c.usable() => Ok(c),
            _ => self.open(),
        }
    }

    fn give_back(&self, conn: Conn) {
        if !conn.usable() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.max_idle {
            pool.push(conn);
        }
    }

    fn run(&self, begin: &'static str, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut conn = self.take()?;
        let result = {
            let mut t = PgTx {
                conn: &mut conn,
                pending: vec![Step::Simple(begin)],
                begun: false,
            };
            match f(&mut t) {
                // The commit travels with whatever is still pending; an error of any of
                // them is the transaction's (PostgreSQL then rolls it back).
                Ok(()) => t.send(Some(Step::Simple("COMMIT"))).map(|_| ()),
                Err(e) => {
                    // Statements not sent yet are dropped, not run.
                    t.pending.clear();
                    if t.begun && t.send(Some(Step::Simple("ROLLBACK"))).is_err() {
                        // In an unknown state: not to be reused.
                        t.conn.closed = true;
                    }
                    Err(e)
                }
            }
        };
        self.give_back(conn);
        result
    }
}

/// Closing a connection drops its runtime, which must not happen on an async worker (the
/// store is often dropped there): connections are closed on a plain thread.
fn close(conns: Vec<Conn>) {
    if !conns.is_empty() {
        let _ = std::thread::Builder::new()
            .name("pg-close".into())
            .spawn(move || drop(conns));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        close(std::mem::take(
            self.pool.get_mut().unwrap_or_else(|e| e.into_inner()),
        ));
    }
}

impl Backend for Postgres {
    fn write_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run("START TRANSACTION ISOLATION LEVEL READ COMMITTED", f)
    }

    fn read_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run(
            "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            f,
        )
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            super::translate("SELECT ? , '?' , ?"),
            "SELECT $1 , '?' , $2"
        );
    }
}
