//! `cimdgate login MCP_URL [--client-id CIMD_URL]` (docs/architecture.md, *Command line*): the
//! client side of MCP authorization, from a terminal. The work is in `cimdgate-client`; this module
//! parses arguments and prints.
//!
//! Output: the URL to open goes to stderr (so `--print-token` can put only the token on
//! stdout); progress and errors go to stderr too.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use url::Url;

use cimdgate_client::{ExposeSecret, LoginOptions, TokenStore};

use crate::{EXIT_INVALID, EXIT_USAGE_OR_FETCH, EXIT_VALID};

/// Arguments of `cimdgate login`.
#[derive(Debug, Args)]
#[command(
    after_help = "Discovery starts from the MCP server's 401 (RFC 9728), then the \
authorization server's metadata (RFC 8414). With --client-id and a server that supports Client \
ID Metadata Documents, the URL is the client_id; otherwise the client registers itself (RFC \
7591). The document must list the redirect URI http://127.0.0.1/callback (any port matches). \
offline_access is requested only when the authorization server lists it in scopes_supported.\n\n\
Tokens are stored in $XDG_CONFIG_HOME/cimdgate/tokens.json (or ~/.config/cimdgate/tokens.json), \
mode 0600.\n\nExamples:\n  cimdgate login http://127.0.0.1:8080/mcp --client-id \
https://app.example.com/client.json\n  TOKEN=$(cimdgate login http://127.0.0.1:8080/mcp \
--print-token)"
)]
pub struct LoginArgs {
    /// The MCP server URL.
    #[arg(value_name = "MCP_URL")]
    mcp_url: Url,
    /// This client's metadata document URL (its client_id when the server supports CIMD).
    #[arg(long, value_name = "CIMD_URL")]
    client_id: Option<String>,
    /// Print a valid access token on stdout (refreshing the stored one, or logging in first).
    #[arg(long)]
    print_token: bool,
    /// Do not open a browser; only print the URL to open.
    #[arg(long)]
    no_browser: bool,
    /// Scope to request (default: what the server's challenge or metadata asks for). With a
    /// login already stored for the server, it is added to the stored scope (step-up after a
    /// 403 insufficient_scope, SEP-2350).
    #[arg(long, value_name = "SCOPE")]
    scope: Option<String>,
    /// Token file (default: the user's config folder).
    #[arg(long, value_name = "FILE")]
    token_store: Option<PathBuf>,
    /// Seconds to wait for the browser to come back.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    timeout: u64,
}

/// Run `cimdgate login`.
pub fn run(args: LoginArgs) -> u8 {
    let Some(path) = args.token_store.clone().or_else(TokenStore::default_path) else {
        eprintln!("error: no config folder (set XDG_CONFIG_HOME or HOME, or pass --token-store)");
        return EXIT_USAGE_OR_FETCH;
    };
    let store = TokenStore::new(path);
    let Some(runtime) = crate::runtime() else {
        return EXIT_USAGE_OR_FETCH;
    };
    runtime.block_on(async move {
        match login(&args, &store).await {
            Ok(()) => EXIT_VALID,
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_INVALID
            }
        }
    })
}

async fn login(args: &LoginArgs, store: &TokenStore) -> Result<(), cimdgate_client::ClientError> {
    let http = cimdgate_client::http_client()?;
    let key = args.mcp_url.as_str();
    if args.print_token
        && let Some(token) = cimdgate_client::valid_access_token(&http, store, key).await?
    {
        println!("{token}");
        return Ok(());
    }
    let mut opts = LoginOptions::new(args.mcp_url.clone());
    opts.client_id = args.client_id.clone();
    opts.scope = args.scope.clone();
    opts.open_browser = !args.no_browser;
    opts.timeout = Duration::from_secs(args.timeout);
    let no_browser = args.no_browser;
    let login = cimdgate_client::login(&http, &opts, store, |url| {
        eprintln!("Open this URL in a browser to sign in:\n\n  {url}\n");
        if !no_browser {
            eprintln!("(trying to open your browser; waiting for the redirect back)");
        }
    })
    .await?;
    eprintln!(
        "Logged in to {} as client {}; tokens saved to {}{}",
        login.mcp_url,
        login.client_id,
        store.path().display(),
        login
            .expires_at
            .map(|t| format!(
                " (access token valid for {} s)",
                t.saturating_sub(now_secs())
            ))
            .unwrap_or_default()
    );
    if args.print_token {
        println!("{}", login.access_token.expose_secret());
    }
    Ok(())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
