//! `cimdgate serve` with no config file (docs/architecture.md, *Command line*; issue 4): in an
//! empty working folder it starts, answers `/healthz`, protects the demo MCP server at `/mcp` with
//! the RFC 9728 challenge, creates a dev user whose password is printed on the first start only,
//! and that password signs in.

mod support;

use std::process::{Command, Stdio};

use cimdgate_client::discovery::discover;
use cimdgate_client::flow::{AuthorizationRequest, register};
use cimdgate_client::form::{FormDriver, Step};
use support::{BIN, Proc, free_port};

fn start(dir: &std::path::Path, port: u16) -> Proc {
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("CIMDGATE_SERVER__PUBLIC_URL", &base)
        // A free port: tests run side by side.
        .env("CIMDGATE_ADMIN__LISTEN", "127.0.0.1:0")
        .env_remove("CIMDGATE_CONFIG")
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Proc::new(child)
}

fn password_line(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_without_config_protects_demo_mcp_and_prints_dev_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = cimdgate_client::http_client().unwrap();

    // First start: banner with the MCP URL, the login hint and the new password.
    let mut first = start(dir.path(), port);
    let out = first.wait_for(90, "the banner", |o| o.contains("password: "));
    assert!(out.contains(&format!("{base}/mcp")), "{out}");
    assert!(out.contains("cimdgate login"), "{out}");
    let password = password_line(&out).expect("password printed");
    assert!(password.len() >= 20, "{password}");

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let mcp = http.post(format!("{base}/mcp")).send().await.unwrap();
    assert_eq!(mcp.status(), 401);
    let challenge = mcp.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(&format!(
                "resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
            )),
        "{challenge}"
    );
    assert!(
        dir.path().join("cimdgate-data").is_dir(),
        "store in ./cimdgate-data"
    );

    // The printed password signs in as `dev` (a DCR client, since no CIMD host is at hand).
    let mcp_url = url::Url::parse(&format!("{base}/mcp")).unwrap();
    let d = discover(&http, &mcp_url).await.unwrap();
    let endpoint = d.metadata.registration_endpoint.clone().unwrap();
    let redirect = "http://127.0.0.1:9/callback";
    let client_id = register(&http, &endpoint, "zero-config test", redirect, Some("mcp"))
        .await
        .unwrap();
    let req = AuthorizationRequest::new(&d, &client_id, redirect, Some("mcp")).unwrap();
    let driver = FormDriver::new().unwrap();
    let Step::Login(form) = driver.open(req.url.as_str()).await.unwrap() else {
        panic!("expected the login page")
    };
    let next = driver.login(&form, "dev", &password).await.unwrap();
    assert!(
        matches!(next, Step::Consent(_)),
        "dev/password signs in: {next:?}"
    );
    first.terminate();

    // Second start, same folder: the user exists, no password is printed.
    let mut second = start(dir.path(), port);
    let out = second.wait_for(90, "the banner", |o| o.contains("dev user `dev` exists"));
    assert!(password_line(&out).is_none(), "{out}");
    assert!(
        !out.contains(&password),
        "the password is never printed again"
    );
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    second.terminate();
}
