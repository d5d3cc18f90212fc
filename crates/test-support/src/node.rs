//! Node.js helpers for tests that drive real JavaScript peers (an OIDC provider, the MCP
//! TypeScript SDK, Playwright with Debian's Chromium): install a fixture's pinned packages once
//! per test process, and run a script with a deadline, killing it when it overruns.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// Install a node test fixture's dependencies (`npm ci --prefix DIR --no-audit --no-fund`, from
/// its committed `package-lock.json`) unless `DIR/marker` already exists; at most once per
/// fixture per test process. A failure (no npm, `npm ci` failing) fails the test — nothing is
/// skipped. CI pre-installs the fixtures.
pub fn npm_ci_once(dir: &Path, marker: &str) {
    static DONE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.iter().any(|d| d == dir) {
        return;
    }
    if !dir.join(marker).exists() {
        let out = Command::new("npm")
            .args(["ci", "--prefix"])
            .arg(dir)
            .args(["--no-audit", "--no-fund"])
            .output()
            .unwrap_or_else(|e| panic!("npm must be installed for {}: {e}", dir.display()));
        assert!(
            out.status.success(),
            "npm ci in {} failed:\n{}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            dir.join(marker).exists(),
            "npm ci in {} did not produce {marker}",
            dir.display()
        );
    }
    done.push(dir.to_owned());
}

/// Run a helper program (node scripts) with piped output and a deadline: SIGKILL to its PID
/// when it overruns. Proxy variables are removed so every request stays on loopback.
/// Returns the exit status (`None` when it was killed), stdout and stderr.
pub fn run_bounded(
    mut cmd: std::process::Command,
    timeout: Duration,
) -> (Option<std::process::ExitStatus>, String, String) {
    use std::io::Read as _;
    use std::process::Stdio;
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed (scripts/test installs it)");
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}
