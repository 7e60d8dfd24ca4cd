//! The database: SQLite (embedded, one file) or PostgreSQL, chosen by the URL, with the versioned
//! migrations of `migrations/<dialect>/` applied at open. Queries are written once, with `$N`
//! placeholders numbered in order of first use (both dialects take them), and run on either pool
//! through [`on_db!`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::error::StoreError;

/// An open database.
#[derive(Clone, Debug)]
pub enum Db {
    /// An embedded SQLite file.
    Sqlite(SqlitePool),
    /// A PostgreSQL server.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$db` holds (the body is compiled once per
/// dialect, so the same query text and bindings serve both).
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// Where the database is: `sqlite:PATH` or `postgres://...` (`postgresql://` too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file (created when absent).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `text`; anything else is a one-line error saying what is taken.
    pub fn parse(text: &str) -> Result<DatabaseUrl, StoreError> {
        let t = text.trim();
        if let Some(path) = t.strip_prefix("sqlite://").or_else(|| t.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(StoreError::Config("--database sqlite:PATH needs a path".into()));
            }
            return Ok(DatabaseUrl::Sqlite(path.into()));
        }
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            PgConnectOptions::from_str(t)
                .map_err(|e| StoreError::Config(format!("--database {}: {e}", redact(t))))?;
            return Ok(DatabaseUrl::Postgres(t.to_string()));
        }
        Err(StoreError::Config(format!(
            "--database {:?}: expected sqlite:PATH or postgres://USER@HOST:PORT/DB",
            redact(t)
        )))
    }

    /// The URL without a password, for messages and logs.
    pub fn display(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
            DatabaseUrl::Postgres(u) => redact(u),
        }
    }
}

/// `url` with the password between `:` and `@` of its authority replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_string() };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let hidden = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
    let slash = if rest.contains('/') { "/" } else { "" };
    format!("{scheme}://{hidden}@{host}{slash}{path}")
}

impl Db {
    /// Opens the database at `url` and applies the migrations it lacks.
    pub async fn open(url: &DatabaseUrl) -> Result<Db, StoreError> {
        let db = match url {
            DatabaseUrl::Sqlite(path) => Db::Sqlite(open_sqlite(path).await?),
            DatabaseUrl::Postgres(u) => {
                let options = PgConnectOptions::from_str(u)
                    .map_err(|e| StoreError::Config(format!("--database {}: {e}", redact(u))))?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact(u))))?;
                Db::Postgres(pool)
            }
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }
}

async fn open_sqlite(path: &Path) -> Result<SqlitePool, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Config(format!(
                "cannot create the database's directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite:{}: {e}", path.display())))
}

/// Counters as stored: little-endian u64s.
pub fn encode_counters(counters: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(counters.len() * 8);
    for c in counters {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out
}

/// Counters read back (a trailing partial value is ignored).
pub fn decode_counters(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

/// A time or count as the database stores it (BIGINT), saturating.
pub fn to_db(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// A stored BIGINT as a time or count (a negative value, which the service never writes, is 0).
pub fn from_db(x: i64) -> u64 {
    u64::try_from(x).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_sqlite_paths_or_postgres_urls_and_passwords_stay_hidden() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:/x/site.db").unwrap(),
            DatabaseUrl::Sqlite("/x/site.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@127.0.0.1:5432/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        let e = DatabaseUrl::parse("mysql://x:secret@h/db").unwrap_err().to_string();
        assert!(e.contains("expected sqlite:PATH") && !e.contains("secret"), "{e}");
        assert_eq!(redact("postgres://u:pw@h:5/db"), "postgres://u:***@h:5/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(decode_counters(&encode_counters(&[1, u64::MAX])), vec![1, u64::MAX]);
    }
}
