//! Table-driven tests of the `/authorize` parameter checks, named after the rule each proves.
//! (PKCE, resource and scope rules are tested where they live, in `crate::grant`.)
#![allow(clippy::unwrap_used)]

use super::*;
use crate::error::ErrorCode;

fn params(pairs: &[(&str, &str)]) -> Params {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Params::parse(Some(&q))
}

#[test]
fn repeated_parameters_are_recorded_and_refused() {
    let p = params(&[("scope", "a"), ("scope", "b"), ("state", "s")]);
    assert_eq!(p.scope.as_deref(), Some("a"));
    assert_eq!(p.repeated, vec!["scope"]);
    assert_eq!(
        check_single_values(&p).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert!(check_single_values(&params(&[("scope", "a")])).is_ok());
}

#[test]
fn response_type_must_be_code() {
    let cases = [
        (Some("code"), None),
        (None, Some(ErrorCode::InvalidRequest)),
        (Some("token"), Some(ErrorCode::UnsupportedResponseType)),
        (
            Some("code id_token"),
            Some(ErrorCode::UnsupportedResponseType),
        ),
    ];
    for (rt, want) in cases {
        let p = Params {
            response_type: rt.map(str::to_owned),
            ..Params::default()
        };
        assert_eq!(
            check_response_type(&p).err().map(|e| e.code),
            want,
            "{rt:?}"
        );
    }
}
