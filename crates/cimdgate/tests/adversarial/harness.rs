//! The shipped binary under attack: start `cimdgate serve` as a child process with a written
//! configuration, read its memory (`/proc/PID/status`), send raw bytes, tally statuses, and
//! check its stderr for panics. The child is killed (by its PID) when the [`Gate`] is dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{BIN, Proc, free_port};

/// Set this to run the suite against another build, e.g. `target/release/cimdgate`. (Not
/// `CIMDGATE_…`: the binary reads every such variable as a configuration override.)
pub const BIN_OVERRIDE_ENV: &str = "ADVERSARIAL_CIMDGATE_BIN";

/// The binary under test: [`BIN_OVERRIDE_ENV`] if set, else the one cargo built for this test.
pub fn binary() -> String {
    std::env::var(BIN_OVERRIDE_ENV).unwrap_or_else(|_| BIN.to_owned())
}

/// The password of every local user in these tests (cheap argon2id parameters unless a test
/// asks otherwise).
pub const PASSWORD: &str = "password";

/// A running `cimdgate serve`.
pub struct Gate {
    proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The listening address.
    pub addr: SocketAddr,
    /// Holds the store and the configuration (removed on drop).
    _dir: tempfile::TempDir,
}

/// What goes into the configuration file besides `listen` and `public_url`.
pub struct Setup<'a> {
    /// More keys for `[server]` (e.g. `trusted_proxies = [...]`).
    pub server: &'a str,
    /// Everything after `[server]`: identity, fetch, resources, limits…
    pub body: String,
    /// Environment variables for the child.
    pub env: Vec<(&'a str, String)>,
}

/// The `[fetch]` section with the dev hooks: the test CA in `ca_file`, `hosts` mapped to
/// 127.0.0.1, and `more` keys (e.g. `dns_server = "..."`).
pub fn fetch_hooks(ca_file: &Path, hosts: &[&str], more: &str) -> String {
    let resolve = hosts
        .iter()
        .map(|h| format!("\"{h}\" = \"127.0.0.1\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[fetch]\ndev_allow_loopback = true\nextra_ca_file = \"{}\"\nresolve = {{ {resolve} }}\n{more}\n",
        ca_file.display()
    )
}

/// The usual body: local users `alice` and `bob` (cheap hashes), `fetch` (e.g.
/// [`fetch_hooks`], or nothing), the demo MCP server at `/mcp`, and `extra` appended.
pub fn body(fetch: &str, extra: &str) -> String {
    let hash = cimdgate_test_support::config::cheap_password_hash(PASSWORD);
    format!(
        r#"[identity]
mode = "local"

[[identity.users]]
username = "alice"
password_hash = "{hash}"

[[identity.users]]
username = "bob"
password_hash = "{hash}"

{fetch}
[[resources]]
path = "/mcp"
upstream = "builtin:demo"
scopes = ["mcp"]

{extra}"#
    )
}

impl Gate {
    /// Write the configuration, start the binary, wait (≤ 60 s) until `/healthz` answers.
    pub async fn start(setup: Setup<'_>) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let store = dir.path().join("store");
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\n{}\n\n\
             [store]\nurl = \"embedded:{}\"\n\n{}",
            setup.server,
            store.display(),
            setup.body
        );
        let config = dir.path().join("cimdgate.toml");
        std::fs::write(&config, toml).unwrap();
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .env_remove("CIMDGATE_CONFIG")
            // Tests run side by side: each admin listener on a port of its own.
            .env("CIMDGATE_ADMIN__LISTEN", "127.0.0.1:0")
            // The attacks use dynamic registration (off by default since MCP 2026-07-28
            // deprecated it) as the quickest way to a client of their own.
            .env("CIMDGATE_DCR__ENABLED", "true")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &setup.env {
            cmd.env(k, v);
        }
        let mut proc = Proc::new(cmd.spawn().unwrap());
        let http = plain_client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = proc.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("cimdgate serve exited ({status}):\n{}", proc.all());
            }
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no /healthz within 60 s:\n{}",
                proc.all()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Gate {
            proc,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            base,
            _dir: dir,
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// Resident set size now, KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmRSS:")
    }

    /// Peak resident set size so far, KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmHWM:")
    }

    /// Open file descriptors now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// The child is alive and has printed no panic.
    pub fn assert_healthy(&mut self) {
        if let Ok(Some(status)) = self.proc.child.try_wait() {
            panic!("cimdgate exited ({status}):\n{}", self.proc.all());
        }
        let err = self.stderr();
        assert!(
            !err.contains("panicked"),
            "the server panicked:\n{}",
            err.lines()
                .filter(|l| l.contains("panicked"))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// GET `/healthz` on a fresh connection; how long it took (panics past `limit`).
    pub async fn healthz_within(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        let r = tokio::time::timeout(limit, plain_client().get(self.url("/healthz")).send())
            .await
            .unwrap_or_else(|_| panic!("/healthz took longer than {limit:?}"))
            .unwrap();
        assert_eq!(r.status(), 200);
        started.elapsed()
    }
}

/// Resident set size of process `pid` now, KiB.
pub fn rss_of(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// MiB from KiB, for printing.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A client that follows no redirects, with a per-request timeout, no pooling across tests.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap()
}

/// Write the CA certificate next to the store; its path.
pub fn write_ca(dir: &Path, pem: &str) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

/// Send `request` on a new connection; read until the server closes it or `within` passes.
/// Returns the status (0: no parsable answer) and what was read.
pub async fn raw(addr: SocketAddr, request: &[u8], within: Duration) -> (u16, String) {
    let Ok(Ok(mut s)) = tokio::time::timeout(within, TcpStream::connect(addr)).await else {
        return (0, "connect failed".into());
    };
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 16 * 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    (status_of(&text), text)
}

/// The status code of a raw HTTP/1.1 response (0 if none).
pub fn status_of(response: &str) -> u16 {
    response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Counts of answers by status, shared between tasks.
#[derive(Clone, Default)]
pub struct Tally(Arc<Mutex<BTreeMap<u16, usize>>>);

impl Tally {
    /// Count one answer.
    pub fn add(&self, status: u16) {
        *self.0.lock().unwrap().entry(status).or_default() += 1;
    }

    /// The counts so far.
    pub fn counts(&self) -> BTreeMap<u16, usize> {
        self.0.lock().unwrap().clone()
    }

    /// How many answers had a status in `range`.
    pub fn within(&self, range: std::ops::RangeInclusive<u16>) -> usize {
        self.counts()
            .iter()
            .filter(|(s, _)| range.contains(s))
            .map(|(_, n)| n)
            .sum()
    }

    /// No answer was a 5xx and every request got an answer (no status 0).
    pub fn assert_no_5xx(&self, what: &str) {
        let counts = self.counts();
        assert_eq!(self.within(500..=599), 0, "{what}: 5xx answers: {counts:?}");
        assert_eq!(
            self.within(0..=0),
            0,
            "{what}: requests without an answer: {counts:?}"
        );
    }
}
