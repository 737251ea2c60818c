//! The billing providers and what their webhook events do: the service's
//! ([`orgbase_service::providers`]).
pub use orgbase_service::providers::*;
