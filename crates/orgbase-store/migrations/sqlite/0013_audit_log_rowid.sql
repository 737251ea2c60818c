-- The audit log as a rowid table. Keyed by its text id (WITHOUT ROWID), every entry of ~450 bytes
-- went through a full b-tree rebalance of the table's last pages: entries with ids made by
-- concurrent requests do not arrive in id order, pages split half full, and each change rewrote
-- several of them (twice the bytes written per change, half of each page left empty). A rowid
-- table appends at its end; the id keeps its own small unique index for reads in id order, and
-- `seq` orders the log for the indexer.
CREATE TABLE audit_log_rows (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
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
);
INSERT INTO audit_log_rows (id, organization_id, occurred_at, actor_type, actor_id, actor_label,
    action, target_type, target_id, changes, request_id, client_address, user_agent, surface)
SELECT id, organization_id, occurred_at, actor_type, actor_id, actor_label, action, target_type,
    target_id, changes, request_id, client_address, user_agent, surface
FROM audit_log ORDER BY id;
DROP TABLE audit_log;
ALTER TABLE audit_log_rows RENAME TO audit_log;
-- The per-organization index is kept by the indexer thread in the search database (see
-- sqlite_search.rs), out of the changes' commits.

-- Append-only, as before (the triggers went with the old table).
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN (SELECT open FROM audit_purge_gate) IS NOT 1 BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
