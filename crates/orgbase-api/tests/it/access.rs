//! The access check through the API: every reason on real organizations (each alone, then
//! together), the batch form with its per-pair answers, and bad input, missing credentials and
//! another tenant's organization.
use orgbase_domain::people::ROLE_VIEWER;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{Answer, App};

/// A 422 naming `field` with `code`.
fn refused(a: &Answer, field: &str, code: &str) {
    a.assert_problem(422, "validation_failed");
    assert!(
        a.field_errors()
            .contains(&(field.to_owned(), code.to_owned())),
        "{field} {code}: {}",
        a.text
    );
}

crate::api_tests!(
    the_check_names_every_reason_and_follows_each_change,
    the_batch_answers_each_pair_in_order,
    bad_input_and_callers_beyond_reach_are_refused,
);

fn path(org: &str, channel: &str) -> String {
    format!("/api/organizations/{org}/access?channel={channel}")
}

async fn reasons(app: &App, org: &str, channel: &str) -> Vec<String> {
    let a = app.get(&path(org, channel)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["channel"], channel);
    assert_eq!(a.body["organizationId"], org);
    assert!(a.body["checkedAt"].is_string(), "{}", a.text);
    let codes: Vec<String> = a.body["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
            r["code"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(a.body["allowed"], codes.is_empty(), "{}", a.text);
    codes
}

/// An organization that may take calls and messages: entitled, SMS set up, money and points.
async fn ready(app: &App, name: &str) -> String {
    let org = app
        .org(json!({
            "name": name, "countryCode": "US", "entitlements": ["voice", "sms"],
            "sms": {"enabled": true, "brandId": "B1", "campaignId": "C1"}
        }))
        .await;
    let id = org["id"].as_str().unwrap().to_owned();
    let a = app
        .post(
            &format!("/api/admin/organizations/{id}/credit"),
            json!({"amount": 1000}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = app
        .post(
            &format!("/api/admin/organizations/{id}/charge"),
            json!({"amount": 100, "service": "sms", "sms_point": 10}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    id
}

async fn the_check_names_every_reason_and_follows_each_change(app: App) {
    // A new organization: no money, no entitlements, no SMS set-up.
    let bare = app.org(json!({"name": "Bare", "countryCode": "US"})).await;
    let bare = bare["id"].as_str().unwrap();
    assert_eq!(
        reasons(&app, bare, "voice").await,
        ["insufficient_balance", "channel_not_entitled"]
    );
    assert_eq!(
        reasons(&app, bare, "sms").await,
        [
            "insufficient_sms_points",
            "sms_not_enabled",
            "sms_brand_missing",
            "sms_campaign_missing",
            "channel_not_entitled"
        ]
    );
    let id = ready(&app, "Ready").await;
    assert!(reasons(&app, &id, "voice").await.is_empty());
    assert!(reasons(&app, &id, "sms").await.is_empty());
    let patch = |body: Value| {
        let (app, id) = (&app, &id);
        async move {
            let a = app.patch(&format!("/api/organizations/{id}"), body).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        }
    };
    // Each change is seen by the next check.
    patch(json!({"sms": {"enabled": false}})).await;
    assert_eq!(reasons(&app, &id, "sms").await, ["sms_not_enabled"]);
    assert!(reasons(&app, &id, "voice").await.is_empty());
    patch(json!({"status": "inactive"})).await;
    assert_eq!(
        reasons(&app, &id, "sms").await,
        ["organization_inactive", "sms_not_enabled"]
    );
    patch(json!({"status": "suspended", "statusReason": "unpaid invoices"})).await;
    let a = app.get(&path(&id, "voice")).await;
    assert_eq!(a.body["allowed"], false);
    assert_eq!(a.body["reasons"][0]["code"], "organization_suspended");
    assert!(
        a.body["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unpaid invoices"),
        "{}",
        a.text
    );
    patch(json!({"status": "active", "statusReason": null, "entitlements": ["sms"]})).await;
    assert_eq!(reasons(&app, &id, "voice").await, ["channel_not_entitled"]);
    // A deleted organization is still the platform's to check.
    let a = app
        .call(
            Method::DELETE,
            &format!("/api/organizations/{bare}"),
            Some(&app.key),
            None,
            &[],
        )
        .await;
    assert!(a.status.is_success(), "{}", a.text);
    assert_eq!(
        reasons(&app, bare, "voice").await[0],
        "organization_deleted"
    );
}

async fn the_batch_answers_each_pair_in_order(app: App) {
    let a = ready(&app, "Batch A").await;
    let b = app
        .org(json!({"name": "Batch B", "countryCode": "US"}))
        .await;
    let b = b["id"].as_str().unwrap().to_owned();
    let body = json!({"checks": [
        {"organizationId": a, "channel": "sms"},
        {"organizationId": b, "channel": "voice"},
        {"organizationId": "00000000-0000-7000-8000-000000000000", "channel": "voice"},
        {"organizationId": a, "channel": "voice"},
    ]});
    let r = app.post("/api/access/check", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{}", r.text);
    assert_eq!(results[0]["allowed"], true);
    assert_eq!(results[0]["channel"], "sms");
    assert_eq!(results[1]["allowed"], false);
    assert_eq!(results[1]["organizationId"], b);
    assert_eq!(results[2]["error"]["status"], 404, "{}", r.text);
    assert_eq!(results[2]["error"]["code"], "not_found");
    assert_eq!(results[3]["allowed"], true);
    // An organization's key reaches its own organization only: the rest are 404, in place.
    let k = app
        .post(
            &format!("/api/organizations/{a}/api-keys"),
            json!({"name": "media server", "roles": [ROLE_VIEWER]}),
        )
        .await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.text);
    let key = k.body["key"].as_str().unwrap();
    let r = app
        .as_(Some(key), Method::POST, "/api/access/check", Some(body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results[0]["allowed"], true, "{}", r.text);
    assert_eq!(results[1]["error"]["status"], 404, "{}", r.text);
    assert!(results[1].get("allowed").is_none(), "{}", r.text);
    assert_eq!(results[3]["allowed"], true);
}

async fn bad_input_and_callers_beyond_reach_are_refused(app: App) {
    let id = ready(&app, "Guarded").await;
    let other = app.org(json!({"name": "Other", "countryCode": "US"})).await;
    let other = other["id"].as_str().unwrap();
    // The query: the channel is required, one of two, once; nothing else is taken.
    for (q, field, code) in [
        ("", "channel", "required"),
        ("?channel=fax", "channel", "invalid_value"),
        ("?channel=Voice", "channel", "invalid_value"),
        ("?channel=sms&channel=voice", "channel", "invalid_value"),
        ("?channel=sms&verbose=1", "verbose", "unknown_parameter"),
    ] {
        let a = app.get(&format!("/api/organizations/{id}/access{q}")).await;
        refused(&a, field, code);
    }
    // Credentials: none, wrong, and another tenant's key (404, as for a missing organization).
    let a = app.as_(None, Method::GET, &path(&id, "voice"), None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
    let a = app
        .as_(
            Some("obk_not_a_key_at_all_000000000000000000000"),
            Method::GET,
            &path(&id, "voice"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
    let k = app
        .post(
            &format!("/api/organizations/{other}/api-keys"),
            json!({"name": "theirs", "roles": [ROLE_VIEWER]}),
        )
        .await;
    let theirs = k.body["key"].as_str().unwrap();
    let a = app
        .as_(Some(theirs), Method::GET, &path(&id, "voice"), None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    let a = app
        .as_(Some(theirs), Method::GET, &path(other, "voice"), None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = app.get(&path("not-an-id", "voice")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    // The batch's body, each pair's fields named.
    let pair = json!({"organizationId": id, "channel": "voice"});
    for (body, field, code) in [
        (json!({}), "checks", "required"),
        (json!({"checks": []}), "checks", "invalid_length"),
        (
            json!({"checks": vec![pair.clone(); 101]}),
            "checks",
            "invalid_length",
        ),
        (
            json!({"checks": [pair, {"organizationId": id}]}),
            "checks[1].channel",
            "required",
        ),
        (
            json!({"checks": [{"organizationId": "x", "channel": "sms"}]}),
            "checks[0].organizationId",
            "invalid_value",
        ),
        (
            json!({"checks": [{"organizationId": id, "channel": 7}]}),
            "checks[0].channel",
            "invalid_type",
        ),
        (
            json!({"checks": [{"organizationId": id, "channel": "sms", "x": 1}]}),
            "checks[0].x",
            "unknown_field",
        ),
        (json!({"checks": ["x"]}), "checks[0]", "invalid_type"),
        (json!({"checks": [], "more": 1}), "more", "unknown_field"),
    ] {
        let a = app.post("/api/access/check", body.clone()).await;
        refused(&a, field, code);
    }
    let a = app
        .as_(
            None,
            Method::POST,
            "/api/access/check",
            Some(json!({"checks": []})),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
}
