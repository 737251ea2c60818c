-- Product plans. `starter`, every organization's default, exists from here on.
CREATE TABLE plans (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    price             BIGINT NOT NULL CHECK (price >= 0),
    currency          TEXT NOT NULL,
    billing_interval  TEXT NOT NULL CHECK (billing_interval IN ('month', 'year')),
    entitlements      JSONB NOT NULL,
    rate_limit        INTEGER NOT NULL CHECK (rate_limit > 0),
    public            BOOLEAN NOT NULL,
    provider          TEXT CHECK (provider IN ('stripe', 'chargebee')),
    provider_price_id TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
INSERT INTO plans (id, name, price, currency, billing_interval, entitlements, rate_limit, public,
                   provider, provider_price_id, created_at, updated_at)
VALUES ('starter', 'Starter', 0, 'USD', 'month', '[]', 5, TRUE, NULL, NULL,
        '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');

-- An organization's plan and offered plan must exist; a plan in use cannot be deleted.
ALTER TABLE organizations
    ADD CONSTRAINT organizations_plan_fkey FOREIGN KEY (product_plan_id) REFERENCES plans (id),
    ADD CONSTRAINT organizations_offered_plan_fkey
        FOREIGN KEY (offered_product_plan_id) REFERENCES plans (id);
CREATE INDEX organizations_plan_idx ON organizations (product_plan_id);
CREATE INDEX organizations_offered_plan_idx ON organizations (offered_product_plan_id)
    WHERE offered_product_plan_id IS NOT NULL;

-- The organization's subscription with a billing provider: {provider, id, status}.
ALTER TABLE organizations ADD COLUMN subscription JSONB;
