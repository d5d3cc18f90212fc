//! A real local Redis Cluster: three masters (and, for failover tests, one replica each) on
//! free loopback ports, each in its own temporary folder with persistence off, built with
//! `redis-cli --cluster create`. Every node is killed by PID when the fixture drops (or, for
//! [`RedisCluster::shared`], when the test process exits).

use std::sync::OnceLock;
use std::time::Duration;

use crate::redis_node::{Node, cli, free_port, run_bounded, wait_until};

/// Cluster node timeout of the fixture (ms): how long a silent master takes to be judged
/// failed. Redis's default is 15 s; 1 s keeps failover tests short.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;

/// A running Redis Cluster.
pub struct RedisCluster {
    masters: Vec<Node>,
    replicas: Vec<Node>,
}

impl RedisCluster {
    /// Three masters, no replicas (the store's contract tests).
    pub fn start() -> RedisCluster {
        Self::build(false)
    }

    /// Three masters and three replicas (`--cluster-replicas 1`): a killed master is replaced
    /// by its replica.
    pub fn start_with_replicas() -> RedisCluster {
        Self::build(true)
    }

    /// One three-master cluster for the whole test process (tests keep apart by key prefix).
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(RedisCluster::start)
    }

    fn build(with_replicas: bool) -> RedisCluster {
        let node_timeout = CLUSTER_NODE_TIMEOUT_MS.to_string();
        let count = if with_replicas { 6 } else { 3 };
        let mut nodes: Vec<Node> = (0..count)
            .map(|_| {
                let bus = free_port().to_string();
                Node::start(
                    free_port(),
                    None,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-port",
                        &bus,
                        "--cluster-node-timeout",
                        &node_timeout,
                        // A replica may take over however long its link was down.
                        "--cluster-replica-validity-factor",
                        "0",
                        "--appendonly",
                        "no",
                        "--save",
                        "",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut create = std::process::Command::new("redis-cli");
        create.arg("--cluster").arg("create").args(&addrs);
        if with_replicas {
            create.args(["--cluster-replicas", "1"]);
        }
        create.arg("--cluster-yes");
        run_bounded(&mut create, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("redis-cli --cluster create {addrs:?} failed"));
        // Sort the nodes by the role `--cluster create` gave them.
        let (masters, replicas): (Vec<Node>, Vec<Node>) = nodes.drain(..).partition(|n| {
            cli(n.port, &["role"], Duration::from_secs(2)).is_some_and(|s| s.starts_with("master"))
        });
        assert_eq!(masters.len(), 3, "three masters");
        let cluster = RedisCluster { masters, replicas };
        let all: Vec<u16> = cluster.ports();
        wait_until(
            "every node reports cluster_state:ok and knows every node",
            Duration::from_secs(30),
            || {
                all.iter().all(|p| {
                    cli(*p, &["cluster", "info"], Duration::from_secs(2)).is_some_and(|s| {
                        s.contains("cluster_state:ok")
                            && s.contains(&format!("cluster_known_nodes:{}", all.len()))
                    })
                })
            },
        );
        for r in &cluster.replicas {
            wait_until(
                "every replica is in sync with its master",
                Duration::from_secs(30),
                || {
                    cli(r.port, &["info", "replication"], Duration::from_secs(2))
                        .is_some_and(|s| s.contains("master_link_status:up"))
                },
            );
        }
        cluster
    }

    /// Ports of every node, masters first.
    pub fn ports(&self) -> Vec<u16> {
        self.masters
            .iter()
            .chain(&self.replicas)
            .map(|n| n.port)
            .collect()
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` (the masters as seeds).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .masters
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// SIGKILL master `i` (0–2) by PID; returns its port.
    pub fn kill_master(&self, i: usize) -> u16 {
        self.masters[i].kill();
        self.masters[i].port
    }

    /// How many of the initial replicas now report themselves master (failovers so far).
    pub fn replica_count_promoted(&self) -> usize {
        self.replicas
            .iter()
            .filter(|n| {
                cli(n.port, &["role"], Duration::from_secs(2))
                    .is_some_and(|s| s.starts_with("master"))
            })
            .count()
    }

    /// Whether every live node reports `cluster_state:ok`.
    pub fn is_ok(&self) -> bool {
        self.ports()
            .iter()
            .filter(|p| crate::redis_node::ping(**p))
            .all(|p| {
                cli(*p, &["cluster", "info"], Duration::from_secs(2))
                    .is_some_and(|s| s.contains("cluster_state:ok"))
            })
    }
}
