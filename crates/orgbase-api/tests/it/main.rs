//! Black-box tests of the native API: the real router on a real port, driven over HTTP, against
//! SQLite always and PostgreSQL when `TEST_DATABASE_URL` is set.

mod api_keys;
mod auth;
mod errors;
mod ops;
mod organizations;

use orgbase_api::{ApiConfig, AppState, Bootstrap};
use orgbase_store::testing::{self, TestDb};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Generates one test per database for each listed `async fn(App)`.
#[macro_export]
macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::App::start(orgbase_store::testing::sqlite().await).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = orgbase_store::testing::postgres().await else {
                        eprintln!("skipped: TEST_DATABASE_URL is not set");
                        return;
                    };
                    super::$name($crate::App::start(db).await).await;
                }
            )*
        }
    };
}

/// The app, serving on a free port, with a platform key.
pub struct App {
    pub base: String,
    /// The bootstrap platform key.
    pub key: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    shutdown: CancellationToken,
}

/// An answer: status, headers and the body as JSON (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem answer: status, content type, code and request id.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["requestId"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{}",
            self.text
        );
        assert_eq!(self.body["requestId"].as_str(), self.header("x-request-id"));
    }

    /// The `(field, code)` pairs of a validation problem, sorted.
    pub fn field_errors(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap().to_owned(),
                            e["code"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl App {
    pub async fn start(db: TestDb) -> App {
        Self::start_with(db, ApiConfig::default()).await
    }

    pub async fn start_with(db: TestDb, config: ApiConfig) -> App {
        let key = match orgbase_api::ensure_platform_key(&db.store, None)
            .await
            .unwrap()
        {
            Bootstrap::Generated(k) => k,
            other => panic!("expected a new key, got {other:?}"),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let state = AppState::new(db.store.clone(), config);
        tokio::spawn(orgbase_api::serve(listener, state, shutdown.clone()));
        App {
            base,
            key,
            http: reqwest::Client::new(),
            db,
            shutdown,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::answer(req.send().await.unwrap()).await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.key);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Self::answer(req.body(body).send().await.unwrap()).await
    }

    async fn answer(res: reqwest::Response) -> Answer {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, Some(&self.key), None, &[])
            .await
    }
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(&self.key), Some(&body), &[])
            .await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(&self.key), Some(&body), &[])
            .await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, Some(&self.key), None, &[])
            .await
    }

    /// Creates an organization and answers its JSON.
    pub async fn org(&self, body: Value) -> Value {
        let a = self.post("/api/organizations", body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        a.body
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Keeps `testing` in use for helpers that want a bare store.
#[allow(dead_code)]
pub async fn sqlite() -> TestDb {
    testing::sqlite().await
}
