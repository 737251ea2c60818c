-- A second number per organization, changed by every change that a member list shows: a member
-- joining or leaving, roles, workspaces, a member's own row, a person's name or e-mail. Member
-- pages are cached against it (see the API's member directory); `version` still counts joins
-- and leaves only, for the cached lists of member ids.
ALTER TABLE member_stats ADD COLUMN content_version INTEGER NOT NULL DEFAULT 1;

DROP TRIGGER members_stats_ai;
DROP TRIGGER members_stats_ad;
CREATE TRIGGER members_stats_ai AFTER INSERT ON members BEGIN
    INSERT OR IGNORE INTO member_stats (organization_id, members, version, content_version)
        VALUES (new.organization_id, 0, 0, 0);
    UPDATE member_stats SET members = members + 1, version = version + 1,
            content_version = content_version + 1
        WHERE organization_id = new.organization_id;
END;
CREATE TRIGGER members_stats_ad AFTER DELETE ON members BEGIN
    UPDATE member_stats SET members = members - 1, version = version + 1,
            content_version = content_version + 1
        WHERE organization_id = old.organization_id;
END;
CREATE TRIGGER members_content_au AFTER UPDATE ON members BEGIN
    UPDATE member_stats SET content_version = content_version + 1
        WHERE organization_id = new.organization_id;
END;
CREATE TRIGGER member_roles_content_ai AFTER INSERT ON member_roles BEGIN
    UPDATE member_stats SET content_version = content_version + 1
        WHERE organization_id = new.organization_id;
END;
CREATE TRIGGER member_roles_content_ad AFTER DELETE ON member_roles BEGIN
    UPDATE member_stats SET content_version = content_version + 1
        WHERE organization_id = old.organization_id;
END;
CREATE TRIGGER member_workspaces_content_ai AFTER INSERT ON member_workspaces BEGIN
    UPDATE member_stats SET content_version = content_version + 1
        WHERE organization_id = new.organization_id;
END;
CREATE TRIGGER member_workspaces_content_ad AFTER DELETE ON member_workspaces BEGIN
    UPDATE member_stats SET content_version = content_version + 1
        WHERE organization_id = old.organization_id;
END;
CREATE TRIGGER users_member_content_au AFTER UPDATE OF name, email ON users
    WHEN old.name IS NOT new.name OR old.email IS NOT new.email
BEGIN
    UPDATE member_stats SET content_version = content_version + 1
        WHERE organization_id IN (SELECT organization_id FROM members WHERE user_id = new.id);
END;
