//! A real browser for the console's tests: Debian's `chromium`, driven by Playwright for Python.
//! Installed on first use, as the Python test servers are (Playwright's own browser download
//! does not work everywhere; the distribution's chromium does).
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The Playwright release the journeys are written against.
pub const PLAYWRIGHT: &str = "playwright==1.65.2";

/// Makes Playwright importable and chromium runnable, installing them if need be; answers the
/// chromium executable (`ORGBASE_CHROMIUM`, else `/usr/bin/chromium`).
///
/// # Panics
/// When either cannot be installed, with the command to run by hand.
pub fn ensure_browser() -> PathBuf {
    crate::ensure_python_module("playwright", PLAYWRIGHT);
    let chromium = std::env::var_os("ORGBASE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if runs(&chromium) {
        return chromium;
    }
    let _lock = crate::install_lock("apt");
    if !runs(&chromium) {
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let installed = apt(&["install", "-y", "-qq", "chromium"])
            || (apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "chromium"]));
        assert!(
            installed && runs(&chromium),
            "the console's browser tests need chromium at {} and apt-get could not install it; run: apt-get install chromium (or set ORGBASE_CHROMIUM)",
            chromium.display()
        );
    }
    chromium
}

fn runs(chromium: &std::path::Path) -> bool {
    Command::new(chromium)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `python3 script args…` to its end; panics with its output if it fails.
pub fn run_python(script: &std::path::Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) {
    let mut cmd = Command::new(crate::python_executable());
    cmd.arg(script).args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
