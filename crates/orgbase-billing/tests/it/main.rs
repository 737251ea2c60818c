//! orgbase-billing's tests: the Stripe client against a wiremock stand-in (request shapes,
//! retries, failures), webhook signatures and events, and the client against localstripe, which
//! keeps real state.

mod chargebee;
mod localstripe;
mod stripe_http;
mod support;
mod webhooks;
