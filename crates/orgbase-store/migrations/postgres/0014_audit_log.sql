-- The audit log: one entry per change, written in the change's own transaction. No reference to
-- organizations: an entry outlives the organization it is about (a purge is itself an entry).
CREATE TABLE audit_log (
    id              UUID PRIMARY KEY,
    organization_id UUID,
    occurred_at     TIMESTAMPTZ NOT NULL,
    actor_type      TEXT NOT NULL,
    actor_id        TEXT,
    actor_label     TEXT,
    action          TEXT NOT NULL,
    target_type     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    changes         JSONB NOT NULL,
    request_id      TEXT,
    client_address  TEXT,
    user_agent      TEXT,
    surface         TEXT NOT NULL
);
CREATE INDEX audit_log_org_idx ON audit_log (organization_id, id);

-- Append-only: no statement changes, removes or truncates entries, except the retention purge,
-- which sets `orgbase.audit_purge` for its own transaction only (SET LOCAL).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('orgbase.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'P0001';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
