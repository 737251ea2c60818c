-- A second number per organization, changed by every change that a member list shows: a member
-- joining or leaving, roles, workspaces, a member's own row, a person's name or e-mail. Member
-- pages are cached against it (see the API's member directory); `version` still counts joins
-- and leaves only, for the cached lists of member ids.
ALTER TABLE member_stats ADD COLUMN content_version BIGINT NOT NULL DEFAULT 1;

CREATE OR REPLACE FUNCTION members_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO member_stats AS s (organization_id, members, version, content_version)
            VALUES (NEW.organization_id, 1, 1, 1)
            ON CONFLICT (organization_id)
            DO UPDATE SET members = s.members + 1, version = s.version + 1,
                content_version = s.content_version + 1;
    ELSE
        UPDATE member_stats SET members = members - 1, version = version + 1,
                content_version = content_version + 1
            WHERE organization_id = OLD.organization_id;
    END IF;
    RETURN NULL;
END
$$;

-- Statement-level, with the rows changed: one update per organization however many rows (a
-- custom role deleted from thousands of members).
CREATE FUNCTION member_content_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE member_stats SET content_version = content_version + 1
        WHERE organization_id IN (SELECT DISTINCT organization_id FROM new_rows);
    RETURN NULL;
END
$$;
CREATE FUNCTION member_content_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE member_stats SET content_version = content_version + 1
        WHERE organization_id IN (SELECT DISTINCT organization_id FROM old_rows);
    RETURN NULL;
END
$$;
CREATE TRIGGER member_roles_content_ins AFTER INSERT ON member_roles
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION member_content_new();
CREATE TRIGGER member_roles_content_del AFTER DELETE ON member_roles
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION member_content_old();
CREATE TRIGGER member_workspaces_content_ins AFTER INSERT ON member_workspaces
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION member_content_new();
CREATE TRIGGER member_workspaces_content_del AFTER DELETE ON member_workspaces
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION member_content_old();
CREATE TRIGGER members_content_upd AFTER UPDATE ON members
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION member_content_new();

CREATE FUNCTION member_person_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE member_stats SET content_version = content_version + 1
        WHERE organization_id IN (SELECT organization_id FROM members WHERE user_id = NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER users_member_content AFTER UPDATE OF name, email ON users
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION member_person_changed();
