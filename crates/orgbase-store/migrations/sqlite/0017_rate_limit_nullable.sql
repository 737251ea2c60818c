-- An organization's `rate_limit` becomes its own value, overriding its plan's; NULL follows the
-- plan. ALTER TABLE cannot drop a NOT NULL constraint, and rebuilding `organizations` would mean
-- re-creating every index and trigger on it. Dropping NOT NULL changes nothing in how rows are
-- stored, so this uses SQLite's documented shortcut for such a change
-- (https://www.sqlite.org/lang_altertable.html#otheralter): the table's definition is edited in
-- place, and the migration runner then bumps the schema version so that it is read again.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, 'rate_limit              INTEGER NOT NULL CHECK (rate_limit > 0)',
                       'rate_limit              INTEGER CHECK (rate_limit > 0)')
WHERE type = 'table' AND name = 'organizations';
PRAGMA writable_schema = OFF;
