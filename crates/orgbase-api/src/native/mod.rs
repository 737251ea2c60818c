//! The native API under `/api/…`.
pub mod access;
pub mod api_keys;
pub mod audit;
pub mod avatars;
pub mod billing;
pub mod invitations;
pub mod members;
pub mod ops;
pub mod org_keys;
pub mod organizations;
pub mod plans;
pub mod roles;
pub mod sessions;
pub mod views;
pub mod wallet;
pub mod webhooks;
pub mod workspaces;

/// An answer that carries a secret shown once: marked so that an Idempotency-Key does not keep
/// it (see `crate::idempotency`).
pub fn secret_answer(
    status: axum::http::StatusCode,
    body: impl axum::response::IntoResponse,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        status,
        [(
            axum::http::HeaderName::from_static(crate::idempotency::SECRET_ANSWER),
            "1",
        )],
        body,
    )
        .into_response()
}
