-- Billing: an organization's customer at its billing provider, with the provider's clocks that
-- keep out-of-order webhook deliveries from rolling its state back; and the webhook events
-- applied, so each is processed once. Purging an organization takes its account with it; its
-- events stay (they only say which deliveries were seen), naming an organization that is gone.
CREATE TABLE billing_accounts (
    organization_id    UUID PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    provider           TEXT NOT NULL CHECK (provider IN ('stripe', 'chargebee')),
    customer_id        TEXT NOT NULL,
    subscription_as_of TIMESTAMPTZ,
    invoice_as_of      TIMESTAMPTZ,
    current_period_end TIMESTAMPTZ,
    price_id           TEXT,
    CONSTRAINT billing_accounts_customer_key UNIQUE (provider, customer_id)
);

CREATE TABLE billing_events (
    provider        TEXT NOT NULL CHECK (provider IN ('stripe', 'chargebee')),
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    organization_id UUID,
    received_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- The plan a provider's price is billed as.
CREATE INDEX plans_provider_price_idx ON plans (provider, provider_price_id)
    WHERE provider_price_id IS NOT NULL;
