//! The billing providers configured: reached through [`orgbase_billing::BillingClient`] only, so
//! Chargebee is one more client here and no caller changes.
use std::collections::HashMap;
use std::sync::Arc;

use orgbase_billing::{BillingClient, BillingError};
use orgbase_domain::BillingProvider;

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
            .ok_or_else(|| BillingError::NotConfigured(p.as_str().to_owned()))
    }
}
