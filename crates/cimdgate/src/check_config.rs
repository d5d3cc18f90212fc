//! `cimdgate check-config`: load and check a configuration exactly as `serve` does (the same
//! loader, environment overrides and checks, the files it names read — no listener, no store
//! opened), then print the effective configuration with every secret redacted.
//!
//! Exit status: 0 valid, 1 invalid (the message names the key), 2 usage (no such or
//! unreadable file).

use std::path::PathBuf;

use clap::Args;

use cimdgate_server::Config;
use cimdgate_server::config::ConfigError;

use crate::serve::CONFIG_ENV;
use crate::{EXIT_INVALID, EXIT_USAGE_OR_FETCH, EXIT_VALID};

/// Arguments of `cimdgate check-config`.
#[derive(Debug, Args)]
#[command(
    after_help = "Without --config (or CIMDGATE_CONFIG) the defaults plus CIMDGATE_* \
environment overrides are checked; the zero-config additions of `serve` (dev user, demo \
resource, admin token) are not made, since they write to the store. Secrets (password hashes, \
client secrets, the admin and initial access tokens, a Redis password) print as <redacted>."
)]
pub struct CheckArgs {
    /// TOML configuration file (as for `serve`).
    #[arg(short, long, value_name = "FILE", env = "CIMDGATE_CONFIG")]
    config: Option<PathBuf>,
    /// How to print the effective configuration: `toml` or `json`.
    #[arg(long, value_name = "FORMAT", default_value = "toml", value_parser = ["toml", "json"])]
    format: String,
}

/// Run the check; the exit status.
pub fn run(args: CheckArgs) -> u8 {
    let env = std::env::vars().filter(|(k, _)| k != CONFIG_ENV);
    let config = match Config::load(args.config.as_deref(), env) {
        Ok(c) => c,
        Err(e @ ConfigError::Read { .. }) => {
            eprintln!("error: {e}");
            return EXIT_USAGE_OR_FETCH;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_INVALID;
        }
    };
    // What `serve` reads at startup beyond `Config::check`: the fetcher's CA file.
    if let Err(e) = config.fetch.fetch_config() {
        eprintln!("error: {e}");
        return EXIT_INVALID;
    }
    let text = if args.format == "json" {
        serde_json::to_string_pretty(&config).map_err(|e| e.to_string())
    } else {
        toml::to_string_pretty(&config).map_err(|e| e.to_string())
    };
    match text {
        Ok(t) => {
            println!("{}", t.trim_end());
            eprintln!(
                "configuration is valid ({})",
                args.config
                    .as_deref()
                    .map_or("defaults and environment".into(), |p| p
                        .display()
                        .to_string())
            );
            EXIT_VALID
        }
        Err(e) => {
            eprintln!("error: cannot print the configuration: {e}");
            EXIT_INVALID
        }
    }
}
