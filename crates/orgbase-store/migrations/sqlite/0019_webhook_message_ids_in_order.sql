-- A message's id was 'msg_' and 16 random bytes, so each new message went to a random page of the
-- id's index: a write of a change with one subscribed endpoint dirtied one more page at random,
-- and each group commit wrote and synced them all (issue 22's PATCH-with-endpoint benchmark).
-- Now the id starts with its event's (a UUIDv7: the time first), then 8 random bytes: new ids
-- follow each other at the end of the index, and the ids of one event's messages still differ.
DROP TRIGGER webhook_events_fan_out;

CREATE TRIGGER webhook_events_fan_out AFTER INSERT ON webhook_events BEGIN
    INSERT INTO webhook_messages (id, endpoint_id, event_id, event_type, status, attempts,
        next_attempt_at, lease_until, created_at, updated_at)
    SELECT 'msg_' || substr(NEW.id, 5, 16) || lower(hex(randomblob(8))), e.id, NEW.id,
        NEW.event_type, 'pending', 0, NEW.occurred_at, NULL, NEW.occurred_at, NEW.occurred_at
    FROM webhook_endpoints e
    WHERE e.disabled = 0
        AND (e.event_types = '[]' OR EXISTS
            (SELECT 1 FROM json_each(e.event_types) t WHERE t.value = NEW.event_type))
        AND (e.organization_id IS NULL OR e.organization_id = NEW.organization_id
            OR e.organization_id =
                (SELECT o.parent_id FROM organizations o WHERE o.id = NEW.organization_id));
END;
