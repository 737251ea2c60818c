//! Operations: health, readiness, metrics, and the API's own description.
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "Operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers (and, on SQLite, takes writes). 503 `database_unavailable`
/// with `Retry-After` when it does not.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "Operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "The database does not answer", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let database = crate::service::readiness(&state).await?;
    Ok(Json(Readiness {
        status: "ready",
        database,
    }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "Operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render() + &state.webhooks.worker.stats().render();
    text.push_str(&format!(
        "# HELP orgbase_rate_limit_failed_open_total Requests let through because the rate \
         limiter's Redis could not be asked.\n\
         # TYPE orgbase_rate_limit_failed_open_total counter\n\
         orgbase_rate_limit_failed_open_total {}\n",
        state.limiter.failed_open_total()
    ));
    // Left out while the database cannot be reached: the other figures still answer.
    if let Ok(n) = crate::service::webhooks::pending(&state).await {
        text.push_str(
            "# HELP orgbase_webhook_messages_pending Messages waiting for delivery, of every node.\n\
             # TYPE orgbase_webhook_messages_pending gauge\n",
        );
        text.push_str(&format!("orgbase_webhook_messages_pending {n}\n"));
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.as_ref().clone(),
    )
        .into_response()
}

/// A browsable page for the OpenAPI document. The page is a few lines, so it is written here
/// rather than pulled in as a crate (the Swagger UI crate downloads its assets at build time,
/// which a closed build machine cannot do); the browser loads the viewer's script itself.
pub async fn docs() -> Html<&'static str> {
    Html(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Orgbase API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
  <script id="api-reference" data-url="/openapi.json"></script>
  <script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
  <noscript>The API description is at <a href="/openapi.json">/openapi.json</a>.</noscript>
</body>
</html>"#,
    )
}
