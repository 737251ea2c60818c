use crate::App;
use orgbase_api::ApiConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn malformed_json_is_400(app: App) {
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/json"),
            b"{\"name\": ".to_vec(),
        )
        .await;
    a.assert_problem(400, "malformed_json");
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/json"),
            Vec::new(),
        )
        .await;
    a.assert_problem(400, "malformed_json");
}

async fn wrong_or_missing_content_type_is_415(app: App) {
    let body = br#"{"name":"A","countryCode":"US"}"#.to_vec();
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("text/plain"),
            body.clone(),
        )
        .await;
    a.assert_problem(415, "unsupported_media_type");
    let a = app
        .raw(Method::POST, "/api/organizations", None, body.clone())
        .await;
    a.assert_problem(415, "unsupported_media_type");
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/json; charset=utf-8"),
            body.clone(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/merge-patch+json"),
            br#"{"name":"B","countryCode":"US"}"#.to_vec(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

async fn a_body_that_is_not_an_object_is_422(app: App) {
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/json"),
            b"[1,2]".to_vec(),
        )
        .await;
    a.assert_problem(422, "invalid_body");
    let a = app
        .raw(
            Method::POST,
            "/api/organizations",
            Some("application/json"),
            b"\"x\"".to_vec(),
        )
        .await;
    a.assert_problem(422, "invalid_body");
}

async fn oversized_bodies_are_413_and_change_nothing(db: orgbase_store::testing::TestDb) {
    let app = App::start_with(db, ApiConfig { body_limit: 2048 }).await;
    let big = json!({"name": "A", "countryCode": "US", "metadata": {"k": "x".repeat(4000)}});
    let a = app.post("/api/organizations", big).await;
    a.assert_problem(413, "payload_too_large");
    assert_eq!(app.get("/api/organizations").await.body["data"], json!([]));
}

async fn unknown_routes_and_methods_are_problems(app: App) {
    let a = app.get("/api/nothing-here").await;
    a.assert_problem(404, "not_found");
    let a = app
        .call(
            Method::PUT,
            "/api/organizations",
            Some(&app.key),
            Some(&json!({})),
            &[],
        )
        .await;
    a.assert_problem(405, "method_not_allowed");
}

async fn no_permissive_cors(app: App) {
    let a = app
        .call(
            Method::GET,
            "/api/organizations",
            Some(&app.key),
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.header("access-control-allow-origin").is_none());
    let pre = app
        .call(
            Method::OPTIONS,
            "/api/organizations",
            None,
            None,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert!(pre.header("access-control-allow-origin").is_none());
}

async fn every_answer_carries_nosniff_and_a_request_id(app: App) {
    for a in [
        app.get("/healthz").await,
        app.get("/api/organizations").await,
        app.call(Method::GET, "/api/organizations", None, None, &[])
            .await,
        app.get("/nowhere").await,
    ] {
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
        assert!(a.header("x-request-id").is_some_and(|v| v.len() >= 32));
    }
    // A caller's own request id is kept, so that it can follow its request through our logs.
    let a = app
        .call(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("x-request-id", "trace-me-123")],
        )
        .await;
    assert_eq!(a.header("x-request-id"), Some("trace-me-123"));
}

async fn oversized(app: App) {
    // The default limit (1 MiB) applies without configuration.
    let big = json!({"name": "A", "countryCode": "US", "metadata": {"k": "x".repeat(1_100_000)}});
    app.post("/api/organizations", big)
        .await
        .assert_problem(413, "payload_too_large");
}

crate::api_tests!(
    malformed_json_is_400,
    wrong_or_missing_content_type_is_415,
    a_body_that_is_not_an_object_is_422,
    unknown_routes_and_methods_are_problems,
    no_permissive_cors,
    every_answer_carries_nosniff_and_a_request_id,
    oversized,
);

mod limit {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::oversized_bodies_are_413_and_change_nothing(orgbase_store::testing::sqlite().await)
            .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(db) = orgbase_store::testing::postgres().await else {
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return;
        };
        super::oversized_bodies_are_413_and_change_nothing(db).await;
    }
}
