//! Fresh databases for tests: a temporary SQLite file, always; a new PostgreSQL database on the
//! server `TEST_DATABASE_URL` names, when it is set. Used by this crate's conformance suite and
//! by the API tests.
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::sync::Arc;

use crate::postgres::PgStore;
use crate::sqlite::{SqliteStore, WriteMode};
use crate::DynStore;

/// A store on a fresh database, and what keeps that database alive.
pub struct TestDb {
    pub store: DynStore,
    /// The URL of the database, for starting the real binary on it.
    pub url: String,
    _dir: Option<tempfile_guard::TempDir>,
}

impl TestDb {
    /// A test database served by `store` (one opened another way: through a proxy, say).
    pub fn with_store(store: DynStore, url: String) -> TestDb {
        TestDb {
            store,
            url,
            _dir: None,
        }
    }

    /// Runs `sql` on the database directly, around the store (for tests of what the schema
    /// itself refuses); answers the rows it changed, or the database's error message.
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, String> {
        if let Some(path) = self.url.strip_prefix("sqlite://") {
            let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            conn.execute(sql, [])
                .map(|n| n as u64)
                .map_err(|e| e.to_string())
        } else {
            let mut conn = PgConnectOptions::from_str(&self.url)
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(sql)
                .execute(&mut conn)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| e.to_string())
        }
    }

    /// Another node on the same PostgreSQL database, concrete (its pool, its cache), for tests
    /// that look into what one node sees of another's changes.
    pub async fn pg_node(&self) -> PgStore {
        PgStore::connect(&self.url, 4)
            .await
            .expect("connect a second node")
    }
}

mod tempfile_guard {
    /// A temporary folder removed on drop.
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A store on a new SQLite file in a new temporary folder.
pub async fn sqlite() -> TestDb {
    sqlite_with(WriteMode::GroupCommit).await
}

pub async fn sqlite_with(mode: WriteMode) -> TestDb {
    let dir = std::env::temp_dir().join(format!("orgbase-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("orgbase.db");
    let path_str = path.to_str().expect("utf-8 temp path").to_owned();
    let store = SqliteStore::open(&path_str, mode)
        .await
        .expect("open sqlite");
    TestDb {
        store: Arc::new(store),
        url: format!("sqlite://{path_str}"),
        _dir: Some(tempfile_guard::TempDir(dir)),
    }
}

/// The PostgreSQL server to test on, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A store on a new, migrated PostgreSQL database, or `None` when `TEST_DATABASE_URL` is unset.
/// Databases are named `orgbase_t_…`; `.ci/run` drops them after the run.
pub async fn postgres() -> Option<TestDb> {
    let url = postgres_url()?;
    let admin = PgConnectOptions::from_str(&url).expect("TEST_DATABASE_URL is not a valid URL");
    let name = format!("orgbase_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = admin.connect().await.expect("connect to TEST_DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    conn.close().await.ok();
    let opts = admin.clone().database(&name);
    let store = PgStore::connect_with(opts, 8)
        .await
        .expect("connect to test database");
    store.migrate().await.expect("migrate test database");
    let url = replace_database(&url, &name);
    Some(TestDb {
        store: Arc::new(store),
        url,
        _dir: None,
    })
}

/// `url` with its database name replaced.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // postgres://user@host:port/db → keep everything up to the last '/' after the authority.
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            super::replace_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::replace_database("postgres://h/test?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(
            super::replace_database("postgres://h", "x"),
            "postgres://h/x"
        );
    }
}
