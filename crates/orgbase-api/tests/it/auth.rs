use crate::App;
use reqwest::Method;
use serde_json::json;

/// Every protected route, with a body where it takes one.
fn routes(org: &str) -> Vec<(Method, String, Option<serde_json::Value>)> {
    vec![
        (
            Method::POST,
            "/api/organizations".into(),
            Some(json!({"name": "A", "countryCode": "US"})),
        ),
        (Method::GET, "/api/organizations".into(), None),
        (Method::GET, format!("/api/organizations/{org}"), None),
        (
            Method::PATCH,
            format!("/api/organizations/{org}"),
            Some(json!({"name": "B"})),
        ),
        (Method::DELETE, format!("/api/organizations/{org}"), None),
        (
            Method::POST,
            format!("/api/admin/organizations/{org}/restore"),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/api/admin/api-keys".into(),
            Some(json!({"name": "k", "kind": "platform"})),
        ),
        (Method::GET, "/api/admin/api-keys".into(), None),
        (
            Method::DELETE,
            "/api/admin/api-keys/0190a3c1-0000-7000-8000-000000000000".into(),
            None,
        ),
    ]
}

async fn every_route_refuses_a_missing_or_unknown_credential(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let id = o["id"].as_str().unwrap();
    for (method, path, body) in routes(id) {
        let a = app
            .call(method.clone(), &path, None, body.as_ref(), &[])
            .await;
        a.assert_problem(401, "missing_credentials");
        assert_eq!(a.header("www-authenticate"), Some("Bearer"));
        let a = app
            .call(
                method.clone(),
                &path,
                Some("obk_not-a-real-key"),
                body.as_ref(),
                &[],
            )
            .await;
        a.assert_problem(401, "invalid_credentials");
        let a = app
            .call(
                method.clone(),
                &path,
                None,
                body.as_ref(),
                &[("authorization", &format!("Basic {}", app.key))],
            )
            .await;
        a.assert_problem(401, "invalid_credentials");
        let a = app
            .call(
                method.clone(),
                &path,
                None,
                body.as_ref(),
                &[("authorization", "Bearer")],
            )
            .await;
        a.assert_problem(401, "invalid_credentials");
    }
    // None of it changed anything.
    let after = app.get(&format!("/api/organizations/{id}")).await;
    assert_eq!(after.body, o);
    assert_eq!(
        app.get("/api/organizations").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn a_revoked_key_is_refused_at_once(app: App) {
    let made = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "temp", "kind": "platform"}),
        )
        .await;
    let temp = made.body["key"].as_str().unwrap().to_owned();
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.call(Method::GET, "/api/organizations", Some(&temp), None, &[])
            .await
            .status,
        200
    );
    assert_eq!(
        app.delete(&format!("/api/admin/api-keys/{id}"))
            .await
            .status,
        204
    );
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    for (method, path, body) in routes(o["id"].as_str().unwrap()) {
        let a = app
            .call(method, &path, Some(&temp), body.as_ref(), &[])
            .await;
        a.assert_problem(401, "revoked_credentials");
    }
}

async fn the_bearer_scheme_is_case_insensitive(app: App) {
    let a = app
        .call(
            Method::GET,
            "/api/organizations",
            None,
            None,
            &[("authorization", &format!("bearer {}", app.key))],
        )
        .await;
    assert_eq!(a.status, 200);
}

crate::api_tests!(
    every_route_refuses_a_missing_or_unknown_credential,
    a_revoked_key_is_refused_at_once,
    the_bearer_scheme_is_case_insensitive,
);
