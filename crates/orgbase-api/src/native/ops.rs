//! Operations: health, readiness, metrics, and the API's own description.
use std::sync::{Arc, LazyLock};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
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

/// Where Swagger UI finds the document: the one `/openapi.json` serves.
static DOCS_CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> =
    LazyLock::new(|| Arc::new(utoipa_swagger_ui::Config::from("/openapi.json")));

/// `/docs`: to `/docs/`, where the page's relative links (its script and styles) resolve.
pub async fn docs() -> Redirect {
    Redirect::permanent("/docs/")
}

/// A browsable page for the OpenAPI document: Swagger UI, its every file served from the binary
/// (the crate's `vendored` Swagger UI), so the page works where no CDN can be reached.
pub async fn docs_file(file: Option<Path<String>>) -> Response {
    let file = file.map(|Path(f)| f).unwrap_or_default();
    match utoipa_swagger_ui::serve(&file, DOCS_CONFIG.clone()) {
        Ok(Some(f)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, f.content_type),
                (header::CACHE_CONTROL, "public, max-age=3600".to_owned()),
            ],
            f.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => ApiError::NotFound.into_response(),
        Err(e) => ApiError::Internal(format!("the docs page: {e}")).into_response(),
    }
}
