-- Per organization: how many members, and a number that changes whenever one joins or leaves.
-- Kept by a trigger in the transaction that changes `members`, so it is never out of step. A
-- large organization's member pages are served from a cached list of its member ids, valid as
-- long as this version is (see the API's member directory).
CREATE TABLE member_stats (
    organization_id UUID PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    members         BIGINT NOT NULL,
    version         BIGINT NOT NULL
);
INSERT INTO member_stats (organization_id, members, version)
    SELECT organization_id, count(*), 1 FROM members GROUP BY organization_id;

CREATE FUNCTION members_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO member_stats AS s (organization_id, members, version)
            VALUES (NEW.organization_id, 1, 1)
            ON CONFLICT (organization_id)
            DO UPDATE SET members = s.members + 1, version = s.version + 1;
    ELSE
        UPDATE member_stats SET members = members - 1, version = version + 1
            WHERE organization_id = OLD.organization_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER members_stats AFTER INSERT OR DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION members_stats();
