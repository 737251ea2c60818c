//! Journeys in a real browser (Playwright for Python driving Debian's chromium, headless): the
//! journeys are `tests/browser/journeys.py`; these tests start the server, make each journey's
//! data through the API, and run it. Screenshots of every step land in
//! `target/console-screenshots/{database}/`.
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::Console;

/// Runs `journey` against `c` with `args` (the platform key is added), in a blocking task.
async fn journey(c: &Console, db: &str, journey: &str, mut args: Value) {
    args["key"] = json!(c.key);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser/journeys.py");
    let shots = root.join("../../target/console-screenshots").join(db);
    let base = c.base.clone();
    let journey = journey.to_owned();
    tokio::task::spawn_blocking(move || {
        let chromium = orgbase_testkit::browser::ensure_browser();
        orgbase_testkit::browser::run_python(
            &script,
            &[&journey, &base, shots.to_str().unwrap(), &args.to_string()],
            &[("ORGBASE_CHROMIUM", chromium.as_os_str())],
        );
    })
    .await
    .unwrap();
}

async fn postgres() -> Option<Console> {
    let Some(db) = orgbase_store::testing::postgres().await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return None;
    };
    Some(Console::start(db).await)
}

async fn sqlite() -> Console {
    Console::start(orgbase_store::testing::sqlite().await).await
}

async fn suspend(c: Console, db: &str) {
    let org = c.org("Initech Telecom").await;
    c.org("Initrode Media").await;
    journey(&c, db, "suspend", json!({"name": "Initech Telecom"})).await;
    let now = c.stored(org["id"].as_str().unwrap()).await;
    assert_eq!(now["status"], "suspended");
    assert_eq!(now["statusReason"], "Chargeback under review");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_suspends_an_organization_in_a_browser_sqlite() {
    suspend(sqlite().await, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_suspends_an_organization_in_a_browser_postgres() {
    if let Some(c) = postgres().await {
        suspend(c, "postgres").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_post_without_its_csrf_token_is_refused() {
    let c = sqlite().await;
    let org = c.org("Forgery Target").await;
    let id = org["id"].as_str().unwrap();
    journey(&c, "sqlite", "csrf", json!({"id": id})).await;
    let now = c.stored(id).await;
    assert_eq!(now["version"], org["version"], "unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_action_in_a_browser() {
    let c = sqlite().await;
    let org = c.org("Viewed Corp").await;
    let id = org["id"].as_str().unwrap();
    c.person(id, "viewer@example.com", &[5]).await;
    journey(
        &c,
        "sqlite",
        "viewer",
        json!({"id": id, "name": "Viewed Corp", "email": "viewer@example.com", "password": "password123"}),
    )
    .await;
    let now = c.stored(id).await;
    assert_eq!(now["version"], org["version"], "unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_invites_and_the_newcomer_joins_in_a_browser() {
    let c = sqlite().await;
    let org = c.org("Hooli").await;
    let id = org["id"].as_str().unwrap();
    c.person(id, "gavin@example.com", &[2]).await;
    journey(
        &c,
        "sqlite",
        "invite",
        json!({"name": "Hooli", "email": "gavin@example.com", "password": "password123",
               "outbox": c.outbox().to_str().unwrap()}),
    )
    .await;
    assert!(c.member(id, "newcomer@example.com").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_credits_a_wallet_in_a_browser() {
    let c = sqlite().await;
    let org = c.org("Pied Piper").await;
    let id = org["id"].as_str().unwrap();
    journey(&c, "sqlite", "credit", json!({"id": id})).await;
    let (_, wallet) = c
        .api(
            reqwest::Method::GET,
            &format!("/api/organizations/{id}/wallet"),
            None,
            None,
        )
        .await;
    assert_eq!(wallet["balance"], 5000);
}
