-- People: users, sessions, custom roles, workspaces, members, invitations.

-- E-mail addresses are stored lower-cased (the domain normalises them), so equality is enough.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    password_hash TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- Only the SHA-256 of a session token is kept.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Custom roles. System roles (ids 1-5) live in the code; custom ids start at 100.
CREATE TABLE roles (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT,
    permissions     TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
INSERT INTO sqlite_sequence (name, seq) VALUES ('roles', 99);
CREATE UNIQUE INDEX roles_org_name_key ON roles (organization_id, name);

CREATE TABLE workspaces (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX workspaces_org_name_key ON workspaces (organization_id, name);

-- Members: integer ids, as the source API has them. The index on organization_id alone holds
-- (organization_id, rowid), so a page in join order is a walk along it.
CREATE TABLE members (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX members_org_user_key ON members (organization_id, user_id);
CREATE INDEX members_org_idx ON members (organization_id);
CREATE INDEX members_user_idx ON members (user_id);

-- A member's roles and workspaces, one row each, so that the `role` and `workspace` filters are
-- index look-ups and deleting a workspace takes it off its members by cascade.
CREATE TABLE member_roles (
    organization_id TEXT NOT NULL,
    role_id         INTEGER NOT NULL,
    member_id       INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    PRIMARY KEY (organization_id, role_id, member_id)
) WITHOUT ROWID;
CREATE INDEX member_roles_member_idx ON member_roles (member_id, role_id);

CREATE TABLE member_workspaces (
    organization_id TEXT NOT NULL,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    member_id       INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    PRIMARY KEY (organization_id, workspace_id, member_id)
) WITHOUT ROWID;
CREATE INDEX member_workspaces_member_idx ON member_workspaces (member_id, workspace_id);

-- Invitations: only the SHA-256 of the token is kept. At most one pending invitation per
-- address and organization (an expired one is revoked when a new one is made).
CREATE TABLE invitations (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    name            TEXT,
    roles           TEXT NOT NULL,
    token_hash      TEXT NOT NULL,
    invited_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    accepted_at     TEXT,
    revoked_at      TEXT,
    sends           INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX invitations_token_hash_key ON invitations (token_hash);
CREATE UNIQUE INDEX invitations_pending_key ON invitations (organization_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE INDEX invitations_org_idx ON invitations (organization_id, id);
