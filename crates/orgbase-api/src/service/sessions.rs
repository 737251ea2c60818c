//! Sessions: starting one for a person.
use orgbase_domain::people::SESSION_PREFIX;
use orgbase_domain::{now, NewSecret, Session};
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

/// A session just started: its token is shown this once.
pub struct Started {
    pub token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Starts a session for a person; answers its token, shown once.
pub async fn start_session(
    state: &AppState,
    user: orgbase_domain::UserId,
) -> Result<Started, ApiError> {
    let secret = NewSecret::generate(SESSION_PREFIX);
    let created = now();
    let session = Session {
        id: Uuid::now_v7(),
        user_id: user,
        hash: secret.hash.clone(),
        created_at: created,
        expires_at: created + state.config.session_ttl,
        revoked_at: None,
    };
    state.store.insert_session(&session).await?;
    Ok(Started {
        token: secret.plain,
        expires_at: session.expires_at,
    })
}
