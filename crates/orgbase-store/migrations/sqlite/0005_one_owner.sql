-- Exactly one owner per organization: at most one member holds role 1 (an ownership transfer
-- removes the old holder before adding the new one, in one transaction).
CREATE UNIQUE INDEX member_roles_one_owner ON member_roles (organization_id) WHERE role_id = 1;
