//! For tests: a local Stripe that keeps real state, and helpers to set it up.
//!
//! [`LocalStripe`] runs `tools/stripe-standin.py` ([`SHIM`]): Python's localstripe
//! (`python3 -m pip install localstripe`), which keeps customers, plans, subscriptions and
//! invoices in memory, answers Stripe's form-encoded API and sends signed webhooks, with the
//! changes the script's header lists: 127.0.0.1 only, state in memory only, a subscription item's
//! `price` (localstripe 1.15 predates Prices and knows only `plan`; a Plan's id is a valid price id
//! at Stripe too) and `proration_behavior`, and the checkout sessions localstripe lacks. Its
//! answers still name the price `plan` only, which real Stripe also sends for recurring prices, so
//! the client reads either. The same script is the offline stand-in the README's tour uses.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use crate::StripeConfig;

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A stand-in's process on `127.0.0.1` and a free port, a client for its test controls, and the
/// folder of its log. Killed on drop.
struct Standin {
    server: orgbase_testkit::PythonServer,
    http: reqwest::Client,
    // Last, so the log goes after the process that writes it.
    _dir: tempfile::TempDir,
}

impl Standin {
    /// Runs the stand-in `shim` (Python needing `module`, pip's package of the same name) on a
    /// free port, its log in a folder of its own, and waits until it accepts connections.
    fn start(name: &str, module: &str, shim: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder for a stand-in's log");
        let spec = orgbase_testkit::PythonServerSpec {
            name,
            module,
            package: module,
            timeout: START_TIMEOUT,
        };
        let server = orgbase_testkit::start_python_server(&spec, dir.path(), |port| {
            vec!["-c".into(), shim.into(), port.to_string()]
        });
        Self {
            server,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }
}

/// What tests authenticate with: localstripe takes any `sk_…` key.
pub const SECRET_KEY: &str = "sk_test_localstripe_0123456789";

/// The webhook signing secret [`LocalStripe::config`] sets.
pub const WEBHOOK_SECRET: &str = "whsec_localstripe_test";

/// The Python that starts the stand-in (`tools/stripe-standin.py`); the port is its first
/// argument.
pub const SHIM: &str = include_str!("../../../tools/stripe-standin.py");

/// localstripe on `127.0.0.1` and a free port. Killed on drop.
pub struct LocalStripe {
    standin: Standin,
}

impl LocalStripe {
    /// Starts localstripe and waits until it accepts connections.
    ///
    /// # Panics
    /// When it is not answering within 15 s, with what it printed; when localstripe is missing,
    /// with how to install it.
    pub fn start() -> Self {
        Self {
            standin: Standin::start("localstripe", "localstripe", SHIM),
        }
    }

    /// The API base to configure a client with.
    pub fn url(&self) -> String {
        self.standin.url()
    }

    pub fn port(&self) -> u16 {
        self.standin.server.port
    }

    /// A Stripe configuration that talks to this server, with [`WEBHOOK_SECRET`], a 5 s timeout
    /// and short retry delays.
    pub fn config(&self) -> StripeConfig {
        let mut config = StripeConfig::new(SecretString::from(SECRET_KEY));
        config.webhook_secret = Some(SecretString::from(WEBHOOK_SECRET));
        config.api_base = self.url();
        config.timeout = Duration::from_secs(5);
        config.retry_base_delay = Duration::from_millis(10);
        config
    }

    /// A form-encoded request straight to localstripe, as set-up for a test; panics on a
    /// refusal, with localstripe's answer.
    pub async fn call(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Value {
        let response = self
            .standin
            .http
            .request(method.clone(), format!("{}{path}", self.url()))
            .bearer_auth(SECRET_KEY)
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} to localstripe: {e}"));
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} to localstripe answered no JSON: {e}"));
        assert!(
            status.is_success(),
            "{method} {path} to localstripe: {status} {body}"
        );
        body
    }

    /// Every checkout session created so far, as the shim recorded it (the form it received,
    /// and the session it answered).
    pub async fn checkout_sessions(&self) -> Vec<Value> {
        let response = self
            .standin
            .http
            .get(format!("{}/_test/checkout_sessions", self.url()))
            .send()
            .await
            .expect("listing checkout sessions");
        response
            .json::<Vec<Value>>()
            .await
            .expect("checkout sessions as JSON")
    }

    /// Gives `customer` a working test card as default payment method, as completing a
    /// checkout does, so a subscription's first invoice is paid.
    pub async fn add_card(&self, customer: &str) {
        let method = self
            .call(
                reqwest::Method::POST,
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", "4242424242424242"),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2040"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        let method = string(&method, "id");
        self.call(
            reqwest::Method::POST,
            &format!("/v1/payment_methods/{method}/attach"),
            &[("customer", customer)],
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/v1/customers/{customer}"),
            &[("invoice_settings[default_payment_method]", &method)],
        )
        .await;
    }

    /// A monthly price (a Plan, to localstripe) with the given id, and a product for it.
    pub async fn create_price(&self, id: &str, amount: i64, currency: &str) -> String {
        let amount = amount.to_string();
        let plan = self
            .call(
                reqwest::Method::POST,
                "/v1/plans",
                &[
                    ("id", id),
                    ("amount", &amount),
                    ("currency", currency),
                    ("interval", "month"),
                    ("product[name]", id),
                ],
            )
            .await;
        string(&plan, "id")
    }

    /// A customer with a working test card as default payment method, so a subscription's first
    /// invoice is paid and it starts `active`.
    pub async fn create_paying_customer(&self, name: &str) -> String {
        let method = self
            .call(
                reqwest::Method::POST,
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", "4242424242424242"),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2040"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        let method = string(&method, "id");
        let customer = self
            .call(
                reqwest::Method::POST,
                "/v1/customers",
                &[
                    ("name", name),
                    ("payment_method", &method),
                    ("invoice_settings[default_payment_method]", &method),
                ],
            )
            .await;
        string(&customer, "id")
    }

    /// A subscription of `customer` to `price`, with `metadata`, as a completed checkout would
    /// have made it. Answers localstripe's JSON.
    pub async fn create_subscription(
        &self,
        customer: &str,
        price: &str,
        metadata: &[(&str, &str)],
    ) -> Value {
        let keys: Vec<String> = metadata
            .iter()
            .map(|(k, _)| format!("metadata[{k}]"))
            .collect();
        let mut form = vec![("customer", customer), ("items[0][price]", price)];
        form.extend(
            keys.iter()
                .map(String::as_str)
                .zip(metadata.iter().map(|(_, v)| *v)),
        );
        self.call(reqwest::Method::POST, "/v1/subscriptions", &form)
            .await
    }

    /// Makes localstripe deliver its events (`None`: all of them) to `url`, signed with
    /// `secret`. It sends each about a second after the change that caused it.
    pub async fn register_webhook(&self, url: &str, secret: &str, events: Option<&[&str]>) {
        let mut form = vec![("url", url), ("secret", secret)];
        for event in events.unwrap_or_default() {
            form.push(("events[]", event));
        }
        let response = self
            .standin
            .http
            .post(format!("{}/_config/webhooks/orgbase", self.url()))
            .form(&form)
            .send()
            .await
            .expect("registering a webhook with localstripe");
        assert!(
            response.status().is_success(),
            "registering a webhook with localstripe: {}",
            response.status()
        );
    }
}

fn string(object: &Value, key: &str) -> String {
    object[key]
        .as_str()
        .unwrap_or_else(|| panic!("localstripe answered no `{key}`: {object}"))
        .to_owned()
}

/// What tests authenticate to the Chargebee stand-in with (it takes any `test_…` key).
pub const CHARGEBEE_API_KEY: &str = "test_standin_0123456789";
/// The Basic auth the Chargebee stand-in sends its webhooks with ([`LocalChargebee::hook_to`]).
pub const CHARGEBEE_HOOK_USER: &str = "orgbase";
pub const CHARGEBEE_HOOK_PASSWORD: &str = "hook-password-standin";

/// The Python of the Chargebee stand-in (`tools/chargebee-standin.py`); the port is its first
/// argument.
pub const CHARGEBEE_SHIM: &str = include_str!("../../../tools/chargebee-standin.py");

/// The Chargebee stand-in on `127.0.0.1` and a free port: customers, item prices, hosted
/// checkout pages, subscriptions and events in memory, Chargebee's documented shapes, webhooks
/// with HTTP Basic, and test controls under `/_test/`. Killed on drop.
pub struct LocalChargebee {
    standin: Standin,
}

impl LocalChargebee {
    /// Starts the stand-in and waits until it accepts connections.
    pub fn start() -> Self {
        Self {
            standin: Standin::start("the Chargebee stand-in", "aiohttp", CHARGEBEE_SHIM),
        }
    }

    pub fn url(&self) -> String {
        self.standin.url()
    }

    /// A configuration that talks to this server, with the webhook Basic auth it is told to
    /// send, a 5 s timeout and short retry delays.
    pub fn config(&self) -> crate::ChargebeeConfig {
        let mut config =
            crate::ChargebeeConfig::new("standin-test", SecretString::from(CHARGEBEE_API_KEY));
        config.api_base = Some(self.url());
        config.webhook_username = Some(CHARGEBEE_HOOK_USER.into());
        config.webhook_password = Some(SecretString::from(CHARGEBEE_HOOK_PASSWORD));
        config.timeout = Duration::from_secs(5);
        config.retry_base_delay = Duration::from_millis(10);
        config
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        json: Option<Value>,
        form: &[(&str, &str)],
    ) -> Value {
        let mut request = self
            .standin
            .http
            .request(method.clone(), format!("{}{path}", self.url()));
        request = match json {
            Some(j) => request.json(&j),
            None => request.form(form),
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} to the Chargebee stand-in: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    /// Sends the stand-in's webhooks to `url`, with the Basic auth [`Self::config`] expects.
    pub async fn hook_to(&self, url: &str) {
        self.control(
            reqwest::Method::POST,
            "/_config/webhook",
            None,
            &[
                ("url", url),
                ("username", CHARGEBEE_HOOK_USER),
                ("password", CHARGEBEE_HOOK_PASSWORD),
            ],
        )
        .await;
    }

    /// An item price (of a plan item) with the given id.
    pub async fn create_item_price(&self, id: &str, cents: i64, currency: &str) {
        let cents = cents.to_string();
        self.control(
            reqwest::Method::POST,
            "/_test/item_prices",
            None,
            &[("id", id), ("price", &cents), ("currency_code", currency)],
        )
        .await;
    }

    /// The customer pays on hosted page `id`: its subscription is made and
    /// `subscription_created` delivered. Answers the stand-in's account of it.
    pub async fn complete_checkout(&self, id: &str) -> Value {
        self.control(
            reqwest::Method::POST,
            &format!("/_test/hosted_pages/{id}/complete"),
            None,
            &[],
        )
        .await
    }

    /// The `subscription_created` event among those a [`Self::complete_checkout`] answered
    /// (`done`), and the id of the subscription it made.
    pub fn subscription_created(done: &Value) -> (String, Value) {
        let event = done["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event_type"] == "subscription_created")
            .cloned()
            .unwrap();
        let id = event["content"]["subscription"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (id, event)
    }

    /// An event of `event_type` about `subscription_id` (with `invoice` when given), delivered
    /// at once unless `deliver` is false. Answers the event (and its delivery).
    pub async fn event(
        &self,
        event_type: &str,
        subscription_id: &str,
        invoice: Option<Value>,
        deliver: bool,
    ) -> Value {
        let mut body = serde_json::json!({
            "event_type": event_type, "subscription_id": subscription_id, "deliver": deliver,
        });
        if let Some(i) = invoice {
            body["invoice"] = i;
        }
        self.control(reqwest::Method::POST, "/_test/events", Some(body), &[])
            .await
    }

    /// Delivers the stored event `id` (again).
    pub async fn deliver(&self, id: &str) -> Value {
        self.control(
            reqwest::Method::POST,
            &format!("/_test/events/{id}/deliver"),
            None,
            &[],
        )
        .await
    }

    /// Waits until the events API calls caused have been delivered.
    pub async fn settle(&self) {
        self.control(reqwest::Method::POST, "/_test/settle", None, &[])
            .await;
    }

    /// Every API request Orgbase made: `[{method, path, form, user, idempotency_key}]`.
    pub async fn requests(&self) -> Vec<Value> {
        let v = self
            .control(reqwest::Method::GET, "/_test/requests", None, &[])
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Every webhook delivery: `[{event_id, event_type, url, status, error, at}]`.
    pub async fn deliveries(&self) -> Vec<Value> {
        let v = self
            .control(reqwest::Method::GET, "/_test/deliveries", None, &[])
            .await;
        v.as_array().cloned().unwrap_or_default()
    }
}
