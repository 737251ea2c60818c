//! Black-box tests of the native API: the real router on a real port, driven over HTTP, against
//! SQLite always and PostgreSQL when `TEST_DATABASE_URL` is set.

mod access;
mod api_keys;
mod audit;
mod auth;
mod avatars;
mod billing;
mod chargebee;
mod contract;
mod errors;
mod golden;
mod idempotency;
mod limits;
mod matrix;
mod ops;
mod organizations;
mod outages;
mod partners;
mod people;
mod providers;
mod wallet;
mod webhooks;

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

/// One test per database for each listed `async fn(TestDb)`, which starts its own app (with
/// billing, rate limits, …), in the modules `$sqlite` and `$postgres` (named apart from
/// [`api_tests!`]'s when a file has both).
#[macro_export]
macro_rules! db_tests {
    ($sqlite:ident, $postgres:ident; $($name:ident),* $(,)?) => {
        mod $sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(orgbase_store::testing::sqlite().await).await;
                }
            )*
        }
        mod $postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = orgbase_store::testing::postgres().await else {
                        eprintln!("skipped: TEST_DATABASE_URL is not set");
                        return;
                    };
                    super::$name(db).await;
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
    /// Where invitation mail goes (unless the config names an SMTP server).
    pub outbox: tempfile::TempDir,
    /// Where avatars go (unless the config names another folder or a bucket).
    pub avatar_dir: tempfile::TempDir,
    /// The server's state: its services (the webhook worker, for tests to drain).
    pub state: AppState,
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
    /// A problem answer's `code` is one of [`orgbase_api::error_codes::ERROR_CODES`], the list
    /// the README's table is made from, with the status listed there: a new code, or a code
    /// answered with another status, fails here until the list (and so the README) says so.
    pub fn check_code_is_listed(&self) {
        if self.header("content-type") != Some("application/problem+json") {
            return;
        }
        let code = self.body["code"].as_str().unwrap_or_default();
        assert_eq!(
            orgbase_api::error_codes::status_of(code),
            Some(self.status.as_u16()),
            "`{code}` answered with {} is not in orgbase_api::error_codes::ERROR_CODES with \
             that status: {}",
            self.status,
            self.text
        );
    }

    pub fn assert_problem(&self, status: u16, code: &str) {
        self.check_code_is_listed();
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
    /// With webhooks allowed to reach loopback, where tests' receivers listen.
    pub async fn start(db: TestDb) -> App {
        Self::start_with(
            db,
            ApiConfig {
                webhook_allow_private: true,
                ..ApiConfig::default()
            },
        )
        .await
    }

    pub async fn start_with(db: TestDb, config: ApiConfig) -> App {
        Self::start_with_billing(db, config, Default::default()).await
    }

    /// With billing providers (a Stripe client pointed at a local stand-in, say). Rate limits
    /// are off: a test makes requests faster than an organization's default 5 a second; the
    /// tests of the limits themselves start with [`App::start_limited`].
    pub async fn start_with_billing(
        db: TestDb,
        mut config: ApiConfig,
        billing: orgbase_api::billing::Billing,
    ) -> App {
        config.rate_limits = false;
        Self::launch(db, config, billing).await
    }

    /// With rate limits as `config` says (on, unless it turns them off).
    pub async fn start_limited(db: TestDb, config: ApiConfig) -> App {
        Self::launch(db, config, Default::default()).await
    }

    async fn launch(
        db: TestDb,
        mut config: ApiConfig,
        billing: orgbase_api::billing::Billing,
    ) -> App {
        let outbox = tempfile::tempdir().unwrap();
        config.mail_outbox = outbox.path().to_owned();
        let avatar_dir = tempfile::tempdir().unwrap();
        if config.avatars.dir == ApiConfig::default().avatars.dir {
            config.avatars.dir = avatar_dir.path().to_owned();
        }
        let key = match orgbase_api::ensure_platform_key(&db.store, None)
            .await
            .unwrap()
        {
            Bootstrap::Generated(k) => k,
            other => panic!("expected a new key, got {other:?}"),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        if config.public_url == ApiConfig::default().public_url {
            config.public_url = base.clone();
        }
        let shutdown = CancellationToken::new();
        let state = AppState::new(db.store.clone(), config, billing).unwrap();
        tokio::spawn(orgbase_api::serve(
            listener,
            state.clone(),
            shutdown.clone(),
        ));
        App {
            base,
            key,
            http: reqwest::Client::builder()
                .user_agent("orgbase-tests/1")
                .build()
                .unwrap(),
            db,
            outbox,
            avatar_dir,
            state,
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

    pub async fn answer(res: reqwest::Response) -> Answer {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        let answer = Answer {
            status,
            headers,
            body,
            text,
        };
        answer.check_code_is_listed();
        answer
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

    /// Another server on the same database (another node), serving until the app stops.
    /// Answers its base URL.
    pub async fn another_node(&self) -> String {
        let store = orgbase_store::open(&self.db.url, &Default::default())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(
            store,
            ApiConfig {
                mail_outbox: self.outbox.path().to_owned(),
                avatars: orgbase_api::native::avatars::AvatarConfig {
                    dir: self.avatar_dir.path().to_owned(),
                    ..Default::default()
                },
                rate_limits: self.state.config.rate_limits,
                platform_rate_limit: self.state.config.platform_rate_limit,
                redis_url: self.state.config.redis_url.clone(),
                ..ApiConfig::default()
            },
            Default::default(),
        )
        .unwrap();
        tokio::spawn(orgbase_api::serve(listener, state, self.shutdown.clone()));
        base
    }

    /// A call with another credential (`None`: no credential at all).
    pub async fn as_(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.call(method, path, token, body.as_ref(), &[]).await
    }

    /// Every invitation token mailed so far (read from the outbox), oldest first.
    pub fn mailed_tokens(&self) -> Vec<String> {
        orgbase_mail::testing::outbox_files(self.outbox.path())
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .filter_map(|m| invite_token(&orgbase_mail::testing::body_text(&m)))
            .collect()
    }

    /// The newest invitation token mailed.
    pub fn last_token(&self) -> String {
        self.mailed_tokens()
            .pop()
            .expect("an invitation was mailed")
    }

    /// Logs in; answers the session token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let a = self
            .as_(
                None,
                Method::POST,
                "/api/auth/login",
                Some(serde_json::json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        a.body["token"].as_str().unwrap().to_owned()
    }

    /// A new person in `org` with `roles`, through the real invitation flow: invited by the
    /// platform, accepted with a password, logged in. Answers (session token, member id).
    pub async fn person(&self, org: &str, email: &str, roles: &[i64]) -> (String, i64) {
        let a = self
            .post(
                &format!("/api/organizations/{org}/invite"),
                serde_json::json!({"email": email, "name": "Test Person", "roles": roles}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let token = self.last_token();
        let a = self
            .as_(
                None,
                Method::POST,
                &format!("/api/organizations/invite/{token}/accept"),
                Some(serde_json::json!({"password": "password123", "password_confirmation": "password123"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let member = a.body["data"]["memberId"].as_i64().unwrap();
        (self.login(email, "password123").await, member)
    }

    /// An organization whose owner is a person with a password: answers (org id, owner's
    /// session token). The owner creates it with a session, as a person would.
    pub async fn owned_org(&self, owner_email: &str) -> (String, String) {
        // The person first needs an account: a throwaway organization invites them.
        let scratch = self
            .org(serde_json::json!({"name": "Scratch", "countryCode": "US"}))
            .await;
        let (token, _) = self
            .person(scratch["id"].as_str().unwrap(), owner_email, &[3])
            .await;
        let a = self
            .as_(
                Some(&token),
                Method::POST,
                "/api/organizations",
                Some(serde_json::json!({"name": "Owned", "countryCode": "DE"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        (a.body["id"].as_str().unwrap().to_owned(), token)
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

/// The token in an invitation e-mail's `/invite/{token}` link.
pub fn invite_token(body: &str) -> Option<String> {
    let start = body.find("/invite/")? + "/invite/".len();
    let token: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (!token.is_empty()).then_some(token)
}

/// Keeps `testing` in use for helpers that want a bare store.
#[allow(dead_code)]
pub async fn sqlite() -> TestDb {
    testing::sqlite().await
}
