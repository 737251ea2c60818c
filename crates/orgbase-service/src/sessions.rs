//! Sessions: starting one for a person.
use orgbase_domain::people::SESSION_PREFIX;
use orgbase_domain::{
    now, Actor, ActorType, AuditEntry, Email, NewSecret, Session, Target, User, UserId,
};
use uuid::Uuid;

use super::audit;
use crate::access::Principal;
use crate::limits;
use crate::{ServiceError, Services};

/// A session just started: its token is shown this once.
pub struct Started {
    pub token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Starts a session for a person; answers its token, shown once. `entry` is the audit entry of
/// a sign-in (none when the session is part of another change: accepting an invitation).
pub async fn start_session(
    state: &Services,
    user: orgbase_domain::UserId,
    entry: Option<AuditEntry>,
) -> Result<Started, ServiceError> {
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
    let entries = entry
        .map(|e| {
            let mut e = e;
            e.target = Target::new("session", session.id);
            e
        })
        .into_iter()
        .collect();
    audit::record(entries, state.store.insert_session(&session)).await?;
    Ok(Started {
        token: secret.plain,
        expires_at: session.expires_at,
    })
}

const WRONG: ServiceError = ServiceError::Unauthorized {
    code: "invalid_login",
    detail: "the e-mail or the password is wrong",
};

fn throttled(wait: std::time::Duration) -> ServiceError {
    ServiceError::TooManyRequests {
        retry_after: orgbase_limits::whole_seconds(wait),
        detail: "too many failed logins; wait before trying again".into(),
    }
}

/// Logs a person in with e-mail and password: a new session, or 401 whatever was wrong (an
/// unknown e-mail costs the same password check as a known one). Failed logins are throttled
/// per account and per client address (`address`, when known), on the rate limiter: with Redis,
/// across every node.
///
/// Per account, an attempt counts as a failure from before the (slow) password check until it
/// succeeds, so a burst of parallel guesses cannot all slip past the limit while being checked
/// (more than 5 logins in flight on one account are refused, right or wrong). Per address, only
/// failures count: many people may log in at once from one network.
pub async fn login(
    state: &Services,
    email: Option<Email>,
    password: String,
    address: Option<&str>,
) -> Result<(User, Started), ServiceError> {
    let account = limits::login_account_key(email.as_ref().map_or("", |e| e.as_str()));
    let by_address = address.map(limits::login_address_key);
    if let Some(a) = &by_address {
        let d = state.limiter.peek(a, limits::login_address_quota()).await;
        if let Some(wait) = d.retry_after.filter(|_| !d.allowed) {
            return Err(throttled(wait));
        }
    }
    let d = state
        .limiter
        .take(&account, limits::login_account_quota())
        .await;
    if let Some(wait) = d.retry_after.filter(|_| !d.allowed) {
        return Err(throttled(wait));
    }
    let user = match &email {
        Some(e) => state.store.find_user_by_email(e).await?,
        None => None,
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = state.passwords.verify(password, stored).await?;
    let Some(user) = user.filter(|_| ok) else {
        // The account's attempt stays counted as a failure; the address gets one too.
        if let Some(a) = &by_address {
            state.limiter.take(a, limits::login_address_quota()).await;
        }
        tracing::info!("login failed");
        return Err(WRONG);
    };
    state.limiter.forget(&account).await;
    let entry = audit::entry(
        Actor::new(
            ActorType::User,
            user.id,
            Some(user.email.as_str().to_owned()),
        ),
        None,
        "session.created",
        Target::new("session", ""),
    );
    let session = start_session(state, user.id, Some(entry)).await?;
    tracing::info!(user_id = %user.id, "logged in");
    Ok((user, session))
}

/// Ends the caller's session: its token stops working at once. A key is revoked instead.
pub async fn logout(state: &Services, who: &Principal) -> Result<(), ServiceError> {
    let Principal::User { session_id, .. } = who else {
        return Err(ServiceError::Forbidden(
            "logout ends a session; a key is revoked instead".into(),
        ));
    };
    let at = now();
    let entry = audit::entry(
        who.audit_actor(),
        None,
        "session.revoked",
        Target::new("session", session_id),
    )
    .field("revokedAt", serde_json::Value::Null, serde_json::json!(at));
    Ok(audit::record(vec![entry], state.store.revoke_session(*session_id, at)).await?)
}

/// The person behind a session.
pub async fn user(state: &Services, id: UserId) -> Result<User, ServiceError> {
    Ok(state.store.get_user(id).await?)
}
