//! Helpers for the tests that run the `cimdgate` binary as a child process: a guard that ends
//! the child (by its PID) when the test ends, and pipes collected into shared buffers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cimdgate");

/// A child process with its stdout and stderr collected in the background.
pub struct Proc {
    pub child: Child,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

fn collect(pipe: Option<impl Read + Send + 'static>) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    if let Some(p) = pipe {
        let b = buf.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(p).lines() {
                let Ok(line) = line else { break };
                let mut b = b.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
    }
    buf
}

impl Proc {
    /// Take over a spawned child (stdout/stderr should be piped).
    pub fn new(mut child: Child) -> Proc {
        let stdout = collect(child.stdout.take());
        let stderr = collect(child.stderr.take());
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait until `pred(stdout + stderr)` holds, at most `secs`; panics with the output otherwise
    /// or when the process exits first.
    pub fn wait_for(&mut self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let all = format!("{}{}", self.stdout(), self.stderr());
            if pred(&all) {
                return all;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("process exited ({status}) before {what}:\n{}", self.all());
            }
            if Instant::now() > deadline {
                panic!("no {what} within {secs} s:\n{}", self.all());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the exit, at most `secs`.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() > deadline {
                panic!("process still running after {secs} s:\n{}", self.all());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (graceful shutdown), then wait; SIGKILL if it lingers.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout(), self.stderr())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
