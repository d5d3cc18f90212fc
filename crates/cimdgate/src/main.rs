//! `cimdgate` — the command-line front end.
//!
//! This binary only parses arguments and wires library crates together; every rule lives in the
//! `cimd` core crate. Commands: `serve`, `check-config`, `demo`, `login`, `hash-password`, `cimd create`,
//! `cimd validate` (docs/architecture.md, *Command line*).
#![forbid(unsafe_code)]
// Panics in request paths are bugs: no unwrap/expect outside tests (STYLE.md).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod check_config;
mod cimd_create;
mod cimd_validate;
mod clients;
mod demo;
mod login;
mod serve;
mod zero_config;

use std::process::ExitCode;

/// jemalloc instead of glibc malloc: the request paths allocate many small, short-lived
/// buffers, and glibc's malloc/free/consolidate took ~11% of the worker threads' time under
/// load. With jemalloc `/token` went from 11.5–12.5k to 15.5–15.7k req/s; mimalloc was as
/// fast but kept the 19 MiB of each argon2 hash resident, tripling idle RSS (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};

/// Exit status for "the document (or URL) is valid".
pub const EXIT_VALID: u8 = 0;
/// Exit status for "the document (or URL) breaks a rule".
pub const EXIT_INVALID: u8 = 1;
/// Exit status for usage errors and for documents that could not be fetched or read.
pub const EXIT_USAGE_OR_FETCH: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "cimdgate",
    version,
    about = "CIMD-native OAuth 2.1 authorization server and auth gateway for MCP servers",
    long_about = "cimdgate lets MCP clients identify themselves with a Client ID Metadata Document \
(CIMD): an HTTPS URL that serves a small JSON file describing the client, used as its OAuth \
client_id instead of a registration step.\n\n\
Start with `cimdgate cimd create` to write a document for your client, publish it at the URL \
you chose as client_id, then check it with `cimdgate cimd validate <URL>`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the authorization server and the MCP gateway (no config file: zero-config dev mode).
    Serve(serve::ServeArgs),
    /// Walk one full CIMD login and MCP tool call in this process, printing each step.
    Demo,
    /// Log in to an MCP server as a client (discovery, PKCE, loopback callback, token storage).
    Login(login::LoginArgs),
    /// Create and check Client ID Metadata Documents.
    #[command(subcommand)]
    Cimd(CimdCommand),
    /// Read one password on stdin and print its argon2id hash (for [[identity.users]]).
    HashPassword,
    /// The client inventory of a running server: list, show, block, unblock, revoke, approve, deny.
    Clients(clients::ClientsArgs),
    /// Check a configuration as `serve` would and print it with secrets redacted.
    CheckConfig(check_config::CheckArgs),
}

#[derive(Debug, Subcommand)]
enum CimdCommand {
    /// Write a new client metadata document (checked against every rule before it is written).
    Create(cimd_create::CreateArgs),
    /// Fetch (URL) or read (FILE) a client metadata document and report every problem in it.
    Validate(cimd_validate::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        // `serve` starts its logging once the configuration says where audit events go.
        Command::Serve(_) => {}
        // The demo's own config turns on the fetch dev hooks, which warn; the steps say enough.
        Command::Demo => init_logging("error", false),
        _ => init_logging("warn", false),
    }
    match cli.command {
        Command::Serve(args) => ExitCode::from(serve::run(args)),
        Command::HashPassword => ExitCode::from(serve::hash_password()),
        Command::Clients(args) => ExitCode::from(clients::run(args)),
        Command::CheckConfig(args) => ExitCode::from(check_config::run(args)),
        Command::Demo => ExitCode::from(demo::run()),
        Command::Login(args) => ExitCode::from(login::run(args)),
        Command::Cimd(CimdCommand::Create(args)) => ExitCode::from(cimd_create::run(args)),
        Command::Cimd(CimdCommand::Validate(args)) => ExitCode::from(cimd_validate::run(args)),
    }
}

/// The multi-threaded runtime for `serve`, `demo` and `login`; prints why and returns `None`
/// when it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Logs go to stderr so that stdout stays machine-readable (`--json`, `create` output).
/// `RUST_LOG` overrides the default level. `serve --log-format json` writes JSON lines; audit
/// events carry the target `audit`.
fn init_logging(default_level: &str, json: bool) {
    init_logging_with(default_level, json, None);
}

/// [`init_logging`], and with an audit sink: audit events go to it (JSON lines) instead of
/// the log.
fn init_logging_with(
    default_level: &str,
    json: bool,
    audit: Option<&cimdgate_server::audit::sink::AuditSinkHandle>,
) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    if audit.is_some()
        && let Ok(off) = "audit=off".parse()
    {
        filter = filter.add_directive(off);
    }
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(true);
    let log = if json {
        log.json().with_filter(filter).boxed()
    } else {
        log.with_filter(filter).boxed()
    };
    let sink = audit.map(|a| {
        a.layer().with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(cimdgate_server::audit::sink::TARGET, tracing::Level::INFO),
        )
    });
    tracing_subscriber::registry().with(log).with(sink).init();
}
