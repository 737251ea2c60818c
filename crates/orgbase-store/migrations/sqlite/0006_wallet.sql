-- The wallet: balances per organization, and the append-only ledger that moves them. Each entry
-- carries the balances after it; the balances never go below zero (the CHECKs, besides the
-- store's own test). An Idempotency-Key makes at most one entry per organization.
CREATE TABLE wallets (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    balance         INTEGER NOT NULL CHECK (balance >= 0),
    sms_points      INTEGER NOT NULL CHECK (sms_points >= 0),
    currency        TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE wallet_entries (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('charge', 'credit')),
    service          TEXT,
    amount           INTEGER NOT NULL CHECK (amount > 0),
    sms_points       INTEGER NOT NULL CHECK (sms_points >= 0),
    balance_after    INTEGER NOT NULL CHECK (balance_after >= 0),
    sms_points_after INTEGER NOT NULL CHECK (sms_points_after >= 0),
    reason           TEXT,
    actor            TEXT NOT NULL,
    idempotency_key  TEXT,
    created_at       TEXT NOT NULL
);
CREATE INDEX wallet_entries_org_idx ON wallet_entries (organization_id, id);
CREATE UNIQUE INDEX wallet_entries_idempotency_key ON wallet_entries (organization_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Append-only: no statement may change or remove an entry (purging a whole organization, by
-- its cascade, is the one exception: the organization is gone).
CREATE TRIGGER wallet_entries_no_update BEFORE UPDATE ON wallet_entries BEGIN
    SELECT RAISE(ABORT, 'wallet entries are append-only');
END;
