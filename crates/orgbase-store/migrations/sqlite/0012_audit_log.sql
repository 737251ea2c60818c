-- The audit log: one entry per change, written in the change's own transaction. No reference to
-- organizations: an entry outlives the organization it is about (a purge is itself an entry).
CREATE TABLE audit_log (
    id              TEXT PRIMARY KEY,
    organization_id TEXT,
    occurred_at     TEXT NOT NULL,
    actor_type      TEXT NOT NULL,
    actor_id        TEXT,
    actor_label     TEXT,
    action          TEXT NOT NULL,
    target_type     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    changes         TEXT NOT NULL,
    request_id      TEXT,
    client_address  TEXT,
    user_agent      TEXT,
    surface         TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX audit_log_org_idx ON audit_log (organization_id, id);

-- Append-only: no statement changes an entry, and none removes one except the retention purge,
-- which opens this gate inside its own transaction and closes it before committing.
CREATE TABLE audit_purge_gate (open INTEGER NOT NULL);
INSERT INTO audit_purge_gate (open) VALUES (0);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN (SELECT open FROM audit_purge_gate) IS NOT 1 BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
