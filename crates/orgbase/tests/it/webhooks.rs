//! Webhook delivery across processes: no event is lost when a node is killed between a commit
//! and its delivery, and several PostgreSQL nodes share the outbox. The receiver is
//! `tools/webhook-receiver.py`, which verifies every delivery with the Standard Webhooks
//! reference library. These tests wait on other processes, so they poll (with a deadline).
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{orgbase, pg_database, Server, TempDir};

const BOOT: &str = "a-bootstrap-key-of-at-least-32-characters!";

type Receiver = orgbase_testkit::WebhookReceiver;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn node(dir: &std::path::Path, db: Option<&str>) -> Server {
    let mut c = orgbase(dir);
    c.env("ORGBASE_BOOTSTRAP_KEY", BOOT)
        .env("ORGBASE_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("RUST_LOG", "warn");
    if let Some(db) = db {
        c.env("ORGBASE_DATABASE_URL", db);
    }
    Server::start(c)
}

/// A platform endpoint at the receiver's `name`, which verifies with its secret.
async fn subscribe(http: &reqwest::Client, base: &str, rx: &Receiver, name: &str) {
    let e: Value = http
        .post(format!("{base}/api/admin/webhooks"))
        .bearer_auth(BOOT)
        .json(&json!({"url": rx.url(name), "eventTypes": ["organization.created"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = e["secret"].as_str().unwrap_or_else(|| panic!("{e}"));
    rx.configure(name, json!({"secrets": [secret]})).await;
}

/// Creates `n` organizations through `bases` in turn, `parallel` at once; answers the ids the
/// server acknowledged (201).
async fn create_orgs(
    http: &reqwest::Client,
    bases: &[String],
    n: usize,
    parallel: usize,
) -> Vec<String> {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            let base = bases[i % bases.len()].clone();
            async move {
                let res = http
                    .post(format!("{base}/api/organizations"))
                    .bearer_auth(BOOT)
                    .json(&json!({"name": format!("Hooked {i}"), "countryCode": "US"}))
                    .send()
                    .await
                    .ok()?;
                if res.status() != 201 {
                    return None;
                }
                let v: Value = res.json().await.ok()?;
                Some(v["id"].as_str()?.to_owned())
            }
        })
        .buffer_unordered(parallel)
        .filter_map(|x| async move { x })
        .collect()
        .await
}

/// What the receiver got for `name`: per organization created, the deliveries, each verified.
async fn received(rx: &Receiver, name: &str) -> BTreeMap<String, usize> {
    let all = rx.deliveries(name).await;
    let mut per_org = BTreeMap::new();
    for d in all {
        assert_eq!(d["verified"], true, "a delivery failed verification: {d}");
        let body: Value = serde_json::from_str(d["body"].as_str().unwrap()).unwrap();
        *per_org
            .entry(body["data"]["id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    per_org
}

/// Polls until every id in `wanted` has arrived (or `limit` passes); answers what arrived.
async fn wait_for_all(
    rx: &Receiver,
    name: &str,
    wanted: &BTreeSet<String>,
    limit: Duration,
) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + limit;
    loop {
        let got = received(rx, name).await;
        if wanted.iter().all(|id| got.contains_key(id)) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn a_killed_node_loses_no_event(db: Option<&str>) {
    let dir = TempDir::new();
    let rx = orgbase_testkit::start_webhook_receiver();
    let rt = runtime();
    let http = reqwest::Client::new();
    let mut first = node(&dir.0, db);
    let base = first.base.clone();
    rt.block_on(subscribe(&http, &base, &rx, "killed"));
    let ids = rt.block_on(create_orgs(&http, std::slice::from_ref(&base), 200, 16));
    assert_eq!(ids.len(), 200);
    // SIGKILL right after the last acknowledgement: committed events not yet delivered (and
    // deliveries in flight) are the outbox's to deliver when a node starts again.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let before_restart = rt.block_on(received(&rx, "killed")).len();
    let _second = node(&dir.0, db);
    let wanted: BTreeSet<String> = ids.into_iter().collect();
    // On PostgreSQL a message the killed node had leased waits for its lease (30 s).
    let got = rt.block_on(wait_for_all(
        &rx,
        "killed",
        &wanted,
        Duration::from_secs(60),
    ));
    let missing: Vec<_> = wanted.iter().filter(|id| !got.contains_key(*id)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let repeats: usize = got.values().map(|n| n - 1).sum();
    eprintln!(
        "killed node: {} of 200 delivered before the kill, all 200 after the restart, {repeats} delivered twice",
        before_restart
    );
}

#[test]
fn sqlite_a_killed_node_loses_no_event() {
    a_killed_node_loses_no_event(None);
}

#[test]
fn postgres_a_killed_node_loses_no_event() {
    let Some((db, _guard)) = pg_database() else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    a_killed_node_loses_no_event(Some(&db));
}

/// Two nodes on one PostgreSQL database, each taking changes and each running a worker: every
/// one of 1,000 events arrives; the repeats (at-least-once) are counted.
#[test]
fn postgres_two_nodes_deliver_every_event() {
    let Some((db, _guard)) = pg_database() else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let rx = orgbase_testkit::start_webhook_receiver();
    let rt = runtime();
    let http = reqwest::Client::new();
    let a = node(&dir_a.0, Some(&db));
    let b = node(&dir_b.0, Some(&db));
    let bases = [a.base.clone(), b.base.clone()];
    rt.block_on(subscribe(&http, &bases[0], &rx, "pair"));
    let started = Instant::now();
    let ids = rt.block_on(create_orgs(&http, &bases, 1000, 32));
    assert_eq!(ids.len(), 1000);
    let wanted: BTreeSet<String> = ids.into_iter().collect();
    let got = rt.block_on(wait_for_all(&rx, "pair", &wanted, Duration::from_secs(60)));
    let missing = wanted.iter().filter(|id| !got.contains_key(*id)).count();
    assert_eq!(missing, 0, "events lost");
    let repeats: usize = got.values().map(|n| n - 1).sum();
    eprintln!(
        "two nodes: 1000 events, all delivered in {:.1} s, {repeats} delivered twice",
        started.elapsed().as_secs_f64()
    );
}
