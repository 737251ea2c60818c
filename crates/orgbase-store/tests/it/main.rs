//! The storage conformance suite: the same tests against every implementation. SQLite always (in
//! both write modes); PostgreSQL when `TEST_DATABASE_URL` is set, on a fresh database per test.

mod access;
mod audit;
mod billing;
mod idempotency;
mod keys;
mod organizations;
mod people;
mod pg_cache;
mod pg_search;
mod plans;
mod sqlite_search;
mod wallet;
mod webhooks;

use orgbase_store::sqlite::WriteMode;
use orgbase_store::testing::{self, TestDb};

/// Generates one test per store for each listed test function `async fn(TestDb)`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::sqlite_db().await).await;
                }
            )*
        }
        mod sqlite_pool_writers {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::sqlite_pool_db().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::postgres_db().await else {
                        eprintln!("skipped: TEST_DATABASE_URL is not set");
                        return;
                    };
                    super::$name(db).await;
                }
            )*
        }
    };
}

pub async fn sqlite_db() -> TestDb {
    testing::sqlite().await
}

pub async fn sqlite_pool_db() -> TestDb {
    testing::sqlite_with(WriteMode::Pool).await
}

pub async fn postgres_db() -> Option<TestDb> {
    testing::postgres().await
}

/// Runs `work` on a thread of its own, in a single-threaded runtime of its own (as each of the
/// server's threads is with `ORGBASE_HTTP_THREADS`); the thread's handle gives its answer.
pub fn on_own_runtime<F, Fut>(work: F) -> std::thread::JoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future,
    Fut::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work())
    })
}
