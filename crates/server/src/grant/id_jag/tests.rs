use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;
use crate::error::ErrorCode;

fn jwt(header: &str) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(r#"{"iss":"https://idp.test"}"#)
    )
}

#[test]
fn header_needs_the_id_jag_typ_an_asymmetric_alg_and_a_kid() {
    let cases: [(&str, Result<Algorithm, &str>); 8] = [
        (
            r#"{"alg":"ES256","typ":"oauth-id-jag+jwt","kid":"k"}"#,
            Ok(Algorithm::ES256),
        ),
        (
            r#"{"alg":"RS256","typ":"application/OAuth-ID-JAG+JWT","kid":"k"}"#,
            Ok(Algorithm::RS256),
        ),
        (
            r#"{"alg":"EdDSA","typ":"oauth-id-jag+jwt","kid":"k"}"#,
            Ok(Algorithm::EdDSA),
        ),
        (r#"{"alg":"ES256","typ":"JWT","kid":"k"}"#, Err("typ")),
        (r#"{"alg":"ES256","kid":"k"}"#, Err("typ")),
        (
            r#"{"alg":"none","typ":"oauth-id-jag+jwt","kid":"k"}"#,
            Err("alg \"none\""),
        ),
        (
            r#"{"alg":"HS256","typ":"oauth-id-jag+jwt","kid":"k"}"#,
            Err("alg \"HS256\""),
        ),
        (r#"{"alg":"ES256","typ":"oauth-id-jag+jwt"}"#, Err("no kid")),
    ];
    for (header, want) in cases {
        match (check_header(&jwt(header)), want) {
            (Ok(h), Ok(alg)) => assert_eq!(h.alg, alg, "{header}"),
            (Err(e), Err(msg)) => {
                assert_eq!(e.code, ErrorCode::InvalidGrant, "{header}");
                assert!(e.description.contains(msg), "{header}: {}", e.description);
            }
            (got, want) => panic!("{header}: got {got:?}, want {want:?}"),
        }
    }
    assert_eq!(peek_issuer(&jwt("{}")).unwrap(), "https://idp.test");
}

fn claims(exp: Option<u64>, iat: Option<u64>) -> IdJagClaims {
    IdJagClaims {
        iss: "https://idp.test".into(),
        sub: Some("u1".into()),
        aud: Some(Audience::Many(vec!["x".into(), "https://as.test".into()])),
        client_id: Some("https://c.test/c".into()),
        exp,
        iat,
        jti: Some("j".into()),
        scope: None,
        resource: None,
    }
}

#[test]
fn times_need_exp_and_iat_within_skew_and_a_short_lifetime() {
    let now = 1_000_000;
    let cases = [
        (Some(now + 60), Some(now), Ok(())),
        (Some(now - 10), Some(now - 70), Ok(())), // within skew
        (Some(now - 31), Some(now - 90), Err("expired")),
        (Some(now + 60), Some(now + 31), Err("future")),
        (Some(now + 290), Some(now - 20), Err("lifetime")),
        (None, Some(now), Err("no exp")),
        (Some(now + 60), None, Err("no iat")),
    ];
    for (exp, iat, want) in cases {
        let got = check_times(&claims(exp, iat), now).map(|_| ());
        match (got, want) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(msg)) => assert!(e.description.contains(msg), "{}", e.description),
            (got, want) => panic!("{exp:?} {iat:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn audience_client_id_and_subject_are_exact() {
    let c = claims(None, None);
    assert!(check_audience(&c, &["https://as.test".into()]).is_ok());
    assert!(check_audience(&c, &["https://as.test/".into()]).is_err());
    assert!(check_client_id(&c, "https://c.test/c").is_ok());
    assert!(check_client_id(&c, "https://c.test/c/").is_err());
    assert_eq!(subject(&c).unwrap(), "https://idp.test#u1");
    assert_eq!(replay_key("https://idp.test"), "id-jag:https://idp.test");
}

#[test]
fn scopes_stay_within_the_id_jag_the_resource_and_the_document() {
    let offered = Scopes::parse("read write");
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Result<&'a str, &'a str>,
    );
    let cases: [Case; 7] = [
        (None, None, None, Ok("read write")),
        (None, Some("read  admin"), None, Ok("read")),
        (Some(" read\t "), Some("read write"), None, Ok("read")),
        (Some("write"), Some("read"), None, Err("beyond the ID-JAG")),
        (Some("admin"), None, None, Err("not offered")),
        (None, Some("admin"), None, Err("none of the ID-JAG")),
        (None, Some("read write"), Some("write"), Ok("write")),
    ];
    for (req, jag, doc, want) in cases {
        let declared = doc.map(Scopes::parse);
        let got = grant_scopes(req, jag, &offered, declared.as_ref()).map(|s| s.to_string());
        match (got, want) {
            (Ok(s), Ok(w)) => assert_eq!(s, w),
            (Err(e), Err(msg)) => {
                assert_eq!(e.code, ErrorCode::InvalidScope);
                assert!(e.description.contains(msg), "{}", e.description);
            }
            (got, want) => panic!("{req:?} {jag:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn resource_claim_and_parameter_must_agree() {
    let r = |id: &str| Resource {
        id: id.into(),
        path: "/mcp".into(),
        scopes: Scopes::parse("mcp"),
        upstream: "builtin:demo".into(),
        forwards_idp_token: false,
    };
    let two = [r("http://a/mcp"), r("http://a/other")];
    let one = [r("http://a/mcp")];
    let id = |x: Result<&Resource, OAuthError>| x.map(|r| r.id.clone()).map_err(|e| e.code);
    assert_eq!(
        id(select_resource(&one, None, None)),
        Ok("http://a/mcp".into())
    );
    assert_eq!(
        id(select_resource(&two, None, None)),
        Err(ErrorCode::InvalidTarget)
    );
    assert_eq!(
        id(select_resource(&two, Some("http://a/other"), None)),
        Ok("http://a/other".into())
    );
    assert_eq!(
        id(select_resource(
            &two,
            Some("http://a/other"),
            Some("http://a/mcp")
        )),
        Err(ErrorCode::InvalidGrant)
    );
    assert_eq!(
        id(select_resource(&two, Some("http://a/x"), None)),
        Err(ErrorCode::InvalidTarget)
    );
}
