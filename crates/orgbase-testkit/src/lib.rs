//! Test support shared by Orgbase's crates.
//!
//! The tests talk to real servers written in Python (an SMTP server, an S3-compatible server, a
//! local Stripe). [`ensure_python_module`] installs one with pip the first time a test needs
//! it, so that `cargo nextest run --workspace` works on a fresh machine as written.
pub mod browser;
pub mod proxy;
pub mod redis;

use std::process::{Command, Stdio};

/// Makes `python3 -c "import {module}"` work, installing `package` with pip if it does not.
/// Test processes run in parallel: a file lock lets one install while the others wait.
///
/// # Panics
/// When python3 is missing or pip cannot install the package, with the command to run by hand.
pub fn ensure_python_module(module: &str, package: &str) {
    if importable(module) {
        return;
    }
    let _lock = install_lock("pip");
    if importable(module) {
        return;
    }
    let install = |extra: &[&str]| {
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(extra)
            .arg(package)
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // Some Pythons refuse to install outside a virtual environment unless told.
    let installed = install(&[]) || install(&["--break-system-packages"]);
    assert!(
        installed && importable(module),
        "the tests need the Python package {package:?} and pip could not install it; run: python3 -m pip install '{package}'"
    );
}

/// A lock on the installs of `what` (pip, apt) across test processes, held until dropped:
/// tests run in parallel, and one installs while the others wait.
fn install_lock(what: &str) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("orgbase-testkit-{what}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    lock
}

fn importable(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python interpreter itself, not whatever `python3` on the PATH is. A version manager's
/// shim (pyenv) may run the interpreter as a child rather than in its own place (pyenv's
/// pip-rehash hook does when the arguments mention pip, as the stand-ins' scripts do): killing
/// the process started would then leave the server running, one per test.
fn python_executable() -> &'static str {
    static EXECUTABLE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    EXECUTABLE.get_or_init(|| {
        Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "python3".to_owned())
    })
}

/// A Python test server started by [`start_python_server`]: killed (and reaped) on drop.
pub struct PythonServer {
    child: std::process::Child,
    pub port: u16,
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a Python test server is and how to start it.
pub struct PythonServerSpec<'a> {
    /// For messages: "the test SMTP server", "localstripe", …
    pub name: &'a str,
    /// The module that must import, and the pip package that provides it.
    pub module: &'a str,
    pub package: &'a str,
    /// How long it may take to accept connections.
    pub timeout: std::time::Duration,
}

/// Starts `python3 {args(port)}` on a free port of 127.0.0.1 and waits until it accepts
/// connections, installing its package first if it is missing. Its output goes to files in
/// `log_dir`. A port that was free a moment ago can be taken before the server binds it: then
/// it exits, and another port is tried.
///
/// # Panics
/// When it does not start or answer in time, with what it printed.
pub fn start_python_server(
    spec: &PythonServerSpec<'_>,
    log_dir: &std::path::Path,
    args: impl Fn(u16) -> Vec<String>,
) -> PythonServer {
    ensure_python_module(spec.module, spec.package);
    let mut last_failure = String::new();
    for attempt in 0..3 {
        let port = free_port();
        let log = log_dir.join(format!("{}-{attempt}.log", spec.module));
        match launch(spec, &log, port, &args(port)) {
            Ok(child) => return PythonServer { child, port },
            Err(failure) => {
                let port_taken = failure.contains("in use");
                last_failure = failure;
                if !port_taken {
                    break;
                }
            }
        }
    }
    panic!("{last_failure}");
}

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// The running server, or why it is not running (the process is gone by then).
fn launch(
    spec: &PythonServerSpec<'_>,
    log: &std::path::Path,
    port: u16,
    args: &[String],
) -> Result<std::process::Child, String> {
    use std::time::{Duration, Instant};
    let name = spec.name;
    let output = std::fs::File::create(log)
        .unwrap_or_else(|e| panic!("a log file for {name} ({}): {e}", log.display()));
    let errors = output.try_clone().expect("a second handle on the log file");
    let mut child = Command::new(python_executable())
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .spawn()
        .map_err(|e| format!("cannot run python3 for {name} ({e})"))?;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let install = format!("python3 -m pip install '{}'", spec.package);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let printed = std::fs::read_to_string(log).unwrap_or_default();
            let hint = if printed.contains("No module named") {
                format!("its Python package is missing: {install}\n")
            } else {
                String::new()
            };
            return Err(format!(
                "{hint}{name} (on port {port}) exited with {status}:\n{printed}"
            ));
        }
        if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        if started.elapsed() > spec.timeout {
            let _ = child.kill();
            let _ = child.wait();
            let printed = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!(
                "{name} (on port {port}) did not accept connections within {} s ({install}). It printed:\n{printed}",
                spec.timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tools/webhook-receiver.py`, running: it verifies every delivery with the Standard Webhooks
/// reference library (pip: standardwebhooks, installed if missing) and keeps what it got (see
/// the script for its `/_config/NAME` and `/_deliveries/NAME`). Stopped, and its log folder
/// removed, on drop.
pub struct WebhookReceiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _server: PythonServer,
    dir: std::path::PathBuf,
}

impl WebhookReceiver {
    /// The address of its endpoint `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/hook/{name}", self.base)
    }

    /// Sets what endpoint `name` verifies with and answers (`{"secrets", "status", "then",
    /// "retryAfter", "delayMs"}`).
    pub async fn configure(&self, name: &str, config: serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/_config/{name}", self.base))
            .json(&config)
            .send()
            .await
            .expect("the webhook receiver answers");
        assert_eq!(
            r.status().as_u16(),
            204,
            "the receiver took the configuration"
        );
    }

    /// What endpoint `name` got, in order: `[{id, timestamp, type, verified, errors, body}]`.
    pub async fn deliveries(&self, name: &str) -> Vec<serde_json::Value> {
        reqwest::Client::new()
            .get(format!("{}/_deliveries/{name}", self.base))
            .send()
            .await
            .expect("the webhook receiver answers")
            .json()
            .await
            .expect("a list of deliveries")
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the webhook receiver on a free port.
pub fn start_webhook_receiver() -> WebhookReceiver {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tools/webhook-receiver.py"
    );
    let spec = PythonServerSpec {
        name: "the webhook receiver",
        module: "standardwebhooks",
        package: "standardwebhooks==1.3.0",
        timeout: std::time::Duration::from_secs(20),
    };
    let dir = std::env::temp_dir().join(format!(
        "orgbase-webhook-receiver-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("a log folder for the webhook receiver");
    let server = start_python_server(&spec, &dir, |port| vec![script.into(), port.to_string()]);
    WebhookReceiver {
        base: format!("http://127.0.0.1:{}", server.port),
        _server: server,
        dir,
    }
}
