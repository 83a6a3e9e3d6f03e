//! The scale-out backend: PostgreSQL, shared by any number of tandem servers.
//!
//! Ordering and gap-freedom of each workspace's change log across servers come from a
//! transaction-scoped advisory lock per workspace (`Tx::lock`), taken before a write reads
//! anything: writes to one workspace are serialized cluster-wide, writes to different
//! workspaces run in parallel. Writes run at READ COMMITTED, so once the lock is held every
//! statement sees everything committed before it. Reads run at REPEATABLE READ, read-only:
//! one consistent snapshot per request. See docs/design/storage.md.

use super::{Backend, Error, Result, Row, Tx, Value};
use bytes::BytesMut;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, IsolationLevel, NoTls, Statement};
use std::collections::HashMap;
use std::sync::Mutex;

struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

pub struct Postgres {
    url: String,
    pool: Mutex<Vec<Conn>>,
    max_idle: usize,
}

fn map_err(e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return match code {
            "23505" => Error::Conflict(db.message().to_owned()),
            // Data exceptions (bad encoding, out-of-range values): the input was wrong.
            c if c.starts_with("22") => Error::Rejected(tandem_core::MlflowError::invalid(format!("invalid value: {}", db.message()))),
            "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" => Error::Unavailable(format!("{code}: {}", db.message())),
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
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
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

fn read_row(r: &postgres::Row) -> Result<Row> {
    let mut vals = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let get_err = |e: postgres::Error| Error::Backend(format!("column {}: {e}", col.name()));
        let v = match *col.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i).map_err(get_err)?.map(Value::Int),
            Type::INT4 => r.try_get::<_, Option<i32>>(i).map_err(get_err)?.map(|v| Value::Int(v as i64)),
            Type::INT2 => r.try_get::<_, Option<i16>>(i).map_err(get_err)?.map(|v| Value::Int(v as i64)),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i).map_err(get_err)?.map(Value::Real),
            Type::FLOAT4 => r.try_get::<_, Option<f32>>(i).map_err(get_err)?.map(|v| Value::Real(v as f64)),
            Type::BOOL => r.try_get::<_, Option<bool>>(i).map_err(get_err)?.map(|b| Value::Int(b as i64)),
            Type::VOID => None,
            _ => r.try_get::<_, Option<String>>(i).map_err(get_err)?.map(Value::Text),
        };
        vals.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(vals))
}

struct PgTx<'a> {
    tx: postgres::Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

impl PgTx<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(&translate(sql)).map_err(map_err)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

impl Tx for PgTx<'_> {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<usize> {
        let stmt = self.statement(sql)?;
        let ps: Vec<Param> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = ps.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(self.tx.execute(&stmt, &refs).map_err(map_err)? as usize)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql)?;
        let ps: Vec<Param> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = ps.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.tx.query(&stmt, &refs).map_err(map_err)?.iter().map(read_row).collect()
    }

    fn lock(&mut self, key: &str) -> Result<()> {
        self.query("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", &[key.into()])?;
        Ok(())
    }
}

impl Postgres {
    /// Connects once to check the URL, the credentials and the database before anything
    /// starts; more connections are opened as requests need them.
    pub fn connect(url: &str) -> Result<Postgres> {
        let pg = Postgres { url: url.to_owned(), pool: Mutex::new(Vec::new()), max_idle: 32 };
        let conn = pg.open()?;
        pg.pool.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        Ok(pg)
    }

    fn open(&self) -> Result<Conn> {
        let client = Client::connect(&self.url, NoTls).map_err(|e| match e.as_db_error() {
            Some(db) => Error::Backend(format!("{}: {}", db.code().code(), db.message())),
            None => Error::Unavailable(e.to_string()),
        })?;
        Ok(Conn { client, statements: HashMap::new() })
    }

    fn take(&self) -> Result<Conn> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(c) if !c.client.is_closed() => Ok(c),
            _ => self.open(),
        }
    }

    fn give_back(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.max_idle {
            pool.push(conn);
        }
    }

    fn run(&self, level: IsolationLevel, read_only: bool, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut conn = self.take()?;
        let result = (|| {
            let Conn { client, statements } = &mut conn;
            let tx = client.build_transaction().isolation_level(level).read_only(read_only).start().map_err(map_err)?;
            let mut t = PgTx { tx, statements };
            f(&mut t)?;
            t.tx.commit().map_err(map_err)
        })();
        self.give_back(conn);
        result
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Closing a client blocks on its own runtime, which must not happen on an async
        // worker (the store is often dropped there at shutdown): close them on a plain thread.
        let conns = std::mem::take(self.pool.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !conns.is_empty() {
            let _ = std::thread::Builder::new().name("pg-close".into()).spawn(move || drop(conns));
        }
    }
}

impl Backend for Postgres {
    fn write_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run(IsolationLevel::ReadCommitted, false, f)
    }

    fn read_tx(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.run(IsolationLevel::RepeatableRead, true, f)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(super::translate("SELECT ? , '?' , ?"), "SELECT $1 , '?' , $2");
    }
}
