//! `cimdgate serve` and `cimdgate hash-password`.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use cimdgate_server::Config;
use cimdgate_server::audit::sink::AuditSinkHandle;

use crate::{EXIT_INVALID, EXIT_USAGE_OR_FETCH, EXIT_VALID, zero_config};

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "CIMDGATE_CONFIG";

/// Arguments of `cimdgate serve`.
#[derive(Debug, Args)]
#[command(
    after_help = "Configuration: one TOML file (see docs/reference-config.toml). Every key \
can be overridden by an environment variable CIMDGATE_<SECTION>__<KEY>, e.g. \
CIMDGATE_SERVER__LISTEN=0.0.0.0:8080 or CIMDGATE_STORE__URL=embedded:/var/lib/cimdgate.\n\n\
Without a config file (zero-config): 127.0.0.1:8080, store in ./cimdgate-data, the demo MCP \
server at /mcp, and a generated dev user `dev` whose password is printed on the first start \
only. These defaults never apply when a config file is given."
)]
pub struct ServeArgs {
    /// TOML configuration file (relative paths inside resolve against its folder).
    #[arg(short, long, value_name = "FILE", env = "CIMDGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address; overrides server.listen.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Log format on stderr: `text` or `json` (one JSON object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

impl ServeArgs {
    /// Whether logs are JSON lines.
    pub fn json_logs(&self) -> bool {
        self.log_format == "json"
    }
}

/// Run the server until Ctrl-C / SIGTERM.
pub fn run(args: ServeArgs) -> u8 {
    // `CIMDGATE_CONFIG` names the file (clap reads it); it is not a config key override.
    let env = std::env::vars().filter(|(k, _)| k != CONFIG_ENV);
    let mut config = match Config::load(args.config.as_deref(), env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_INVALID;
        }
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let audit = match AuditSinkHandle::open(&config.audit.sink) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "error: config key `audit.sink` ({}): {e}",
                config.audit.sink
            );
            return EXIT_INVALID;
        }
    };
    crate::init_logging_with("info", args.json_logs(), audit.as_ref());
    let zero_config = args.config.is_none();
    let Some(runtime) = crate::runtime() else {
        return EXIT_USAGE_OR_FETCH;
    };
    runtime.block_on(async move {
        let dev = if zero_config {
            match zero_config::apply(&mut config, args.listen.is_some()).await {
                Ok(dev) => Some(dev),
                Err(e) => {
                    eprintln!("error: zero-config setup: {e}");
                    return EXIT_INVALID;
                }
            }
        } else {
            None
        };
        if let Err(e) = config.check() {
            eprintln!("error: {e}");
            return EXIT_INVALID;
        }
        let issuer = config.issuer();
        let admin_token = match (&config.admin.token, &config.admin.token_file) {
            (Some(_), _) => "from admin.token (CIMDGATE_ADMIN__TOKEN)".to_owned(),
            (None, Some(f)) => format!("in {}", f.display()),
            (None, None) => "none configured: /admin/ refuses every request".to_owned(),
        };
        let banner = dev
            .as_ref()
            .map(|d| zero_config::banner(&config, d.as_ref()));
        let server = match cimdgate_server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_INVALID;
            }
        };
        eprintln!(
            "cimdgate listening on http://{} (issuer {issuer})",
            server.addr
        );
        eprintln!("  metadata: {issuer}/.well-known/oauth-authorization-server");
        if let Some(admin) = server.admin_addr {
            eprintln!(
                "cimdgate admin listening on http://{admin} (/metrics, /healthz, /readyz; /admin/ token {admin_token})"
            );
        }
        if let Some(b) = banner {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{b}");
            let _ = out.flush();
        }
        let reopen = audit.map(|a| tokio::spawn(reopen_on_sighup(a)));
        shutdown_signal().await;
        if let Some(task) = reopen {
            task.abort();
        }
        eprintln!("shutting down");
        server.shutdown().await;
        EXIT_VALID
    })
}

/// Reopen the audit file on each SIGHUP (logrotate renames it, then signals), until aborted.
async fn reopen_on_sighup(audit: AuditSinkHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the audit file is never reopened");
            return;
        };
        while hup.recv().await.is_some() {
            match audit.reopen() {
                Ok(()) => tracing::info!("SIGHUP: audit file reopened"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: cannot reopen the audit file"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = audit;
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `cimdgate hash-password`: one password from stdin (one trailing newline stripped) → the
/// argon2id PHC string on stdout, nothing else.
pub fn hash_password() -> u8 {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().take(4096).read_to_string(&mut input) {
        eprintln!("error: cannot read the password from stdin: {e}");
        return EXIT_USAGE_OR_FETCH;
    }
    let password = input
        .strip_suffix("\r\n")
        .or_else(|| input.strip_suffix('\n'))
        .unwrap_or(&input);
    if password.is_empty() {
        eprintln!(
            "error: the password is empty (pipe it on stdin: echo -n 'secret' | cimdgate hash-password)"
        );
        return EXIT_USAGE_OR_FETCH;
    }
    match cimdgate_server::identity::local::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            EXIT_VALID
        }
        Err(e) => {
            eprintln!("error: cannot hash the password: {e}");
            EXIT_USAGE_OR_FETCH
        }
    }
}
