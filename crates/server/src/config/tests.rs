//! Configuration loading: defaults, unknown keys, bad values, env overrides, relative paths.
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_match_spec() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.store.url, "embedded:./cimdgate-data");
    assert_eq!(c.tokens.access_token_ttl_secs, 3600);
    assert_eq!(c.issuer(), "http://127.0.0.1:8080");
}

#[test]
fn unknown_key_is_named() {
    let err = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n").unwrap_err();
    assert!(err.to_string().contains("server.lisen"), "{err}");
}

#[test]
fn bad_value_is_named() {
    let err = Config::from_toml("[server]\nlisten = \"nonsense\"\n").unwrap_err();
    assert!(err.to_string().contains("server.listen"), "{err}");
    let err = Config::from_toml("[cimd]\nblocked_domains = [\"*\"]\n").unwrap_err();
    assert!(err.to_string().contains("cimd"), "{err}");
    let err = Config::from_toml("[tokens]\ncode_ttl_secs = 600\n").unwrap_err();
    assert!(err.to_string().contains("tokens.code_ttl_secs"), "{err}");
}

#[test]
fn env_overrides_any_key() {
    let c = Config::load(
        None,
        env(&[
            ("CIMDGATE_SERVER__LISTEN", "127.0.0.1:9999"),
            ("CIMDGATE_CIMD__AUTO_APPROVE_TRUSTED", "true"),
            ("CIMDGATE_CIMD__TRUSTED_DOMAINS", "[\"a.test\"]"),
            ("CIMDGATE_STORE__URL", "embedded:/tmp/x"),
            ("OTHER_VAR", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(c.server.listen.port(), 9999);
    assert!(c.cimd.auto_approve_trusted);
    assert_eq!(c.cimd.trusted_domains, ["a.test"]);
    assert_eq!(c.store.url, "embedded:/tmp/x");
}

#[test]
fn env_unknown_key_is_named() {
    let err = Config::load(None, env(&[("CIMDGATE_SERVER__NOPE", "1")])).unwrap_err();
    assert!(err.to_string().contains("server.nope"), "{err}");
}

#[test]
fn relative_paths_resolve_against_config_folder() {
    let dir = std::env::temp_dir().join(format!("cimdgate-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(&file, "[store]\nurl = \"embedded:./data\"\n").unwrap();
    let c = Config::load(Some(&file), env(&[])).unwrap();
    assert_eq!(
        c.store.url,
        format!("embedded:{}", dir.join("./data").display())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn upstream_mode_requires_upstream_section() {
    let err = Config::from_toml("[identity]\nmode = \"upstream\"\n").unwrap_err();
    assert!(err.to_string().contains("identity.upstream"), "{err}");
}

#[test]
fn local_user_needs_argon2id_hash() {
    let err =
        Config::from_toml("[[identity.users]]\nusername = \"alice\"\npassword_hash = \"plain\"\n")
            .unwrap_err();
    assert!(
        err.to_string().contains("identity.users[0].password_hash"),
        "{err}"
    );
}

#[test]
fn forward_upstream_token_rules() {
    const UPSTREAM: &str = "[identity]\nmode = \"upstream\"\n[identity.upstream]\nissuer = \"https://idp.test\"\nclient_id = \"c\"\n";
    const LOCAL: &str = "[identity]\nmode = \"local\"\n";
    // (identity section, upstream of the resource, Err(text the error must contain) or Ok)
    let cases: [(&str, &str, Result<(), &str>); 4] = [
        (UPSTREAM, "http://127.0.0.1:9000/mcp", Ok(())),
        (LOCAL, "http://127.0.0.1:9000/mcp", Err("identity.mode")),
        (UPSTREAM, "builtin:demo", Err("HTTP upstream")),
        (LOCAL, "builtin:demo", Err("identity.mode")),
    ];
    for (identity, upstream, want) in cases {
        let toml = format!(
            "{identity}[[resources]]\npath = \"/mcp\"\nupstream = \"{upstream}\"\nforward_upstream_token = true\n"
        );
        match (Config::from_toml(&toml), want) {
            (Ok(c), Ok(())) => assert!(c.resources[0].forward_upstream_token),
            (Err(e), Err(text)) => {
                let e = e.to_string();
                assert!(
                    e.contains("resources[0].forward_upstream_token") && e.contains(text),
                    "{upstream}: {e}"
                );
            }
            (got, want) => panic!("{identity} {upstream}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn trusted_issuer_rules() {
    let entry = |name: &str, issuer: &str, jwks: &str| {
        format!(
            "[[trusted_issuers]]\nname = \"{name}\"\nissuer = \"{issuer}\"\njwks_uri = \"{jwks}\"\n"
        )
    };
    let good = entry("corp", "https://idp.corp", "https://idp.corp/jwks");
    // (configuration, Err(key the error must name) or Ok)
    let cases: Vec<(String, Result<(), &str>)> = vec![
        (good.clone(), Ok(())),
        (
            format!("{good}{}", entry("corp", "https://b", "https://b/jwks")),
            Err("trusted_issuers[1].name"),
        ),
        (
            entry("cimdgate", "https://b", "https://b/jwks"),
            Err("trusted_issuers[0].name"),
        ),
        (
            entry(" ", "https://b", "https://b/jwks"),
            Err("trusted_issuers[0].name"),
        ),
        (
            entry("b", "", "https://b/jwks"),
            Err("trusted_issuers[0].issuer"),
        ),
        (
            entry("own", "http://127.0.0.1:8080", "https://b/jwks"),
            Err("trusted_issuers[0].issuer"),
        ),
        (
            entry("b", "https://b", "http://b/jwks"),
            Err("trusted_issuers[0].jwks_uri"),
        ),
        (
            entry("b", "https://b", "not a url"),
            Err("trusted_issuers[0].jwks_uri"),
        ),
        (
            format!("{good}audience = \"\"\n"),
            Err("trusted_issuers[0].audience"),
        ),
        (format!("{good}colour = \"red\"\n"), Err("colour")),
    ];
    for (toml, want) in cases {
        match (Config::from_toml(&toml), want) {
            (Ok(c), Ok(())) => assert_eq!(c.trusted_issuers.len(), 1),
            (Err(e), Err(key)) => assert!(e.to_string().contains(key), "{toml}: {e}"),
            (got, want) => panic!("{toml}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn shared_cache_local_ttl_reaches_the_core_cache() {
    let default = Config::load(None, env(&[])).unwrap();
    assert_eq!(default.cimd.shared_cache_local_ttl_secs, 10);
    assert_eq!(default.cimd.cache().local_ttl, Duration::from_secs(10));
    for (toml, want) in [
        ("[cimd]\nshared_cache_local_ttl_secs = 0\n", 0),
        ("[cimd]\nshared_cache_local_ttl_secs = 3\n", 3),
    ] {
        let c = Config::from_toml(toml).unwrap();
        assert_eq!(
            c.cimd.cache().local_ttl,
            Duration::from_secs(want),
            "{toml}"
        );
    }
    let err = Config::from_toml("[cimd]\nshared_cache_local_ttl_secs = -1\n").unwrap_err();
    assert!(
        err.to_string().contains("cimd.shared_cache_local_ttl_secs"),
        "{err}"
    );
}

/// A Redis password in `store.url` is never printed: not by `{:?}` of the configuration, not in
/// the error when the store cannot be opened (review Low finding).
#[tokio::test]
async fn a_redis_password_never_appears_in_debug_or_errors() {
    let c = Config::load(
        None,
        env(&[(
            "CIMDGATE_STORE__URL",
            "redis://user:hunter2-secret@127.0.0.1:1/0",
        )]),
    )
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("redis://user:***@127.0.0.1:1/0"), "{debug}");
    assert_eq!(c.store.redacted_url(), "redis://user:***@127.0.0.1:1/0");
    let err = crate::services::open_store("rediss://:hunter2-secret@[::1")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(!err.is_empty());
}

#[test]
fn admin_listen_defaults_parses_off_and_rejects_the_public_port() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.admin.listen, AdminListen::Addr(DEFAULT_ADMIN_LISTEN));
    let c = Config::load(None, env(&[("CIMDGATE_ADMIN__LISTEN", "off")])).unwrap();
    assert_eq!(c.admin.listen, AdminListen::Off);
    let err = Config::from_toml("[admin]\nlisten = \"nowhere\"\n").unwrap_err();
    assert!(err.to_string().contains("admin.listen"), "{err}");
    let err = Config::from_toml("[server]\nlisten = \"127.0.0.1:9090\"\n").unwrap_err();
    assert!(err.to_string().contains("admin.listen"), "{err}");
}

#[test]
fn admin_token_comes_from_env_or_file_and_must_be_long() {
    let long = "t".repeat(MIN_ADMIN_TOKEN_CHARS);
    let c = Config::load(None, env(&[("CIMDGATE_ADMIN__TOKEN", &long)])).unwrap();
    assert_eq!(c.admin.load_token().unwrap().unwrap().expose_secret(), long);
    assert!(
        !format!("{c:?}").contains(&long),
        "the token is redacted in Debug"
    );
    let err = Config::load(None, env(&[("CIMDGATE_ADMIN__TOKEN", "short")])).unwrap_err();
    assert!(err.to_string().contains("admin.token"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tok"), format!("{long}\n")).unwrap();
    std::fs::write(dir.path().join("c.toml"), "[admin]\ntoken_file = \"tok\"\n").unwrap();
    let c = Config::load(Some(&dir.path().join("c.toml")), env(&[])).unwrap();
    assert_eq!(c.admin.load_token().unwrap().unwrap().expose_secret(), long);
    std::fs::write(
        dir.path().join("c.toml"),
        "[admin]\ntoken_file = \"missing\"\n",
    )
    .unwrap();
    let err = Config::load(Some(&dir.path().join("c.toml")), env(&[])).unwrap_err();
    assert!(err.to_string().contains("admin.token_file"), "{err}");
}

#[test]
fn audit_sink_parses_log_stdout_and_file() {
    assert_eq!(
        Config::load(None, env(&[])).unwrap().audit.sink,
        AuditSink::Log
    );
    let c = Config::from_toml("[audit]\nsink = \"stdout\"\n").unwrap();
    assert_eq!(c.audit.sink, AuditSink::Stdout);
    let c = Config::from_toml("[audit]\nsink = \"file:/var/log/a.jsonl\"\n").unwrap();
    assert_eq!(c.audit.sink, AuditSink::File("/var/log/a.jsonl".into()));
    for bad in ["file:", "syslog"] {
        let err = Config::from_toml(&format!("[audit]\nsink = \"{bad}\"\n")).unwrap_err();
        assert!(err.to_string().contains("audit.sink"), "{bad}: {err}");
    }
}

#[test]
fn store_wait_timeout_is_bounded_and_cluster_and_sentinel_urls_are_accepted() {
    for bad in ["0", "901"] {
        let err = Config::from_toml(&format!("[store]\nwait_timeout_ms = {bad}\n")).unwrap_err();
        assert!(err.to_string().contains("store.wait_timeout_ms"), "{err}");
    }
    for bad in ["0", "4097"] {
        let err = Config::from_toml(&format!("[store]\ncache_mib = {bad}\n")).unwrap_err();
        assert!(err.to_string().contains("store.cache_mib"), "{err}");
    }
    let c = Config::from_toml("[store]\ncache_mib = 64\n").unwrap();
    assert_eq!(c.store.cache_mib, 64);
    assert_eq!(Config::default().store.cache_mib, 16);
    let c = Config::from_toml(
        "[store]\nurl = \"redis+sentinel://:pw@127.0.0.1:26379/cg\"\nwait_replicas = 1\n",
    )
    .unwrap();
    assert_eq!((c.store.wait_replicas, c.store.wait_timeout_ms), (1, 500));
    assert!(!format!("{c:?}").contains(":pw@"));
    Config::from_toml("[store]\nurl = \"redis+cluster://127.0.0.1:7000,127.0.0.1:7001\"\n")
        .unwrap();
}
