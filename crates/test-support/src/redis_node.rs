//! One `redis-server` process (data node or Sentinel) for the multi-node fixtures
//! ([`crate::RedisCluster`], [`crate::RedisSentinel`]): its own temporary folder, free loopback
//! ports, and a guardian so it never outlives the test process.
//!
//! The guardian is a tiny `sh` that starts `redis-server` in the background, prints its PID and
//! waits on its stdin, a pipe held by this process: when the pipe closes — the [`Node`] dropped,
//! or the test process gone, even for a fixture kept in a `static` — it kills the server by PID.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// One `PING` over a fresh connection; true on `+PONG`.
pub(crate) fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// `redis-cli -p PORT ARGS…`, bounded by `limit`; its stdout, or `None` on failure or timeout.
pub(crate) fn cli(port: u16, args: &[&str], limit: Duration) -> Option<String> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    run_bounded(cmd.args(args), limit)
}

/// Run `cmd` to completion within `limit` (killed by PID past it); its stdout on success.
pub(crate) fn run_bounded(cmd: &mut Command, limit: Duration) -> Option<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}); install redis-server (redis-cli)"));
    let mut out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let s = reader.join().unwrap_or_default();
                return status.success().then_some(s);
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Poll `check` every 50 ms until true; panic with `what` after `limit`.
pub(crate) fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `redis-server` under its guardian.
pub(crate) struct Node {
    pub(crate) port: u16,
    pid: u32,
    guardian: Option<Child>,
    stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Start `redis-server ARGS…` (plus `--port`, `--bind 127.0.0.1`, `--dir` and a log file
    /// in its own temporary folder) and wait (≤ 10 s) until it answers `PING`. `config`, when
    /// given, is written to `redis.conf` in that folder and passed first (Sentinels need a
    /// writable config file).
    pub(crate) fn start(port: u16, config: Option<&str>, args: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut argv: Vec<String> = Vec::new();
        if let Some(conf) = config {
            let path = dir.path().join("redis.conf");
            std::fs::write(&path, conf).expect("write redis.conf");
            argv.push(path_str(&path));
        }
        argv.extend(
            [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &path_str(dir.path()),
                "--logfile",
                &path_str(&dir.path().join("redis.log")),
                "--loglevel",
                "notice",
            ]
            .map(str::to_owned),
        );
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let mut guardian = Command::new("sh")
            .arg("-c")
            .arg(r#"redis-server "$@" </dev/null >/dev/null 2>&1 & p=$!; echo "$p"; read x; kill -9 "$p" 2>/dev/null; wait "$p""#)
            .arg("sh")
            .args(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh starts");
        let stdin = guardian.stdin.take();
        let mut line = String::new();
        BufReader::new(guardian.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("guardian prints the PID");
        let pid: u32 = line.trim().parse().expect("a PID");
        let node = Node {
            port,
            pid,
            guardian: Some(guardian),
            stdin,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(port) {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not answer PING within 10 s \
                 (is redis-server installed? apt-get install -y redis-server)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    /// SIGKILL the server by PID (a crash: no shutdown, nothing flushed).
    pub(crate) fn kill(&self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        wait_until(
            "killed redis-server stops answering",
            Duration::from_secs(5),
            || !ping(self.port),
        );
    }
}

fn path_str(p: &Path) -> String {
    PathBuf::from(p).to_string_lossy().into_owned()
}

impl Drop for Node {
    fn drop(&mut self) {
        // Closing the pipe makes the guardian kill the server by PID; kill it here too in case
        // the guardian is gone.
        drop(self.stdin.take());
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut g) = self.guardian.take() {
            let _ = g.wait();
        }
    }
}
