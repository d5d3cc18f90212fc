//! `[audit] sink = "file:PATH"` through the real binary: a full login (registration, sign-in,
//! consent, code exchange) and a refused admin request write one JSON line per audit event with
//! the documented schema and no secret; after the file is renamed, SIGHUP makes the server
//! write to a new file at the path (logrotate). Also the zero-config admin token: generated
//! 0600 into the data folder, named — never printed — by the startup lines.

mod support;

use std::process::{Command, Stdio};

use cimdgate_client::discovery::discover;
use cimdgate_client::flow::{AuthorizationRequest, register};
use cimdgate_client::form::{FormDriver, Step};
use support::{BIN, Proc, free_port};

fn read_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Wait (≤ 10 s) until the file at `path` has a line with `event`.
fn wait_event(path: &std::path::Path, event: &str) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let lines = read_lines(path);
        if lines.iter().any(|l| l["event"] == event) {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {event} in {}: {lines:?}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_file_has_one_json_line_per_event_and_reopens_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("CIMDGATE_SERVER__PUBLIC_URL", &base)
        .env("CIMDGATE_ADMIN__LISTEN", "127.0.0.1:0")
        .env("CIMDGATE_AUDIT__SINK", format!("file:{}", audit.display()))
        .env_remove("CIMDGATE_CONFIG")
        .env_remove("RUST_LOG")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Proc::new(child);
    let out = server.wait_for(90, "the banner", |o| {
        o.contains("password: ") && o.contains("cimdgate admin listening on http://")
    });
    let password = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap()
        .to_owned();
    let admin = out
        .lines()
        .find_map(|l| l.strip_prefix("cimdgate admin listening on http://"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();

    // The zero-config admin token: in the data folder, 0600, named but never printed.
    let token_file = dir.path().join("cimdgate-data").join("admin-token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    assert!(token.len() >= 32, "{token}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "admin token file mode");
    }
    assert!(out.contains("admin-token"), "{out}");
    assert!(!out.contains(token), "the admin token is never printed");
    let http = cimdgate_client::http_client().unwrap();
    let whoami = format!("http://{admin}/admin/v1/whoami");
    let ok = http.get(&whoami).bearer_auth(token).send().await.unwrap();
    assert_eq!(ok.status(), 200);

    // A full login: registration, sign-in, consent, code exchange.
    let mcp_url = url::Url::parse(&format!("{base}/mcp")).unwrap();
    let d = discover(&http, &mcp_url).await.unwrap();
    let endpoint = d.metadata.registration_endpoint.clone().unwrap();
    let redirect = "http://127.0.0.1:9/callback";
    let client_id = register(&http, &endpoint, "audit test", redirect, Some("mcp"))
        .await
        .unwrap();
    let req = AuthorizationRequest::new(&d, &client_id, redirect, Some("mcp")).unwrap();
    let driver = FormDriver::new().unwrap();
    let Step::Login(form) = driver.open(req.url.as_str()).await.unwrap() else {
        panic!("expected the login page")
    };
    let Step::Consent(form) = driver.login(&form, "dev", &password).await.unwrap() else {
        panic!("expected the consent page")
    };
    let Step::Redirect(location) = driver.consent(&form, true).await.unwrap() else {
        panic!("expected the redirect")
    };
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let tokens = req.exchange(&http, &code).await.unwrap();
    use cimdgate_server::secret::ExposeSecret;
    let access_token = tokens.access_token.expose_secret().to_owned();

    // A refused admin request.
    let refused = http
        .get(&whoami)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let lines = wait_event(&audit, "admin_login_failed");
    let text = std::fs::read_to_string(&audit).unwrap();
    for raw in text.lines() {
        // The fixed keys come first, in this order.
        let at = |k: &str| raw.find(&format!("\"{k}\":")).unwrap_or(usize::MAX);
        let order = ["ts", "event", "client_id", "subject", "ip"].map(at);
        assert!(
            order[0] == 1 && order.is_sorted() && order[4] < usize::MAX,
            "{raw}"
        );
    }
    for l in &lines {
        let ts = l["ts"].as_str().unwrap();
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && &ts[10..11] == "T",
            "{ts}"
        );
        assert!(l["event"].is_string(), "{l}");
    }
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    for e in [
        "client_registered",
        "login",
        "consent_granted",
        "token_issued",
    ] {
        assert!(events.contains(&e), "{e} missing: {events:?}");
    }
    let login = lines.iter().find(|l| l["event"] == "login").unwrap();
    assert_eq!(login["client_id"], client_id.as_str(), "{login}");
    assert_eq!(login["subject"], "dev", "{login}");
    let failed = lines
        .iter()
        .find(|l| l["event"] == "admin_login_failed")
        .unwrap();
    assert_eq!(failed["ip"], "127.0.0.1", "{failed}");
    for secret in [
        password.as_str(),
        token,
        &code,
        &access_token,
        "not-the-token",
    ] {
        assert!(!text.contains(secret), "a secret in the audit file: {text}");
    }
    assert!(
        !server.stderr().contains("admin_login_failed"),
        "with a sink, audit events leave the log"
    );

    // logrotate: rename, SIGHUP, and the next event goes to a new file at the path.
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&audit, &rotated).unwrap();
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success());
    server.wait_for(10, "the reopen", |o| o.contains("audit file reopened"));
    let refused = http.get(&whoami).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let fresh = wait_event(&audit, "admin_login_failed");
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    assert_eq!(
        read_lines(&rotated).len(),
        lines.len(),
        "the old file is left alone"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the server"
    );
    server.terminate();
}
