//! The admin console in a **real browser**: Debian's headless Chromium driven by playwright-core
//! from the node fixture `tests/fixtures/browser/console.js` (same fixture, pinned
//! `package-lock.json` and bounds as the consent test, `consent_in_a_browser.rs`).
//!
//! Chromium opens `/admin/`, is sent to the sign-in form, types the admin token, sees the
//! inventory, opens the client's page from it, types a reason into the block form and presses
//! Block, and reads the status the page then shows. It also proves two things an HTTP-level
//! test cannot: an injected inline script does not run (CSP), and a page framing the console
//! gets nothing of it (`frame-ancestors 'none'`). Screenshots land in
//! `<target>/browser-screenshots/console/`.

use std::path::PathBuf;
use std::process::Command;

use crate::admin_console::{TOKEN, admin_url, signed_in_client, with_token};
use crate::consent_in_a_browser::{
    CHROMIUM, DRIVE_TIMEOUT, STEP_TIMEOUT_MS, assert_png, ensure_browser, fixture_dir, target_dir,
};
use cimdgate_store::ClientStatus;

/// What console.js printed.
#[derive(Debug, serde::Deserialize)]
struct Run {
    login_url: String,
    inventory_text: String,
    client_url: String,
    client_text: String,
    status_after: String,
    blocked_text: String,
    script_ran: bool,
    script_error: Option<String>,
    framed_url: String,
    framed_text: String,
    screenshots: Vec<PathBuf>,
}

const REASON: &str = "leaked signing key";

fn run_console(admin: &str, shot_dir: &std::path::Path) -> Run {
    ensure_browser();
    let _ = std::fs::remove_dir_all(shot_dir);
    let mut cmd = Command::new("node");
    cmd.arg(fixture_dir().join("console.js"))
        .env("ADMIN_URL", admin)
        .env("ADMIN_TOKEN", TOKEN)
        .env("BLOCK_REASON", REASON)
        .env("SCREENSHOT_DIR", shot_dir)
        .env("CHROMIUM", CHROMIUM)
        .env("STEP_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string());
    let (status, stdout, stderr) = cimdgate_test_support::node::run_bounded(cmd, DRIVE_TIMEOUT);
    let Some(status) = status else {
        panic!("console.js killed after {DRIVE_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    assert!(
        status.success(),
        "console.js failed ({status}); screenshots (if any) in {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        shot_dir.display()
    );
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let line = line.unwrap_or_else(|| panic!("no JSON from console.js:\n{stdout}\n{stderr}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON from console.js ({e}): {line}"))
}

/// Sign in, see the inventory, block the client from its page, see "blocked" — and the store
/// agrees; the page ran no injected script and could not be framed.
#[tokio::test]
async fn browser_console_sign_in_and_block_from_the_client_page() {
    let env = with_token().await;
    let id = signed_in_client(&env, "console-browser-app", "Console Browser App").await;

    let admin = admin_url(&env, "/admin/");
    let dir = target_dir().join("browser-screenshots").join("console");
    let run = {
        let (a, d) = (admin.clone(), dir.clone());
        tokio::task::spawn_blocking(move || run_console(&a, &d))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    };

    assert!(run.login_url.ends_with("/admin/login"), "{run:?}");
    for want in [
        "cimd.test",
        "active",
        "Console Browser App",
        "self-declared",
    ] {
        assert!(run.inventory_text.contains(want), "{want:?}: {run:?}");
    }
    assert!(
        run.client_url.contains("/admin/clients/https%3A%2F%2F"),
        "{run:?}"
    );
    for want in [id.as_str(), "redirect_uris", "alice", "Block", "Approve"] {
        assert!(run.client_text.contains(want), "{want:?}: {run:?}");
    }
    assert_eq!(run.status_after, "blocked", "{run:?}");
    assert!(run.blocked_text.contains(REASON), "{run:?}");
    let rec = env.store().get_client_record(&id).await.unwrap().unwrap();
    assert_eq!(rec.admin.status, ClientStatus::Blocked);
    assert_eq!(rec.admin.reason.as_deref(), Some(REASON));

    assert!(!run.script_ran, "an injected script ran: {run:?}");
    assert!(
        run.script_error
            .as_deref()
            .is_some_and(|e| e.contains("Content Security Policy")),
        "the CSP refused the script: {run:?}"
    );
    assert!(
        !run.framed_text.contains("admin console") && !run.framed_url.contains("/admin"),
        "the console rendered inside a frame: {run:?}"
    );

    let names = ["login.png", "inventory.png", "client.png", "blocked.png"];
    assert_eq!(run.screenshots.len(), names.len(), "{:?}", run.screenshots);
    for name in names {
        assert_png(&dir.join(name));
    }
}
