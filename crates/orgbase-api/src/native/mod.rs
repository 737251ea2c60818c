//! The native API under `/api/…`.
pub mod api_keys;
pub mod ops;
pub mod organizations;
