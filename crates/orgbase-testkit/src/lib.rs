//! Test support shared by Orgbase's crates.
//!
//! The tests talk to real servers written in Python (an SMTP server, an S3-compatible server, a
//! local Stripe). [`ensure_python_module`] installs one with pip the first time a test needs
//! it, so that `cargo nextest run --workspace` works on a fresh machine as written.
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
    let lock_path = std::env::temp_dir().join("orgbase-testkit-pip.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
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

fn importable(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
