//! Serving on several threads (`http_threads`): the connections are dealt to the threads in
//! turn, each keeps its thread for all its requests, the peer's address still reaches the audit
//! log, and SIGTERM drains every thread.
use serde_json::{json, Value};

use crate::{orgbase, Server, TempDir};

const BOOT: &str = "a-bootstrap-key-of-at-least-32-characters!";

#[test]
fn several_http_threads_serve_every_connection_and_stop_on_sigterm() {
    let dir = TempDir::new();
    let mut c = orgbase(&dir.0);
    c.env("ORGBASE_BOOTSTRAP_KEY", BOOT)
        .env("ORGBASE_HTTP_THREADS", "3")
        .env("RUST_LOG", "warn");
    let server = Server::start(c);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clients = rt.block_on(async {
        // A client each: a connection each, seven of them, more than the threads, so that
        // every thread has some and one has three.
        let clients: Vec<reqwest::Client> = (0..7).map(|_| reqwest::Client::new()).collect();
        let mut made = Vec::new();
        for round in 0..3 {
            for (i, http) in clients.iter().enumerate() {
                let r = http
                    .post(format!("{}/api/organizations", server.base))
                    .bearer_auth(BOOT)
                    .json(
                        &json!({"name": format!("Thread {i} round {round}"), "countryCode": "US"}),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "client {i}, round {round}");
                let body: Value = r.json().await.unwrap();
                made.push((i, body["id"].as_str().unwrap().to_owned()));
            }
        }
        // Each organization reads back through another connection (another thread), and its
        // audit entry names the peer, as one thread serving everything did.
        for (n, (i, id)) in made.iter().enumerate() {
            let http = &clients[(i + 1 + n % 3) % clients.len()];
            let get = |path: String| async move {
                let r = http.get(path).bearer_auth(BOOT).send().await.unwrap();
                r.json::<Value>().await.unwrap()
            };
            let org = get(format!("{}/api/organizations/{id}", server.base)).await;
            assert_eq!(org["id"], id.as_str());
            let log = get(format!("{}/api/organizations/{id}/audit-log", server.base)).await;
            assert_eq!(log["data"][0]["clientAddress"], "127.0.0.1", "{log}");
        }
        clients
    });
    // Seven idle keep-alive connections spread over three threads: all must close for the
    // process to end.
    let base = server.base.clone();
    let status = server.terminate();
    assert!(status.success(), "{status}");
    drop(clients);
    assert!(
        std::net::TcpStream::connect(base.trim_start_matches("http://")).is_err(),
        "still accepting after SIGTERM"
    );
}
