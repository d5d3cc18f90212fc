//! `cimdgate cimd validate`: fetch or read a Client ID Metadata Document and report every
//! problem in it, with the rule each one breaks.
//!
//! URLs are fetched by the same SSRF-safe fetcher the server uses (docs/architecture.md, *Fetching
//! (SSRF-safe)*): private and special-purpose addresses are refused, redirects are not followed,
//! the body is capped at 5120 bytes. The dev hooks (`--dev-allow-loopback`, `--ca-file`,
//! `--resolve`) exist for local testing and print a warning.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use cimd::ClientIdUrl;
use cimd::document::{
    MAX_DOCUMENT_BYTES, Problem, Profile, Severity, ValidatedDocument, ValidationReport,
    validate_document,
};
use cimd::fetch::{FetchConfig, FetchRequest, Fetcher};

use crate::{EXIT_INVALID, EXIT_USAGE_OR_FETCH, EXIT_VALID};

/// Arguments of `cimdgate cimd validate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 valid, 1 invalid (every problem is listed), \
2 usage error or the document could not be fetched/read.\n\n\
Examples:\n  cimdgate cimd validate https://agent.example.com/oauth/client.json\n  \
cimdgate cimd validate client.json --expect-client-id https://agent.example.com/oauth/client.json\n  \
cimdgate cimd validate https://cimd.test:8443/c.json --dev-allow-loopback --ca-file ca.pem \
--resolve cimd.test:127.0.0.1"
)]
pub struct ValidateArgs {
    /// The client_id URL to fetch (https://…), or a local FILE holding the document.
    #[arg(value_name = "URL|FILE")]
    target: String,
    /// Also print what the document declares and how it was fetched.
    #[arg(short, long)]
    verbose: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// The client_id the document must declare (defaults to the URL when fetching).
    #[arg(long, value_name = "URL")]
    expect_client_id: Option<String>,
    /// Apply the draft's rules only: a missing client_name is a warning (MCP requires it).
    #[arg(long)]
    lenient: bool,
    /// DEV/TEST ONLY: allow fetching from 127.0.0.0/8 and ::1 (never other private ranges).
    #[arg(long)]
    dev_allow_loopback: bool,
    /// DEV/TEST ONLY: also trust the CA certificates in this PEM file; repeatable.
    #[arg(long = "ca-file", value_name = "FILE")]
    ca_files: Vec<PathBuf>,
    /// DEV/TEST ONLY: resolve HOST to IP, like curl --resolve (the address rules still apply).
    #[arg(long = "resolve", value_name = "HOST:IP")]
    resolve: Vec<String>,
    /// Total time allowed for the fetch, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    timeout: f64,
}

/// Machine-readable result (`--json`).
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    source: &'a str,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetch_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetch: Option<FetchInfo>,
    errors: Vec<JsonProblem<'a>>,
    warnings: Vec<JsonProblem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<ClientSummary>,
}

#[derive(Debug, Serialize)]
struct JsonProblem<'a> {
    field: &'a str,
    rule: &'a str,
    message: &'a str,
}

#[derive(Debug, Clone, Serialize)]
struct FetchInfo {
    status: u16,
    bytes: usize,
    elapsed_ms: f64,
    content_type: Option<String>,
    cache_control: Option<String>,
    etag: Option<String>,
}

#[derive(Debug, Serialize)]
struct ClientSummary {
    client_id: String,
    client_name: Option<String>,
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: &'static str,
    grant_types: Vec<String>,
    scope: Option<String>,
    jwks_uri: Option<String>,
    inline_keys: usize,
}

/// Where the document bytes came from.
struct Loaded {
    bytes: Vec<u8>,
    expected: Option<ClientIdUrl>,
    fetch: Option<FetchInfo>,
}

/// Run the command and return the process exit status.
pub fn run(args: ValidateArgs) -> u8 {
    let loaded = match load(&args) {
        Ok(loaded) => loaded,
        Err(Failure::Usage(msg)) => return fail(&args, &msg, EXIT_USAGE_OR_FETCH),
        Err(Failure::Fetch(msg)) => return fail(&args, &msg, EXIT_USAGE_OR_FETCH),
        Err(Failure::Invalid(problem)) => {
            let report = ValidationReport {
                problems: vec![problem],
            };
            return print_result(&args, None, Err(&report));
        }
    };
    let profile = if args.lenient {
        Profile::Lenient
    } else {
        Profile::Mcp
    };
    let result = validate_document(&loaded.bytes, loaded.expected.as_ref(), profile);
    print_result(&args, loaded.fetch, result.as_ref())
}

enum Failure {
    Usage(String),
    Fetch(String),
    Invalid(Problem),
}

fn is_url(target: &str) -> bool {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

fn load(args: &ValidateArgs) -> Result<Loaded, Failure> {
    let expect = match &args.expect_client_id {
        Some(raw) => Some(ClientIdUrl::parse(raw).map_err(|e| {
            Failure::Usage(format!(
                "--expect-client-id {raw:?} is not a valid client_id: {e}"
            ))
        })?),
        None => None,
    };
    if !is_url(&args.target) {
        let bytes = std::fs::read(&args.target)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", args.target)))?;
        return Ok(Loaded {
            bytes,
            expected: expect,
            fetch: None,
        });
    }
    let id = ClientIdUrl::parse(&args.target).map_err(|e| {
        Failure::Invalid(Problem {
            severity: Severity::Error,
            field: "client_id".into(),
            rule: "client-id-url",
            message: format!("{:?} cannot be a client_id: {e}", args.target),
        })
    })?;
    if let Some(expected) = &expect
        && expected != &id
    {
        return Err(Failure::Invalid(Problem {
            severity: Severity::Error,
            field: "client_id".into(),
            rule: "client-id-mismatch",
            message: format!(
                "the URL {} is not the expected client_id {} (compared as exact strings)",
                id, expected
            ),
        }));
    }
    let fetcher = Fetcher::new(fetch_config(args)?)
        .map_err(|e| Failure::Usage(format!("cannot set up the fetcher: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?;
    let started = Instant::now();
    let request = FetchRequest::new(id.as_str(), MAX_DOCUMENT_BYTES);
    let response = runtime
        .block_on(fetcher.fetch(&request))
        .map_err(|e| Failure::Fetch(format!("could not fetch {id}: {e}")))?;
    let header = |name: &str| {
        response
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let fetch = FetchInfo {
        status: response.status.as_u16(),
        bytes: response.body.len(),
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        content_type: header("content-type"),
        cache_control: header("cache-control"),
        etag: header("etag"),
    };
    Ok(Loaded {
        bytes: response.body.to_vec(),
        expected: Some(id),
        fetch: Some(fetch),
    })
}

fn fetch_config(args: &ValidateArgs) -> Result<FetchConfig, Failure> {
    let mut config = FetchConfig::default();
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 120.0) {
        return Err(Failure::Usage(format!(
            "--timeout {} must be between 0 and 120 seconds",
            args.timeout
        )));
    }
    config.total_timeout = Duration::from_secs_f64(args.timeout);
    config.connect_timeout = config.connect_timeout.min(config.total_timeout);
    config.dev_allow_loopback = args.dev_allow_loopback;
    for path in &args.ca_files {
        let pem = std::fs::read(path).map_err(|e| {
            Failure::Usage(format!("cannot read --ca-file {}: {e}", path.display()))
        })?;
        config.extra_ca_pem.push(pem);
    }
    config.resolve = parse_resolve(&args.resolve).map_err(Failure::Usage)?;
    Ok(config)
}

/// Parse `HOST:IP` pairs (`cimd.test:127.0.0.1`, `cimd.test:[::1]` or `cimd.test:::1`).
fn parse_resolve(pairs: &[String]) -> Result<HashMap<String, IpAddr>, String> {
    let mut map = HashMap::new();
    for pair in pairs {
        let (host, ip) = pair
            .split_once(':')
            .ok_or_else(|| format!("--resolve {pair:?} must look like HOST:IP"))?;
        let ip_text = ip.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = ip_text
            .parse()
            .map_err(|_| format!("--resolve {pair:?}: {ip:?} is not an IP address"))?;
        if host.is_empty() {
            return Err(format!("--resolve {pair:?}: the host is empty"));
        }
        map.insert(host.to_ascii_lowercase(), ip);
    }
    Ok(map)
}

fn fail(args: &ValidateArgs, message: &str, code: u8) -> u8 {
    if args.json {
        let report = JsonReport {
            source: &args.target,
            valid: false,
            fetch_error: Some(message.to_owned()),
            fetch: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            client: None,
        };
        print_json(&report);
    } else {
        eprintln!("error: {message}");
    }
    code
}

fn print_json(report: &JsonReport<'_>) {
    match serde_json::to_string_pretty(report) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot encode the report: {e}"),
    }
}

fn summary(valid: &ValidatedDocument) -> ClientSummary {
    let doc = &valid.document;
    ClientSummary {
        client_id: doc.client_id.to_string(),
        client_name: doc.client_name.clone(),
        redirect_uris: doc
            .redirect_uris
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect(),
        token_endpoint_auth_method: match doc.token_endpoint_auth_method {
            cimd::document::AuthMethod::None => "none",
            cimd::document::AuthMethod::PrivateKeyJwt => "private_key_jwt",
        },
        grant_types: doc.grant_types.clone(),
        scope: doc.scope.clone(),
        jwks_uri: doc.jwks_uri.as_ref().map(|u| u.to_string()),
        inline_keys: doc.jwks.as_ref().map_or(0, |set| set.keys.len()),
    }
}

fn as_json(problem: &Problem) -> JsonProblem<'_> {
    JsonProblem {
        field: &problem.field,
        rule: problem.rule,
        message: &problem.message,
    }
}

fn print_result(
    args: &ValidateArgs,
    fetch: Option<FetchInfo>,
    result: Result<&ValidatedDocument, &ValidationReport>,
) -> u8 {
    let (errors, warnings): (Vec<&Problem>, Vec<&Problem>) = match result {
        Ok(valid) => (Vec::new(), valid.warnings.iter().collect()),
        Err(report) => report
            .problems
            .iter()
            .partition(|p| p.severity == Severity::Error),
    };
    let code = if result.is_ok() {
        EXIT_VALID
    } else {
        EXIT_INVALID
    };
    if args.json {
        let report = JsonReport {
            source: &args.target,
            valid: result.is_ok(),
            fetch_error: None,
            fetch,
            errors: errors.iter().map(|p| as_json(p)).collect(),
            warnings: warnings.iter().map(|p| as_json(p)).collect(),
            client: result.ok().map(summary),
        };
        print_json(&report);
        return code;
    }
    match result {
        Ok(valid) => {
            let name = valid
                .document
                .client_name
                .as_deref()
                .unwrap_or("(no client_name)");
            println!("valid: {} ({name})", valid.document.client_id);
        }
        Err(_) => println!(
            "invalid: {} error(s), {} warning(s) in {}",
            errors.len(),
            warnings.len(),
            args.target
        ),
    }
    if !errors.is_empty() {
        println!("errors:");
        for p in &errors {
            println!("  - {p}");
        }
    }
    if !warnings.is_empty() {
        println!("warnings:");
        for p in &warnings {
            println!("  - {p}");
        }
    }
    if args.verbose {
        if let Some(f) = &fetch {
            println!(
                "fetch: HTTP {} in {:.1} ms, {} bytes, content-type {}, cache-control {}, etag {}",
                f.status,
                f.elapsed_ms,
                f.bytes,
                f.content_type.as_deref().unwrap_or("-"),
                f.cache_control.as_deref().unwrap_or("-"),
                f.etag.as_deref().unwrap_or("-"),
            );
        }
        if let Ok(valid) = result {
            let s = summary(valid);
            println!("client_name: {}", s.client_name.as_deref().unwrap_or("-"));
            println!("redirect_uris: {}", s.redirect_uris.join(", "));
            println!(
                "token_endpoint_auth_method: {}",
                s.token_endpoint_auth_method
            );
            println!("grant_types: {}", s.grant_types.join(", "));
            println!("scope: {}", s.scope.as_deref().unwrap_or("-"));
            if let Some(uri) = &s.jwks_uri {
                println!("jwks_uri: {uri}");
            }
            if s.inline_keys > 0 {
                println!("jwks: {} inline public key(s)", s.inline_keys);
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_resolve_accepts_v4_and_bracketed_v6() {
        let map = parse_resolve(&["A.test:127.0.0.1".into(), "b.test:[::1]".into()]).unwrap();
        assert_eq!(map["a.test"], "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(map["b.test"], "::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn parse_resolve_rejects_garbage() {
        for bad in ["nohost", ":127.0.0.1", "a.test:notanip"] {
            assert!(parse_resolve(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn is_url_detects_schemes_case_insensitively() {
        assert!(is_url("HTTPS://a.test/x"));
        assert!(is_url("http://a.test/x"));
        assert!(!is_url("client.json"));
        assert!(!is_url("ht"));
    }
}
