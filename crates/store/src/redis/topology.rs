//! Which Redis deployment a `store.url` names: one server, a Redis Cluster, or a master found
//! through Redis Sentinel — parsed once, with errors that name the problem.
//!
//! | form | deployment |
//! |---|---|
//! | `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`, `rediss://…` | one server (the redis crate's own URL) |
//! | `redis+cluster://[USER:PASSWORD@]HOST[:PORT],HOST[:PORT]…[/]`, `rediss+cluster://…` | a Redis Cluster: the hosts are seeds, the client learns every node and follows `MOVED`/`ASK` |
//! | `redis+sentinel://[USER:PASSWORD@]HOST[:PORT],HOST[:PORT]…/SERVICE[/DB]`, `rediss+sentinel://…` | the master of `SERVICE` as the Sentinels report it, followed across failovers |
//!
//! Default ports: 6379 for cluster seeds, 26379 for Sentinels. The credentials are the data
//! nodes' (cluster nodes, or the Sentinel-managed master); Sentinels are asked without AUTH.

use ::redis::ConnectionAddr;

use crate::StoreError;

/// Schemes of one Redis server.
pub(super) const SINGLE_SCHEMES: [&str; 2] = ["redis://", "rediss://"];
/// Schemes of a Redis Cluster.
pub(super) const CLUSTER_SCHEMES: [&str; 2] = ["redis+cluster://", "rediss+cluster://"];
/// Schemes of a Sentinel-managed master.
pub(super) const SENTINEL_SCHEMES: [&str; 2] = ["redis+sentinel://", "rediss+sentinel://"];

/// Default port of a cluster seed.
const CLUSTER_DEFAULT_PORT: u16 = 6379;
/// Default port of a Sentinel.
const SENTINEL_DEFAULT_PORT: u16 = 26379;

/// A parsed `store.url`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Topology {
    /// One server: the URL as given (the redis crate parses it).
    Single(String),
    /// A Redis Cluster: one `redis://` / `rediss://` URL per seed, credentials included.
    Cluster(Vec<String>),
    /// A Sentinel-managed master.
    Sentinel(SentinelTarget),
}

/// Where the Sentinels are and what to ask them for.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SentinelTarget {
    /// The Sentinels.
    pub(super) sentinels: Vec<ConnectionAddr>,
    /// The monitored master's name (`sentinel monitor <name> …`).
    pub(super) service: String,
    /// Database on the master.
    pub(super) db: i64,
    /// AUTH user on the master (percent-decoded).
    pub(super) username: Option<String>,
    /// AUTH password on the master (percent-decoded).
    pub(super) password: Option<String>,
    /// TLS to the Sentinels and to the master.
    pub(super) tls: bool,
}

/// The parts of `SCHEME://[USERINFO@]HOSTS[/PATH]`.
struct Parts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    hosts: &'a str,
    path: &'a str,
}

fn split(url: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    Some(Parts {
        scheme,
        userinfo,
        hosts,
        path,
    })
}

/// Whether `url` uses one of the Redis backend's schemes.
pub(super) fn is_redis_scheme(url: &str) -> bool {
    SINGLE_SCHEMES
        .iter()
        .chain(&CLUSTER_SCHEMES)
        .chain(&SENTINEL_SCHEMES)
        .any(|s| url.starts_with(s))
}

/// `url` with any password replaced by `***` (every form above; nothing else is secret).
pub(super) fn redact(url: &str) -> String {
    let Some(p) = split(url) else {
        return "(unparsable redis url)".to_owned();
    };
    let userinfo = match p.userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, _)) => format!("{user}:***@"),
            None => format!("{u}@"),
        },
        None => String::new(),
    };
    format!("{}://{userinfo}{}{}", p.scheme, p.hosts, p.path)
}

fn open_err(display: &str, problem: impl std::fmt::Display) -> StoreError {
    StoreError::Open(format!("bad Redis url {display}: {problem}"))
}

/// `HOST[:PORT]` or `[V6]:PORT` → (host, port).
fn host_port(display: &str, s: &str, default_port: u16) -> Result<(String, u16), StoreError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| open_err(display, format!("host {s:?} lacks its closing ']'")))?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(open_err(display, format!("empty host in {s:?}")));
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| {
            open_err(
                display,
                format!("port {p:?} of host {host:?} is not a port"),
            )
        })?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

fn hosts(
    display: &str,
    p: &Parts<'_>,
    default_port: u16,
) -> Result<Vec<(String, u16)>, StoreError> {
    let list = p
        .hosts
        .split(',')
        .map(|h| host_port(display, h.trim(), default_port))
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() {
        return Err(open_err(display, "no host"));
    }
    Ok(list)
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Parse a `store.url` of the Redis backend.
pub(super) fn parse(url: &str) -> Result<Topology, StoreError> {
    let display = redact(url);
    let Some(p) = split(url) else {
        return Err(open_err(&display, "expected SCHEME://HOST…"));
    };
    if SINGLE_SCHEMES.iter().any(|s| url.starts_with(s)) {
        if p.hosts.contains(',') {
            return Err(open_err(
                &display,
                "several hosts: use redis+cluster://H1:P1,H2:P2,… for a Redis Cluster or \
                 redis+sentinel://S1:P1,S2:P2,…/SERVICE for Sentinel",
            ));
        }
        return Ok(Topology::Single(url.to_owned()));
    }
    let tls = p.scheme.starts_with("rediss");
    if CLUSTER_SCHEMES.iter().any(|s| url.starts_with(s)) {
        let path = p.path.trim_end_matches('/');
        if !(path.is_empty() || path == "/0") {
            return Err(open_err(
                &display,
                format!(
                    "a Redis Cluster has only database 0; drop the path {:?} (redis+cluster://H1:P1,H2:P2,…)",
                    p.path
                ),
            ));
        }
        let scheme = if tls { "rediss" } else { "redis" };
        let auth = p.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let seeds = hosts(&display, &p, CLUSTER_DEFAULT_PORT)?
            .into_iter()
            .map(|(h, port)| {
                let h = if h.contains(':') { format!("[{h}]") } else { h };
                format!("{scheme}://{auth}{h}:{port}")
            })
            .collect();
        return Ok(Topology::Cluster(seeds));
    }
    if SENTINEL_SCHEMES.iter().any(|s| url.starts_with(s)) {
        let mut segments = p.path.trim_start_matches('/').split('/');
        let service = segments.next().unwrap_or_default();
        if service.is_empty() {
            return Err(open_err(
                &display,
                "no service name: the path names the monitored master \
                 (redis+sentinel://S1:P1,S2:P2,…/SERVICE[/DB])",
            ));
        }
        let db = match segments.next().filter(|s| !s.is_empty()) {
            Some(d) => d
                .parse::<i64>()
                .map_err(|_| open_err(&display, format!("database {d:?} is not a number")))?,
            None => 0,
        };
        if segments.any(|s| !s.is_empty()) {
            return Err(open_err(
                &display,
                "too many path segments (expected /SERVICE[/DB])",
            ));
        }
        let sentinels = hosts(&display, &p, SENTINEL_DEFAULT_PORT)?
            .into_iter()
            .map(|(host, port)| {
                if tls {
                    ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host, port)
                }
            })
            .collect();
        let (username, password) = match p.userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(decode(user)), Some(decode(pass))),
                None => (Some(decode(u)), None),
            },
            None => (None, None),
        };
        return Ok(Topology::Sentinel(SentinelTarget {
            sentinels,
            service: decode(service),
            db,
            username: username.filter(|u| !u.is_empty()),
            password,
            tls,
        }));
    }
    Err(open_err(
        &display,
        "unknown scheme; expected redis://, rediss://, redis+cluster://, rediss+cluster://, \
         redis+sentinel:// or rediss+sentinel://",
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        parse(url).unwrap_err().to_string()
    }

    #[test]
    fn single_server_urls_pass_through() {
        assert_eq!(
            parse("redis://127.0.0.1:6379/2").unwrap(),
            Topology::Single("redis://127.0.0.1:6379/2".into())
        );
    }

    #[test]
    fn several_hosts_on_a_single_server_url_name_the_cluster_and_sentinel_forms() {
        let e = err("redis://a:1,b:2/0");
        assert!(e.contains("redis+cluster://"), "{e}");
        assert!(e.contains("redis+sentinel://"), "{e}");
    }

    #[test]
    fn cluster_seeds_get_default_ports_and_keep_credentials() {
        assert_eq!(
            parse("rediss+cluster://u:p%40ss@a:7000,b,[::1]:7002/").unwrap(),
            Topology::Cluster(vec![
                "rediss://u:p%40ss@a:7000".into(),
                "rediss://u:p%40ss@b:6379".into(),
                "rediss://u:p%40ss@[::1]:7002".into(),
            ])
        );
    }

    #[test]
    fn cluster_refuses_a_database_other_than_zero() {
        assert!(parse("redis+cluster://a:1,b:2/0").is_ok());
        let e = err("redis+cluster://a:1,b:2/3");
        assert!(e.contains("only database 0"), "{e}");
    }

    #[test]
    fn bad_ports_and_empty_hosts_are_named() {
        assert!(err("redis+cluster://a:1,b:x").contains("\"x\""));
        assert!(err("redis+cluster://a:1,,b:2").contains("empty host"));
        assert!(err("redis+sentinel://[::1:1/m").contains("closing"));
    }

    #[test]
    fn sentinel_needs_a_service_and_takes_a_database() {
        let e = err("redis+sentinel://a:26379,b:26380");
        assert!(e.contains("service name"), "{e}");
        let Topology::Sentinel(t) = parse("redis+sentinel://:s%3Acret@a,b:26380/cg/3").unwrap()
        else {
            panic!("not sentinel")
        };
        assert_eq!(t.service, "cg");
        assert_eq!(t.db, 3);
        assert_eq!(t.password.as_deref(), Some("s:cret"));
        assert_eq!(t.username, None);
        assert_eq!(
            t.sentinels,
            vec![
                ConnectionAddr::Tcp("a".into(), 26379),
                ConnectionAddr::Tcp("b".into(), 26380)
            ]
        );
        assert!(err("redis+sentinel://a/cg/x").contains("\"x\""));
        assert!(err("redis+sentinel://a/cg/0/z").contains("too many"));
    }

    #[test]
    fn redaction_hides_passwords_in_every_form() {
        assert_eq!(
            redact("redis+cluster://u:hunter2@a:1,b:2/"),
            "redis+cluster://u:***@a:1,b:2/"
        );
        assert_eq!(
            redact("redis+sentinel://:hunter2@a:1/cg"),
            "redis+sentinel://:***@a:1/cg"
        );
        assert_eq!(redact("redis://a:1/0"), "redis://a:1/0");
    }

    #[test]
    fn unknown_schemes_are_refused_with_the_list() {
        assert!(err("redis+foo://a").contains("redis+sentinel://"));
    }
}
