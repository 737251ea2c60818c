//! The wallet through the API: the seed's charge, top-ups, reads, and concurrency.
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;

use crate::{Answer, App};

crate::api_tests!(
    the_seed_charge_answers_as_documented,
    a_charge_the_balance_does_not_cover_changes_nothing,
    invalid_charges_name_every_field_and_change_nothing,
    an_idempotency_key_charges_once,
    the_wallet_is_read_with_wallet_read,
    concurrent_charges_and_top_ups_add_up,
);

async fn org(app: &App) -> String {
    app.org(json!({"name": "Wallet Co", "countryCode": "US"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn post_key(app: &App, path: &str, body: Value, key: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    app.call(Method::POST, path, Some(&app.key), Some(&body), &headers)
        .await
}

fn charge_path(org: &str) -> String {
    format!("/api/admin/organizations/{org}/charge")
}

fn credit_path(org: &str) -> String {
    format!("/api/admin/organizations/{org}/credit")
}

async fn wallet(app: &App, org: &str) -> Value {
    app.get(&format!("/api/organizations/{org}/wallet"))
        .await
        .body
}

async fn entries(app: &App, org: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=100&cursor={c}"),
            None => "?limit=100".into(),
        };
        let a = app
            .get(&format!("/api/organizations/{org}/wallet/transactions{q}"))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        all.extend(a.body["data"].as_array().unwrap().iter().cloned());
        match a.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

async fn the_seed_charge_answers_as_documented(app: App) {
    let o = org(&app).await;
    let c = app
        .post(
            &credit_path(&o),
            json!({"amount": 5000, "reason": "top-up"}),
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    assert_eq!(c.body["balance"], 5000);
    // The seed's example body.
    let a = app
        .post(
            &charge_path(&o),
            json!({"amount": 1000, "service": "sms", "sms_point": 100, "reason": "Monthly SMS package"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        a.body,
        json!({"success": true, "message": "Charge processed successfully", "data": null})
    );
    let w = wallet(&app, &o).await;
    assert_eq!(
        (w["balance"].clone(), w["smsPoints"].clone()),
        (json!(4000), json!(100))
    );
    assert_eq!(w["currency"], "USD");
    let e = entries(&app, &o).await;
    assert_eq!(e.len(), 2);
    assert_eq!(e[0]["kind"], "charge");
    assert_eq!(e[0]["service"], "sms");
    assert_eq!(e[0]["amount"], 1000);
    assert_eq!(e[0]["smsPoints"], 100);
    assert_eq!(e[0]["balanceAfter"], 4000);
    assert_eq!(e[0]["smsPointsAfter"], 100);
    assert_eq!(e[0]["reason"], "Monthly SMS package");
    assert_eq!(e[1]["kind"], "credit");
    // Pages: one entry at a time, newest first.
    let p1 = app
        .get(&format!(
            "/api/organizations/{o}/wallet/transactions?limit=1"
        ))
        .await;
    assert_eq!(p1.body["data"][0]["id"], e[0]["id"]);
    let cursor = p1.body["nextCursor"].as_str().unwrap();
    let p2 = app
        .get(&format!(
            "/api/organizations/{o}/wallet/transactions?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(p2.body["data"][0]["id"], e[1]["id"]);
    assert_eq!(p2.body["nextCursor"], Value::Null);
}

async fn a_charge_the_balance_does_not_cover_changes_nothing(app: App) {
    let o = org(&app).await;
    app.post(&charge_path(&o), json!({"amount": 1, "service": "voice"}))
        .await
        .assert_problem(402, "insufficient_funds");
    app.post(&credit_path(&o), json!({"amount": 500})).await;
    app.post(&charge_path(&o), json!({"amount": 501, "service": "voice"}))
        .await
        .assert_problem(402, "insufficient_funds");
    assert_eq!(wallet(&app, &o).await["balance"], 500);
    assert_eq!(entries(&app, &o).await.len(), 1);
    let ok = app
        .post(&charge_path(&o), json!({"amount": 500, "service": "voice"}))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(wallet(&app, &o).await["balance"], 0);
}

async fn invalid_charges_name_every_field_and_change_nothing(app: App) {
    let o = org(&app).await;
    app.post(&credit_path(&o), json!({"amount": 10000})).await;
    for (body, fields) in [
        (json!({}), vec!["amount", "service"]),
        (json!({"amount": 0, "service": "voice"}), vec!["amount"]),
        (json!({"amount": -5, "service": "voice"}), vec!["amount"]),
        (
            json!({"amount": 100_000_001, "service": "voice"}),
            vec!["amount"],
        ),
        (json!({"amount": "10", "service": "voice"}), vec!["amount"]),
        (json!({"amount": 1.5, "service": "voice"}), vec!["amount"]),
        (json!({"amount": 10, "service": "fax"}), vec!["service"]),
        (json!({"amount": 10, "service": "sms"}), vec!["sms_point"]),
        (
            json!({"amount": 10, "service": "sms", "sms_point": 0}),
            vec!["sms_point"],
        ),
        (
            json!({"amount": 10, "service": "voice", "reason": "x".repeat(501)}),
            vec!["reason"],
        ),
        (
            json!({"amount": 10, "service": "voice", "currency": "EUR"}),
            vec!["currency"],
        ),
    ] {
        let a = app.post(&charge_path(&o), body.clone()).await;
        a.assert_problem(422, "validation_failed");
        let got: Vec<String> = a.field_errors().into_iter().map(|(f, _)| f).collect();
        for f in fields {
            assert!(got.iter().any(|g| g == f), "{body}: {got:?}");
        }
    }
    for body in [
        json!({}),
        json!({"amount": 0}),
        json!({"amount": 1, "service": "sms"}),
    ] {
        app.post(&credit_path(&o), body)
            .await
            .assert_problem(422, "validation_failed");
    }
    assert_eq!(wallet(&app, &o).await["balance"], 10000);
    assert_eq!(entries(&app, &o).await.len(), 1);
    // Unknown or malformed organizations; a deleted one.
    app.post(
        &charge_path(&uuid::Uuid::now_v7().to_string()),
        json!({"amount": 1, "service": "voice"}),
    )
    .await
    .assert_problem(404, "not_found");
    app.post(
        "/api/admin/organizations/nope/charge",
        json!({"amount": 1, "service": "voice"}),
    )
    .await
    .assert_problem(404, "not_found");
    app.delete(&format!("/api/organizations/{o}")).await;
    app.post(&charge_path(&o), json!({"amount": 1, "service": "voice"}))
        .await
        .assert_problem(409, "organization_deleted");
}

async fn an_idempotency_key_charges_once(app: App) {
    let o = org(&app).await;
    post_key(
        &app,
        &credit_path(&o),
        json!({"amount": 1000}),
        Some("top-1"),
    )
    .await;
    let again = post_key(
        &app,
        &credit_path(&o),
        json!({"amount": 1000}),
        Some("top-1"),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.body["balance"], 1000,
        "a replay answers as the first time"
    );
    let body = json!({"amount": 300, "service": "voice"});
    for _ in 0..3 {
        let a = post_key(&app, &charge_path(&o), body.clone(), Some("charge-1")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
    post_key(
        &app,
        &charge_path(&o),
        json!({"amount": 301, "service": "voice"}),
        Some("charge-1"),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    post_key(&app, &charge_path(&o), body.clone(), Some(" bad key"))
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(wallet(&app, &o).await["balance"], 700);
    assert_eq!(entries(&app, &o).await.len(), 2);
}

async fn the_wallet_is_read_with_wallet_read(app: App) {
    let (o, owner) = app.owned_org("wallet-owner@example.com").await;
    let (viewer, _) = app.person(&o, "viewer@example.com", &[5]).await;
    let (member, _) = app.person(&o, "member@example.com", &[3]).await;
    let (_, stranger) = app.owned_org("stranger@example.com").await;
    let path = format!("/api/organizations/{o}/wallet");
    for (token, status) in [
        (Some(owner.as_str()), 200),
        (Some(viewer.as_str()), 200),
        (Some(member.as_str()), 403),
        (Some(stranger.as_str()), 404),
        (None, 401),
    ] {
        let a = app.as_(token, Method::GET, &path, None).await;
        assert_eq!(a.status.as_u16(), status, "{}", a.text);
    }
    let w = app.as_(Some(&owner), Method::GET, &path, None).await;
    assert_eq!(
        w.body,
        json!({"balance": 0, "smsPoints": 0, "currency": "USD", "updatedAt": null})
    );
    // Only the platform charges and credits.
    app.as_(
        Some(&owner),
        Method::POST,
        &credit_path(&o),
        Some(json!({"amount": 100})),
    )
    .await
    .assert_problem(403, "forbidden");
}

/// 200 charges and top-ups at once, a third of them sent twice under the same key, and (on
/// PostgreSQL) spread over three server instances on one database: the balance equals the
/// ledger's sum, never goes below zero, and each acknowledged operation is in the ledger once.
async fn concurrent_charges_and_top_ups_add_up(app: App) {
    let o = org(&app).await;
    let mut bases = vec![app.base.clone()];
    if app.db.url.starts_with("postgres") {
        bases.push(app.another_node().await);
        bases.push(app.another_node().await);
    }
    post_key(
        &app,
        &credit_path(&o),
        json!({"amount": 2000}),
        Some("seed"),
    )
    .await;
    let mut calls = Vec::new();
    for i in 0..200 {
        let (path, body) = if i % 4 == 0 {
            (credit_path(&o), json!({"amount": 150}))
        } else {
            (charge_path(&o), json!({"amount": 90, "service": "voice"}))
        };
        let key = format!("op-{i}");
        let copies = if i % 3 == 0 { 2 } else { 1 };
        for c in 0..copies {
            let base = bases[(i + c) % bases.len()].clone();
            let (http, token) = (app.http.clone(), app.key.clone());
            let (path, body, key) = (path.clone(), body.clone(), key.clone());
            calls.push(async move {
                let res = http
                    .post(format!("{base}{path}"))
                    .bearer_auth(token)
                    .header("idempotency-key", &key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (key, res.status())
            });
        }
    }
    let results = futures::future::join_all(calls).await;
    let mut acknowledged: HashMap<String, StatusCode> = HashMap::new();
    for (key, status) in results {
        // A copy sent while the first is still running is told so (409); it acts on nothing.
        assert!(
            status == StatusCode::OK
                || status == StatusCode::PAYMENT_REQUIRED
                || status == StatusCode::CONFLICT,
            "{key}: {status}"
        );
        if status == StatusCode::OK {
            acknowledged.insert(key, status);
        }
    }
    let ledger = entries(&app, &o).await;
    let sum: i64 = ledger
        .iter()
        .map(|e| {
            let a = e["amount"].as_i64().unwrap();
            if e["kind"] == "credit" {
                a
            } else {
                -a
            }
        })
        .sum();
    let w = wallet(&app, &o).await;
    assert_eq!(w["balance"].as_i64().unwrap(), sum);
    assert!(ledger
        .iter()
        .all(|e| e["balanceAfter"].as_i64().unwrap() >= 0));
    // Each acknowledged operation is in the ledger exactly once (the seed credit besides).
    assert_eq!(ledger.len(), acknowledged.len() + 1, "{}", ledger.len());
}
