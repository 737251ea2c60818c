-- Product plans. `starter`, every organization's default, exists from here on.
CREATE TABLE plans (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    price             INTEGER NOT NULL CHECK (price >= 0),
    currency          TEXT NOT NULL,
    billing_interval  TEXT NOT NULL CHECK (billing_interval IN ('month', 'year')),
    entitlements      TEXT NOT NULL,
    rate_limit        INTEGER NOT NULL CHECK (rate_limit > 0),
    public            INTEGER NOT NULL,
    provider          TEXT CHECK (provider IN ('stripe', 'chargebee')),
    provider_price_id TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
INSERT INTO plans (id, name, price, currency, billing_interval, entitlements, rate_limit, public,
                   provider, provider_price_id, created_at, updated_at)
VALUES ('starter', 'Starter', 0, 'USD', 'month', '[]', 5, 1, NULL, NULL,
        '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');

-- An organization's plan and offered plan must exist (SQLite cannot add a foreign key to an
-- existing table; these triggers are the same rule). A plan in use is not deleted: the store
-- checks that in the transaction that deletes it.
CREATE TRIGGER organizations_plan_bi BEFORE INSERT ON organizations
WHEN NOT EXISTS (SELECT 1 FROM plans WHERE id = new.product_plan_id)
  OR (new.offered_product_plan_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM plans WHERE id = new.offered_product_plan_id))
BEGIN
    SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: organization plan');
END;
CREATE TRIGGER organizations_plan_bu BEFORE UPDATE OF product_plan_id, offered_product_plan_id
ON organizations
WHEN NOT EXISTS (SELECT 1 FROM plans WHERE id = new.product_plan_id)
  OR (new.offered_product_plan_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM plans WHERE id = new.offered_product_plan_id))
BEGIN
    SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: organization plan');
END;
CREATE INDEX organizations_plan_idx ON organizations (product_plan_id);
CREATE INDEX organizations_offered_plan_idx ON organizations (offered_product_plan_id)
    WHERE offered_product_plan_id IS NOT NULL;

-- The organization's subscription with a billing provider: {provider, id, status} as JSON.
ALTER TABLE organizations ADD COLUMN subscription TEXT;
