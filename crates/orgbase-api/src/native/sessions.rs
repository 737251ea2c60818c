//! `/api/auth/…`: a person logs in with e-mail and password, gets a session token, and logs out.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use orgbase_domain::Email;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{Field, JsonBody};
use crate::native::views::rfc3339;
use crate::service;
use crate::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct LoginInput {
    #[schema(required = true, value_type = String, max_length = 254, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "ann@example.com")]
    pub email: Field<String>,
    #[schema(required = true, value_type = String, min_length = 1, max_length = 128, example = "correct horse battery staple")]
    pub password: Field<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginAnswer {
    /// The session token (`obs_…`): send it as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
    pub expires_at: String,
    pub user: UserView,
}

/// Log in with e-mail and password.
///
/// A wrong e-mail and a wrong password answer the same 401 in about the same time. Failed logins
/// are throttled per account and per client address (429 with `Retry-After`).
#[utoipa::path(
    post, path = "/api/auth/login", operation_id = "login", tag = "People",
    request_body = LoginInput,
    responses(
        (status = 200, description = "Logged in; `token` is shown this once", body = LoginAnswer),
        (status = 401, description = "Wrong e-mail or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    JsonBody(body, mut errors): JsonBody<LoginInput>,
) -> Result<axum::response::Response, ApiError> {
    let email = body.email.required("email", &mut errors);
    let password = body.password.required("password", &mut errors);
    if let Some(p) = &password {
        if p.is_empty() || p.chars().count() > orgbase_domain::people::PASSWORD_MAX {
            errors.add("password", "invalid_length", "must be 1–128 characters");
        }
    }
    errors.clone().into_result()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(errors.into());
    };
    // A malformed address cannot belong to anyone: the same answer as an unknown one.
    let email = Email::parse("email", &email).ok();
    // The client's address, behind trusted proxies too (absent when the app is not served over
    // TCP: in-process tests).
    let address = crate::context::origin().client_address;
    let (user, session) =
        service::sessions::login(&state, email, password, address.as_deref()).await?;
    Ok(crate::native::secret_answer(
        StatusCode::OK,
        Json(LoginAnswer {
            token: session.token,
            expires_at: rfc3339(&session.expires_at),
            user: UserView {
                id: user.id.0,
                email: user.email.as_str().to_owned(),
                name: user.name,
            },
        }),
    ))
}

/// Log out: the session token stops working at once.
#[utoipa::path(
    post, path = "/api/auth/logout", operation_id = "logout", tag = "People",
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "No valid session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a session (a key)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn logout(State(state): State<AppState>, who: Principal) -> Result<StatusCode, ApiError> {
    service::sessions::logout(&state, &who).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeAnswer {
    pub user: UserView,
    pub session_expires_at: String,
}

/// Who the session belongs to.
#[utoipa::path(
    get, path = "/api/auth/me", operation_id = "getMe", tag = "People",
    responses(
        (status = 200, description = "The person behind the session", body = MeAnswer),
        (status = 401, description = "No valid session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a session (a key)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn me(State(state): State<AppState>, who: Principal) -> Result<Json<MeAnswer>, ApiError> {
    let Principal::User {
        user_id,
        session_expires_at,
        ..
    } = who
    else {
        return Err(ApiError::Forbidden(
            "this answers for a person's session, not for a key".into(),
        ));
    };
    let user = service::sessions::user(&state, user_id).await?;
    Ok(Json(MeAnswer {
        user: UserView {
            id: user.id.0,
            email: user.email.as_str().to_owned(),
            name: user.name,
        },
        session_expires_at: rfc3339(&session_expires_at),
    }))
}
