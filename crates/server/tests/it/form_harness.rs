//! The shared harness itself works: server up, CIMD host serving programmed documents, form
//! parser reading what askama writes.

use crate::common;

use common::{Form, TestEnv, html_unescape};

#[tokio::test]
async fn harness_starts_server_and_cimd_host() {
    let env = TestEnv::start().await;
    let resp = common::http_client()
        .get(env.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = env.publish_client("app", serde_json::json!({}));
    assert!(id.starts_with("https://cimd.test:"));
    assert_eq!(env.resource(), format!("{}/mcp", env.base));
}

#[test]
fn form_parser_reads_hidden_inputs_buttons_and_entities() {
    let html = r#"<p>x</p><form method="post" action="/authorize"><input type="hidden" name="csrf" value="a&#38;b&quot;c">
      <input name="username" autocomplete="username"><input type=password name=password>
      <button type="submit" name="decision" value="approve">Approve</button></form>"#;
    let f = Form::parse(html, "http://127.0.0.1:1/authorize?x=1").unwrap();
    assert_eq!(f.action, "http://127.0.0.1:1/authorize");
    assert_eq!(f.method, "post");
    assert_eq!(f.value("csrf"), Some("a&b\"c"));
    assert!(f.has("username") && f.has("password") && f.has("decision"));
    assert_eq!(f.hidden(), vec![("csrf".to_owned(), "a&b\"c".to_owned())]);
    assert_eq!(html_unescape("&lt;&#x27;&amp;"), "<'&");
}
