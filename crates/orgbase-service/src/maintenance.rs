//! What runs without a request: the first platform key, and the hourly purges of what is past
//! its retention (deleted organizations, audit entries, idempotency keys, sessions).
use orgbase_domain::{ApiKey, KeyKind, NewSecret};
use orgbase_store::{DynStore, KeyQuery};
use tokio_util::sync::CancellationToken;

/// Removes for good the organizations soft-deleted more than `retention` ago (in batches);
/// answers how many.
pub async fn purge_deleted(
    store: &DynStore,
    retention: chrono::Duration,
) -> Result<usize, orgbase_store::StoreError> {
    let before = orgbase_domain::now() - retention;
    let mut total = 0;
    loop {
        // One entry per organization removed: the store gives each its id.
        let entry = orgbase_domain::AuditEntry::new(
            None,
            orgbase_domain::now(),
            orgbase_domain::Actor::system("retention"),
            "organization.purged",
            orgbase_domain::Target::new("organization", ""),
            orgbase_domain::AuditSurface::System,
            &orgbase_domain::Origin::default(),
        );
        let ids = crate::audit::record(vec![entry], store.purge_deleted(before, 500)).await?;
        total += ids.len();
        for id in &ids {
            tracing::info!(organization_id = %id, "deleted organization purged after its retention");
        }
        if ids.len() < 500 {
            return Ok(total);
        }
    }
}

/// How long what is deleted stays before it is removed for good.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Soft-deleted organizations (restorable meanwhile).
    pub deleted: chrono::Duration,
    /// Audit entries.
    pub audit: chrono::Duration,
    /// Webhook events whose deliveries all succeeded (with their attempts).
    pub webhooks: chrono::Duration,
}

/// Runs `purge` (removing up to the number it is given) until a batch comes back short;
/// answers how many went in all.
async fn in_batches<F, Fut>(purge: F) -> Result<u64, orgbase_store::StoreError>
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<u64, orgbase_store::StoreError>>,
{
    const BATCH: u32 = 5000;
    let mut total = 0;
    loop {
        let n = purge(BATCH).await?;
        total += n;
        if n < u64::from(BATCH) {
            return Ok(total);
        }
    }
}

/// Removes the audit entries older than `retention` (in batches); answers how many.
pub async fn purge_audit_log(
    store: &DynStore,
    retention: chrono::Duration,
) -> Result<u64, orgbase_store::StoreError> {
    let before = orgbase_domain::now() - retention;
    in_batches(|n| store.purge_audit_entries(before, n)).await
}

/// Removes the delivered webhook events older than `retention` (in batches); answers how many.
pub async fn purge_webhook_events(
    store: &DynStore,
    retention: chrono::Duration,
) -> Result<u64, orgbase_store::StoreError> {
    let before = orgbase_domain::now() - retention;
    in_batches(|n| store.purge_webhook_events(before, n)).await
}

/// Purges (deleted organizations and audit entries past their retention, expired and revoked
/// sessions) at start and then every hour until `shutdown`.
pub async fn purge_periodically(
    store: DynStore,
    retention: Retention,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = purge_deleted(&store, retention.deleted).await {
                    tracing::warn!(error = %e, "purging deleted organizations failed; will retry");
                }
                match purge_audit_log(&store, retention.audit).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(entries = n, "audit entries past their retention removed"),
                    Err(e) => tracing::warn!(error = %e, "purging the audit log failed; will retry"),
                }
                match store
                    .purge_idempotency_keys(orgbase_domain::now() - crate::idempotency::retention())
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(keys = n, "idempotency keys past 24 hours removed"),
                    Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed; will retry"),
                }
                match purge_webhook_events(&store, retention.webhooks).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "delivered webhook events past their retention removed"),
                    Err(e) => tracing::warn!(error = %e, "purging webhook events failed; will retry"),
                }
                match store.purge_sessions(orgbase_domain::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "expired and revoked sessions removed"),
                    Err(e) => tracing::warn!(error = %e, "purging sessions failed; will retry"),
                }
            }
        }
    }
}

/// What the first start did about the platform key.
#[derive(Debug)]
pub enum Bootstrap {
    /// A platform key existed already.
    Existing,
    /// `ORGBASE_BOOTSTRAP_KEY` became the first platform key.
    FromConfig,
    /// A new key was made; it must be shown once.
    Generated(String),
}

/// Makes sure a platform key exists: the configured bootstrap key, or a new one to print once.
/// Several nodes starting at once on one database bootstrap exactly one key.
pub async fn ensure_platform_key(
    store: &DynStore,
    bootstrap: Option<&str>,
) -> Result<Bootstrap, orgbase_store::StoreError> {
    let existing = store
        .list_api_keys(&KeyQuery {
            kind: Some(KeyKind::Platform),
            include_revoked: true,
            ..Default::default()
        })
        .await?;
    if !existing.is_empty() {
        return Ok(Bootstrap::Existing);
    }
    let secret = match bootstrap {
        Some(k) => NewSecret::from_plain(k.to_owned()),
        None => NewSecret::generate(orgbase_domain::credential::API_KEY_PREFIX),
    };
    let key = ApiKey::new_platform("bootstrap".into(), &secret);
    if !store.insert_bootstrap_key(&key).await? {
        return Ok(Bootstrap::Existing);
    }
    Ok(match bootstrap {
        Some(_) => Bootstrap::FromConfig,
        None => Bootstrap::Generated(secret.plain),
    })
}
