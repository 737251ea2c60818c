-- Webhook messages are made by the change that writes the event, in its transaction: a trigger
-- on the outbox makes one message for each endpoint that takes the event when it is written.
-- There is no later fan-out step (a second write on the single writer for every event), and an
-- endpoint receives exactly the events of changes made while it was enabled (`enabled_at` goes).
--
-- The events written before this migration and not fanned out yet are fanned out here, once.
INSERT INTO webhook_messages (id, endpoint_id, event_id, event_type, status, attempts,
    next_attempt_at, lease_until, created_at, updated_at)
SELECT 'msg_' || lower(hex(randomblob(16))), e.id, ev.id, ev.event_type, 'pending', 0,
    ev.occurred_at, NULL, ev.occurred_at, ev.occurred_at
FROM webhook_events ev JOIN webhook_endpoints e ON e.disabled = 0
    AND e.enabled_at <= ev.occurred_at
    AND (e.event_types = '[]' OR EXISTS
        (SELECT 1 FROM json_each(e.event_types) t WHERE t.value = ev.event_type))
    AND (e.organization_id IS NULL OR e.organization_id = ev.organization_id
        OR e.organization_id = (SELECT o.parent_id FROM organizations o WHERE o.id = ev.organization_id))
WHERE ev.dispatched = 0
ON CONFLICT DO NOTHING;

DROP INDEX webhook_events_undispatched_idx;
ALTER TABLE webhook_events DROP COLUMN dispatched;
ALTER TABLE webhook_endpoints DROP COLUMN enabled_at;

-- The endpoints that take an event: enabled, wanting its type (an empty list wants every
-- type), and of the platform, of the event's organization or of that organization's parent (a
-- partner). An organization no longer stored reaches the platform's endpoints only.
CREATE TRIGGER webhook_events_fan_out AFTER INSERT ON webhook_events BEGIN
    INSERT INTO webhook_messages (id, endpoint_id, event_id, event_type, status, attempts,
        next_attempt_at, lease_until, created_at, updated_at)
    SELECT 'msg_' || lower(hex(randomblob(16))), e.id, NEW.id, NEW.event_type, 'pending', 0,
        NEW.occurred_at, NULL, NEW.occurred_at, NEW.occurred_at
    FROM webhook_endpoints e
    WHERE e.disabled = 0
        AND (e.event_types = '[]' OR EXISTS
            (SELECT 1 FROM json_each(e.event_types) t WHERE t.value = NEW.event_type))
        AND (e.organization_id IS NULL OR e.organization_id = NEW.organization_id
            OR e.organization_id =
                (SELECT o.parent_id FROM organizations o WHERE o.id = NEW.organization_id));
END;
