//! The access check across nodes: a suspension committed through one PostgreSQL node is what
//! the very next check on another node answers (each node caches organizations; the change's
//! own commit tells the others). A read-back loop would hide a stale answer, so each check is
//! made once, right after the change's answer arrives.
use serde_json::{json, Value};

use crate::{orgbase, pg_database, Server, TempDir};

const BOOT: &str = "a-bootstrap-key-of-at-least-32-characters!";

fn node(dir: &std::path::Path, db: &str) -> Server {
    let mut c = orgbase(dir);
    c.env("ORGBASE_BOOTSTRAP_KEY", BOOT)
        .env("ORGBASE_DATABASE_URL", db)
        // Several serving threads whatever the machine, each with its own access reader.
        .env("ORGBASE_HTTP_THREADS", "3")
        .env("RUST_LOG", "warn");
    Server::start(c)
}

#[test]
fn postgres_a_suspension_on_one_node_is_seen_at_once_on_another() {
    let Some((db, _guard)) = pg_database() else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let a = node(&dir_a.0, &db);
    let b = node(&dir_b.0, &db);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        // Checks on node b go over three connections of their own, which b deals to its three
        // threads in turn: each thread's reader is checked.
        let checkers: Vec<reqwest::Client> = (0..3).map(|_| reqwest::Client::new()).collect();
        let auth = format!("Bearer {BOOT}");
        let send_with = |http: &reqwest::Client,
                         base: &str,
                         method: reqwest::Method,
                         path: &str,
                         body: Option<Value>| {
            let mut r = http
                .request(method, format!("{base}{path}"))
                .header("authorization", &auth);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let path = path.to_owned();
            async move {
                let r = r.send().await.unwrap();
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                assert!(status.is_success(), "{path}: {status} {body}");
                body
            }
        };
        let send = |base: &str, method: reqwest::Method, path: &str, body: Option<Value>| {
            send_with(&http, base, method, path, body)
        };
        let org = send(
            &a.base,
            reqwest::Method::POST,
            "/api/organizations",
            Some(json!({"name": "Two nodes", "countryCode": "US", "entitlements": ["voice"]})),
        )
        .await;
        let id = org["id"].as_str().unwrap().to_owned();
        let check = format!("/api/organizations/{id}/access?channel=voice");
        for round in 0..20 {
            // Node b reads (and caches) the organization, node a suspends it, b answers at once.
            let checker = &checkers[round % checkers.len()];
            let before = send_with(checker, &b.base, reqwest::Method::GET, &check, None).await;
            assert!(
                !codes(&before).contains(&"organization_suspended".to_owned()),
                "round {round}: {before}"
            );
            send(
                &a.base,
                reqwest::Method::PATCH,
                &format!("/api/organizations/{id}"),
                Some(json!({"status": "suspended", "statusReason": format!("round {round}")})),
            )
            .await;
            let after = send_with(checker, &b.base, reqwest::Method::GET, &check, None).await;
            assert!(
                codes(&after).contains(&"organization_suspended".to_owned()),
                "round {round}: node b answered from stale state: {after}"
            );
            send(
                &a.base,
                reqwest::Method::PATCH,
                &format!("/api/organizations/{id}"),
                Some(json!({"status": "active", "statusReason": null})),
            )
            .await;
        }
    });
}

fn codes(v: &Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect()
}
