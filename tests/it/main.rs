//! Integration tests: the real server over HTTPS on port 0 with a temp data dir,
//! driven by a real HTTPS client that trusts the generated CA; CLI tests run the
//! built binary. One test binary keeps link time down.

mod account_attacks;
mod audit_chain;
mod backup;
mod backup_abuse;
mod cli;
mod common;
mod conversations;
mod coordination;
mod document_links;
mod documents;
mod headers;
mod order_page;
mod orders_api;
mod own_sessions;
mod packaging;
mod passwords;
mod retention;
mod second_factor;
mod self_service;
mod sessions;
mod sign_in_attacks;
mod signin_guard;
mod signup;
mod store_at_rest;
mod web_forms;
mod workflow;
