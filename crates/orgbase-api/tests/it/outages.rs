//! The database going away under a node: PostgreSQL refusing connections, or partitioned (bytes
//! held, connections open), through a proxy of the tests' own (the shared server is never
//! stopped); and SQLite's own failure, a full disk. Under load, every request is answered in
//! bounded time with 503 and `Retry-After` in its surface's shape; the node serves again on its
//! own; and every keyed POST sent again afterwards replays its first answer or runs once.
use orgbase_api::ApiConfig;
use orgbase_store::postgres::Bounds;
use orgbase_store::testing::{self, TestDb};
use orgbase_testkit::proxy::{Mode, Proxy};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::App;

/// A node on `db` whose every database connection goes through a proxy, with tight bounds so
/// that the test runs in seconds.
async fn proxied(db: TestDb, deadline: Duration) -> (App, Proxy, sqlx::PgPool) {
    // The node's warnings, shown with a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn,orgbase_api::idempotency=debug")
        .try_init();
    let mut url = url::Url::parse(&db.url).unwrap();
    let upstream = (
        url.host_str().unwrap().to_owned(),
        url.port().unwrap_or(5432),
    );
    let upstream = tokio::net::lookup_host(upstream)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(upstream).await.unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr().port())).unwrap();
    let options = orgbase_store::OpenOptions {
        pg_max_connections: 8,
        pg_bounds: Bounds {
            acquire_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(2),
        },
        ..Default::default()
    };
    // A direct connection, to look at what was stored.
    let direct = sqlx::PgPool::connect(&db.url).await.unwrap();
    // Set, the server logs every statement of the node's sessions (with their pids): how the
    // dangling transaction of a cancelled BEGIN was found.
    if std::env::var("OUTAGE_LOG_STATEMENTS").is_ok() {
        sqlx::query(&format!(
            "ALTER DATABASE {} SET log_statement = 'all'",
            url.path().trim_start_matches('/')
        ))
        .execute(&direct)
        .await
        .unwrap();
    }
    let store = orgbase_store::open(url.as_str(), &options).await.unwrap();
    let app = App::start_with(
        TestDb::with_store(store, db.url.clone()),
        ApiConfig {
            request_timeout: deadline,
            ..ApiConfig::default()
        },
    )
    .await;
    (app, proxy, direct)
}

/// A keyed POST that a client would send again after a failure.
#[derive(Clone, Debug)]
struct Keyed {
    path: String,
    body: Value,
    key: String,
}

#[derive(Debug)]
struct Sent {
    what: String,
    keyed: Option<Keyed>,
    elapsed: Duration,
    status: StatusCode,
    retry_after: bool,
    body: Value,
}

struct Load {
    app_base: String,
    key: String,
    org: String,
    http: reqwest::Client,
}

impl Load {
    /// The `i`th request of worker `w`: keyed creates, charges, top-ups and invitations, and
    /// plain reads and updates between them.
    fn op(&self, w: usize, i: usize) -> (reqwest::Method, String, Value, Option<Keyed>) {
        let org = &self.org;
        let key = format!("k-{w}-{i}");
        let keyed = |path: String, body: Value| {
            let k = Keyed {
                path: path.clone(),
                body: body.clone(),
                key: key.clone(),
            };
            (reqwest::Method::POST, path, body, Some(k))
        };
        match i % 6 {
            0 => keyed(
                "/api/organizations".into(),
                json!({"name": format!("Outage {w}-{i}"), "countryCode": "US"}),
            ),
            1 => keyed(
                format!("/api/admin/organizations/{org}/charge"),
                json!({"amount": 1, "service": "voice"}),
            ),
            2 => keyed(
                format!("/api/admin/organizations/{org}/credit"),
                json!({"amount": 1}),
            ),
            3 => keyed(
                format!("/api/organizations/{org}/invite"),
                json!({"email": format!("p{w}-{i}@example.com")}),
            ),
            4 => (
                reqwest::Method::GET,
                format!("/api/organizations/{org}"),
                Value::Null,
                None,
            ),
            _ => (
                reqwest::Method::PATCH,
                format!("/api/organizations/{org}"),
                json!({"name": format!("Renamed {w}-{i}")}),
                None,
            ),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> (StatusCode, bool, Value, Duration) {
        let started = Instant::now();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.app_base))
            .bearer_auth(&self.key);
        if !body.is_null() {
            req = req.json(body);
        }
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let res = req.send().await.expect("every request is answered");
        let status = res.status();
        let retry_after = res.headers().contains_key("retry-after");
        let body = res.json().await.unwrap_or(Value::Null);
        (status, retry_after, body, started.elapsed())
    }
}

/// Runs `workers` clients in a loop until `stop`, each request recorded.
fn run_load(
    load: Arc<Load>,
    workers: usize,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sent>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|w| {
            let (load, stop, log) = (load.clone(), stop.clone(), log.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (method, path, body, keyed) = load.op(w, i);
                    let (status, retry_after, answer, elapsed) = load
                        .send(
                            method.clone(),
                            &path,
                            &body,
                            keyed.as_ref().map(|k| k.key.as_str()),
                        )
                        .await;
                    log.lock().unwrap().push(Sent {
                        what: format!("{method} {path}"),
                        keyed,
                        elapsed,
                        status,
                        retry_after,
                        body: answer,
                    });
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect()
}

/// Load running in the background.
struct Running {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sent>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    fn start(load: &Arc<Load>, workers: usize) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let workers = run_load(load.clone(), workers, stop.clone(), log.clone());
        Running { stop, log, workers }
    }

    /// Stops the load; every request it sent, with its answer.
    async fn stop(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// Every answer came within `within`, and is a success or a 503 with `Retry-After` and one of
/// `codes`; at least ten met the outage.
fn assert_answered(log: &[Sent], within: Duration, codes: &[&str]) {
    let unavailable = log
        .iter()
        .filter(|s| s.status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(
        unavailable >= 10,
        "only {unavailable} requests met the outage"
    );
    for s in log {
        assert!(s.elapsed < within, "{} took {:?}", s.what, s.elapsed);
        if s.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(s.retry_after, "{} answered 503 without Retry-After", s.what);
            assert!(
                codes.iter().any(|c| s.body["code"] == *c),
                "{}: {}",
                s.what,
                s.body
            );
        } else {
            assert!(s.status.is_success(), "{}: {} {}", s.what, s.status, s.body);
        }
    }
}

/// Sends every keyed POST of the run again, as a client would: each replays its first answer
/// or runs now, and none stays in flight.
async fn send_again(
    load: &Load,
    log: &[Sent],
    direct: &sqlx::PgPool,
) -> Vec<(Keyed, StatusCode, Value)> {
    let mut out = Vec::new();
    for s in log {
        let Some(k) = &s.keyed else { continue };
        let patience = Instant::now();
        let (status, body) = loop {
            let (status, _, body, _) = load
                .send(reqwest::Method::POST, &k.path, &k.body, Some(&k.key))
                .await;
            let in_flight =
                status == StatusCode::CONFLICT && body["code"] == "idempotency_key_in_flight";
            if !in_flight {
                break (status, body);
            }
            if patience.elapsed() >= Duration::from_secs(20) {
                let row: Option<(Option<String>, bool, bool, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as(
                        "SELECT claim_id, done, committed, created_at FROM idempotency_keys \
                         WHERE key = $1",
                    )
                    .bind(&k.key)
                    .fetch_optional(direct)
                    .await
                    .unwrap();
                eprintln!("the stuck key's row: {row:?}");
            }
            assert!(
                patience.elapsed() < Duration::from_secs(20),
                "key {} stuck in flight: {body}; its first answer: {} {} after {:?}",
                k.key,
                s.status,
                s.body.to_string().chars().take(80).collect::<String>(),
                s.elapsed
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let lost = status == StatusCode::CONFLICT && body["code"] == "idempotency_answer_lost";
        assert!(
            status.is_success() || lost,
            "{} {} sent again: {status} {body}",
            k.path,
            k.key
        );
        if s.status.is_success() {
            assert_eq!(
                body, s.body,
                "a key whose first answer was a success replays it: {}",
                k.key
            );
        }
        out.push((k.clone(), status, body));
    }
    out
}

/// What was stored is what the answers say: once per key, never twice.
async fn assert_once_each(direct: &sqlx::PgPool, again: &[(Keyed, StatusCode, Value)]) {
    let twice: Vec<(String, i64)> = sqlx::query_as(
        "SELECT name, count(*) FROM organizations WHERE name LIKE 'Outage %' \
         GROUP BY name HAVING count(*) > 1",
    )
    .fetch_all(direct)
    .await
    .unwrap();
    assert!(twice.is_empty(), "organizations created twice: {twice:?}");
    let twice: Vec<(String, i64)> = sqlx::query_as(
        "SELECT idempotency_key, count(*) FROM wallet_entries WHERE idempotency_key IS NOT NULL \
         GROUP BY idempotency_key HAVING count(*) > 1",
    )
    .fetch_all(direct)
    .await
    .unwrap();
    assert!(twice.is_empty(), "wallet entries made twice: {twice:?}");
    let twice: Vec<(String, i64)> = sqlx::query_as(
        "SELECT email, count(*) FROM invitations GROUP BY email HAVING count(*) > 1",
    )
    .fetch_all(direct)
    .await
    .unwrap();
    assert!(twice.is_empty(), "invitations made twice: {twice:?}");
    for (k, status, _) in again {
        if !status.is_success() {
            continue;
        }
        let n: i64 = if k.path == "/api/organizations" {
            sqlx::query_scalar("SELECT count(*) FROM organizations WHERE name = $1")
                .bind(k.body["name"].as_str().unwrap())
                .fetch_one(direct)
                .await
                .unwrap()
        } else if k.path.ends_with("/invite") {
            sqlx::query_scalar("SELECT count(*) FROM invitations WHERE email = $1")
                .bind(k.body["email"].as_str().unwrap())
                .fetch_one(direct)
                .await
                .unwrap()
        } else {
            sqlx::query_scalar("SELECT count(*) FROM wallet_entries WHERE idempotency_key = $1")
                .bind(&k.key)
                .fetch_one(direct)
                .await
                .unwrap()
        };
        assert_eq!(n, 1, "{} under key {}", k.path, k.key);
    }
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE NOT done")
        .fetch_one(direct)
        .await
        .unwrap();
    assert_eq!(open, 0, "keys left in flight");
}

async fn setup(app: &App) -> Arc<Load> {
    let org = app
        .org(json!({"name": "Outage target", "countryCode": "US"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let top_up = app
        .post(
            &format!("/api/admin/organizations/{org}/credit"),
            json!({"amount": 100000}),
        )
        .await;
    assert!(top_up.status.is_success(), "{}", top_up.text);
    Arc::new(Load {
        app_base: app.base.clone(),
        key: app.key.clone(),
        org,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    })
}

/// A proxied node on a fresh PostgreSQL database with six workers loading it for a second
/// already; `None` (the test skips) without `TEST_DATABASE_URL`.
async fn under_load(deadline: Duration) -> Option<(App, Proxy, sqlx::PgPool, Arc<Load>, Running)> {
    let Some(db) = testing::postgres().await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return None;
    };
    let (app, proxy, direct) = proxied(db, deadline).await;
    let load = setup(&app).await;
    let running = Running::start(&load, 6);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Some((app, proxy, direct, load, running))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_refusing_connections_is_a_fast_503_and_no_key_acts_twice() {
    let Some((_app, proxy, direct, load, running)) = under_load(Duration::from_secs(10)).await
    else {
        return;
    };

    proxy.set(Mode::Refuse);
    let off = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, retry_after, body, took) = load
        .send(reqwest::Method::GET, "/readyz", &Value::Null, None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "database_unavailable");
    assert!(retry_after);
    assert!(took < Duration::from_secs(2), "/readyz took {took:?}");
    tokio::time::sleep(Duration::from_secs(5) - off.elapsed()).await;

    proxy.set(Mode::Pass);
    let on = Instant::now();
    // The node serves again on its own, soon.
    loop {
        let (status, _, _, _) = load
            .send(
                reqwest::Method::PATCH,
                &format!("/api/organizations/{}", load.org),
                &json!({"name": "Back"}),
                None,
            )
            .await;
        if status.is_success() {
            break;
        }
        assert!(
            on.elapsed() < Duration::from_secs(2),
            "still {status} {:?} after the database came back",
            on.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = running.stop().await;
    assert_answered(&log, Duration::from_secs(2), &["database_unavailable"]);
    let again = send_again(&load, &log, &direct).await;
    assert_once_each(&direct, &again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_partitioned_answers_every_request_by_its_deadline_and_no_key_acts_twice() {
    let deadline = Duration::from_secs(3);
    let Some((_app, proxy, direct, load, running)) = under_load(deadline).await else {
        return;
    };

    proxy.set(Mode::Hold);
    let held = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, _, body, took) = load
        .send(reqwest::Method::GET, "/readyz", &Value::Null, None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(took <= deadline, "/readyz took {took:?}");
    tokio::time::sleep(Duration::from_secs(12) - held.elapsed()).await;
    proxy.set(Mode::Pass);
    // Let the requests that were waiting on held bytes finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = running.stop().await;
    assert_answered(
        &log,
        deadline + Duration::from_millis(500),
        &["database_unavailable", "request_timeout"],
    );
    let again = send_again(&load, &log, &direct).await;
    assert_once_each(&direct, &again).await;
}

/// A keyed POST answered 503 by the partner settings API and the properties API comes in their
/// own shapes, with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unavailable_in_each_surfaces_shape() {
    let Some(db) = testing::postgres().await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let (app, proxy, _direct) = proxied(db, Duration::from_secs(10)).await;
    let org = app.org(json!({"name": "Shape", "countryCode": "US"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    proxy.set(Mode::Refuse);
    // Past the node's caches of the key and the organization.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v2 = app
        .http
        .post(format!(
            "{}/api/v2/updateOrganization?token={}&targetOrganizationId={org}",
            app.base, app.key
        ))
        .header("idempotency-key", "shape-1")
        .json(&json!({"orgName": "Shaped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(v2.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(v2.headers().contains_key("retry-after"));
    let body: Value = v2.json().await.unwrap();
    assert_eq!(body["success"], false, "{body}");
    assert!(body["message"].is_string(), "{body}");
    let v1 = app
        .http
        .patch(format!("{}/v1/orgs/{org}/properties", app.base))
        .header("authorization", &app.key)
        .json(&json!({"updates": {"org_display_name": "Shaped"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(v1.headers().contains_key("retry-after"));
    let body: Value = v1.json().await.unwrap();
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["error"], "DATABASE_UNAVAILABLE", "{body}");
    let native = app.get("/api/organizations").await;
    native.assert_problem(503, "database_unavailable");
    assert!(native.header("retry-after").is_some());
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("orgbase_database_unavailable_total"),
        "{metrics}"
    );
    proxy.set(Mode::Pass);
}

/// A small tmpfs of our own, unmounted on drop; `None` where this machine does not let a test
/// mount one (not root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("orgbase-tmpfs-{}", uuid_like()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Fills the filesystem at `dir` to the last byte; the filler file is returned for removal.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    loop {
        if f.write_all(&block).is_err() {
            break;
        }
    }
    let one = [0u8; 1];
    while f.write_all(&one).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_answers_503_changes_nothing_and_recovers() {
    let Some(fs) = Tmpfs::mount("16m") else {
        eprintln!("skipped: this machine does not let a test mount a tmpfs (run as root)");
        return;
    };
    let path = fs.0.join("orgbase.db");
    let store = orgbase_store::open(&format!("sqlite://{}", path.display()), &Default::default())
        .await
        .unwrap();
    let app = App::start(TestDb::with_store(
        store,
        format!("sqlite://{}", path.display()),
    ))
    .await;
    let before = app
        .org(json!({"name": "Before", "countryCode": "US"}))
        .await;
    let filler = fill(&fs.0);

    let body = json!({"name": "While full", "countryCode": "US"});
    let full = app
        .call(
            reqwest::Method::POST,
            "/api/organizations",
            Some(&app.key),
            Some(&body),
            &[("idempotency-key", "full-1")],
        )
        .await;
    full.assert_problem(503, "database_unavailable");
    assert!(full.header("retry-after").is_some());
    let renamed = app
        .patch(
            &format!("/api/organizations/{}", before["id"].as_str().unwrap()),
            json!({"name": "Renamed while full"}),
        )
        .await;
    renamed.assert_problem(503, "database_unavailable");
    app.get("/readyz")
        .await
        .assert_problem(503, "database_unavailable");
    // Reads go on.
    let read = app
        .get(&format!(
            "/api/organizations/{}",
            before["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["name"], "Before", "nothing was half-written");

    std::fs::remove_file(filler).unwrap();
    // Ready again once the file takes a write, without a restart.
    let back = Instant::now();
    loop {
        if app.get("/readyz").await.status == StatusCode::OK {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(5), "not ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = app
        .call(
            reqwest::Method::POST,
            "/api/organizations",
            Some(&app.key),
            Some(&body),
            &[("idempotency-key", "full-1")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    let list = app.get("/api/organizations?limit=100").await;
    let names: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.iter().filter(|n| **n == "While full").count(), 1);
    assert!(names.contains(&"Before"), "{names:?}");
    assert!(!names.contains(&"Renamed while full"), "{names:?}");
    drop(app);
    // The file is whole.
    assert_eq!(integrity(&path), "ok");
}

/// `PRAGMA integrity_check` on the file.
fn integrity(path: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}
