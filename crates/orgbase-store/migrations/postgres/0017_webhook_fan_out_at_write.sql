-- Webhook messages are made by the change that writes the event, in its transaction: a trigger
-- on the outbox makes one message for each endpoint that takes the event when it is written.
-- There is no later fan-out step, so no event waits in the outbox for one, and an endpoint
-- receives exactly the events of changes made while it was enabled (`enabled_at` goes).
--
-- The events written before this migration and not fanned out yet are fanned out here, once.
INSERT INTO webhook_messages (id, endpoint_id, event_id, event_type, status, attempts,
    next_attempt_at, lease_until, created_at, updated_at)
SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, ev.id, ev.event_type,
    'pending', 0, ev.occurred_at, NULL, ev.occurred_at, ev.occurred_at
FROM webhook_events ev
LEFT JOIN organizations o ON o.id = ev.organization_id
JOIN webhook_endpoints e ON NOT e.disabled AND e.enabled_at <= ev.occurred_at
    AND (e.event_types = '[]'::jsonb OR e.event_types @> jsonb_build_array(ev.event_type))
    AND (e.organization_id IS NULL OR e.organization_id = ev.organization_id
        OR e.organization_id = o.parent_id)
WHERE NOT ev.dispatched
ON CONFLICT (event_id, endpoint_id) DO NOTHING;

DROP INDEX webhook_events_undispatched_idx;
ALTER TABLE webhook_events DROP COLUMN dispatched;
ALTER TABLE webhook_endpoints DROP COLUMN enabled_at;

-- The endpoints that take an event: enabled, wanting its type (an empty list wants every
-- type), and of the platform, of the event's organization or of that organization's parent (a
-- partner). The parent is read after the statement that wrote the event, so an organization
-- made by the same statement is found; one no longer stored reaches the platform's endpoints
-- only. Once per statement, over all the events it wrote.
CREATE FUNCTION webhook_events_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_messages (id, endpoint_id, event_id, event_type, status, attempts,
        next_attempt_at, lease_until, created_at, updated_at)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, ev.id, ev.event_type,
        'pending', 0, ev.occurred_at, NULL, ev.occurred_at, ev.occurred_at
    FROM written ev
    LEFT JOIN organizations o ON o.id = ev.organization_id
    JOIN webhook_endpoints e ON NOT e.disabled
        AND (e.event_types = '[]'::jsonb OR e.event_types @> jsonb_build_array(ev.event_type))
        AND (e.organization_id IS NULL OR e.organization_id = ev.organization_id
            OR e.organization_id = o.parent_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER webhook_events_fan_out AFTER INSERT ON webhook_events
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_events_fan_out();
