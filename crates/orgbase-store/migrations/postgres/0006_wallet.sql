-- The wallet: balances per organization, and the append-only ledger that moves them. Each entry
-- carries the balances after it; the balances never go below zero (the CHECKs, besides the
-- store's own test). An Idempotency-Key makes at most one entry per organization.
CREATE TABLE wallets (
    organization_id UUID PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    balance         BIGINT NOT NULL CHECK (balance >= 0),
    sms_points      BIGINT NOT NULL CHECK (sms_points >= 0),
    currency        TEXT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE wallet_entries (
    id               UUID PRIMARY KEY,
    organization_id  UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('charge', 'credit')),
    service          TEXT,
    amount           BIGINT NOT NULL CHECK (amount > 0),
    sms_points       BIGINT NOT NULL CHECK (sms_points >= 0),
    balance_after    BIGINT NOT NULL CHECK (balance_after >= 0),
    sms_points_after BIGINT NOT NULL CHECK (sms_points_after >= 0),
    reason           TEXT,
    actor            TEXT NOT NULL,
    idempotency_key  TEXT,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX wallet_entries_org_idx ON wallet_entries (organization_id, id);
CREATE UNIQUE INDEX wallet_entries_idempotency_key ON wallet_entries (organization_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Append-only: no statement may change an entry (purging a whole organization, by its cascade,
-- is the one way one goes).
CREATE FUNCTION wallet_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wallet entries are append-only';
END
$$;
CREATE TRIGGER wallet_entries_no_update BEFORE UPDATE ON wallet_entries
    FOR EACH ROW EXECUTE FUNCTION wallet_entries_append_only();
