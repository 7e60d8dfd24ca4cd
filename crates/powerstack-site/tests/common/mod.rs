//! What the site's tests share: a fresh database of each kind (a temporary SQLite file; a new
//! database on the PostgreSQL at `POWERSTACK_TEST_POSTGRES`, by default the one on
//! 127.0.0.1:5432 that `.ci/run` makes sure of), a synthetic node whose counters grow at
//! known powers, a fake controller of nodes for control tasks (`fake_control`) and what the
//! control tasks' tests share (`tasks`).

#![allow(dead_code)]

pub mod agent_fleet;
pub mod bound;
pub mod fake_control;
pub mod pg;
pub mod pki;
pub mod tasks;

use std::sync::atomic::{AtomicU32, Ordering};

use powerstack_api::site::{BatchV1, StreamDomainV1, StreamRegisterV1};
use powerstack_site::db::{DatabaseUrl, Db};
use powerstack_site::store::Store;
use sqlx::Connection;

/// The server new test databases are made on.
pub fn postgres_admin_url() -> String {
    std::env::var("POWERSTACK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database for one test; [`TestDb::drop_database`] removes a PostgreSQL one.
pub struct TestDb {
    /// `sqlite` or `postgres`.
    pub kind: &'static str,
    /// Its URL.
    pub url: DatabaseUrl,
    /// The SQLite file's directory.
    pub _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database's name.
    pub pg_name: Option<String>,
}

impl TestDb {
    /// A temporary SQLite file.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("site.db"));
        TestDb { kind: "sqlite", url, _dir: Some(dir), pg_name: None }
    }

    /// A new, empty PostgreSQL database.
    pub async fn postgres() -> TestDb {
        let admin = postgres_admin_url();
        let name = format!(
            "powerstack_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} is needed by the site's tests (set POWERSTACK_TEST_POSTGRES): {e}")
        });
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut conn).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
        TestDb {
            kind: "postgres",
            url: DatabaseUrl::Postgres(format!("{base}/{name}")),
            _dir: None,
            pg_name: Some(name),
        }
    }

    /// Both kinds.
    pub async fn both() -> Vec<TestDb> {
        vec![TestDb::sqlite(), TestDb::postgres().await]
    }

    /// The URL as `--database` takes it.
    pub fn url_text(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
            DatabaseUrl::Postgres(u) => u.clone(),
        }
    }

    /// Opens (and migrates) it.
    pub async fn store(&self) -> Store {
        Store::new(Db::open(&self.url).await.unwrap())
    }

    /// Removes a PostgreSQL database (connections closed first).
    pub async fn drop_database(&self) {
        if let Some(name) = &self.pg_name {
            let mut conn = sqlx::PgConnection::connect(&postgres_admin_url()).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// A node's power by column: package 0 and 1, memory 0 and 1, GPU 0.
pub const WATTS: [f64; 5] = [150.0, 140.0, 20.0, 25.0, 300.0];

/// The node's total power.
pub fn node_watts() -> f64 {
    WATTS.iter().sum()
}

/// The synthetic node's columns.
pub fn domains() -> Vec<StreamDomainV1> {
    let d = |domain: &str, index: u32, jpt: f64, max: f64| StreamDomainV1 {
        domain: domain.into(),
        index,
        die: None,
        provider: "test".into(),
        joules_per_tick: jpt,
        read: true,
        limit_watts: None,
        max_power_watts: Some(max),
    };
    vec![
        d("package", 0, 1e-6, 400.0),
        d("package", 1, 1e-6, 400.0),
        d("memory", 0, 1e-6, 100.0),
        d("memory", 1, 1e-6, 100.0),
        d("gpu", 0, 1e-3, 700.0),
    ]
}

/// Its registration.
pub fn registration(started_unix_us: u64) -> StreamRegisterV1 {
    StreamRegisterV1 {
        hostname: "test".into(),
        simulated: None,
        started_unix_us,
        domains: domains(),
        topology: None,
        control_url: None,
    }
}

/// The counters at `t_us` of a stream started at `t0_us` (each column at its power since).
pub fn sample(t0_us: u64, t_us: u64) -> Vec<u64> {
    let secs = (t_us - t0_us) as f64 / 1e6;
    let jpt = domains().iter().map(|d| d.joules_per_tick).collect::<Vec<_>>();
    let mut row = vec![t_us];
    for (w, j) in WATTS.iter().zip(jpt) {
        row.push((w * secs / j).round() as u64);
    }
    row
}

/// A batch of samples at `times`.
pub fn batch(seq: u64, t0_us: u64, times: impl IntoIterator<Item = u64>) -> BatchV1 {
    BatchV1 { seq, samples: times.into_iter().map(|t| sample(t0_us, t)).collect() }
}

/// `promtool check metrics` of `text`: `None` when promtool is absent (and not required by
/// `POWERSTACK_REQUIRE_PROMTOOL`).
pub fn promtool(text: &str) -> Option<std::process::Output> {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) if std::env::var_os("POWERSTACK_REQUIRE_PROMTOOL").is_none() => return None,
        Err(e) => panic!("promtool required: {e}"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    Some(child.wait_with_output().unwrap())
}
