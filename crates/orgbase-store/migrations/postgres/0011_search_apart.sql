-- Substring search (`?q=`) moves off `organizations` into a table of its own, kept by an indexer
-- (postgres_search.rs), as SQLite's is. Two trigram indexes on `organizations` made every
-- rename add some fifty entries to GIN pending lists, and the write that found a list full
-- merged it into the index there and then: about 100 ms, once a second under a stream of
-- renames. They also kept any change of an organization's row from being a HOT update.
--
-- Exact all the same: every change of a name or slug queues the organization in
-- `search_outbox`, in the transaction of the change. The indexer applies queued entries and
-- removes them in one transaction; a query takes index matches for organizations not queued,
-- and checks the queued ones against their current row.
CREATE TABLE organization_search (
    id   UUID PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL
);
CREATE INDEX organization_search_name_trgm_idx ON organization_search USING gin (name gin_trgm_ops);
CREATE INDEX organization_search_slug_trgm_idx ON organization_search USING gin (slug gin_trgm_ops);

CREATE TABLE search_outbox (
    seq    BIGSERIAL PRIMARY KEY,
    org_id UUID NOT NULL
);
CREATE INDEX search_outbox_org_idx ON search_outbox (org_id);

CREATE FUNCTION organizations_search_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO search_outbox (org_id) VALUES (OLD.id);
    ELSE
        INSERT INTO search_outbox (org_id) VALUES (NEW.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER organizations_search_ai AFTER INSERT ON organizations
    FOR EACH ROW EXECUTE FUNCTION organizations_search_queue();
CREATE TRIGGER organizations_search_ad AFTER DELETE ON organizations
    FOR EACH ROW EXECUTE FUNCTION organizations_search_queue();
-- Statement-level, with the rows changed: one call for a batch of settings updates
-- (postgres_batch.rs), not one per row.
CREATE FUNCTION organizations_search_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_outbox (org_id)
        SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.name IS DISTINCT FROM o.name OR n.slug IS DISTINCT FROM o.slug;
    RETURN NULL;
END
$$;
CREATE TRIGGER organizations_search_au AFTER UPDATE ON organizations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION organizations_search_renamed();

INSERT INTO organization_search (id, name, slug) SELECT id, name, slug FROM organizations;
DROP INDEX organizations_name_trgm_idx;
DROP INDEX organizations_slug_trgm_idx;
-- Room on each page for the new version of a row, so that a change touching no indexed column
-- stays on its page (HOT) and updates no index.
ALTER TABLE organizations SET (fillfactor = 85);
