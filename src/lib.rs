//! IHMS Connect: a self-contained care-coordination appliance.
//!
//! Layers, top to bottom: `ops` (the operator's commands, used by `main`), `web`
//! (HTTPS pages and JSON API), `store` (the sealed, party-scoped redb store),
//! `domain` (vocabulary, validation), `crypto` and `tls`.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod auth;
pub mod backup;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod direct;
pub mod documents;
pub mod domain;
pub mod ops;
pub mod retention;
pub mod store;
pub mod tls;
pub mod web;
