-- An Idempotency-Key makes one ledger entry per organization, credential (actor) and key, for
-- as long as keys are kept (24 hours; purged with the others): not one per organization and key
-- for ever, which would make a second credential's charge, or a key reused a day later, a
-- silent no-op.
DROP INDEX wallet_entries_idempotency_key;
CREATE INDEX wallet_entries_idempotency_idx ON wallet_entries (organization_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE wallet_idempotency (
    organization_id UUID NOT NULL,
    actor           TEXT NOT NULL,
    key             TEXT NOT NULL,
    entry_id        UUID NOT NULL REFERENCES wallet_entries (id) ON DELETE CASCADE,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (organization_id, actor, key)
);
CREATE INDEX wallet_idempotency_created_idx ON wallet_idempotency (created_at);
CREATE INDEX wallet_idempotency_entry_idx ON wallet_idempotency (entry_id);
INSERT INTO wallet_idempotency (organization_id, actor, key, entry_id, created_at)
    SELECT organization_id, actor, idempotency_key, id, created_at FROM wallet_entries
    WHERE idempotency_key IS NOT NULL;
