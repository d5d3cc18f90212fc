//! `cimdgate cimd create`: write a Client ID Metadata Document that passes every rule.
//!
//! The output is checked with the same validator the server uses ([`cimd::document`]) before
//! anything is written, so a document this command produces is one cimdgate accepts.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Serialize;

use cimd::ClientIdUrl;
use cimd::document::{Profile, validate_document};

use crate::{EXIT_INVALID, EXIT_USAGE_OR_FETCH, EXIT_VALID};

/// Placeholder used when `--client-id` is not given; the user must replace it with the URL
/// the document will be served from.
pub const PLACEHOLDER_CLIENT_ID: &str = "https://YOUR-DOMAIN.example/oauth/client-metadata.json";

/// Arguments of `cimdgate cimd create`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
cimdgate cimd create --name 'My Agent' --client-id https://agent.example.com/oauth/client.json \\\n    \
--redirect-uri http://127.0.0.1/callback -o client.json\n  \
cimdgate cimd create --name 'My Agent' --redirect-uri https://agent.example.com/cb \\\n    \
--auth-method private_key_jwt --jwks-uri https://agent.example.com/jwks.json")]
pub struct CreateArgs {
    /// Human-readable client name shown on consent screens (`client_name`).
    #[arg(long)]
    name: String,
    /// A redirect URI the client uses; repeat for several. Loopback `http://127.0.0.1/cb` without a
    /// port matches any port.
    #[arg(long = "redirect-uri", required = true, value_name = "URI")]
    redirect_uris: Vec<String>,
    /// The HTTPS URL this document will be served from; it is the client's `client_id`.
    /// Without it a placeholder is written and a warning printed.
    #[arg(long, value_name = "URL")]
    client_id: Option<String>,
    /// Home page of the client (`client_uri`, https).
    #[arg(long, value_name = "URL")]
    client_uri: Option<String>,
    /// Logo shown on consent screens (`logo_uri`, https).
    #[arg(long, value_name = "URL")]
    logo_uri: Option<String>,
    /// Contact e-mail address; repeat for several.
    #[arg(long = "contact", value_name = "EMAIL")]
    contacts: Vec<String>,
    /// Space-separated scopes the client will ask for.
    #[arg(long)]
    scope: Option<String>,
    /// How the client authenticates at the token endpoint.
    #[arg(long, value_enum, default_value_t = AuthMethodArg::None)]
    auth_method: AuthMethodArg,
    /// URL of the client's public JWK Set (with `--auth-method private_key_jwt`).
    #[arg(long, value_name = "URL", conflicts_with = "jwks_file")]
    jwks_uri: Option<String>,
    /// File holding the client's PUBLIC JWK Set (or a single public JWK) to embed as `jwks`.
    #[arg(long, value_name = "FILE")]
    jwks_file: Option<PathBuf>,
    /// Write to FILE instead of stdout (parent folders are created).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write the JSON on one line instead of pretty-printed.
    #[arg(long)]
    compact: bool,
}

/// Token endpoint authentication methods a CIMD client may use (draft §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMethodArg {
    /// Public client: PKCE only, no client authentication.
    None,
    /// RFC 7523 assertion signed with a key from `jwks` or `jwks_uri`.
    #[value(name = "private_key_jwt")]
    PrivateKeyJwt,
}

/// The document as written, in a stable, readable field order.
#[derive(Debug, Serialize)]
struct Document<'a> {
    client_id: &'a str,
    client_name: &'a str,
    redirect_uris: &'a [String],
    grant_types: [&'static str; 2],
    response_types: [&'static str; 1],
    token_endpoint_auth_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logo_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    contacts: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks: Option<serde_json::Value>,
}

/// Run the command and return the process exit status.
pub fn run(args: CreateArgs) -> u8 {
    match build(&args) {
        Ok(json) => write_output(&args, &json),
        Err(CreateError::Usage(msg)) => {
            eprintln!("error: {msg}");
            EXIT_USAGE_OR_FETCH
        }
        Err(CreateError::Invalid(report)) => {
            eprintln!("error: the document would break these rules, so it was not written:");
            for problem in report.errors() {
                eprintln!("  - {problem}");
            }
            EXIT_INVALID
        }
    }
}

enum CreateError {
    Usage(String),
    Invalid(cimd::document::ValidationReport),
}

fn build(args: &CreateArgs) -> Result<String, CreateError> {
    let method = match (args.auth_method, &args.jwks_uri, &args.jwks_file) {
        (AuthMethodArg::None, None, None) => "none",
        (AuthMethodArg::None, _, _) => {
            return Err(CreateError::Usage(
                "--jwks-uri/--jwks-file need --auth-method private_key_jwt".into(),
            ));
        }
        (AuthMethodArg::PrivateKeyJwt, None, None) => {
            return Err(CreateError::Usage(
                "--auth-method private_key_jwt needs --jwks-uri URL or --jwks-file FILE".into(),
            ));
        }
        (AuthMethodArg::PrivateKeyJwt, _, _) => "private_key_jwt",
    };
    let jwks = match &args.jwks_file {
        Some(path) => Some(read_jwks(path).map_err(CreateError::Usage)?),
        None => None,
    };
    let client_id = match &args.client_id {
        Some(id) => {
            ClientIdUrl::parse(id)
                .map_err(|e| CreateError::Usage(format!("--client-id {id:?}: {e}")))?;
            id.as_str()
        }
        None => PLACEHOLDER_CLIENT_ID,
    };
    let doc = Document {
        client_id,
        client_name: &args.name,
        redirect_uris: &args.redirect_uris,
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: method,
        scope: args.scope.as_deref(),
        client_uri: args.client_uri.as_deref(),
        logo_uri: args.logo_uri.as_deref(),
        contacts: &args.contacts,
        jwks_uri: args.jwks_uri.as_deref(),
        jwks,
    };
    let json = if args.compact {
        serde_json::to_string(&doc)
    } else {
        serde_json::to_string_pretty(&doc)
    }
    .map_err(|e| CreateError::Usage(format!("cannot encode the document: {e}")))?;
    // Check what we are about to write with the server's own validator.
    validate_document(json.as_bytes(), None, Profile::Mcp).map_err(CreateError::Invalid)?;
    Ok(json)
}

/// Read a JWK Set, or a single JWK which is wrapped into a set.
fn read_jwks(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --jwks-file {}: {e}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("--jwks-file {} is not JSON: {e}", path.display()))?;
    match value {
        serde_json::Value::Object(ref map) if map.contains_key("keys") => Ok(value),
        serde_json::Value::Object(ref map) if map.contains_key("kty") => {
            Ok(serde_json::json!({ "keys": [value] }))
        }
        _ => Err(format!(
            "--jwks-file {} must hold a JWK Set ({{\"keys\": [...]}}) or a single JWK",
            path.display()
        )),
    }
}

fn write_output(args: &CreateArgs, json: &str) -> u8 {
    if args.client_id.is_none() {
        eprintln!(
            "warning: client_id is the placeholder {PLACEHOLDER_CLIENT_ID}; replace it with the \
             exact HTTPS URL that will serve this document (or pass --client-id)"
        );
    }
    match &args.output {
        None => {
            println!("{json}");
            EXIT_VALID
        }
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                && let Err(e) = std::fs::create_dir_all(parent)
            {
                eprintln!("error: cannot create {}: {e}", parent.display());
                return EXIT_USAGE_OR_FETCH;
            }
            match std::fs::write(path, format!("{json}\n")) {
                Ok(()) => {
                    eprintln!("wrote {}", path.display());
                    EXIT_VALID
                }
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    EXIT_USAGE_OR_FETCH
                }
            }
        }
    }
}
