-- Organizations. Timestamps are RFC 3339 UTC text with microseconds, so they sort as text.
-- `seq` is the row's integer key, stable across VACUUM, which the search index refers to.
CREATE TABLE organizations (
    seq                     INTEGER PRIMARY KEY,
    id                      TEXT NOT NULL UNIQUE,
    name                    TEXT NOT NULL,
    slug                    TEXT NOT NULL,
    country_code            TEXT NOT NULL,
    avatar_url              TEXT,
    status                  TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'suspended')),
    status_reason           TEXT,
    org_type                TEXT NOT NULL CHECK (org_type IN ('normal', 'partner')),
    parent_id               TEXT REFERENCES organizations (id),
    owner_id                TEXT,
    product_plan_id         TEXT NOT NULL,
    offered_product_plan_id TEXT,
    sms_enabled             INTEGER NOT NULL,
    sms_brand_id            TEXT,
    sms_campaign_id         TEXT,
    premium                 INTEGER NOT NULL,
    external_account_id     TEXT,
    external_billing_id     TEXT,
    kyc_level               INTEGER NOT NULL CHECK (kyc_level BETWEEN 0 AND 3),
    placement_group         TEXT NOT NULL,
    billing_overdue         INTEGER NOT NULL,
    rate_limit              INTEGER NOT NULL CHECK (rate_limit > 0),
    entitlements            TEXT NOT NULL,
    preferences             TEXT NOT NULL,
    metadata                TEXT NOT NULL,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    deleted_at              TEXT,
    version                 INTEGER NOT NULL
);
CREATE UNIQUE INDEX organizations_slug_key ON organizations (slug);
-- One index per list filter, each ending in id so the newest-first cursor walks it in order.
CREATE INDEX organizations_status_idx ON organizations (status, id);
-- Mostly-NULL columns get partial indexes: no entry (and no write) for the common NULL.
CREATE INDEX organizations_deleted_idx ON organizations (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX organizations_type_idx ON organizations (org_type, id);
CREATE INDEX organizations_parent_idx ON organizations (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX organizations_external_account_idx ON organizations (external_account_id, id)
    WHERE external_account_id IS NOT NULL;

-- Metadata, one row per key, so that `?metadata[key]=value` is an index look-up.
CREATE TABLE organization_metadata (
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    value           TEXT NOT NULL,
    PRIMARY KEY (organization_id, key)
) WITHOUT ROWID;
CREATE INDEX organization_metadata_kv_idx ON organization_metadata (key, value, organization_id);

-- Substring search on name and slug (`?q=`) uses a trigram index kept in a database file of its
-- own (see sqlite.rs), maintained off the writer's path. Each change to a name or slug is queued
-- here, in the same transaction as the change; the indexer empties the queue.
-- AUTOINCREMENT: numbers are never reused once the queue empties, so the indexer's "applied up
-- to" mark can never cover an entry it has not seen.
CREATE TABLE search_outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    org_seq INTEGER NOT NULL
);
CREATE INDEX search_outbox_org_idx ON search_outbox (org_seq);
CREATE TRIGGER organizations_search_ai AFTER INSERT ON organizations BEGIN
    INSERT INTO search_outbox (org_seq) VALUES (new.seq);
END;
CREATE TRIGGER organizations_search_au AFTER UPDATE OF name, slug ON organizations
WHEN old.name IS NOT new.name OR old.slug IS NOT new.slug BEGIN
    INSERT INTO search_outbox (org_seq) VALUES (new.seq);
END;
CREATE TRIGGER organizations_search_ad AFTER DELETE ON organizations BEGIN
    INSERT INTO search_outbox (org_seq) VALUES (old.seq);
END;

-- API keys: only the SHA-256 of the secret is kept.
CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('platform', 'partner', 'organization')),
    organization_id TEXT REFERENCES organizations (id),
    roles           TEXT NOT NULL DEFAULT '[]',
    prefix          TEXT NOT NULL,
    secret_hash     TEXT NOT NULL,
    bootstrap       INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    revoked_at      TEXT
);
CREATE UNIQUE INDEX api_keys_secret_hash_key ON api_keys (secret_hash);
-- At most one key is ever bootstrapped, even with several nodes starting at once.
CREATE UNIQUE INDEX api_keys_bootstrap_key ON api_keys (bootstrap) WHERE bootstrap = 1;
CREATE INDEX api_keys_organization_idx ON api_keys (organization_id, id);
CREATE INDEX api_keys_kind_idx ON api_keys (kind, id);
