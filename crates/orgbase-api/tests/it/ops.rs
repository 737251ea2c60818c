use crate::App;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn health_and_readiness(app: App) {
    let h = app.call(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body, json!({"status": "ok"}));
    let r = app.call(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ready");
    assert_eq!(r.body["database"], app.db.store.backend());
}

async fn metrics_count_requests_by_route_template(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    app.get(&format!("/api/organizations/{}", o["id"].as_str().unwrap()))
        .await;
    app.get("/api/organizations/not-there").await;
    let m = app.call(Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(m.status, StatusCode::OK);
    let t = &m.text;
    assert!(t.contains(r#"orgbase_http_requests_total{method="POST",route="/api/organizations",status="201"} 1"#), "{t}");
    assert!(t.contains(r#"orgbase_http_requests_total{method="GET",route="/api/organizations/{organizationId}",status="200"} 1"#), "{t}");
    assert!(t.contains(r#"orgbase_http_requests_total{method="GET",route="/api/organizations/{organizationId}",status="404"} 1"#), "{t}");
    assert!(
        t.contains("orgbase_http_request_duration_seconds_bucket{"),
        "{t}"
    );
    assert!(!t.contains(o["id"].as_str().unwrap()), "no ids in labels");
}

async fn openapi_and_docs_are_served(app: App) {
    let o = app
        .call(Method::GET, "/openapi.json", None, None, &[])
        .await;
    assert_eq!(o.status, StatusCode::OK);
    assert!(o.body["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/organizations",
        "/api/organizations/{organizationId}",
        "/api/admin/api-keys",
    ] {
        assert!(o.body["paths"].get(path).is_some(), "{path} missing");
    }
    // The page is Swagger UI, every file of it from the binary: nothing from another host.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let d = no_redirects
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(d.headers()["location"], "/docs/");
    let page = app.call(Method::GET, "/docs/", None, None, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text.contains("swagger-ui-bundle.js"), "{}", page.text);
    for external in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(!page.text.contains(external), "{external} in {}", page.text);
    }
    let init = app
        .call(Method::GET, "/docs/swagger-initializer.js", None, None, &[])
        .await;
    assert_eq!(init.status, StatusCode::OK);
    assert!(init.text.contains("\"/openapi.json\""), "{}", init.text);
    for (file, kind) in [
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui.css", "text/css"),
    ] {
        let f = app
            .call(Method::GET, &format!("/docs/{file}"), None, None, &[])
            .await;
        assert_eq!(f.status, StatusCode::OK, "{file}");
        assert!(f.header("content-type").unwrap().contains(kind), "{file}");
        assert!(f.text.len() > 10_000, "{file} is {} bytes", f.text.len());
        // A static file keeps its own caching; the default no-store is for answers.
        assert_eq!(f.header("cache-control"), Some("public, max-age=3600"));
    }
    let missing = app
        .call(Method::GET, "/docs/nothing.js", None, None, &[])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

crate::api_tests!(
    health_and_readiness,
    metrics_count_requests_by_route_template,
    openapi_and_docs_are_served
);

/// The committed `openapi.json` is the one the code generates. To refresh it:
/// `cargo run -p orgbase -- openapi > openapi.json`.
#[test]
fn committed_openapi_is_fresh() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = orgbase_api::openapi_json();
    assert!(
        committed == generated,
        "openapi.json is stale: run `cargo run -p orgbase -- openapi > openapi.json`"
    );
}
