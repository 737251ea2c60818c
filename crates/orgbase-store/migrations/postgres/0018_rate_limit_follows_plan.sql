-- An organization's `rate_limit` becomes its own value, overriding its plan's; NULL follows the
-- plan. Until now every organization stored a limit, set or not: one equal to its plan's follows
-- the plan from here on (its limit in force is unchanged); any other stays its own.
ALTER TABLE organizations ALTER COLUMN rate_limit DROP NOT NULL;
UPDATE organizations o
SET rate_limit = NULL
FROM plans p
WHERE p.id = o.product_plan_id AND o.rate_limit = p.rate_limit;
