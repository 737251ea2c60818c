-- Since when each endpoint has been enabled: events of changes made before (while it was
-- disabled, or before it existed) are not fanned out to it, however late they are fanned out.
ALTER TABLE webhook_endpoints ADD COLUMN enabled_at TEXT NOT NULL DEFAULT '';
UPDATE webhook_endpoints SET enabled_at = created_at;
