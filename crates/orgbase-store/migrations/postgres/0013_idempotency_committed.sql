-- Set in the same transaction as the change a keyed request makes: a key whose request committed
-- is never run again, even when its answer was lost (see idempotency_mark.rs).
ALTER TABLE idempotency_keys ADD COLUMN committed BOOLEAN NOT NULL DEFAULT FALSE;
-- Which claim holds the key: a request answers, releases or marks only its own claim, so that a
-- release retried after an outage cannot free a later request's claim.
ALTER TABLE idempotency_keys ADD COLUMN claim_id TEXT;
