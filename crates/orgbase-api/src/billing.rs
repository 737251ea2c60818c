//! Billing providers (Stripe first, Chargebee shaped to slot in): what the services ask of one.
//! The plan change of the partner settings API goes through here when the plan is tied to a
//! provider; checkout and webhooks join with the billing issue.
use async_trait::async_trait;
use orgbase_domain::{BillingProvider, Plan, Subscription};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// No client for this provider is configured (`ORGBASE_STRIPE_SECRET_KEY` unset, say).
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    /// The provider refused or failed; the message is safe to show (no secrets).
    #[error("{0}")]
    Provider(String),
}

/// One billing provider's API.
#[async_trait]
pub trait BillingClient: Send + Sync + 'static {
    fn provider(&self) -> BillingProvider;
    /// Moves a live subscription to `plan`'s price. `idempotency_key` names this change, so a
    /// retry cannot apply it twice.
    async fn change_plan(
        &self,
        subscription: &Subscription,
        plan: &Plan,
        idempotency_key: &str,
    ) -> Result<(), BillingError>;
}

/// The configured providers.
#[derive(Clone, Default)]
pub struct Billing {
    clients: HashMap<BillingProvider, Arc<dyn BillingClient>>,
}

impl Billing {
    pub fn with(mut self, client: Arc<dyn BillingClient>) -> Self {
        self.clients.insert(client.provider(), client);
        self
    }

    pub fn client(&self, p: BillingProvider) -> Result<&Arc<dyn BillingClient>, BillingError> {
        self.clients
            .get(&p)
            .ok_or(BillingError::NotConfigured(p.as_str()))
    }
}
