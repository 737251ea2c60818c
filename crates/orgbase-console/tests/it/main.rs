//! The console over HTTP: a real server (the API's layers, the console's routes) on SQLite and,
//! with `TEST_DATABASE_URL`, PostgreSQL; a client that keeps cookies and follows no redirect,
//! as a browser's form posts would be seen on the wire.
mod browser;
mod invite;
mod keys;
mod life;
mod members;
mod pages;
mod plans;
mod routes;
mod sign_in;
mod wallet;
mod webhooks;

use orgbase_api::{ApiConfig, AppState, Bootstrap};
use orgbase_store::testing::TestDb;
use reqwest::header::SET_COOKIE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// One test per database for each listed `async fn(Console)`; after `@with TWEAK;`, with the
/// configuration as `TWEAK` (a `fn(&mut ApiConfig)`) leaves it.
#[macro_export]
macro_rules! console_tests {
    ($($name:ident),* $(,)?) => {
        $crate::console_tests!(@with |_| {}; $($name),*);
    };
    (@with $tweak:expr; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = orgbase_store::testing::sqlite().await;
                    super::$name($crate::Console::start_with(db, $tweak).await).await;
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
                    super::$name($crate::Console::start_with(db, $tweak).await).await;
                }
            )*
        }
    };
}

pub struct Console {
    pub base: String,
    /// The platform key.
    pub key: String,
    /// A browser: keeps cookies, follows no redirect.
    pub browser: reqwest::Client,
    /// For the JSON API, with a credential each call.
    pub api: reqwest::Client,
    /// The server's state: its webhook worker, for tests to drain.
    pub state: AppState,
    outbox: tempfile::TempDir,
    _db: TestDb,
    shutdown: CancellationToken,
}

/// An answer as a browser gets it.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub text: String,
}

impl Page {
    async fn of(res: reqwest::Response) -> Page {
        let location = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookies = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        Page {
            status: res.status(),
            location,
            set_cookies,
            text: res.text().await.unwrap(),
        }
    }

    /// The value of the hidden CSRF field of the page's forms.
    pub fn csrf(&self) -> String {
        let at = self
            .text
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF field");
        let rest = &self.text[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Console {
    pub async fn start(db: TestDb) -> Console {
        Self::start_with(db, |_| {}).await
    }

    /// With the configuration as `tweak` leaves it.
    pub async fn start_with(db: TestDb, tweak: impl FnOnce(&mut ApiConfig)) -> Console {
        let outbox = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = ApiConfig {
            public_url: base.clone(),
            mail_outbox: outbox.path().to_owned(),
            rate_limits: false,
            ..ApiConfig::default()
        };
        tweak(&mut config);
        let key = match orgbase_api::ensure_platform_key(&db.store, None)
            .await
            .unwrap()
        {
            Bootstrap::Generated(k) => k,
            other => panic!("expected a new key, got {other:?}"),
        };
        let state = AppState::new(db.store.clone(), config, Default::default()).unwrap();
        let app = orgbase_api::app_with(state.clone(), orgbase_console::routes());
        let shutdown = CancellationToken::new();
        tokio::spawn(orgbase_api::serve_app(listener, app, shutdown.clone()));
        Console {
            base,
            key,
            browser: browser(),
            api: reqwest::Client::new(),
            state,
            outbox,
            _db: db,
            shutdown,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Page::of(
            self.browser
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts a form as the browser.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Page::of(
            self.browser
                .post(format!("{}{path}", self.base))
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The CSRF token of the page at `path`.
    pub async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        page.csrf()
    }

    /// Signs the browser in with the platform key.
    pub async fn sign_in_with_key(&self) {
        let csrf = self.csrf("/console/sign-in").await;
        let page = self
            .post(
                "/console/sign-in/key",
                &[("csrf", &csrf), ("key", &self.key)],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    }

    /// A JSON API call with `token` (the platform key when `None`).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .api
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token.unwrap_or(&self.key));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The organization `id` as the API reads it now (to see what a page changed, or did not).
    pub async fn stored(&self, id: &str) -> Value {
        let (status, body) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/organizations/{id}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The audit entries of `action` on the organization `id`, newest first.
    pub async fn audited(&self, id: &str, action: &str) -> Vec<Value> {
        let (status, log) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/organizations/{id}/audit-log"),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    }

    /// How many audit entries the organization `id` has.
    pub async fn audit_count(&self, id: &str) -> usize {
        let (status, log) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/organizations/{id}/audit-log?limit=100"),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        log["data"].as_array().unwrap().len()
    }

    /// The member with `email` in the organization `id`, as the API lists them.
    pub async fn member(&self, id: &str, email: &str) -> Option<Value> {
        let (status, body) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/organizations/{id}/members"),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]["data"]
            .as_array()
            .unwrap_or_else(|| panic!("a member list: {body}"))
            .iter()
            .find(|m| m["email"] == email)
            .cloned()
    }

    /// A new organization, made through the API.
    pub async fn org(&self, name: &str) -> Value {
        self.org_with(json!({"name": name, "countryCode": "US"}))
            .await
    }

    /// A new organization of `body`, made through the API by the platform.
    pub async fn org_with(&self, body: Value) -> Value {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/api/organizations",
                None,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// A person in `org` with `roles` and the password `password123`, through the invitation.
    pub async fn person(&self, org: &str, email: &str, roles: &[i64]) {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                &format!("/api/organizations/{org}/invite"),
                None,
                Some(json!({"email": email, "name": "Test Person", "roles": roles})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let link = self.last_invite_link();
        let token = link.rsplit('/').next().unwrap();
        let res = self
            .api
            .post(format!(
                "{}/api/organizations/invite/{token}/accept",
                self.base
            ))
            .json(&json!({"password": "password123", "password_confirmation": "password123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}

impl Console {
    /// Where the server writes its e-mails.
    pub fn outbox(&self) -> &std::path::Path {
        self.outbox.path()
    }

    /// The text of the newest e-mail sent.
    pub fn last_mail(&self) -> String {
        let mails = orgbase_mail::testing::outbox_files(self.outbox.path());
        let mail = std::fs::read_to_string(mails.last().expect("an e-mail")).unwrap();
        orgbase_mail::testing::body_text(&mail)
    }

    /// The invitation link in the newest e-mail.
    pub fn last_invite_link(&self) -> String {
        let text = self.last_mail();
        let at = text.find("http").expect("a link");
        text[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect()
    }

    /// Signs the browser out (to sign in as someone else).
    pub async fn sign_out(&self) {
        let csrf = self.csrf("/console/organizations").await;
        let page = self.post("/console/sign-out", &[("csrf", &csrf)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    }

    /// Signs the browser in as a person with the tests' password.
    pub async fn sign_in_with_password(&self, email: &str) {
        let csrf = self.csrf("/console/sign-in").await;
        let page = self
            .post(
                "/console/sign-in/password",
                &[
                    ("csrf", &csrf),
                    ("email", email),
                    ("password", "password123"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A client like a browser's for these tests: a cookie jar, no redirects followed.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
