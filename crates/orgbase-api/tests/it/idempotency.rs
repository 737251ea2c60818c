//! `Idempotency-Key` on every POST.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::App;

crate::api_tests!(
    the_same_key_and_request_acts_once,
    another_request_under_a_key_is_422_and_acts_on_nothing,
    keys_belong_to_their_credential,
    a_request_still_running_is_409,
    bad_keys_are_refused,
    answers_holding_a_secret_are_not_kept,
    a_revoked_credential_gets_no_replay,
    the_compatible_apis_refuse_in_their_own_shape,
    who_calls_comes_before_the_key,
);

async fn the_compatible_apis_refuse_in_their_own_shape(app: App) {
    let o = app
        .org(json!({"name": "Shapes", "countryCode": "US"}))
        .await;
    let id = o["id"].as_str().unwrap();
    let v2 = format!(
        "{}/api/v2/updateOrganization?token={}&targetOrganizationId={id}",
        app.base, app.key
    );
    let send = |body: serde_json::Value| {
        let (http, v2) = (app.http.clone(), v2.clone());
        async move {
            http.post(v2)
                .header("idempotency-key", "v2-1")
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = send(json!({"orgName": "Shaped"})).await;
    assert_eq!(first.status(), StatusCode::OK);
    let replay = send(json!({"orgName": "Shaped"})).await;
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(replay.headers()["idempotency-replayed"], "true");
    let other = send(json!({"orgName": "Other"})).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = other.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "idempotency_key_reused");
    // The properties API is a PATCH: the key plays no part, and both changes apply.
    let props = format!("{}/v1/orgs/{id}/properties", app.base);
    for name in ["Prop One", "Prop Two"] {
        let r = app
            .http
            .patch(&props)
            .header("authorization", &app.key)
            .header("idempotency-key", "v1-1")
            .json(&json!({"updates": {"org_display_name": name}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{name}");
    }
}

async fn answers_holding_a_secret_are_not_kept(app: App) {
    let body = json!({"name": "once", "kind": "platform"});
    let first = post(
        &app,
        &app.key,
        "/api/admin/api-keys",
        body.clone(),
        "mint-1",
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first
        .header(orgbase_api::idempotency::SECRET_ANSWER)
        .is_none());
    let secret = first.body["key"].as_str().unwrap().to_owned();
    let again = post(&app, &app.key, "/api/admin/api-keys", body, "mint-1").await;
    again.assert_problem(409, "idempotency_answer_withheld");
    assert!(!again.text.contains(&secret));
    // Acted once: one key of that name.
    let keys = app.get("/api/admin/api-keys").await;
    let named = keys.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "once")
        .count();
    assert_eq!(named, 1);
}

async fn a_revoked_credential_gets_no_replay(app: App) {
    let k = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "short-lived", "kind": "platform"}),
        )
        .await;
    let key = k.body["key"].as_str().unwrap().to_owned();
    let body = json!({"name": "Before Revocation", "countryCode": "US"});
    let a = post(&app, &key, "/api/organizations", body.clone(), "r-1").await;
    assert_eq!(a.status, StatusCode::CREATED);
    app.delete(&format!(
        "/api/admin/api-keys/{}",
        k.body["id"].as_str().unwrap()
    ))
    .await;
    post(&app, &key, "/api/organizations", body, "r-1")
        .await
        .assert_problem(401, "revoked_credentials");
}

async fn post(
    app: &App,
    token: &str,
    path: &str,
    body: serde_json::Value,
    key: &str,
) -> crate::Answer {
    app.call(
        Method::POST,
        path,
        Some(token),
        Some(&body),
        &[("idempotency-key", key)],
    )
    .await
}

async fn count(app: &App, name: &str) -> usize {
    app.get(&format!("/api/organizations?q={name}")).await.body["data"]
        .as_array()
        .unwrap()
        .len()
}

async fn the_same_key_and_request_acts_once(app: App) {
    let body = json!({"name": "Once Only", "countryCode": "US"});
    let first = post(
        &app,
        &app.key,
        "/api/organizations",
        body.clone(),
        "create-1",
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert!(first.header("idempotency-replayed").is_none());
    let again = post(
        &app,
        &app.key,
        "/api/organizations",
        body.clone(),
        "create-1",
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the first answer, replayed");
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(count(&app, "Once").await, 1);
    // Errors are answers too: replayed as they were.
    let bad = json!({"name": "", "countryCode": "US"});
    let e1 = post(&app, &app.key, "/api/organizations", bad.clone(), "bad-1").await;
    let e2 = post(&app, &app.key, "/api/organizations", bad, "bad-1").await;
    assert_eq!(
        (e1.status, e2.status),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::UNPROCESSABLE_ENTITY
        )
    );
    assert_eq!(e2.header("idempotency-replayed"), Some("true"));
}

async fn another_request_under_a_key_is_422_and_acts_on_nothing(app: App) {
    post(
        &app,
        &app.key,
        "/api/organizations",
        json!({"name": "First Body", "countryCode": "US"}),
        "k-1",
    )
    .await;
    let other = post(
        &app,
        &app.key,
        "/api/organizations",
        json!({"name": "Second Body", "countryCode": "US"}),
        "k-1",
    )
    .await;
    other.assert_problem(422, "idempotency_key_reused");
    assert_eq!(count(&app, "Second").await, 0);
    // The same key on another route is another request too.
    let o = app.org(json!({"name": "X", "countryCode": "US"})).await;
    post(
        &app,
        &app.key,
        &format!(
            "/api/organizations/{}/workspaces",
            o["id"].as_str().unwrap()
        ),
        json!({"name": "First Body"}),
        "k-1",
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
}

async fn keys_belong_to_their_credential(app: App) {
    let other = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "second", "kind": "platform"}),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"name": "Shared Key", "countryCode": "US"});
    let a = post(&app, &app.key, "/api/organizations", body.clone(), "same").await;
    let b = post(&app, &other, "/api/organizations", body, "same").await;
    assert_eq!(
        (a.status, b.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_ne!(a.body["id"], b.body["id"]);
    assert!(b.header("idempotency-replayed").is_none());
    assert_eq!(count(&app, "Shared").await, 2);
}

async fn a_request_still_running_is_409(app: App) {
    let body = json!({"name": "In Flight", "countryCode": "US"});
    // A request under this key is running (claimed, not answered).
    let hash = orgbase_api::idempotency::request_hash(
        &app.key,
        &axum::http::Method::POST,
        "/api/organizations",
        None,
        body.to_string().as_bytes(),
    );
    let scope = orgbase_domain::SecretHash::of(&app.key).as_str().to_owned();
    let t = orgbase_domain::now();
    app.db
        .store
        .claim_idempotency_key(
            &scope,
            "running",
            "another-request",
            &hash,
            t,
            t - chrono::Duration::minutes(5),
        )
        .await
        .unwrap();
    post(
        &app,
        &app.key,
        "/api/organizations",
        body.clone(),
        "running",
    )
    .await
    .assert_problem(409, "idempotency_key_in_flight");
    assert_eq!(count(&app, "Flight").await, 0);
    // A claim whose request died long ago is taken over.
    let old = t - chrono::Duration::minutes(10);
    app.db
        .store
        .claim_idempotency_key(
            &scope,
            "crashed",
            "a-dead-request",
            &hash,
            old,
            old - chrono::Duration::minutes(5),
        )
        .await
        .unwrap();
    let a = post(&app, &app.key, "/api/organizations", body, "crashed").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

async fn bad_keys_are_refused(app: App) {
    for key in ["has space", &"x".repeat(256), "tab\there"] {
        let res = app
            .http
            .post(format!("{}/api/organizations", app.base))
            .bearer_auth(&app.key)
            .header("idempotency-key", key)
            .json(&json!({"name": "Nope", "countryCode": "US"}))
            .send()
            .await;
        // A header value the client library refuses to send proves nothing; the rest must be 422.
        if let Ok(r) = res {
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{key:?}");
        }
    }
    assert_eq!(count(&app, "Nope").await, 0);
}

/// A malformed key is judged only after the credential and the route's platform gate: without
/// a credential, or with one that may not call the route, nothing about the key is told.
async fn who_calls_comes_before_the_key(app: App) {
    let (org, owner_session) = app.owned_org("keyless@idem.test").await;
    let bad = [("idempotency-key", "has space")];
    let credit = format!("/api/admin/organizations/{org}/credit");
    let body = json!({"amount": 100, "reason": "top-up"});
    for (token, status, code) in [
        (None, 401, "missing_credentials"),
        (Some("obk_wrong"), 401, "invalid_credentials"),
        (Some(owner_session.as_str()), 403, "forbidden"),
        (Some(app.key.as_str()), 422, "validation_failed"),
    ] {
        let a = app
            .call(Method::POST, &credit, token, Some(&body), &bad)
            .await;
        a.assert_problem(status, code);
    }
    // A route that takes no credential judges the key at once.
    let a = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(&json!({"email": "keyless@idem.test", "password": "whatever-it-is"})),
            &bad,
        )
        .await;
    a.assert_problem(422, "validation_failed");
    let wallet = app.get(&format!("/api/organizations/{org}/wallet")).await;
    assert_eq!(
        wallet.body["balance"], 0,
        "nothing was credited: {}",
        wallet.text
    );
}
