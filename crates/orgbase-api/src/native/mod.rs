//! The native API under `/api/…`.
pub mod api_keys;
pub mod invitations;
pub mod members;
pub mod ops;
pub mod org_keys;
pub mod organizations;
pub mod plans;
pub mod roles;
pub mod sessions;
pub mod wallet;
pub mod workspaces;
