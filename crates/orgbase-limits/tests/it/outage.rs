//! Redis unreachable, then back: requests go through marked `failed_open`, quickly, counted; and
//! once Redis answers again, decisions are made again.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orgbase_limits::{Decision, Limiter, Quota};

use crate::unique_key;

/// A failing-open decision must come back well within a request's budget.
const FAST: Duration = Duration::from_millis(300);

async fn timed_take(limiter: &Limiter, key: &str, quota: Quota) -> Decision {
    let started = Instant::now();
    let d = limiter.take(key, quota).await;
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    d
}

fn assert_failed_open(d: Decision, quota: Quota) {
    assert_eq!(
        d,
        Decision {
            allowed: true,
            limit: quota.burst,
            remaining: quota.burst,
            reset: Duration::ZERO,
            retry_after: None,
            failed_open: true,
        }
    );
}

#[tokio::test]
async fn nothing_listening_fails_open_fast_and_counts() {
    // Port 1 (tcpmux) has no listener here: connections are refused.
    let limiter = Limiter::redis("redis://127.0.0.1:1").unwrap();
    let quota = Quota::per_window(1, Duration::from_secs(60));
    let key = unique_key("down");
    for n in 1..=3 {
        assert_failed_open(timed_take(&limiter, &key, quota).await, quota);
        assert_eq!(limiter.failed_open_total(), n);
    }
    let started = Instant::now();
    assert_failed_open(limiter.peek(&key, quota).await, quota);
    limiter.forget(&key).await;
    assert!(started.elapsed() < FAST);
    // A peek is a request let through too; forget is not.
    assert_eq!(limiter.failed_open_total(), 4);
}

#[tokio::test]
async fn redis_stopped_then_restarted() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut server = RedisServer::start(port);
    let limiter = Limiter::redis(&url).unwrap();
    let quota = Quota::per_window(3, Duration::from_secs(60));
    let key = unique_key("restart");

    for remaining in [2, 1, 0] {
        let d = limiter.take(&key, quota).await;
        assert!(d.allowed && !d.failed_open, "{d:?}");
        assert_eq!(d.remaining, remaining);
    }
    let d = limiter.take(&key, quota).await;
    assert!(!d.allowed && !d.failed_open, "{d:?}");
    assert_eq!(limiter.failed_open_total(), 0);

    server.stop();
    for n in 1..=5 {
        assert_failed_open(timed_take(&limiter, &key, quota).await, quota);
        assert_eq!(limiter.failed_open_total(), n);
    }

    let server = RedisServer::start(port);
    let restarted = Instant::now();
    let recovered = loop {
        let d = timed_take(&limiter, &key, quota).await;
        if !d.failed_open {
            break d;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(2),
            "still failing open {:?} after Redis came back",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let failed_open = limiter.failed_open_total();
    // The new server started empty (no persistence), so the bucket is full again, and it is
    // counted there: the third take after recovery is refused.
    assert_eq!((recovered.allowed, recovered.remaining), (true, 2));
    for remaining in [1, 0] {
        let d = limiter.take(&key, quota).await;
        assert_eq!(
            (d.allowed, d.remaining, d.failed_open),
            (true, remaining, false)
        );
    }
    let d = limiter.take(&key, quota).await;
    assert!(!d.allowed && !d.failed_open, "{d:?}");
    assert_eq!(limiter.failed_open_total(), failed_open);
    drop(server);
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private `redis-server` child, killed when dropped.
struct RedisServer {
    child: Option<Child>,
}

impl RedisServer {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let server = RedisServer { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !answers(port) {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} never answered"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reply = [0; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
