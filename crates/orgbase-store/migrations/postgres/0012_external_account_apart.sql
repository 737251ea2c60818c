-- The external account id's index moves off `organizations` too, into `organization_search`
-- (kept by the same indexer, from the same queue: see 0011). While `organizations` indexed it,
-- every change of it (the partner settings API's `externalAccountId`) was an update that could
-- not stay on its page (not HOT): a new entry in each of the table's nine indexes, and the
-- clean-up of the old ones, for a change of one column. A settings update that changed it cost
-- about half again as much as one that did not (10k against 15k updates/s on this machine).
--
-- The `externalAccountId` list filter stays exact as search does: index matches for
-- organizations not queued, and the queued ones checked on their row.
ALTER TABLE organization_search ADD COLUMN external_account_id TEXT;
UPDATE organization_search s SET external_account_id = o.external_account_id
    FROM organizations o WHERE o.id = s.id AND o.external_account_id IS NOT NULL;
CREATE INDEX organization_search_external_account_idx ON organization_search (external_account_id)
    WHERE external_account_id IS NOT NULL;

-- A change of the external account id is queued as a rename is.
CREATE OR REPLACE FUNCTION organizations_search_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_outbox (org_id)
        SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.name IS DISTINCT FROM o.name OR n.slug IS DISTINCT FROM o.slug
           OR n.external_account_id IS DISTINCT FROM o.external_account_id;
    RETURN NULL;
END
$$;

DROP INDEX organizations_external_account_idx;
