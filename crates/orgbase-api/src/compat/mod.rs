//! The two vendor-compatible surfaces, each exactly as its document specifies, as adapters over
//! the same services as the native API.
pub mod partner_settings;
pub mod properties;
