-- Per organization: how many members, and a number that changes whenever one joins or leaves.
-- Kept by triggers in the transaction that changes `members`, so it is never out of step. A
-- large organization's member pages are served from a cached list of its member ids, valid as
-- long as this version is (see the API's member directory).
CREATE TABLE member_stats (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    members         INTEGER NOT NULL,
    version         INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO member_stats (organization_id, members, version)
    SELECT organization_id, count(*), 1 FROM members GROUP BY organization_id;
CREATE TRIGGER members_stats_ai AFTER INSERT ON members BEGIN
    INSERT OR IGNORE INTO member_stats (organization_id, members, version)
        VALUES (new.organization_id, 0, 0);
    UPDATE member_stats SET members = members + 1, version = version + 1
        WHERE organization_id = new.organization_id;
END;
CREATE TRIGGER members_stats_ad AFTER DELETE ON members BEGIN
    UPDATE member_stats SET members = members - 1, version = version + 1
        WHERE organization_id = old.organization_id;
END;
