//! Webhooks end to end: endpoints through the API, events from real changes, deliveries to a
//! real HTTP receiver that verifies each with the Standard Webhooks reference library (Python
//! `standardwebhooks`), retries, the 410 rule, rotation, and the address guard. The worker is
//! drained with a function, never waited for.
use orgbase_api::ApiConfig;
use orgbase_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::App;

crate::db_tests!(sqlite, postgres;
    deliveries_are_signed_and_go_to_whom_they_concern,
    a_failed_delivery_is_retried_and_a_410_disables_the_endpoint,
    a_rotated_secret_signs_beside_the_new_one,
    endpoints_refuse_bad_input_and_other_callers,
    internal_addresses_are_refused_when_saved,
    a_slow_endpoint_holds_up_no_other,
    a_test_send_waits_five_seconds_at_most,
    a_test_send_waits_half_a_short_request_deadline,
);

/// An app whose webhooks may reach the receiver on 127.0.0.1.
async fn app_reaching_loopback(db: TestDb) -> App {
    App::start_with(
        db,
        ApiConfig {
            webhook_allow_private: true,
            ..ApiConfig::default()
        },
    )
    .await
}

/// Creates an endpoint at `path` (an organization's or the platform's) and answers it with its
/// secret.
async fn endpoint(app: &App, path: &str, body: Value) -> Value {
    let a = app.post(path, body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    a.body
}

async fn drain(app: &App) {
    app.state.webhooks.worker.drain().await.unwrap();
}

async fn deliveries_are_signed_and_go_to_whom_they_concern(db: TestDb) {
    let app = app_reaching_loopback(db).await;
    let rx = orgbase_testkit::start_webhook_receiver();
    let partner = app
        .org(json!({"name": "Reseller", "countryCode": "US", "type": "partner"}))
        .await;
    let child = app
        .org(json!({"name": "Customer", "countryCode": "US", "parentId": partner["id"]}))
        .await;
    let other = app.org(json!({"name": "Other", "countryCode": "US"})).await;
    let (pid, cid, oid) = (
        partner["id"].as_str().unwrap(),
        child["id"].as_str().unwrap(),
        other["id"].as_str().unwrap(),
    );
    let platform = endpoint(
        &app,
        "/api/admin/webhooks",
        json!({"url": rx.url("platform")}),
    )
    .await;
    let reseller = endpoint(
        &app,
        &format!("/api/organizations/{pid}/webhooks"),
        json!({"url": rx.url("reseller"), "description": "CRM sync"}),
    )
    .await;
    let elsewhere = endpoint(
        &app,
        &format!("/api/organizations/{oid}/webhooks"),
        json!({"url": rx.url("other"), "eventTypes": ["member.added"]}),
    )
    .await;
    for (name, e) in [
        ("platform", &platform),
        ("reseller", &reseller),
        ("other", &elsewhere),
    ] {
        let secret = e["secret"].as_str().unwrap();
        assert!(secret.starts_with("whsec_"), "{e}");
        rx.configure(name, json!({"secrets": [secret]})).await;
    }
    // A change to the partner's child: updated, and its status changed, with the reason.
    let a = app
        .patch(
            &format!("/api/organizations/{cid}"),
            json!({"status": "suspended", "statusReason": "unpaid"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // Two events, each for the reseller's and the platform's endpoints: four messages waiting.
    let metric = |text: &str, name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let m = app.get("/metrics").await;
    assert_eq!(
        metric(&m.text, "orgbase_webhook_messages_pending"),
        Some(4),
        "{}",
        m.text
    );
    drain(&app).await;
    let m = app.get("/metrics").await;
    assert_eq!(
        metric(&m.text, "orgbase_webhook_messages_pending"),
        Some(0),
        "{}",
        m.text
    );
    assert_eq!(
        metric(
            &m.text,
            "orgbase_webhook_messages_total{status=\"delivered\"}"
        ),
        Some(4),
        "{}",
        m.text
    );

    let got = rx.deliveries("reseller").await;
    // Deliveries are made side by side, in no promised order.
    let mut types: Vec<&str> = got.iter().map(|d| d["type"].as_str().unwrap()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        ["organization.status_changed", "organization.updated"],
        "{got:#?}"
    );
    for d in &got {
        assert_eq!(d["verified"], true, "{d}");
        let body: Value = serde_json::from_str(d["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["id"], d["id"], "webhook-id is the event id");
        assert_eq!(body["organizationId"], cid);
        assert_eq!(body["data"]["status"], "suspended");
        assert_eq!(body["data"]["statusReason"], "unpaid");
        // The object whole, not only what changed.
        assert_eq!(body["data"]["name"], "Customer", "{body}");
        assert_eq!(body["data"]["countryCode"], "US", "{body}");
        assert_eq!(body["data"]["parentId"], pid, "{body}");
        assert_eq!(body["previous"]["status"], "active");
        assert!(body["previous"].get("name").is_none(), "{body}");
        assert!(body["occurredAt"].as_str().is_some(), "{body}");
    }
    // The platform's endpoint gets every organization's events (the creations came before it
    // existed, so only the change); the other organization's, nothing of the child's.
    let platform_got = rx.deliveries("platform").await;
    assert_eq!(platform_got.len(), 2, "{platform_got:#?}");
    assert!(platform_got.iter().all(|d| d["verified"] == true));
    assert!(rx.deliveries("other").await.is_empty());

    // The history: each message delivered at its first attempt, which answered 204.
    let eid = reseller["id"].as_str().unwrap();
    let list = app
        .get(&format!("/api/organizations/{pid}/webhooks/{eid}/messages"))
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let messages = list.body["data"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{}", list.text);
    assert!(messages
        .iter()
        .all(|m| m["status"] == "delivered" && m["attempts"] == 1));
    let mid = messages[0]["id"].as_str().unwrap();
    let attempts = app
        .get(&format!(
            "/api/organizations/{pid}/webhooks/{eid}/messages/{mid}/attempts"
        ))
        .await;
    assert_eq!(
        attempts.body["data"][0]["statusCode"], 204,
        "{}",
        attempts.text
    );

    // A replay sends the same event again, under the same id.
    let a = app
        .post(
            &format!("/api/organizations/{pid}/webhooks/{eid}/messages/{mid}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    drain(&app).await;
    let again = rx.deliveries("reseller").await;
    assert_eq!(again.len(), 3);
    assert_eq!(again[2]["id"], messages[0]["eventId"]);

    // The test route sends an example, signed, and says what the endpoint answered.
    let t = app
        .post(
            &format!("/api/organizations/{pid}/webhooks/{eid}/test?eventType=member.added"),
            json!({}),
        )
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert_eq!(t.body["succeeded"], true, "{}", t.text);
    assert_eq!(t.body["statusCode"], 204);
    let last = rx.deliveries("reseller").await.pop().unwrap();
    assert_eq!(last["type"], "member.added");
    assert_eq!(last["verified"], true);

    // The audit log shows the endpoint's creation, never its secret.
    let log = app
        .get(&format!(
            "/api/organizations/{pid}/audit-log?action=webhook_endpoint.created"
        ))
        .await;
    assert_eq!(
        log.body["data"][0]["changes"]["secret"]["after"], "[redacted]",
        "{}",
        log.text
    );
    assert!(!log.text.contains(reseller["secret"].as_str().unwrap()));
}

async fn a_failed_delivery_is_retried_and_a_410_disables_the_endpoint(db: TestDb) {
    let app = app_reaching_loopback(db).await;
    let rx = orgbase_testkit::start_webhook_receiver();
    let org = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let oid = org["id"].as_str().unwrap();
    let e = endpoint(
        &app,
        &format!("/api/organizations/{oid}/webhooks"),
        json!({"url": rx.url("flaky"), "eventTypes": ["organization.updated"]}),
    )
    .await;
    let eid = e["id"].as_str().unwrap();
    rx.configure("flaky", json!({"secrets": [e["secret"]], "then": [500]}))
        .await;
    let a = app
        .patch(
            &format!("/api/organizations/{oid}"),
            json!({"name": "Acme 2"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    drain(&app).await;
    let messages = app
        .get(&format!("/api/organizations/{oid}/webhooks/{eid}/messages"))
        .await;
    let m = &messages.body["data"][0];
    assert_eq!(m["status"], "pending", "{}", messages.text);
    assert_eq!(m["attempts"], 1);
    assert!(m["nextAttemptAt"].is_string(), "{m}");
    // The retry is due five seconds on: the worker takes it when it is due.
    let later = orgbase_domain::now() + chrono::Duration::seconds(6);
    app.state.webhooks.worker.drain_due_by(later).await.unwrap();
    let got = rx.deliveries("flaky").await;
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0]["id"], got[1]["id"], "a retry keeps the message's id");
    let mid = m["id"].as_str().unwrap();
    let attempts = app
        .get(&format!(
            "/api/organizations/{oid}/webhooks/{eid}/messages/{mid}/attempts"
        ))
        .await;
    let codes: Vec<&Value> = attempts.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["statusCode"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(204)], "{}", attempts.text);
    assert_eq!(attempts.body["message"]["status"], "delivered");

    // 410 Gone: the endpoint is disabled, and the audit log says why.
    rx.configure("flaky", json!({"secrets": [e["secret"]], "status": 410}))
        .await;
    let a = app
        .patch(
            &format!("/api/organizations/{oid}"),
            json!({"name": "Acme 3"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    drain(&app).await;
    let got = app
        .get(&format!("/api/organizations/{oid}/webhooks/{eid}"))
        .await;
    let history = app
        .get(&format!("/api/organizations/{oid}/webhooks/{eid}/messages"))
        .await;
    assert_eq!(
        got.body["disabled"],
        true,
        "{}\n{}\n{:?}",
        got.text,
        history.text,
        rx.deliveries("flaky").await
    );
    assert!(got.body["disabledReason"].as_str().unwrap().contains("410"));
    let log = app
        .get(&format!(
            "/api/organizations/{oid}/audit-log?action=webhook_endpoint.disabled"
        ))
        .await;
    assert_eq!(
        log.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        log.text
    );
    // A disabled endpoint receives nothing more, even once enabled again; enabling it clears
    // the reason.
    app.patch(
        &format!("/api/organizations/{oid}"),
        json!({"name": "Acme 4"}),
    )
    .await;
    // Not fanned out yet when the endpoint is enabled again (no drain here): still not its.
    let on = app
        .patch(
            &format!("/api/organizations/{oid}/webhooks/{eid}"),
            json!({"disabled": false}),
        )
        .await;
    assert_eq!(on.body["disabled"], false, "{}", on.text);
    assert_eq!(on.body["disabledReason"], Value::Null);
    // What changed while it was disabled is not its to receive; what changes now is.
    drain(&app).await;
    assert_eq!(rx.deliveries("flaky").await.len(), 3);
    rx.configure("flaky", json!({"secrets": [e["secret"]]}))
        .await;
    let a = app
        .patch(
            &format!("/api/organizations/{oid}"),
            json!({"name": "Acme 5"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    drain(&app).await;
    let got = rx.deliveries("flaky").await;
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(got[3]["body"].as_str().unwrap().contains("Acme 5"));
}

async fn a_rotated_secret_signs_beside_the_new_one(db: TestDb) {
    let app = app_reaching_loopback(db).await;
    let rx = orgbase_testkit::start_webhook_receiver();
    let e = endpoint(&app, "/api/admin/webhooks", json!({"url": rx.url("rot")})).await;
    let eid = e["id"].as_str().unwrap();
    let old = e["secret"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/admin/webhooks/{eid}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert!(r.body["previousSecretExpiresAt"].is_string(), "{}", r.text);
    // Both secrets verify the same delivery during the grace day.
    rx.configure("rot", json!({"secrets": [old, new]})).await;
    app.org(json!({"name": "Rotated", "countryCode": "US"}))
        .await;
    drain(&app).await;
    let got = rx.deliveries("rot").await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["verified"], true, "{}", got[0]);
    assert_eq!(got[0]["type"], "organization.created");
    assert_eq!(got[0]["signature"].as_str().unwrap().split(' ').count(), 2);
}

async fn endpoints_refuse_bad_input_and_other_callers(db: TestDb) {
    let app = app_reaching_loopback(db).await;
    let org = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let oid = org["id"].as_str().unwrap();
    let other = app.org(json!({"name": "Other", "countryCode": "US"})).await;
    let other_id = other["id"].as_str().unwrap();
    let path = format!("/api/organizations/{oid}/webhooks");
    for (body, field, code) in [
        (json!({}), "url", "required"),
        (json!({"url": "ftp://example.com/"}), "url", "invalid_url"),
        (
            json!({"url": "https://example.com/", "eventTypes": ["nope"]}),
            "eventTypes[0]",
            "unknown_event_type",
        ),
        (
            json!({"url": "https://example.com/", "description": "x".repeat(501)}),
            "description",
            "too_long",
        ),
        (
            json!({"url": "https://example.com/", "zz": 1}),
            "zz",
            "unknown_field",
        ),
        (
            json!({"url": "https://example.com/", "disabled": "yes"}),
            "disabled",
            "invalid_type",
        ),
    ] {
        let a = app.post(&path, body.clone()).await;
        assert!(
            a.field_errors().contains(&(field.into(), code.into())),
            "{body}: {}",
            a.text
        );
    }
    assert_eq!(app.get(&path).await.body["data"], json!([]), "nothing made");
    let e = endpoint(&app, &path, json!({"url": "http://127.0.0.1:9/hook"})).await;
    let eid = e["id"].as_str().unwrap();
    // No credential, a wrong one, a member without webhooks:manage, another organization.
    let a = app.as_(None, Method::GET, &path, None).await;
    a.assert_problem(401, "missing_credentials");
    let a = app.as_(Some("obk_wrong"), Method::GET, &path, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let (member, _) = app.person(oid, "m@hooks.test", &[3]).await;
    let a = app.as_(Some(&member), Method::GET, &path, None).await;
    a.assert_problem(403, "forbidden");
    let (stranger, _) = app.person(other_id, "s@hooks.test", &[2]).await;
    let a = app.as_(Some(&stranger), Method::GET, &path, None).await;
    a.assert_problem(404, "not_found");
    // Another organization's endpoint id is not found through this one.
    let a = app
        .get(&format!("/api/organizations/{other_id}/webhooks/{eid}"))
        .await;
    a.assert_problem(404, "not_found");
    // The platform's routes are the platform's.
    let a = app
        .as_(Some(&member), Method::GET, "/api/admin/webhooks", None)
        .await;
    a.assert_problem(403, "forbidden");
    let a = app.get(&format!("/api/admin/webhooks/{eid}")).await;
    a.assert_problem(404, "not_found");
    // A bad change changes nothing.
    let a = app
        .patch(&format!("{path}/{eid}"), json!({"url": "not a url"}))
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert_eq!(
        app.get(&format!("{path}/{eid}")).await.body["url"],
        "http://127.0.0.1:9/hook"
    );
    let d = app.delete(&format!("{path}/{eid}")).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.text);
    app.get(&format!("{path}/{eid}"))
        .await
        .assert_problem(404, "not_found");
}

async fn internal_addresses_are_refused_when_saved(db: TestDb) {
    // The default: webhooks go to public addresses only.
    let app = App::start_with(db, ApiConfig::default()).await;
    let org = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let path = format!(
        "/api/organizations/{}/webhooks",
        org["id"].as_str().unwrap()
    );
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/hook",
        "http://localhost:8080/hook",
    ] {
        let a = app.post(&path, json!({"url": url})).await;
        // An IPv6 literal is no address webhooks take at all (`invalid_url`).
        let code = if url.contains('[') {
            "invalid_url"
        } else {
            "unreachable_url"
        };
        assert_eq!(
            a.field_errors(),
            [("url".to_owned(), code.to_owned())],
            "{url}: {}",
            a.text
        );
    }
    assert_eq!(app.get(&path).await.body["data"], json!([]));
}

/// The running worker (not drained): an endpoint that takes seconds to answer holds one
/// delivery slot, not the others' deliveries; at shutdown its attempt finishes and is recorded.
async fn a_slow_endpoint_holds_up_no_other(db: TestDb) {
    use std::time::{Duration, Instant};
    let app = app_reaching_loopback(db).await;
    let rx = orgbase_testkit::start_webhook_receiver();
    let slow = endpoint(&app, "/api/admin/webhooks", json!({"url": rx.url("slow")})).await;
    endpoint(&app, "/api/admin/webhooks", json!({"url": rx.url("fast")})).await;
    rx.configure("slow", json!({"delayMs": 4000})).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = app.state.webhooks.worker.clone().spawn(shutdown.clone());
    let arrived = |name: &'static str, n: usize, within: Duration| {
        let rx = &rx;
        async move {
            let start = Instant::now();
            while rx.deliveries(name).await.len() < n {
                assert!(
                    start.elapsed() < within,
                    "{name} got fewer than {n} within {within:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            start.elapsed()
        }
    };
    let org = app
        .org(json!({"name": "Patient", "countryCode": "US"}))
        .await;
    arrived("fast", 1, Duration::from_secs(3)).await;
    arrived("slow", 1, Duration::from_secs(3)).await;
    // The slow endpoint is still answering its first; the next change reaches the fast one now.
    let a = app
        .patch(
            &format!("/api/organizations/{}", org["id"].as_str().unwrap()),
            json!({"name": "Patient 2"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let waited = arrived("fast", 2, Duration::from_secs(2)).await;
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    // Shutdown waits for the slow attempt, and records it.
    shutdown.cancel();
    worker.await.unwrap();
    let sid = slow["id"].as_str().unwrap();
    let list = app
        .get(&format!("/api/admin/webhooks/{sid}/messages"))
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let statuses: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"delivered"), "{}", list.text);
}

/// A test send answers what became of it within 5 s, under the request's 10 s deadline: a
/// receiver slower than that is reported as timed out (200), not answered with our own 503.
async fn a_test_send_waits_five_seconds_at_most(db: TestDb) {
    use std::time::{Duration, Instant};
    let app = app_reaching_loopback(db).await;
    let started = Instant::now();
    let t = test_send_to_a_receiver_answering_after(&app, 12000).await;
    let took = started.elapsed();
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert_eq!(t.body["succeeded"], false, "{}", t.text);
    assert_eq!(t.body["statusCode"], Value::Null, "{}", t.text);
    assert!(
        t.body["error"].as_str().unwrap().starts_with("timed out"),
        "{}",
        t.text
    );
    let ms = t.body["durationMs"].as_u64().unwrap();
    assert!((5000..6000).contains(&ms), "{}", t.text);
    assert!(took < Duration::from_secs(7), "{took:?}");
}

/// Under a short request deadline (`ORGBASE_REQUEST_TIMEOUT_MS=1000`) the test send waits half of
/// it: still an answer about the receiver, not the deadline's 503.
async fn a_test_send_waits_half_a_short_request_deadline(db: TestDb) {
    let app = App::start_with(
        db,
        ApiConfig {
            webhook_allow_private: true,
            request_timeout: std::time::Duration::from_secs(1),
            ..ApiConfig::default()
        },
    )
    .await;
    let t = test_send_to_a_receiver_answering_after(&app, 3000).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert!(
        t.body["error"].as_str().unwrap().starts_with("timed out"),
        "{}",
        t.text
    );
    let ms = t.body["durationMs"].as_u64().unwrap();
    assert!((500..950).contains(&ms), "{}", t.text);
}

/// A platform endpoint at a receiver that answers after `delay_ms`, and the answer of its test
/// send.
async fn test_send_to_a_receiver_answering_after(app: &App, delay_ms: u64) -> crate::Answer {
    let rx = orgbase_testkit::start_webhook_receiver();
    let e = endpoint(app, "/api/admin/webhooks", json!({"url": rx.url("sleepy")})).await;
    rx.configure("sleepy", json!({"delayMs": delay_ms})).await;
    app.post(
        &format!("/api/admin/webhooks/{}/test", e["id"].as_str().unwrap()),
        json!({}),
    )
    .await
}
