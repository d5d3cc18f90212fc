//! `cimdgate clients` — the inventory from a terminal, through the admin API of a running
//! server (docs/architecture.md, *Governance*; the API is `/admin/v1/clients` on the admin
//! listener).
//!
//! Where the API is: `--admin-url URL`, else the admin listener of the configuration
//! (`--config FILE`, `CIMDGATE_CONFIG`, or the zero-config default `127.0.0.1:9090`). The admin
//! token: `CIMDGATE_ADMIN_TOKEN`, else the configuration's (`[admin] token_file`, or the token
//! zero-config `serve` generated in its data folder).
//!
//! Exit status: 0 done; 1 the client is unknown or the request was refused (invalid scopes,
//! malformed id); 2 usage error, no token, or the admin API could not be reached or rejected
//! the token. `--json` prints the API's JSON (stable field names); otherwise a table. Every
//! string a client controls (names, URLs) is printed with control characters escaped, so a
//! hostile document cannot drive the terminal.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use url::Url;

use crate::{EXIT_INVALID, EXIT_USAGE_OR_FETCH, EXIT_VALID};

/// The environment variable holding the admin token for the CLI.
pub const TOKEN_ENV: &str = "CIMDGATE_ADMIN_TOKEN";

/// Arguments of `cimdgate clients`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  cimdgate clients list --status pending\n  cimdgate \
clients show https://app.example.com/client.json --json\n  cimdgate clients block \
https://app.example.com/client.json --reason \"key leaked\"\n  cimdgate clients revoke \
https://app.example.com/client.json --user alice\n  cimdgate clients approve \
https://app.example.com/client.json --scopes \"mcp:read\""
)]
pub struct ClientsArgs {
    /// Configuration file of the server (its admin listener and token).
    #[arg(
        short,
        long,
        value_name = "FILE",
        env = "CIMDGATE_CONFIG",
        global = true
    )]
    config: Option<PathBuf>,
    /// Base URL of the admin listener (e.g. http://127.0.0.1:9090); overrides the config.
    #[arg(long, value_name = "URL", global = true)]
    admin_url: Option<Url>,
    /// Print JSON (the admin API's fields) instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ClientsCommand,
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Every client seen (host first).
    List {
        /// Only this status: active, pending, blocked or denied.
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// Only clients on this host or its subdomains.
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
    },
    /// One client with its document, change history, users and live grants.
    Show {
        /// The exact client_id.
        client_id: String,
    },
    /// Block a client: no sign-in, no tokens, its issued tokens refused (every instance within 5 s).
    Block {
        /// The exact client_id.
        client_id: String,
        /// Why (kept with the decision and shown to users).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Lift a block.
    Unblock {
        /// The exact client_id.
        client_id: String,
    },
    /// End every grant of the client (or of one user with it).
    Revoke {
        /// The exact client_id.
        client_id: String,
        /// Only this user's grants (the subject as shown by `show`).
        #[arg(long, value_name = "SUBJECT")]
        user: Option<String>,
    },
    /// Approval mode: let the client be used, optionally with a scope ceiling.
    Approve {
        /// The exact client_id.
        client_id: String,
        /// Scopes the client may be granted at most (space-separated).
        #[arg(long, value_name = "SCOPES")]
        scopes: Option<String>,
    },
    /// Approval mode: refuse the client.
    Deny {
        /// The exact client_id.
        client_id: String,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

/// A failure, with the exit status it maps to.
struct Failure(u8, String);

/// Run `cimdgate clients`.
pub fn run(args: ClientsArgs) -> u8 {
    let Some(runtime) = crate::runtime() else {
        return EXIT_USAGE_OR_FETCH;
    };
    match runtime.block_on(run_async(args)) {
        Ok(()) => EXIT_VALID,
        Err(Failure(code, msg)) => {
            eprintln!("error: {msg}");
            code
        }
    }
}

async fn run_async(args: ClientsArgs) -> Result<(), Failure> {
    let (base, token) = locate(&args)?;
    let api = Api {
        base,
        token,
        http: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Failure(EXIT_USAGE_OR_FETCH, format!("HTTP client: {e}")))?,
    };
    let json = args.json;
    match args.command {
        ClientsCommand::List { status, host } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(("status", s));
            }
            if let Some(h) = host {
                query.push(("host", h));
            }
            let v = api.get("clients", &query).await?;
            print(json, &v, print_list);
        }
        ClientsCommand::Show { client_id } => {
            let v = api.get(&client_path(&client_id, None), &[]).await?;
            print(json, &v, print_detail);
        }
        ClientsCommand::Block { client_id, reason } => {
            let v = api
                .post(
                    &client_path(&client_id, Some("block")),
                    json!({"reason": reason}),
                )
                .await?;
            print(json, &v, |v| print_status("blocked", v));
        }
        ClientsCommand::Unblock { client_id } => {
            let v = api
                .post(&client_path(&client_id, Some("unblock")), json!({}))
                .await?;
            print(json, &v, |v| print_status("unblocked", v));
        }
        ClientsCommand::Approve { client_id, scopes } => {
            let v = api
                .post(
                    &client_path(&client_id, Some("approve")),
                    json!({"scopes": scopes}),
                )
                .await?;
            print(json, &v, |v| print_status("approved", v));
        }
        ClientsCommand::Deny { client_id, reason } => {
            let v = api
                .post(
                    &client_path(&client_id, Some("deny")),
                    json!({"reason": reason}),
                )
                .await?;
            print(json, &v, |v| print_status("denied", v));
        }
        ClientsCommand::Revoke { client_id, user } => {
            let v = api
                .post(
                    &client_path(&client_id, Some("revoke")),
                    json!({"subject": user}),
                )
                .await?;
            print(json, &v, |v| {
                println!("revoked {} grant(s)", v["grants_revoked"]);
            });
        }
    }
    Ok(())
}

/// The admin API's base URL and the token.
fn locate(args: &ClientsArgs) -> Result<(Url, String), Failure> {
    let usage = |m: String| Failure(EXIT_USAGE_OR_FETCH, m);
    let env_token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    // The configuration is read only when it is needed (no --admin-url, or no token in the
    // environment), exactly as `serve` reads it.
    let config = if args.admin_url.is_none() || env_token.is_none() {
        let env = std::env::vars().filter(|(k, _)| k != crate::serve::CONFIG_ENV);
        Some(
            cimdgate_server::Config::load(args.config.as_deref(), env)
                .map_err(|e| usage(format!("{e}")))?,
        )
    } else {
        None
    };
    let base = match (&args.admin_url, &config) {
        (Some(u), _) => u.clone(),
        (None, Some(c)) => admin_base(c).ok_or_else(|| {
            usage("the admin listener is off ([admin] listen = \"off\"); pass --admin-url".into())
        })?,
        (None, None) => return Err(usage("no admin URL".into())),
    };
    let token = match (env_token, &config) {
        (Some(t), _) => t,
        (None, Some(c)) => admin_token(c, args.config.is_none()).ok_or_else(|| {
            usage(format!(
                "no admin token: set {TOKEN_ENV}, or [admin] token_file in the configuration"
            ))
        })?,
        (None, None) => return Err(usage(format!("no admin token: set {TOKEN_ENV}"))),
    };
    Ok((base, token))
}

/// `http://<[admin] listen>`, unless the admin listener is off (an unspecified address such as
/// `0.0.0.0` is reached on loopback).
fn admin_base(config: &cimdgate_server::Config) -> Option<Url> {
    let mut addr = config.admin.listen.addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Url::parse(&format!("http://{addr}")).ok()
}

/// The configured admin token; in zero-config mode the one `serve` generated in its data folder.
fn admin_token(config: &cimdgate_server::Config, zero_config: bool) -> Option<String> {
    use cimdgate_server::secret::ExposeSecret;
    let mut admin = config.admin.clone();
    if zero_config && admin.token.is_none() && admin.token_file.is_none() {
        let folder = config.store.url.strip_prefix("embedded:")?;
        admin.token_file =
            Some(std::path::Path::new(folder).join(crate::zero_config::ADMIN_TOKEN_FILE));
    }
    match admin.load_token() {
        Ok(t) => t.map(|t| t.expose_secret().to_owned()),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

/// `/admin/v1/clients/{percent-encoded id}[/action]`, relative to the API base.
fn client_path(client_id: &str, action: Option<&str>) -> String {
    let id = percent_encoding::utf8_percent_encode(client_id, percent_encoding::NON_ALPHANUMERIC);
    match action {
        Some(a) => format!("clients/{id}/{a}"),
        None => format!("clients/{id}"),
    }
}

struct Api {
    base: Url,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/admin/v1/{path}",
            self.base.as_str().trim_end_matches('/')
        )
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        let mut url = Url::parse(&self.url(path))
            .map_err(|e| Failure(EXIT_USAGE_OR_FETCH, format!("admin URL: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let req = self.http.get(url).bearer_auth(&self.token);
        answer(req.send().await).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Failure> {
        let req = self
            .http
            .post(self.url(path))
            .json(&body)
            .bearer_auth(&self.token);
        answer(req.send().await).await
    }
}

/// The API's answer as JSON, or the failure with its exit status.
async fn answer(sent: reqwest::Result<reqwest::Response>) -> Result<Value, Failure> {
    let resp = sent.map_err(|e| {
        Failure(
            EXIT_USAGE_OR_FETCH,
            format!("cannot reach the admin API: {e}"),
        )
    })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let description = body["error_description"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .unwrap_or("no details")
        .to_owned();
    let code = match status.as_u16() {
        400 | 404 | 409 | 413 => EXIT_INVALID,
        _ => EXIT_USAGE_OR_FETCH,
    };
    Err(Failure(
        code,
        format!(
            "the admin API answered {status}: {}",
            sanitize(&description)
        ),
    ))
}

fn print(json: bool, v: &Value, table: impl FnOnce(&Value)) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        table(v);
    }
}

/// A client-controlled string made safe for a terminal: control characters (escape sequences,
/// carriage returns, bidi overrides) are shown escaped.
fn sanitize(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let unsafe_char = c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            if unsafe_char {
                c.escape_unicode().collect::<Vec<char>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => sanitize(s),
        other => sanitize(&other.to_string()),
    }
}

fn print_list(v: &Value) {
    let empty = Vec::new();
    let clients = v["clients"].as_array().unwrap_or(&empty);
    let rows: Vec<[String; 6]> = clients
        .iter()
        .map(|c| {
            [
                text(&c["host"]),
                text(&c["status"]),
                text(&c["verdict"]),
                text(&c["last_seen"]),
                text(&c["client_name"]),
                text(&c["client_id"]),
            ]
        })
        .collect();
    let header = [
        "HOST",
        "STATUS",
        "VERDICT",
        "LAST SEEN",
        "NAME",
        "CLIENT ID",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 5 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
    println!("{} client(s)", rows.len());
}

fn print_detail(v: &Value) {
    let fields = [
        "client_id",
        "kind",
        "host",
        "client_name",
        "status",
        "status_reason",
        "scope_ceiling",
        "verdict",
        "first_seen",
        "last_seen",
        "client_uri",
        "logo_uri",
        "contacts",
        "redirect_uris",
        "token_endpoint_auth_method",
        "jwks_uri",
        "keys",
        "scope",
        "document_digest",
        "user_count",
        "tokens_issued",
    ];
    for f in fields {
        println!("{f:<27} {}", text(&v[f]));
    }
    if let Some(fetch) = v["last_fetch"].as_object() {
        println!(
            "{:<27} {} {}{}",
            "last_fetch",
            text(&fetch["at"].clone()),
            if fetch["ok"] == json!(true) {
                "ok"
            } else {
                "failed"
            },
            fetch["reason"]
                .as_str()
                .map(|r| format!(": {}", sanitize(r)))
                .unwrap_or_default()
        );
    }
    println!("\nHistory of document changes:");
    for h in v["history"].as_array().into_iter().flatten() {
        for c in h["changes"].as_array().into_iter().flatten() {
            println!(
                "  {}  {}: {} -> {}",
                text(&h["at"]),
                text(&c["field"]),
                text(&c["old"]),
                text(&c["new"])
            );
        }
    }
    println!("\nUsers who consented:");
    for u in v["users"].as_array().into_iter().flatten() {
        println!("  {}", text(u));
    }
    println!("\nLive grants:");
    for g in v["grants"].as_array().into_iter().flatten() {
        println!(
            "  {}  user {}  scope {}  until {}",
            text(&g["family_id"]),
            text(&g["subject"]),
            text(&g["scope"]),
            text(&g["expires_at"])
        );
    }
}

fn print_status(done: &str, v: &Value) {
    println!(
        "{done}: {} (status {})",
        text(&v["client_id"]),
        text(&v["status"])
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_control_characters_in_client_strings_are_escaped() {
        assert_eq!(sanitize("plain name"), "plain name");
        assert_eq!(sanitize("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(sanitize("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(sanitize("l1\r\nl2"), "l1\\u{d}\\u{a}l2");
    }

    #[test]
    fn a_client_id_is_one_encoded_path_segment() {
        assert_eq!(
            client_path("https://a.example/c.json", Some("block")),
            "clients/https%3A%2F%2Fa%2Eexample%2Fc%2Ejson/block"
        );
    }
}
