//! The native API's error: RFC 9457 problem details with a stable `code`, the request id, and for
//! validation every failing field at once. A 500 says nothing about its cause; the log does.
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use orgbase_domain::{FieldError, ValidationErrors};
use orgbase_service::ServiceError;
use orgbase_store::StoreError;
use serde::Serialize;

use crate::context;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(ValidationErrors),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("invalid body: {0}")]
    InvalidBody(String),
    /// 400 for a body that cannot be read as its declared type (multipart, say), or a request
    /// refused as a whole (a webhook with a bad signature).
    #[error("bad request: {detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 415 for a body of a type this route does not take (the detail says which it takes).
    #[error("unsupported media type: {0}")]
    Unsupported(String),
    #[error("payload too large")]
    PayloadTooLarge { limit: usize },
    #[error("unauthorized: {code}")]
    Unauthorized {
        code: &'static str,
        detail: &'static str,
    },
    #[error("forbidden")]
    Forbidden(String),
    /// 403 `organization_suspended`: the organization's own callers may read, not change.
    #[error("organization suspended")]
    Suspended(String),
    /// 402: the wallet does not cover the charge.
    #[error("payment required: {code}")]
    PaymentRequired { code: &'static str, detail: String },
    /// Too many attempts: try again after `retry_after` seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after: u64, detail: String },
    /// Over the rate limit of the credential's organization (or of the platform key): try
    /// again after `retry_after` seconds.
    #[error("rate limited")]
    RateLimited { retry_after: u64, detail: String },
    /// The resource existed but is used up (an expired or revoked invitation).
    #[error("gone: {code}")]
    Gone { code: &'static str, detail: String },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {code}")]
    Conflict { code: &'static str, detail: String },
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("service unavailable")]
    Unavailable,
    /// 503: the database cannot be reached or written right now (refused, lost, timed out,
    /// full). Nothing was changed, or (a COMMIT's answer lost) the Idempotency-Key layer knows.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
    /// 503: the request did not finish within the deadline (`ORGBASE_REQUEST_TIMEOUT_MS`).
    #[error("request deadline exceeded")]
    DeadlineExceeded,
    /// A service we depend on (the mail server, a billing provider) failed.
    #[error("upstream failure: {code}")]
    Upstream { code: &'static str, detail: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a 503 asks clients to wait before trying again, in seconds.
pub const RETRY_AFTER_SECS: &str = "1";

/// Marks an answer given because the database was unavailable (for the metrics layer).
#[derive(Debug, Clone, Copy)]
pub struct DatabaseUnavailable;

/// Marks an answer given because the request's deadline passed (for the metrics layer).
#[derive(Debug, Clone, Copy)]
pub struct DeadlineExceeded;

/// The problem document (RFC 9457) every native error is answered with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code: `validation_failed`, `not_found`, `unauthorized`, …
    pub code: String,
    /// The request id, also in the `x-request-id` header: quote it when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Every failing field, for `validation_failed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::Validation(ValidationErrors::single(field, code, message))
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        use ApiError::*;
        match self {
            Validation(e) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                format!("{} field(s) failed validation: {e}", e.0.len()),
            ),
            MalformedJson(m) => (
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {m}"),
            ),
            InvalidBody(m) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", m.clone()),
            BadRequest { code, detail } => (StatusCode::BAD_REQUEST, code, detail.clone()),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`".into(),
            ),
            Unsupported(d) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                d.clone(),
            ),
            PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than the limit of {limit} bytes"),
            ),
            Unauthorized { code, detail } => (StatusCode::UNAUTHORIZED, code, (*detail).into()),
            Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", d.clone()),
            Suspended(d) => (StatusCode::FORBIDDEN, "organization_suspended", d.clone()),
            PaymentRequired { code, detail } => {
                (StatusCode::PAYMENT_REQUIRED, code, detail.clone())
            }
            TooManyRequests { detail, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                detail.clone(),
            ),
            RateLimited { detail, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                detail.clone(),
            ),
            Gone { code, detail } => (StatusCode::GONE, code, detail.clone()),
            NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such resource".into(),
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this resource does not answer that method".into(),
            ),
            Conflict { code, detail } => (StatusCode::CONFLICT, code, detail.clone()),
            PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "the resource has changed since the version given in If-Match".into(),
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service cannot answer right now; try again".into(),
            ),
            DatabaseUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database cannot be reached right now; try again (with the same \
                 Idempotency-Key, for a POST)"
                    .into(),
            ),
            DeadlineExceeded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                "the request did not finish in time; try again (with the same \
                 Idempotency-Key, for a POST)"
                    .into(),
            ),
            Upstream { code, detail } => (StatusCode::BAD_GATEWAY, code, detail.clone()),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "something went wrong on our side; quote the request id when reporting it".into(),
            ),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        Self::Validation(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

/// The one mapping of the services' errors onto the API's.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Validation(v) => Self::Validation(v),
            ServiceError::Unauthorized { code, detail } => Self::Unauthorized { code, detail },
            ServiceError::Forbidden(d) => Self::Forbidden(d),
            ServiceError::Suspended(d) => Self::Suspended(d),
            ServiceError::PaymentRequired { code, detail } => {
                Self::PaymentRequired { code, detail }
            }
            ServiceError::TooManyRequests {
                retry_after,
                detail,
            } => Self::TooManyRequests {
                retry_after,
                detail,
            },
            ServiceError::Gone { code, detail } => Self::Gone { code, detail },
            ServiceError::NotFound => Self::NotFound,
            ServiceError::Conflict { code, detail } => Self::Conflict { code, detail },
            ServiceError::PreconditionFailed => Self::PreconditionFailed,
            ServiceError::Unavailable => Self::Unavailable,
            ServiceError::DatabaseUnavailable(c) => Self::DatabaseUnavailable(c),
            ServiceError::Upstream { code, detail } => Self::Upstream { code, detail },
            ServiceError::Internal(c) => Self::Internal(c),
        }
    }
}

pub fn problem_response(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Vec<FieldError>,
) -> Response {
    let problem = Problem {
        kind: format!("urn:orgbase:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
        request_id: context::request_id(),
        errors,
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

impl ApiError {
    /// This error's answer with a body of another shape (a compatible surface's own), keeping
    /// what every error answer carries besides the body: its log line and its headers.
    pub fn into_response_shaped(
        self,
        body: impl FnOnce(StatusCode, &str, String) -> Response,
    ) -> Response {
        let (status, code, detail) = self.parts();
        self.log();
        let mut res = body(status, code, detail);
        self.add_headers(status, &mut res);
        res
    }

    fn log(&self) {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
            }
            ApiError::Unavailable => tracing::warn!("unavailable"),
            ApiError::DatabaseUnavailable(cause) => {
                tracing::warn!(cause = %cause, "database unavailable")
            }
            ApiError::DeadlineExceeded => tracing::warn!("request deadline exceeded"),
            _ => {}
        }
    }

    fn add_headers(&self, status: StatusCode, res: &mut Response) {
        if let ApiError::TooManyRequests { retry_after, .. }
        | ApiError::RateLimited { retry_after, .. } = self
        {
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Load balancers and clients retry a 503 after this many seconds.
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if let ApiError::DatabaseUnavailable(_) = self {
            // Counted by the metrics layer.
            res.extensions_mut().insert(DatabaseUnavailable);
        }
        if let ApiError::DeadlineExceeded = self {
            res.extensions_mut().insert(DeadlineExceeded);
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = self.parts();
        self.log();
        let errors = match &self {
            ApiError::Validation(e) => e.0.clone(),
            _ => Vec::new(),
        };
        let mut res = problem_response(status, code, detail, errors);
        self.add_headers(status, &mut res);
        res
    }
}
