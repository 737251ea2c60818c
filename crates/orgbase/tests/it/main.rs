//! The real binary: configuration checks, migrations, keys from the command line, the first-start
//! key, serving on several threads, and graceful shutdown on SIGTERM. On SQLite always, on
//! PostgreSQL when `TEST_DATABASE_URL` is set.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod access;
mod serving;
mod webhooks;

const BIN: &str = env!("CARGO_BIN_EXE_orgbase");

struct TempDir(PathBuf);
impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!(
            "orgbase-cli-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The binary, in `dir`, with no ORGBASE_* from the outside.
fn orgbase(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("ORGBASE_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "info");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    base: String,
    stdout: std::sync::mpsc::Receiver<String>,
}

impl Server {
    fn start(cmd: Command) -> Server {
        Self::start_on(cmd, free_port())
    }

    fn start_on(mut cmd: Command, port: u16) -> Server {
        let mut child = cmd
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        wait_until_serving(&mut child, port);
        Server {
            child,
            base,
            stdout: rx,
        }
    }

    /// The first word printed on standard output that starts with `prefix`, waiting for it.
    fn wait_for_word(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(line) = self
            .stdout
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(w) = line.split_whitespace().find(|w| w.starts_with(prefix)) {
                return w.to_owned();
            }
        }
        panic!("nothing starting with {prefix} was printed");
    }

    /// SIGTERM, then everything printed on standard output, to its end.
    fn stop_and_read(mut self) -> (std::process::ExitStatus, String) {
        let rx = std::mem::replace(&mut self.stdout, std::sync::mpsc::channel().1);
        let status = self.terminate();
        // The reader thread ends at EOF, which closes the channel.
        (status, rx.iter().collect::<Vec<_>>().join("\n"))
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `child` accepts connections on `port` (20 s at most; panics if it exits).
fn wait_until_serving(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get_status(base: &str, path: &str, key: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_is_refused_with_a_message_per_value() {
    let dir = TempDir::new();
    let o = orgbase(&dir.0)
        .env("ORGBASE_LISTEN", "nowhere")
        .env("ORGBASE_LOG_FORMAT", "xml")
        .env("ORGBASE_BOOTSTRAP_KEY", "too-short")
        .env("ORGBASE_HTTP_THREADS", "0")
        .arg("serve")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ORGBASE_LISTEN")
            && err.contains("ORGBASE_LOG_FORMAT")
            && err.contains("ORGBASE_BOOTSTRAP_KEY")
            && err.contains("ORGBASE_HTTP_THREADS"),
        "{err}"
    );
    assert!(!err.contains("too-short"), "the secret leaked: {err}");
    // A wrong type speaks of the setting as written and of the form expected, in words.
    let o = orgbase(&dir.0)
        .env("ORGBASE_BODY_LIMIT", "lots")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let (_, err) = text(&o);
    assert!(
        err.contains("ORGBASE_BODY_LIMIT: must be a whole number, 0 or more, not string \"lots\""),
        "{err}"
    );
    assert!(!err.contains("u64") && !err.contains("default."), "{err}");
    // Flags win over the environment, the file over nothing.
    std::fs::write(dir.0.join("orgbase.toml"), "log_format = \"yaml\"\n").unwrap();
    let o = orgbase(&dir.0).arg("migrate").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("yaml"));
    let o = orgbase(&dir.0)
        .args(["--config", "missing.toml", "migrate"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("missing.toml"));
}

#[test]
fn openapi_prints_the_committed_document() {
    let dir = TempDir::new();
    let o = orgbase(&dir.0).arg("openapi").output().unwrap();
    assert!(o.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json"))
            .unwrap();
    assert_eq!(text(&o).0, committed);
}

fn first_start_prints_a_key_once(dir: &Path, db: &str) {
    let s = Server::start({
        let mut c = orgbase(dir);
        c.args(["--database-url", db]);
        c
    });
    let key = s.wait_for_word("obk_");
    assert_eq!(get_status(&s.base, "/api/organizations", &key), 200);
    assert_eq!(get_status(&s.base, "/readyz", ""), 200);
    let status = s.terminate();
    assert!(status.success(), "graceful exit on SIGTERM: {status}");
    // The second start prints nothing: the key exists.
    let s = Server::start({
        let mut c = orgbase(dir);
        c.args(["--database-url", db]);
        c
    });
    assert_eq!(get_status(&s.base, "/api/organizations", &key), 200);
    // A key made on the command line works at once.
    let o = orgbase(dir)
        .args([
            "--database-url",
            db,
            "keys",
            "create",
            "--platform",
            "--name",
            "ops",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    let cli_key = text(&o).0.trim().to_owned();
    assert!(cli_key.starts_with("obk_"));
    assert_eq!(get_status(&s.base, "/api/admin/api-keys", &cli_key), 200);
    assert_eq!(get_status(&s.base, "/api/admin/api-keys", "obk_wrong"), 401);
    // `keys list` shows both platform keys, never a secret; `keys revoke` ends one at once.
    let o = orgbase(dir)
        .args(["--database-url", db, "keys", "list"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    let (listed, _) = text(&o);
    assert!(
        !listed.contains(&cli_key) && !listed.contains(&key),
        "{listed}"
    );
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows.iter().all(|r| r.contains("platform")), "{listed}");
    let ops = rows
        .iter()
        .find(|r| r.ends_with("ops"))
        .expect("the ops key");
    assert!(ops.contains(&cli_key[..12]), "the prefix is shown: {ops}");
    let ops_id = ops.split_whitespace().next().unwrap().to_owned();
    let first_id = rows
        .iter()
        .find(|r| !r.ends_with("ops"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let revoke = |id: &str| {
        orgbase(dir)
            .args(["--database-url", db, "keys", "revoke", id])
            .output()
            .unwrap()
    };
    let o = revoke("not-a-key-id");
    assert!(!o.status.success());
    assert!(text(&o).1.contains("is not a key id"), "{:?}", text(&o));
    let o = revoke("00000000-0000-4000-8000-000000000000");
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("no platform or partner key"),
        "{:?}",
        text(&o)
    );
    let o = revoke(&ops_id);
    assert!(o.status.success(), "{:?}", text(&o));
    // The running server stops accepting it within a second (its key cache's freshness bound).
    let revoked_at = Instant::now();
    while get_status(&s.base, "/api/admin/api-keys", &cli_key) != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "still accepted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The last active platform key stays: without it nobody could administer the service.
    let o = revoke(&first_id);
    assert!(!o.status.success(), "{:?}", text(&o));
    assert_eq!(get_status(&s.base, "/api/admin/api-keys", &key), 200);
    let o = orgbase(dir)
        .args(["--database-url", db, "keys", "list"])
        .output()
        .unwrap();
    let (listed, _) = text(&o);
    let ops = listed.lines().find(|r| r.ends_with("ops")).unwrap();
    assert!(!ops.contains("  -  "), "the revoked key shows when: {ops}");
    let (status, printed) = s.stop_and_read();
    assert!(status.success());
    assert!(
        !printed.contains("obk_"),
        "the second start printed a key: {printed}"
    );
}

fn bootstrap_key_from_the_environment(dir: &Path, db: &str) {
    let boot = "a-bootstrap-key-of-at-least-32-characters!";
    let o = orgbase(dir)
        .args(["--database-url", db, "migrate"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    let s = Server::start({
        let mut c = orgbase(dir);
        c.args(["--database-url", db])
            .env("ORGBASE_BOOTSTRAP_KEY", boot);
        c
    });
    assert_eq!(get_status(&s.base, "/api/organizations", boot), 200);
    let (status, printed) = s.stop_and_read();
    assert!(status.success());
    assert!(
        !printed.contains("obk_"),
        "no key printed when one is configured: {printed}"
    );
}

#[test]
fn sqlite_first_start() {
    let dir = TempDir::new();
    first_start_prints_a_key_once(&dir.0, "sqlite://orgbase.db");
    assert!(
        dir.0.join("orgbase.db").exists(),
        "the default file is in the working directory"
    );
}

/// With no command the binary serves, as `cargo run --release` in the README does.
#[test]
fn no_command_means_serve() {
    let dir = TempDir::new();
    let port = free_port();
    let log = dir.0.join("stderr.log");
    let mut child = orgbase(&dir.0)
        .env("ORGBASE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_until_serving(&mut child, port);
    assert_eq!(
        get_status(&format!("http://127.0.0.1:{port}"), "/healthz", ""),
        200
    );
    let _ = child.kill();
    let _ = child.wait();
    // Text logs written to a file carry no colour codes.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("INFO"), "{logged}");
    assert!(
        !logged.contains('\u{1b}'),
        "colour codes in a file: {logged:?}"
    );
}

/// `keys create` in a directory without the server's database refuses, and creates nothing: a
/// key in a new, empty database would be a key no server knows.
#[test]
fn keys_need_an_existing_database() {
    let dir = TempDir::new();
    for args in [&["keys", "create", "--platform"][..], &["keys", "list"]] {
        let o = orgbase(&dir.0).args(args).output().unwrap();
        assert!(!o.status.success());
        let (_, err) = text(&o);
        assert!(err.contains("no database at"), "{err}");
        assert!(err.contains("orgbase.db"), "names the file: {err}");
        assert!(err.contains("--database-url"), "names the fix: {err}");
    }
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        0,
        "nothing created"
    );
}

/// A PostgreSQL database that cannot be opened is one line, printed once, naming the fix.
#[test]
fn an_unreachable_or_missing_database_is_one_line_naming_the_fix() {
    let dir = TempDir::new();
    let mut cases = vec![(
        "postgres://postgres@127.0.0.1:1/orgbase".to_owned(),
        "no PostgreSQL server answers at 127.0.0.1:1",
    )];
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        let base = url.rsplit_once('/').unwrap().0.to_owned();
        cases.push((
            format!("{base}/orgbase_no_such_database"),
            "database \"orgbase_no_such_database\" does not exist; create it first: createdb -h",
        ));
    }
    for (db, says) in cases {
        for args in [&["migrate"][..], &["keys", "list"], &["serve"]] {
            let o = orgbase(&dir.0)
                .args(["--database-url", db.as_str()])
                .args(args)
                .output()
                .unwrap();
            assert!(!o.status.success());
            let (_, err) = text(&o);
            let lines: Vec<&str> = err.lines().filter(|l| l.contains(says)).collect();
            assert_eq!(lines.len(), 1, "{args:?}: printed once: {err}");
            assert_eq!(
                lines[0].matches("does not exist").count().max(1),
                1,
                "{err}"
            );
            assert!(
                !err.contains('\u{1b}'),
                "no colour codes off a terminal: {err:?}"
            );
        }
    }
}

#[test]
fn sqlite_bootstrap_key() {
    let dir = TempDir::new();
    bootstrap_key_from_the_environment(&dir.0, "sqlite://data/orgbase.db");
}

/// A fresh PostgreSQL database for one test, dropped afterwards.
fn pg_database() -> Option<(String, impl Drop)> {
    let url = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    let name = format!("orgbase_t_cli_{}", rand_suffix());
    let psql = |sql: &str| {
        let o = Command::new("psql")
            .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    psql(&format!("CREATE DATABASE {name}"));
    let base = url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
    struct Dropper(String, String);
    impl Drop for Dropper {
        fn drop(&mut self) {
            let _ = Command::new("psql")
                .args([
                    self.0.as_str(),
                    "-qc",
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.1),
                ])
                .output();
        }
    }
    Some((format!("{base}/{name}"), Dropper(url, name)))
}

#[test]
fn postgres_first_start() {
    let Some((db, _guard)) = pg_database() else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let dir = TempDir::new();
    first_start_prints_a_key_once(&dir.0, &db);
}

#[test]
fn postgres_bootstrap_key() {
    let Some((db, _guard)) = pg_database() else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let dir = TempDir::new();
    bootstrap_key_from_the_environment(&dir.0, &db);
}

/// Every write the server acknowledged is there after it is killed without warning (SIGKILL):
/// the answer goes out only after the commit.
#[test]
fn sqlite_acknowledged_writes_survive_a_kill() {
    let dir = TempDir::new();
    let boot = "a-bootstrap-key-of-at-least-32-characters!";
    let start = || {
        let mut c = orgbase(&dir.0);
        c.env("ORGBASE_BOOTSTRAP_KEY", boot).env("RUST_LOG", "warn");
        Server::start(c)
    };
    let mut s = start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = s.base.clone();
    let acknowledged: Vec<String> = rt.block_on(async {
        let http = reqwest::Client::new();
        let mut tasks = Vec::new();
        for i in 0..64 {
            let http = http.clone();
            let base = base.clone();
            tasks.push(tokio::spawn(async move {
                let res = http
                    .post(format!("{base}/api/organizations"))
                    .bearer_auth(boot)
                    .json(&serde_json::json!({"name": format!("Durable {i}"), "countryCode": "US"}))
                    .send()
                    .await
                    .ok()?;
                if res.status() != 201 {
                    return None;
                }
                let v: serde_json::Value = res.json().await.ok()?;
                Some(v["id"].as_str()?.to_owned())
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            if let Some(id) = t.await.unwrap() {
                ids.push(id);
            }
        }
        ids
    });
    assert_eq!(acknowledged.len(), 64);
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let s = start();
    for id in &acknowledged {
        assert_eq!(
            get_status(&s.base, &format!("/api/organizations/{id}"), boot),
            200,
            "{id} lost"
        );
    }
}

#[test]
fn settings_layer_file_then_environment_then_flags() {
    let dir = TempDir::new();
    std::fs::write(
        dir.0.join("orgbase.toml"),
        "database_url = \"sqlite://from-file.db\"\n",
    )
    .unwrap();
    assert!(orgbase(&dir.0).arg("migrate").status().unwrap().success());
    assert!(dir.0.join("from-file.db").exists());
    let o = orgbase(&dir.0)
        .env("ORGBASE_DATABASE_URL", "sqlite://from-env.db")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(dir.0.join("from-env.db").exists());
    let o = orgbase(&dir.0)
        .env("ORGBASE_DATABASE_URL", "sqlite://from-env2.db")
        .args(["--database-url", "sqlite://from-flag.db", "migrate"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(dir.0.join("from-flag.db").exists() && !dir.0.join("from-env2.db").exists());
    // A misspelt setting in the file is refused by name.
    std::fs::write(dir.0.join("orgbase.toml"), "listn = \"127.0.0.1:1\"\n").unwrap();
    let o = orgbase(&dir.0).arg("migrate").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("listn"), "{:?}", text(&o));
}

/// Any string of 32 characters or more is a bootstrap key, digits only included, and nothing of
/// it shows in the key list.
#[test]
fn an_all_digit_bootstrap_key_works_and_stays_secret() {
    let dir = TempDir::new();
    let boot = "12345678901234567890123456789012345";
    let s = Server::start({
        let mut c = orgbase(&dir.0);
        c.env("ORGBASE_BOOTSTRAP_KEY", boot);
        c
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let list = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/api/admin/api-keys", s.base))
            .bearer_auth(boot)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(list.contains("boot_"), "{list}");
    assert!(
        !list.contains("1234567"),
        "part of the key is listed: {list}"
    );
    assert!(s.terminate().success());
}

/// With `ORGBASE_LOG_FORMAT=json`, every line is JSON and a request's lines carry its id.
#[test]
fn json_logs_carry_the_request_id() {
    let dir = TempDir::new();
    let log = dir.0.join("server.log");
    let port = free_port();
    let mut child = orgbase(&dir.0)
        .env("ORGBASE_LOG_FORMAT", "json")
        .env(
            "ORGBASE_BOOTSTRAP_KEY",
            "a-bootstrap-key-of-at-least-32-characters!",
        )
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(format!(
                "http://127.0.0.1:{port}/api/organizations?token=secret-in-query"
            ))
            .header("x-request-id", "trace-me-42")
            .send()
            .await
            .unwrap()
    });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l.to_string().contains("trace-me-42")),
        "no line carries the request id:\n{text}"
    );
    assert!(
        !text.contains("secret-in-query"),
        "a query string reached the log:\n{text}"
    );
}

/// The partner settings API takes its token in the query string, and an invitation's accept
/// route its token in the path: neither reaches a log line (at debug level, in both formats) or
/// a metric label, whether the call succeeds or fails.
#[test]
fn tokens_in_urls_never_reach_logs_or_metrics() {
    for format in ["json", "text"] {
        let dir = TempDir::new();
        let log = dir.0.join("server.log");
        let port = free_port();
        let key = "a-bootstrap-key-of-at-least-32-characters!";
        let mut child = orgbase(&dir.0)
            .env("ORGBASE_LOG_FORMAT", format)
            .env("RUST_LOG", "debug")
            .env("ORGBASE_BOOTSTRAP_KEY", key)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let base = format!("http://127.0.0.1:{port}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut secrets: Vec<String> = vec![key.into(), "wrong-token-that-is-secret".into()];
        let metrics = rt.block_on(async {
            let http = reqwest::Client::new();
            let org: serde_json::Value = http
                .post(format!("{base}/api/organizations"))
                .bearer_auth(key)
                .json(&serde_json::json!({"name": "Logged", "countryCode": "US"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = org["id"].as_str().unwrap();
            // An invitation token travels in the accept route's path: a failed and a good
            // accept must not log it either.
            let invited = http
                .post(format!("{base}/api/organizations/{id}/invite"))
                .bearer_auth(key)
                .json(&serde_json::json!({"email": "logged@example.com"}))
                .send()
                .await
                .unwrap();
            assert_eq!(invited.status(), 200);
            let outbox = orgbase_mail::testing::outbox_files(&dir.0.join("mail-outbox"));
            let mail = std::fs::read_to_string(&outbox[0]).unwrap();
            let text = orgbase_mail::testing::body_text(&mail);
            let start = text.find("/invite/").unwrap() + "/invite/".len();
            let invite: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            for password in ["short", "long-enough-password"] {
                http.post(format!(
                    "{base}/api/organizations/invite/{invite}/accept"
                ))
                .json(&serde_json::json!({"password": password, "password_confirmation": password}))
                .send()
                .await
                .unwrap();
            }
            secrets.push(invite);
            for (token, body) in [
                (key, serde_json::json!({"orgName": "Renamed"})),
                (key, serde_json::json!({"nothing": true})),
                (
                    "wrong-token-that-is-secret",
                    serde_json::json!({"orgName": "X"}),
                ),
            ] {
                let status = http
                    .post(format!(
                        "{base}/api/v2/updateOrganization?token={token}&targetOrganizationId={id}"
                    ))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert!(status.as_u16() < 500, "{status}");
            }
            http.get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("updateOrganization"),
            "the calls were not logged at all ({format}):\n{text}"
        );
        assert!(secrets.len() == 3 && secrets[2].starts_with("obi_"));
        assert!(text.contains("/invite/{redacted}/accept"), "{text}");
        for secret in &secrets {
            // The bootstrap key is printed nowhere either: it was given, not generated.
            assert!(
                !text.contains(secret.as_str()),
                "a token reached the {format} log:\n{text}"
            );
            assert!(
                !metrics.contains(secret.as_str()),
                "a token reached a metric"
            );
        }
        assert!(metrics.contains("/api/v2/updateOrganization"));
    }
}

/// The README's tour, as a reader runs it: every `sh` block between `<!-- tour -->` and
/// `<!-- /tour -->`, in order, in one shell that stops at the first failure. Against a fresh
/// server on SQLite, a random port and a public URL on a long host name (so e-mailed links are
/// long), with the Stripe stand-in of `tools/stripe-standin.py` as its billing provider.
#[test]
fn the_readme_tour_runs_as_written() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let script = tour_script(&readme);
    assert!(script.lines().count() > 20, "the tour is there: {script}");

    let dir = TempDir::new();
    let standin = orgbase_testkit::start_python_server(
        &orgbase_testkit::PythonServerSpec {
            name: "the Stripe stand-in",
            module: "localstripe",
            package: "localstripe",
            timeout: Duration::from_secs(15),
        },
        &dir.0,
        |port| vec![format!("{root}/tools/stripe-standin.py"), port.to_string()],
    );
    let stripe = format!("http://127.0.0.1:{}", standin.port);
    let port = free_port();
    let public =
        format!("http://orgbase-tour.a-rather-long-host-name.customers.example.internal:{port}");
    let mut cmd = orgbase(&dir.0);
    cmd.env("ORGBASE_PUBLIC_URL", &public)
        .env("ORGBASE_STRIPE_API_BASE", &stripe)
        .env("ORGBASE_STRIPE_SECRET_KEY", "sk_test_standin")
        .env("ORGBASE_STRIPE_WEBHOOK_SECRET", "whsec_standin");
    let s = Server::start_on(cmd, port);
    let key = s.wait_for_word("obk_");
    let o = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&dir.0)
        .env("ORGBASE", &s.base)
        .env("KEY", &key)
        .env("STRIPE", &stripe)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "the tour failed ({}):\n--- output\n{out}\n--- errors\n{err}\n--- script\n{script}",
        o.status
    );
}

/// The `sh` blocks of the README's tour, joined.
fn tour_script(readme: &str) -> String {
    let start = readme
        .find("<!-- tour -->")
        .expect("the README marks its tour");
    let end = readme[start..]
        .find("<!-- /tour -->")
        .expect("the tour's end")
        + start;
    let mut script = String::new();
    let mut in_block = false;
    for line in readme[start..end].lines() {
        if in_block {
            if line.trim_end() == "```" {
                in_block = false;
            } else {
                script.push_str(line);
                script.push('\n');
            }
        } else if line.trim_end() == "```sh" {
            in_block = true;
        }
    }
    script
}
