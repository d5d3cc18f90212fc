//! The adversarial suite (issue 11, "Prove it"): the shipped `cimdgate` binary, run as a child
//! process on 127.0.0.1, under the attacks of the December security reviews
//! (docs/security.md maps each finding to its tests). One module per attack:
//!
//! | module | attack |
//! |---|---|
//! | `gateway_paths` | path traversal out of a resource's upstream path (H1) |
//! | `slow_clients` | slowloris: trickled headers, stalled and trickled bodies (server L3) |
//! | `many_clients` | 10 000 client_ids under one wildcard name: memory and fetch budget (H3, M9) |
//! | `header_bloat` | document hosts answering with bloated or absurd headers (H3, M10) |
//! | `brute_force` | password guessing and argon2 exhaustion (M2) |
//! | `malformed` | garbage at every public endpoint |
//! | `findings` | one representative attack for findings proven in process (H2, M1, M6–M8, M11, L5, L8) |
//!
//! Each test starts its own server and kills it (by PID) when it ends. Every loop is bounded
//! in count and time. Set `ADVERSARIAL_CIMDGATE_BIN` to run the suite against another build of
//! the binary (e.g. `target/release/cimdgate`); the figures each test prints (`--nocapture`)
//! are quoted in docs/security.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/mod.rs"]
mod support;

#[path = "adversarial/harness.rs"]
mod harness;

#[path = "adversarial/brute_force.rs"]
mod brute_force;
#[path = "adversarial/findings.rs"]
mod findings;
#[path = "adversarial/gateway_paths.rs"]
mod gateway_paths;
#[path = "adversarial/header_bloat.rs"]
mod header_bloat;
#[path = "adversarial/malformed.rs"]
mod malformed;
#[path = "adversarial/many_clients.rs"]
mod many_clients;
#[path = "adversarial/slow_clients.rs"]
mod slow_clients;
