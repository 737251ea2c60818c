-- Until now every organization stored a limit, set or not. One equal to its plan's follows the
-- plan from here on (its limit in force is unchanged); any other stays its own.
UPDATE organizations
SET rate_limit = NULL
WHERE rate_limit = (SELECT p.rate_limit FROM plans p WHERE p.id = organizations.product_plan_id);
