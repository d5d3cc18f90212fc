//! # cimd — Client ID Metadata Document core
//!
//! Everything cimdgate knows about OAuth clients that identify themselves by an HTTPS URL
//! (draft-ietf-oauth-client-id-metadata-document-02, MCP authorization 2025-11-25), with no
//! web-framework dependency. The modules follow the draft's concepts:
//!
//! | module | concern | draft / RFC |
//! |---|---|---|
//! | [`client_id`] | the client identifier URL, validated on the raw string | draft §3 |
//! | [`document`] | the metadata document model and its validation | draft §4, §4.1, RFC 7591 |
//! | [`redirect`] | redirect URI syntax and matching | draft §4.2, RFC 8252 §7.3 |
//! | [`ip`] | special-purpose address policy | RFC 6890, IANA registries, draft §8.6 |
//! | [`fetch`] | the SSRF-safe HTTPS fetcher | draft §5, §8.6, §8.7 |
//! | [`cache`] | RFC 9111 private cache + negative cache + coalescing | draft §5.2, RFC 9111 |
//! | [`policy`] | the operator's trust policy | draft §8.9 |
//! | [`assertion`] | `private_key_jwt` client assertions and replay protection | RFC 7523, draft §8.2 |
//!
//! Non-goals: HTTP serving, token issuance and persistent storage live in other crates; this
//! crate only defines the small traits ([`cache::DocumentStore`], [`assertion::ReplayStore`])
//! that those backends implement.
#![forbid(unsafe_code)]
// Panics in request paths are bugs: no unwrap/expect outside tests (STYLE.md).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs)]

pub mod assertion;
pub mod cache;
pub mod client_id;
pub mod document;
pub mod fetch;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod ip;
pub mod jose;
pub mod metrics;
pub mod policy;
pub mod redirect;

pub use client_id::ClientIdUrl;
pub use document::{ClientDocument, Profile};
