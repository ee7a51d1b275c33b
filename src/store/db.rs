//! One connection to the store, SQLite or PostgreSQL, behind one small API:
//! the store's statements are written once (SQLite's `?N` placeholders, SQL
//! both databases speak) and run on either; the few that differ ask
//! [`Db::dialect`]. Values cross as [`Value`]s, columns come back through
//! [`Column`], so no caller sees either driver's types.

use std::cell::RefCell;
use std::collections::HashMap;

use postgres::types::{FromSql, IsNull, Kind, ToSql, Type};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    #[error("the query returned no row")]
    NoRow,
    #[error("column {index}: {message}")]
    Column { index: usize, message: String },
    #[error("PostgreSQL did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the connection to PostgreSQL was lost inside a transaction")]
    LostInTransaction,
    #[error("cannot start the PostgreSQL client's runtime: {0}")]
    Runtime(std::io::Error),
}

impl DbError {
    /// Whether waiting can fix it: a lock held elsewhere, a full disk, a lost connection.
    pub fn transient(&self) -> bool {
        match self {
            DbError::Sqlite(e) => {
                use rusqlite::ErrorCode::*;
                matches!(
                    e.sqlite_error_code(),
                    Some(
                        DatabaseBusy
                            | DatabaseLocked
                            | DiskFull
                            | SystemIoFailure
                            | CannotOpen
                            | OutOfMemory
                    )
                )
            }
            DbError::Postgres(e) => match e.code() {
                // No SQLSTATE: the connection itself failed.
                None => true,
                Some(code) => {
                    let class = &code.code()[..2];
                    // Connection, serialization/deadlock, resources, operator
                    // intervention, system I/O; a lock held elsewhere.
                    matches!(class, "08" | "40" | "53" | "57" | "58") || code.code() == "55P03"
                }
            },
            // A server that stopped answering may answer again.
            DbError::Timeout(_) | DbError::LostInTransaction => true,
            _ => false,
        }
    }

    /// The database itself is unusable: no row of any batch can be stored.
    pub fn broken(&self) -> bool {
        match self {
            DbError::Sqlite(e) => {
                use rusqlite::ErrorCode::*;
                matches!(
                    e.sqlite_error_code(),
                    Some(DatabaseCorrupt | NotADatabase | ReadOnly | PermissionDenied)
                )
            }
            // No privilege, no such database, refused credentials, a read-only
            // server, corrupt data.
            DbError::Postgres(e) => e.code().is_some_and(|c| {
                matches!(
                    c.code(),
                    "42501" | "3D000" | "28000" | "28P01" | "25006" | "XX001" | "XX002"
                )
            }),
            _ => false,
        }
    }

    /// A unique or primary key was violated.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(e) => {
                e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
            }
            DbError::Postgres(e) => e.code().is_some_and(|c| c.code() == "23505"),
            _ => false,
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// A statement parameter, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Bool(bool),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// What can be bound to a statement.
pub trait ToValue {
    fn value(&self) -> Value<'_>;
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn value(&self) -> Value<'_> {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_value!(i64, i32, u32, u16, u8);

impl ToValue for u64 {
    /// Integers are i64 in both databases: beyond, the largest value.
    fn value(&self) -> Value<'_> {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for usize {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for bool {
    fn value(&self) -> Value<'_> {
        Value::Bool(*self)
    }
}

impl ToValue for f64 {
    fn value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToValue for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToValue for [u8] {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl ToValue for Vec<u8> {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, ToValue::value)
    }
}

impl ToValue for Value<'_> {
    fn value(&self) -> Value<'_> {
        *self
    }
}

/// A parameter of a statement built at run time, owned by it.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Text(String),
}

impl From<i64> for Param {
    fn from(v: i64) -> Param {
        Param::Int(v)
    }
}

impl From<String> for Param {
    fn from(v: String) -> Param {
        Param::Text(v)
    }
}

impl ToValue for Param {
    fn value(&self) -> Value<'_> {
        match self {
            Param::Int(v) => Value::Int(*v),
            Param::Text(v) => Value::Text(v),
        }
    }
}

/// The values of run-time parameters, to pass as a statement's.
pub fn values(params: &[Param]) -> Vec<Value<'_>> {
    params.iter().map(ToValue::value).collect()
}

/// `vals![a, b, …]`: the parameters of a statement, each borrowed.
#[macro_export]
macro_rules! vals {
    ($($v:expr),* $(,)?) => {
        [$($crate::store::db::ToValue::value(&$v)),*]
    };
}
pub use vals;

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(v),
            Value::Bool(v) => ValueRef::Integer(i64::from(v)),
            Value::Real(v) => ValueRef::Real(v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Value<'_> {
    /// Converted to the type PostgreSQL gave the parameter, as SQLite would.
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, BoxError> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                Type::FLOAT8 => (v as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => Err(format!("an integer cannot be a {ty}").into()),
            },
            Value::Bool(v) => match *ty {
                Type::BOOL => v.to_sql(ty, out),
                _ => Value::Int(i64::from(v)).to_sql(ty, out),
            },
            Value::Real(v) => match *ty {
                Type::FLOAT4 => (v as f32).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(v) => v.to_sql(ty, out),
            Value::Blob(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

impl Value<'_> {
    /// The type a PostgreSQL parameter is declared with; a null's is inferred (oid 0).
    fn pg_type(&self) -> Type {
        match self {
            Value::Null => Type::new("unknown".into(), 0, Kind::Simple, "pg_catalog".into()),
            Value::Int(_) => Type::INT8,
            Value::Bool(_) => Type::BOOL,
            Value::Real(_) => Type::FLOAT8,
            Value::Text(_) => Type::TEXT,
            Value::Blob(_) => Type::BYTEA,
        }
    }
}

/// One row of a result, whichever database it came from.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl<'a> Row<'a> {
    pub fn get<T: Column>(&self, index: usize) -> DbResult<T> {
        match self {
            Row::Sqlite(r) => T::from_sqlite(r, index),
            Row::Postgres(r) => T::from_postgres(r, index),
        }
    }

    /// A text column borrowed from the row: nothing allocated.
    pub fn str(&self, index: usize) -> DbResult<&'a str> {
        match *self {
            Row::Sqlite(r) => r.get_ref(index)?.as_str().map_err(|e| DbError::Column {
                index,
                message: e.to_string(),
            }),
            Row::Postgres(r) => pg_column(r, index),
        }
    }

    /// A blob column borrowed from the row.
    pub fn bytes(&self, index: usize) -> DbResult<&'a [u8]> {
        match *self {
            Row::Sqlite(r) => r.get_ref(index)?.as_blob().map_err(|e| DbError::Column {
                index,
                message: e.to_string(),
            }),
            Row::Postgres(r) => pg_column(r, index),
        }
    }
}

/// A column type both databases can return.
pub trait Column: Sized {
    fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> DbResult<Self>;
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self>;
}

/// Any integer PostgreSQL returns (a `sum` of bigints is numeric, a comparison is boolean).
struct PgInt(i64);

impl<'a> FromSql<'a> for PgInt {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(PgInt(match *ty {
            Type::INT8 => i64::from_sql(ty, raw)?,
            Type::INT4 => i32::from_sql(ty, raw)?.into(),
            Type::INT2 => i16::from_sql(ty, raw)?.into(),
            Type::BOOL => bool::from_sql(ty, raw)?.into(),
            Type::FLOAT8 => f64::from_sql(ty, raw)? as i64,
            Type::NUMERIC => numeric(raw)? as i64,
            _ => return Err(format!("{ty} is not an integer").into()),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL | Type::FLOAT8 | Type::NUMERIC
        )
    }
}

struct PgReal(f64);

impl<'a> FromSql<'a> for PgReal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(PgReal(match *ty {
            Type::FLOAT8 => f64::from_sql(ty, raw)?,
            Type::FLOAT4 => f32::from_sql(ty, raw)?.into(),
            Type::NUMERIC => numeric(raw)?,
            _ => PgInt::from_sql(ty, raw)?.0 as f64,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::FLOAT8 | Type::FLOAT4) || PgInt::accepts(ty)
    }
}

/// PostgreSQL's binary numeric: base-10000 digits after a weight and a sign.
fn numeric(raw: &[u8]) -> Result<f64, BoxError> {
    let word = |i: usize| -> Result<i16, BoxError> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a short numeric".into())
    };
    let (ndigits, weight, sign) = (word(0)?, word(1)?, word(2)? as u16);
    if sign == 0xC000 {
        return Err("NaN is not a number here".into());
    }
    let mut value = 0f64;
    for k in 0..ndigits.max(0) as usize {
        let exponent = i32::from(weight) - k as i32;
        value += f64::from(word(4 + k)?) * 10_000f64.powi(exponent);
    }
    Ok(if sign == 0x4000 { -value } else { value })
}

fn pg_column<'a, T: FromSql<'a>>(row: &'a postgres::Row, index: usize) -> DbResult<T> {
    Ok(row.try_get::<_, T>(index)?)
}

macro_rules! int_column {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> DbResult<Self> {
                Ok(row.get(index)?)
            }
            fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
                let v = pg_column::<PgInt>(row, index)?.0;
                <$t>::try_from(v).map_err(|e| DbError::Column { index, message: e.to_string() })
            }
        }
        impl Column for Option<$t> {
            fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> DbResult<Self> {
                Ok(row.get(index)?)
            }
            fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
                pg_column::<Option<PgInt>>(row, index)?
                    .map(|v| <$t>::try_from(v.0))
                    .transpose()
                    .map_err(|e| DbError::Column { index, message: e.to_string() })
            }
        }
    )*};
}
int_column!(i64, i32, u32, u64, u16, u8, usize);

impl Column for bool {
    fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> DbResult<Self> {
        Ok(row.get(index)?)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
        Ok(pg_column::<PgInt>(row, index)?.0 != 0)
    }
}

impl Column for f64 {
    fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> DbResult<Self> {
        Ok(row.get(index)?)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
        Ok(pg_column::<PgReal>(row, index)?.0)
    }
}

impl Column for Option<f64> {
    fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> DbResult<Self> {
        Ok(row.get(index)?)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
        Ok(pg_column::<Option<PgReal>>(row, index)?.map(|v| v.0))
    }
}

macro_rules! plain_column {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> DbResult<Self> {
                Ok(row.get(index)?)
            }
            fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
                pg_column(row, index)
            }
        }
    )*};
}
plain_column!(String, Option<String>, Vec<u8>, Option<Vec<u8>>);

// A tuple reads the row's columns from the first on, whatever the index.
macro_rules! tuple_column {
    ($($t:ident $i:tt),*) => {
        impl<$($t: Column),*> Column for ($($t,)*) {
            fn from_sqlite(row: &rusqlite::Row<'_>, _: usize) -> DbResult<Self> {
                Ok(($($t::from_sqlite(row, $i)?,)*))
            }
            fn from_postgres(row: &postgres::Row, _: usize) -> DbResult<Self> {
                Ok(($($t::from_postgres(row, $i)?,)*))
            }
        }
    };
}
tuple_column!(A 0, B 1);
tuple_column!(A 0, B 1, C 2);
tuple_column!(A 0, B 1, C 2, D 3);
tuple_column!(A 0, B 1, C 2, D 3, E 4);

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<PgConn>>),
}

struct PgConn {
    /// None once lost (or timed out): the next statement connects again.
    live: Option<Live>,
    config: tokio_postgres::Config,
    /// Prepared statements by their SQLite text and parameter types.
    statements: HashMap<(String, Vec<u32>), postgres::Statement>,
    /// Set once connected: a later connect is a reconnect, and is logged.
    reconnecting: bool,
    /// Between BEGIN and its COMMIT or ROLLBACK.
    in_transaction: bool,
    /// How long one statement (or a connect) may take: a server that stopped
    /// answering (SIGSTOP, a dead link) is then an error to act on, not a
    /// thread stuck for good. None: as long as it takes.
    deadline: Option<std::time::Duration>,
}

/// A connection and the runtime that drives it (the client's I/O runs only
/// inside `block_on`, as the blocking `postgres` client does).
struct Live {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    /// The `statement_timeout` the server was given (None: its default).
    server_deadline: Option<std::time::Duration>,
}

/// A connection to the store.
pub struct Db {
    backend: Backend,
}

impl From<rusqlite::Connection> for Db {
    fn from(conn: rusqlite::Connection) -> Db {
        Db {
            backend: Backend::Sqlite(conn),
        }
    }
}

impl Db {
    /// Connects to PostgreSQL; lost, it connects again with `config`.
    /// Each statement (and connect) bounded by `deadline`, if any.
    pub fn connect_postgres(
        config: tokio_postgres::Config,
        deadline: Option<std::time::Duration>,
    ) -> DbResult<Db> {
        let mut conn = PgConn {
            live: None,
            config,
            statements: HashMap::new(),
            reconnecting: false,
            in_transaction: false,
            deadline,
        };
        off_runtime(|| conn.live().map(|_| ()))?;
        Ok(Db {
            backend: Backend::Postgres(Box::new(RefCell::new(conn))),
        })
    }

    /// Bounds each statement (and each connect) to `deadline` from now on:
    /// past it, the statement fails with [`DbError::Timeout`] and the
    /// connection is dropped. SQLite has its busy timeout instead.
    pub fn set_deadline(&self, deadline: Option<std::time::Duration>) {
        if let Backend::Postgres(pg) = &self.backend {
            pg.borrow_mut().deadline = deadline;
        }
    }

    /// Runs `work` with statements allowed `longer` at least (a digest, a
    /// prune), then bounds them as before.
    pub fn with_deadline_at_least<T>(
        &self,
        longer: std::time::Duration,
        work: impl FnOnce(&Db) -> T,
    ) -> T {
        let usual = self.deadline();
        self.set_deadline(usual.map(|d| d.max(longer)));
        let out = work(self);
        self.set_deadline(usual);
        out
    }

    /// The deadline statements have (PostgreSQL).
    pub fn deadline(&self) -> Option<std::time::Duration> {
        match &self.backend {
            Backend::Postgres(pg) => pg.borrow().deadline,
            Backend::Sqlite(_) => None,
        }
    }
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (its pragmas, functions, migrations).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.backend {
            Backend::Sqlite(conn) => Some(conn),
            Backend::Postgres(_) => None,
        }
    }

    /// Runs statements without parameters (a schema, `BEGIN`).
    pub fn batch(&self, sql: &str) -> DbResult<()> {
        match &self.backend {
            Backend::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Backend::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                off_runtime(|| pg.with_live(|l, d| block(l, d, l.client.batch_execute(sql))))
            }
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value<'_>]) -> DbResult<u64> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Backend::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                off_runtime(|| {
                    let stmt = pg.prepare(sql, params)?;
                    let refs = pg_params(params);
                    pg.with_live(|l, d| block(l, d, l.client.execute(&stmt, &refs)))
                })
            }
        }
    }

    /// Every row of a query, each read by `read`.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        mut read: impl FnMut(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(read(&Row::Sqlite(row))?);
                }
                Ok(out)
            }
            Backend::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let rows = off_runtime(|| -> DbResult<_> {
                    let stmt = pg.prepare(sql, params)?;
                    let refs = pg_params(params);
                    pg.with_live(|l, d| block(l, d, l.client.query(&stmt, &refs)))
                })?;
                drop(pg);
                rows.iter().map(|r| read(&Row::Postgres(r))).collect()
            }
        }
    }

    /// The first row, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnOnce(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Option<T>> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                rows.next()?.map(|r| read(&Row::Sqlite(r))).transpose()
            }
            Backend::Postgres(_) => {
                let mut read = Some(read);
                let rows = self.query(sql, params, |r| match read.take() {
                    Some(read) => read(r).map(Some),
                    None => Ok(None),
                })?;
                Ok(rows.into_iter().flatten().next())
            }
        }
    }

    /// The first row; [`DbError::NoRow`] if there is none.
    pub fn query_one<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnOnce(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<T> {
        self.query_opt(sql, params, read)?.ok_or(DbError::NoRow)
    }

    /// The first column of the first row.
    pub fn scalar<T: Column>(&self, sql: &str, params: &[Value<'_>]) -> DbResult<T> {
        self.query_one(sql, params, |r| r.get(0))
    }

    /// Runs `work` in one transaction: committed if it returns `Ok`, rolled back if not.
    pub fn transaction<T>(&self, work: impl FnOnce(&Db) -> DbResult<T>) -> DbResult<T> {
        self.batch("BEGIN")?;
        self.in_transaction(true);
        let done = work(self).and_then(|v| {
            // COMMIT on the connection that began it, or not at all.
            let commit = self.batch("COMMIT");
            self.in_transaction(false);
            commit.map(|()| v)
        });
        if done.is_err() {
            self.in_transaction(false);
            // Nothing to roll back if the connection is gone; the error says why.
            let _ = self.batch("ROLLBACK");
        }
        done
    }

    /// Inside a transaction a lost connection is an error, never a new
    /// connection: the rest would run outside the transaction (and its fence).
    fn in_transaction(&self, open: bool) {
        if let Backend::Postgres(pg) = &self.backend {
            pg.borrow_mut().in_transaction = open;
        }
    }
}

impl Drop for PgConn {
    /// A runtime is dropped outside any tokio worker.
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            off_runtime(move || drop(live));
        }
    }
}

/// Gives the server the deadline too: it ends a statement past it itself
/// (freeing its locks) while it runs; the timer here covers a frozen one.
/// (Set outside transactions: `set_deadline` is called between them.)
fn tell_deadline(live: &mut Live, deadline: Option<std::time::Duration>) -> DbResult<()> {
    if live.server_deadline != deadline {
        // A tenth sooner than the timer: a server still running ends it first.
        let ms = deadline.map_or(0, |d| (d.as_millis() * 9 / 10).max(1));
        let set = format!("SET statement_timeout = {ms}");
        block(live, deadline, live.client.batch_execute(&set))?;
        live.server_deadline = deadline;
    }
    Ok(())
}

/// Waits for a statement on the connection's runtime, at most `deadline`.
fn block<T>(
    live: &Live,
    deadline: Option<std::time::Duration>,
    statement: impl std::future::Future<Output = Result<T, postgres::Error>>,
) -> DbResult<T> {
    within(&live.rt, deadline, statement)
}

/// Runs `work` (a statement, a connect) on `rt`, at most `deadline`.
fn within<T>(
    rt: &tokio::runtime::Runtime,
    deadline: Option<std::time::Duration>,
    work: impl std::future::Future<Output = Result<T, postgres::Error>>,
) -> DbResult<T> {
    match deadline {
        // The timer is made inside the runtime: it needs its clock.
        Some(d) => match rt.block_on(async { tokio::time::timeout(d, work).await }) {
            Ok(done) => Ok(done?),
            Err(_) => Err(DbError::Timeout(d)),
        },
        None => Ok(rt.block_on(work)?),
    }
}

/// The PostgreSQL client blocks on a runtime of its own, which tokio
/// refuses inside a worker of another: there, it blocks in place.
pub(super) fn off_runtime<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn pg_params<'a>(params: &'a [Value<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl PgConn {
    /// The connection, made again if it was lost (the statements with it).
    /// A statement that failed with it failed its transaction, which is
    /// rolled back and retried whole: nothing runs half on each connection.
    fn live(&mut self) -> DbResult<&mut Live> {
        self.lose_if_closed();
        if self.live.is_none() && self.in_transaction {
            return Err(DbError::LostInTransaction);
        }
        if self.live.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(DbError::Runtime)?;
            let connect = self.config.connect(tokio_postgres::NoTls);
            let (client, connection) = within(&rt, self.deadline, connect)?;
            // Driven whenever a statement is: the runtime has no thread of its own.
            rt.spawn(connection);
            if self.reconnecting {
                tracing::info!("connected to PostgreSQL again");
            }
            self.reconnecting = true;
            self.live = Some(Live {
                rt,
                client,
                server_deadline: None,
            });
        }
        Ok(self.live.as_mut().expect("connected just now"))
    }

    /// Drops the connection: the next statement connects again.
    fn lose(&mut self) {
        self.statements.clear();
        self.live = None;
    }

    /// A connection the server closed is dropped, with the statements
    /// prepared on it.
    fn lose_if_closed(&mut self) {
        if self.live.as_ref().is_some_and(|l| l.client.is_closed()) {
            self.lose();
        }
    }

    /// Runs `statement` on the connection; one that timed out, or that the
    /// connection itself failed, drops it: the next statement connects again.
    fn with_live<T>(
        &mut self,
        statement: impl FnOnce(&Live, Option<std::time::Duration>) -> DbResult<T>,
    ) -> DbResult<T> {
        let deadline = self.deadline;
        let live = self.live()?;
        let out = tell_deadline(live, deadline).and_then(|()| statement(live, deadline));
        // A timeout leaves the connection in an unknown state; an error the
        // server did not send, or a FATAL one (it ends the session), means
        // the connection is gone.
        let failed = match &out {
            Err(DbError::Timeout(_)) => true,
            Err(DbError::Postgres(e)) => e
                .as_db_error()
                .is_none_or(|d| matches!(d.severity(), "FATAL" | "PANIC")),
            _ => false,
        };
        if failed {
            self.lose();
        }
        out
    }

    fn prepare(&mut self, sql: &str, params: &[Value<'_>]) -> DbResult<postgres::Statement> {
        let types: Vec<Type> = params.iter().map(Value::pg_type).collect();
        let key = (sql.to_owned(), types.iter().map(Type::oid).collect());
        // A statement prepared on a connection since lost is no statement.
        self.lose_if_closed();
        if let Some(stmt) = self.statements.get(&key) {
            return Ok(stmt.clone());
        }
        let text = to_postgres(sql);
        let stmt = self.with_live(|l, d| block(l, d, l.client.prepare_typed(&text, &types)))?;
        self.statements.insert(key, stmt.clone());
        Ok(stmt)
    }
}

/// SQLite's `?N` and `?` placeholders as PostgreSQL's `$N`, outside quotes.
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 0u32;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), _) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), _) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    next += 1;
                    digits = next.to_string();
                } else {
                    next = next.max(digits.parse().unwrap_or(0));
                }
                out.push('$');
                out.push_str(&digits);
            }
            (None, _) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        assert_eq!(
            to_postgres("SELECT '?1', \"a?\" FROM t WHERE a = ?1 AND b IN (?2, ?) AND c = ?10"),
            "SELECT '?1', \"a?\" FROM t WHERE a = $1 AND b IN ($2, $3) AND c = $10"
        );
        assert_eq!(to_postgres("VALUES (?, ?)"), "VALUES ($1, $2)");
    }

    #[test]
    fn numerics_decode_as_postgresql_writes_them() {
        // 12345678 = 1234·10000 + 5678: two digits, weight 1.
        let raw = [0, 2, 0, 1, 0, 0, 0, 0, 0x04, 0xD2, 0x16, 0x2E];
        assert_eq!(numeric(&raw).unwrap(), 12_345_678.0);
        let negative = [0, 1, 0, 0, 0x40, 0, 0, 0, 0, 7];
        assert_eq!(numeric(&negative).unwrap(), -7.0);
        assert_eq!(numeric(&[0, 0, 0, 0, 0, 0, 0, 0]).unwrap(), 0.0);
        assert!(numeric(&[0, 1]).is_err());
    }

    #[test]
    fn sqlite_round_trips_every_value() {
        let db = Db::from(rusqlite::Connection::open_in_memory().unwrap());
        db.batch("CREATE TABLE t (i INTEGER, b INTEGER, r REAL, s TEXT, x BLOB)")
            .unwrap();
        let blob = vec![1u8, 2, 3];
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)",
            &vals![u64::MAX, true, 1.5, "a", blob],
        )
        .unwrap();
        db.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
            &vals![
                None::<i64>,
                false,
                None::<f64>,
                None::<String>,
                None::<Vec<u8>>
            ],
        )
        .unwrap();
        let rows = db
            .query("SELECT i, b, r, s, x FROM t ORDER BY rowid", &[], |r| {
                r.get::<(
                    Option<i64>,
                    bool,
                    Option<f64>,
                    Option<String>,
                    Option<Vec<u8>>,
                )>(0)
            })
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    Some(i64::MAX),
                    true,
                    Some(1.5),
                    Some("a".into()),
                    Some(blob)
                ),
                (None, false, None, None, None)
            ]
        );
        let missing = db.query_one("SELECT i FROM t WHERE s = 'z'", &[], |r| r.get::<i64>(0));
        assert!(matches!(missing, Err(DbError::NoRow)));
        // A failed transaction leaves nothing behind.
        let failed = db.transaction(|db| {
            db.execute("DELETE FROM t", &[])?;
            db.execute("INSERT INTO nowhere VALUES (1)", &[])
        });
        assert!(failed.is_err());
        assert_eq!(db.scalar::<i64>("SELECT count(*) FROM t", &[]).unwrap(), 2);
    }

    /// Ends backend `pid` through `other`, and waits until it is gone
    /// (terminating only signals it).
    fn terminate(other: &Db, pid: i64) {
        other
            .batch(&format!("SELECT pg_terminate_backend({pid})"))
            .unwrap();
        let alive = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}");
        while other.scalar::<i64>(&alive, &[]).unwrap() > 0 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_lost_postgresql_connection_is_made_again_and_the_failure_is_transient() {
        let Some(store) = crate::store::scratch::postgres() else {
            return;
        };
        let db = store.open();
        db.scalar::<i64>("SELECT 1", &[]).unwrap();
        let pid: i64 = db.scalar("SELECT pg_backend_pid()", &[]).unwrap();
        let other = store.open();
        terminate(&other, pid);
        // The writer holds its batch on a transient failure and tries again.
        let lost = db.scalar::<i64>("SELECT 1", &[]).unwrap_err();
        assert!(lost.transient(), "{lost}");
        assert_eq!(db.scalar::<i64>("SELECT 2", &[]).unwrap(), 2);
        let again: i64 = db.scalar("SELECT pg_backend_pid()", &[]).unwrap();
        assert_ne!(again, pid, "a new connection");
    }

    #[test]
    fn a_server_that_stops_answering_is_a_timeout_and_is_connected_again_once_it_answers() {
        // A cluster of its own: stopping the shared one would stall other tests.
        let cluster = match crate::store::pg_cluster::Cluster::start() {
            Ok(c) => c,
            Err(why) => {
                assert!(std::env::var_os("HAPWATCH_E2E").is_none(), "{why}");
                return;
            }
        };
        let url: tokio_postgres::Config = cluster.url("postgres").parse().unwrap();
        let deadline = std::time::Duration::from_millis(500);
        let db = Db::connect_postgres(url, Some(deadline)).unwrap();
        assert_eq!(db.scalar::<i64>("SELECT 1", &[]).unwrap(), 1);
        let pid_file = cluster.dir.join("data").join("postmaster.pid");
        let postmaster = std::fs::read_to_string(pid_file).unwrap();
        let postmaster = postmaster.lines().next().unwrap().trim().to_owned();
        let signal = |sig: &str| {
            // The postmaster and every backend: a frozen server, as SIGSTOP makes one.
            let children = std::process::Command::new("pgrep")
                .args(["-P", &postmaster])
                .output()
                .unwrap();
            let mut pids: Vec<String> = String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            pids.push(postmaster.clone());
            let ok = std::process::Command::new("kill")
                .arg(format!("-{sig}"))
                .args(&pids)
                .status()
                .unwrap();
            assert!(ok.success());
        };
        signal("STOP");
        let stuck = db.scalar::<i64>("SELECT 2", &[]).unwrap_err();
        let connecting = db.scalar::<i64>("SELECT 3", &[]).unwrap_err();
        signal("CONT");
        assert!(matches!(stuck, DbError::Timeout(_)), "{stuck}");
        assert!(
            stuck.transient(),
            "held and retried, as a lost connection is"
        );
        assert!(matches!(connecting, DbError::Timeout(_)), "{connecting}");
        assert_eq!(db.scalar::<i64>("SELECT 4", &[]).unwrap(), 4);
    }

    #[test]
    fn a_connection_lost_inside_a_transaction_is_not_replaced_until_it_ends() {
        let Some(store) = crate::store::scratch::postgres() else {
            return;
        };
        let (db, other) = (store.open(), store.open());
        db.batch("CREATE TABLE t (n BIGINT)").unwrap();
        let outcome = db.transaction(|tx| {
            tx.execute("INSERT INTO t VALUES (1)", &[])?;
            let pid: i64 = tx.scalar("SELECT pg_backend_pid()", &[])?;
            terminate(&other, pid);
            // The first statement meets the dead connection; the next must
            // not run, outside the transaction, on a new one.
            let _ = tx.execute("INSERT INTO t VALUES (2)", &[]);
            tx.execute("INSERT INTO t VALUES (3)", &[])
        });
        let err = outcome.unwrap_err();
        assert!(matches!(err, DbError::LostInTransaction), "{err}");
        assert!(err.transient(), "the batch is held and retried");
        let rows: i64 = db.scalar("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(rows, 0, "nothing of the transaction was committed");
    }

    #[test]
    fn a_statement_past_the_deadline_is_ended_by_the_server_and_the_connection_kept() {
        let Some(store) = crate::store::scratch::postgres() else {
            return;
        };
        let db = store.open();
        db.set_deadline(Some(std::time::Duration::from_millis(500)));
        let pid: i64 = db.scalar("SELECT pg_backend_pid()", &[]).unwrap();
        let slow = db.batch("SELECT pg_sleep(5)").unwrap_err();
        let DbError::Postgres(e) = &slow else {
            panic!("the server's own error, not the timer's: {slow}");
        };
        assert_eq!(e.code().map(|c| c.code()), Some("57014"), "{slow}");
        assert!(slow.transient());
        let again: i64 = db.scalar("SELECT pg_backend_pid()", &[]).unwrap();
        assert_eq!(again, pid, "the same connection goes on");
    }
}
