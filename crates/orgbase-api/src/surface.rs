//! Which API a request belongs to: the native one, or one of the two compatible ones. Layers that
//! answer before a handler does (the idempotency layer, the request deadline) answer in the
//! surface's own shape.
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The route whose credential travels in the query string.
pub const QUERY_TOKEN_ROUTE: &str = "/api/v2/updateOrganization";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// Problem details.
    Native,
    /// `{success: false, message}`, as the partner settings document answers.
    PartnerSettings,
    /// `{data: null, errors: [{error, message}]}`, as the properties document answers.
    Properties,
}

impl Surface {
    pub fn of(path: &str) -> Self {
        if path == QUERY_TOKEN_ROUTE {
            Surface::PartnerSettings
        } else if path.starts_with("/v1/orgs/") {
            Surface::Properties
        } else {
            Surface::Native
        }
    }
}

/// An error in the surface's own shape.
pub fn error(surface: Surface, e: ApiError) -> Response {
    match surface {
        Surface::Native => e.into_response(),
        Surface::PartnerSettings => crate::compat::partner_settings::refuse_error(e),
        Surface::Properties => crate::compat::properties::one_error(e),
    }
}

/// Answers a request that is not done within `deadline` with 503 `request_timeout` (and
/// `Retry-After`), in its surface's shape. The handler's future is dropped; what it had handed
/// to the store finishes on its own (writes run detached), and a keyed POST's work runs to its
/// end on a task of its own, which settles its key.
pub async fn deadline(
    axum::extract::State(deadline): axum::extract::State<std::time::Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let surface = Surface::of(req.uri().path());
    if req.uri().path().ends_with("/upload-avatar") {
        // An upload's time is mostly the client sending its body (up to the upload limit, on
        // whatever link it has): a deadline would cut slow links off. Its own work is bounded by
        // the image limits and the database's.
        return next.run(req).await;
    }
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(res) => res,
        Err(_) => error(surface, ApiError::DeadlineExceeded),
    }
}
