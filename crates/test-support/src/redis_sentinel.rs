//! A real local Sentinel setup: one master, one replica and three Sentinels with quorum 2,
//! monitoring the service [`SENTINEL_SERVICE`] — the smallest setup where a killed master is
//! replaced (two Sentinels must agree it is down, a majority of the three must elect the
//! leader that promotes the replica). Free loopback ports, temporary folders, persistence off;
//! every process is killed by PID when the fixture drops (or, for [`RedisSentinel::shared`],
//! when the test process exits).

use std::sync::OnceLock;
use std::time::Duration;

use crate::redis_node::{Node, cli, free_port, wait_until};

/// The monitored master's name.
pub const SENTINEL_SERVICE: &str = "cg";

/// `down-after-milliseconds` of the fixture's Sentinels (Redis's default is 30 s).
pub const SENTINEL_DOWN_AFTER_MS: u64 = 1000;

/// A running master + replica + three Sentinels.
pub struct RedisSentinel {
    master: Node,
    replica: Node,
    sentinels: Vec<Node>,
}

impl RedisSentinel {
    /// Start everything and wait until the three Sentinels know each other and the replica.
    pub fn start() -> RedisSentinel {
        let data = ["--appendonly", "no", "--save", ""];
        let master = Node::start(free_port(), None, &data);
        let mport = master.port.to_string();
        let mut replica_args = data.to_vec();
        replica_args.extend(["--replicaof", "127.0.0.1", &mport]);
        let replica = Node::start(free_port(), None, &replica_args);
        let conf = format!(
            "sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {mport} 2\n\
             sentinel down-after-milliseconds {SENTINEL_SERVICE} {SENTINEL_DOWN_AFTER_MS}\n\
             sentinel failover-timeout {SENTINEL_SERVICE} 3000\n\
             sentinel parallel-syncs {SENTINEL_SERVICE} 1\n"
        );
        let sentinels: Vec<Node> = (0..3)
            .map(|_| Node::start(free_port(), Some(&conf), &["--sentinel"]))
            .collect();
        wait_until(
            "the replica is in sync with the master",
            Duration::from_secs(30),
            || {
                cli(
                    replica.port,
                    &["info", "replication"],
                    Duration::from_secs(2),
                )
                .is_some_and(|s| s.contains("master_link_status:up"))
            },
        );
        for s in &sentinels {
            wait_until(
                "every Sentinel sees the two others and the replica",
                Duration::from_secs(30),
                || {
                    let Some(out) = cli(
                        s.port,
                        &["sentinel", "master", SENTINEL_SERVICE],
                        Duration::from_secs(2),
                    ) else {
                        return false;
                    };
                    let lines: Vec<&str> = out.lines().map(str::trim).collect();
                    let field = |name: &str| {
                        lines
                            .iter()
                            .position(|l| *l == name)
                            .and_then(|i| lines.get(i + 1).copied())
                    };
                    field("num-other-sentinels") == Some("2") && field("num-slaves") == Some("1")
                },
            );
        }
        RedisSentinel {
            master,
            replica,
            sentinels,
        }
    }

    /// One setup for the whole test process (tests keep apart by key prefix).
    pub fn shared() -> &'static RedisSentinel {
        static SHARED: OnceLock<RedisSentinel> = OnceLock::new();
        SHARED.get_or_init(RedisSentinel::start)
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/cg`.
    pub fn url(&self) -> String {
        let s: Vec<String> = self
            .sentinels
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+sentinel://{}/{SENTINEL_SERVICE}", s.join(","))
    }

    /// SIGKILL the (initial) master by PID; returns its port.
    pub fn kill_master(&self) -> u16 {
        self.master.kill();
        self.master.port
    }

    /// Port of the replica (the master after a failover).
    pub fn replica_port(&self) -> u16 {
        self.replica.port
    }

    /// Whether the replica now reports itself master.
    pub fn replica_promoted(&self) -> bool {
        cli(self.replica.port, &["role"], Duration::from_secs(2))
            .is_some_and(|s| s.starts_with("master"))
    }
}
