-- Trigram indexes serve `?q=` substring search on name and slug.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE organizations (
    id                      UUID PRIMARY KEY,
    name                    TEXT NOT NULL,
    slug                    TEXT NOT NULL CONSTRAINT organizations_slug_key UNIQUE,
    country_code            TEXT NOT NULL,
    avatar_url              TEXT,
    status                  TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'suspended')),
    status_reason           TEXT,
    org_type                TEXT NOT NULL CHECK (org_type IN ('normal', 'partner')),
    parent_id               UUID CONSTRAINT organizations_parent_fkey REFERENCES organizations (id),
    owner_id                UUID,
    product_plan_id         TEXT NOT NULL,
    offered_product_plan_id TEXT,
    sms_enabled             BOOLEAN NOT NULL,
    sms_brand_id            TEXT,
    sms_campaign_id         TEXT,
    premium                 BOOLEAN NOT NULL,
    external_account_id     TEXT,
    external_billing_id     TEXT,
    kyc_level               SMALLINT NOT NULL CHECK (kyc_level BETWEEN 0 AND 3),
    placement_group         TEXT NOT NULL,
    billing_overdue         BOOLEAN NOT NULL,
    rate_limit              INTEGER NOT NULL CHECK (rate_limit > 0),
    entitlements            JSONB NOT NULL,
    preferences             JSONB NOT NULL,
    metadata                JSONB NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    deleted_at              TIMESTAMPTZ,
    version                 BIGINT NOT NULL
);
CREATE INDEX organizations_status_idx ON organizations (status, id);
CREATE INDEX organizations_deleted_idx ON organizations (deleted_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX organizations_type_idx ON organizations (org_type, id);
CREATE INDEX organizations_parent_idx ON organizations (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX organizations_external_account_idx ON organizations (external_account_id, id)
    WHERE external_account_id IS NOT NULL;
CREATE INDEX organizations_name_trgm_idx ON organizations USING gin (name gin_trgm_ops);
CREATE INDEX organizations_slug_trgm_idx ON organizations USING gin (slug gin_trgm_ops);

CREATE TABLE organization_metadata (
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    value           TEXT NOT NULL,
    PRIMARY KEY (organization_id, key)
);
CREATE INDEX organization_metadata_kv_idx ON organization_metadata (key, value, organization_id);

CREATE TABLE api_keys (
    id              UUID PRIMARY KEY,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('platform', 'partner', 'organization')),
    organization_id UUID REFERENCES organizations (id),
    roles           JSONB NOT NULL DEFAULT '[]',
    prefix          TEXT NOT NULL,
    secret_hash     TEXT NOT NULL CONSTRAINT api_keys_secret_hash_key UNIQUE,
    bootstrap       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_keys_bootstrap_key ON api_keys (bootstrap) WHERE bootstrap;
CREATE INDEX api_keys_organization_idx ON api_keys (organization_id, id);
CREATE INDEX api_keys_kind_idx ON api_keys (kind, id);
