//! `cimdgate demo` (docs/architecture.md, *Command line*): the whole CIMD login and tool call in
//! one process, run as the real binary. CI runs this: it must exit 0 and print every step,
//! including which MCP protocol revision the dual-era client settled on.

mod support;

use std::process::{Command, Stdio};

use support::{BIN, Proc};

/// Every step the demo must print, in order.
const STEPS: &[&str] = &[
    "start",
    "discovery: 401 challenge",
    "discovery: resource (PRM)",
    "discovery: AS metadata",
    "/authorize (CIMD fetch)",
    "login",
    "consent",
    "loopback callback",
    "token",
    "mcp connect (server/discover)",
    "tools/call echo",
    "tools/call whoami",
    "refresh",
    "echo with refreshed token",
];

#[test]
fn demo_walks_every_step_and_exits_zero() {
    let child = Command::new(BIN)
        .arg("demo")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut p = Proc::new(child);
    let status = p.wait_exit(120);
    let out = p.stdout();
    assert!(status.success(), "demo failed ({status}):\n{}", p.all());
    let mut pos = 0;
    for (i, step) in STEPS.iter().enumerate() {
        let line = format!("✓ {:>2}. {step} ", i + 1);
        let at = out[pos..]
            .find(&line)
            .unwrap_or_else(|| panic!("step {step:?} missing or out of order:\n{out}"));
        pos += at + line.len();
    }
    assert!(!out.contains('✗'), "{out}");
    assert!(out.contains("demo passed: 14 steps"), "{out}");
    assert!(out.contains(" ms "), "timings printed: {out}");
    // The tool calls name the protocol the dual-era session chose: 2026-07-28 stateless
    // against a modern demo server, else the 2025-11-25 initialize session (the fallback).
    let protocol = ["2026-07-28 stateless", "2025-11-25 session"]
        .into_iter()
        .find(|p| out.contains(&format!("tools/call echo ({p})")))
        .unwrap_or_else(|| panic!("no protocol named on the tools/call step:\n{out}"));
    assert!(
        out.contains(&format!("tools/call whoami ({protocol})")),
        "{out}"
    );
    eprintln!("demo used {protocol}");
    assert!(
        out.contains("\"hello from cimdgate demo\" → \"hello from cimdgate demo\""),
        "{out}"
    );
}
