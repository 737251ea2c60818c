-- Webhooks: the endpoints that receive events, the outbox of events (written by each change in
-- its own transaction, beside its audit entries), and each event's delivery to each endpoint
-- (a message) with its attempts.

-- An endpoint of the platform (organization_id NULL: every organization's events) or of one
-- organization (a partner's also receives its children's). It goes with its organization.
CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY,
    organization_id            TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    url                        TEXT NOT NULL,
    description                TEXT NOT NULL,
    -- A JSON array of the type names wanted; empty: every type.
    event_types                TEXT NOT NULL,
    disabled                   INTEGER NOT NULL,
    disabled_reason            TEXT,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at TEXT,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (organization_id, created_at);

-- The outbox. No reference to organizations: an event outlives the organization it is about.
-- A rowid table, as the audit log (see 0013): written by nearly every change, it appends at its
-- end in commit order; the text id keeps a small unique index of its own.
CREATE TABLE webhook_events (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    organization_id TEXT,
    event_type      TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,
    payload         TEXT NOT NULL,
    dispatched      INTEGER NOT NULL DEFAULT 0
);
-- What the dispatcher takes, in order: only the few rows not dispatched yet.
CREATE INDEX webhook_events_undispatched_idx ON webhook_events (seq) WHERE dispatched = 0;

CREATE TABLE webhook_messages (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at TEXT,
    -- Set while a worker holds the message; another may take it once this has passed.
    lease_until     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    -- One delivery of an event to an endpoint. Event first: it also finds an event's messages
    -- (the purge, and the cascade from an event).
    UNIQUE (event_id, endpoint_id)
);
-- Due messages, soonest first: pending ones only.
CREATE INDEX webhook_messages_due_idx ON webhook_messages (next_attempt_at, id)
    WHERE status = 'pending';
-- An endpoint's messages, newest first (and the cascade from an endpoint).
CREATE INDEX webhook_messages_endpoint_idx ON webhook_messages (endpoint_id, created_at, event_id);

CREATE TABLE webhook_attempts (
    id           TEXT PRIMARY KEY,
    message_id   TEXT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    endpoint_id  TEXT NOT NULL,
    attempted_at TEXT NOT NULL,
    status_code  INTEGER,
    response     TEXT,
    duration_ms  INTEGER NOT NULL,
    error        TEXT
);
-- A message's attempts, oldest first (and the cascade from a message).
CREATE INDEX webhook_attempts_message_idx ON webhook_attempts (message_id, attempted_at);
-- An endpoint's attempts in time: since when it has been failing.
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, attempted_at);
