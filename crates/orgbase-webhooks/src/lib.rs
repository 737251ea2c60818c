//! Webhook delivery. Events are written to the outbox by the changes themselves (see
//! `orgbase_store::audit`), each with a message for every endpoint that wants it; the
//! [`worker::Worker`] delivers each message with the Standard Webhooks headers ([`sign`]), retrying on the schedule of
//! `orgbase_domain::webhook`, only to addresses the [`guard`] lets through.
#![forbid(unsafe_code)]

pub mod deliver;
pub mod guard;
pub mod load;
pub mod sign;
pub mod stats;
pub mod worker;

pub use deliver::{Deliverer, Sent};
pub use load::Load;
pub use worker::{Progress, Worker};
