//! The admin console: Orgbase in a browser at `/console`, rendered on the server (askama), with
//! plain forms and no script. Every action calls the same service functions as the API, so the
//! console adds no rule of its own, and its changes are audited with `surface: console` (the
//! request context's surface, set from the path by `orgbase_api::context`).
//!
//! Signing in keeps a credential in an `HttpOnly` cookie: an operator's platform key, or the
//! session a person's e-mail and password start (through the API's login and its throttle).
//! Every form carries a CSRF token checked against a cookie of its own ([`session`]).
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use orgbase_api::service::ServiceError;
use orgbase_api::AppState;

mod invitations;
mod invite;
mod keys;
mod members;
mod organizations;
mod plans;
mod session;
mod sign_in;
mod views;
mod wallet;
mod webhooks;

pub use session::{CREDENTIAL_COOKIE, CSRF_COOKIE, CSRF_FIELD};

/// The console's routes, to be served behind the API's layers (`orgbase_api::app_with`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/sign-in", get(sign_in::page))
        .route("/console/sign-in/key", post(sign_in::with_key))
        .route("/console/sign-in/password", post(sign_in::with_password))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/organizations", get(organizations::list))
        .route("/console/organizations/{id}", get(organizations::show))
        .route(
            "/console/organizations/{id}/status",
            post(organizations::set_status),
        )
        .route("/console/organizations/{id}/credit", post(wallet::credit))
        .route(
            "/console/organizations/{id}/invite",
            post(invitations::invite),
        )
        .route(
            "/console/organizations/{id}/invitations/{invitation}/{action}",
            post(invitations::act),
        )
        .route(
            "/console/organizations/{id}/members/{member}/{action}",
            post(members::act),
        )
        .route(
            "/console/organizations/{id}/life/{action}",
            post(organizations::life),
        )
        .route("/console/organizations/{id}/keys", post(keys::create))
        .route("/console/organizations/{id}/owner", post(members::transfer))
        .route(
            "/console/organizations/{id}/plan/{action}",
            post(plans::change),
        )
        .route(
            "/console/organizations/{id}/keys/{key}/revoke",
            post(keys::revoke),
        )
        .route(
            "/console/webhooks",
            get(webhooks::platform_list).post(webhooks::platform_create),
        )
        .route(
            "/console/organizations/{id}/webhooks",
            post(webhooks::create),
        )
        .route("/console/webhooks/{endpoint}", get(webhooks::endpoint))
        .route(
            "/console/organizations/{id}/webhooks/{endpoint}",
            get(webhooks::endpoint),
        )
        .route("/console/webhooks/{endpoint}/{action}", post(webhooks::act))
        .route(
            "/console/organizations/{id}/webhooks/{endpoint}/{action}",
            post(webhooks::act),
        )
        .route(
            "/console/webhooks/{endpoint}/messages/{message}",
            get(webhooks::message),
        )
        .route(
            "/console/organizations/{id}/webhooks/{endpoint}/messages/{message}",
            get(webhooks::message),
        )
        .route(
            "/console/webhooks/{endpoint}/messages/{message}/replay",
            post(webhooks::replay),
        )
        .route(
            "/console/organizations/{id}/webhooks/{endpoint}/messages/{message}/replay",
            post(webhooks::replay),
        )
        .route("/invite/{token}", get(invite::link))
        .route(
            "/console/invite/{token}",
            get(invite::page).post(invite::accept),
        )
}

/// The organizations, or the sign-in page for a visitor.
async fn home(who: Option<session::Console>) -> Redirect {
    match who {
        Some(_) => Redirect::to("/console/organizations"),
        None => Redirect::to("/console/sign-in"),
    }
}

/// What a console page answers when it cannot show what was asked: a page saying why, with the
/// status the API would have answered.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl PageError {
    pub(crate) fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
        }
    }
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        let (status, title, detail) = match e {
            ServiceError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or nothing you may see.".to_owned(),
            ),
            ServiceError::Forbidden(d) | ServiceError::Suspended(d) => {
                (StatusCode::FORBIDDEN, "Not allowed", d)
            }
            ServiceError::Unauthorized { detail, .. } => {
                (StatusCode::UNAUTHORIZED, "Signed out", detail.to_string())
            }
            ServiceError::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not valid",
                errors
                    .0
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ServiceError::Conflict { detail, .. } => (StatusCode::CONFLICT, "Not done", detail),
            ServiceError::PaymentRequired { detail, .. } => {
                (StatusCode::PAYMENT_REQUIRED, "Not paid for", detail)
            }
            ServiceError::Upstream { detail, .. } => {
                (StatusCode::BAD_GATEWAY, "Refused elsewhere", detail)
            }
            ServiceError::Gone { detail, .. } => (StatusCode::GONE, "No longer valid", detail),
            ServiceError::TooManyRequests { detail, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "Too many attempts", detail)
            }
            ServiceError::DatabaseUnavailable(_) | ServiceError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The database cannot be reached; try again in a moment.".to_owned(),
            ),
            other => {
                tracing::error!(error = ?other, "console page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The request failed; the server's log says why.".to_owned(),
                )
            }
        };
        Self::new(status, title, detail)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = views::ErrorPage {
            title: self.title,
            detail: &self.detail,
            status: self.status.as_u16(),
        };
        (self.status, render(&page)).into_response()
    }
}

/// A rendered template, or a 500 naming the failure in the log.
pub(crate) fn render<T: askama::Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// [`render`] for a page showing a secret once (a new key's, an endpoint's signing secret): no
/// cache may keep it.
pub(crate) fn render_secret<T: askama::Template>(t: &T) -> Response {
    let mut answer = render(t);
    answer.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    answer
}
