//! The audit sink (`[audit] sink`): a `tracing` layer that takes the events of target `audit`
//! and writes each as one JSON line to standard output or a file (docs/architecture.md, *Audit
//! and logging*, has the schema).
//!
//! Line schema, keys in this order: `ts` (RFC 3339, UTC, milliseconds), `event`, `client_id`,
//! `subject`, `ip` (each `null` when the event has none; the `sub` field is written as
//! `subject`), then the event's other fields sorted by name. Fields named like a secret
//! ([`SECRET_FIELDS`]) are dropped whatever an event passes.
//!
//! A file sink is opened for appending (created 0600) and reopened by
//! [`AuditSinkHandle::reopen`] — the binary calls it on SIGHUP, so logrotate can rename the
//! file and signal.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::config::AuditSink;

/// The tracing target of audit events (`crate::audit!`).
pub const TARGET: &str = "audit";

/// Field names never written, even if an event passed one.
pub const SECRET_FIELDS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "code_verifier",
    "password",
    "secret",
    "client_secret",
    "assertion",
    "client_assertion",
    "authorization",
    "cookie",
];

enum Out {
    Stdout,
    File {
        path: PathBuf,
        file: Mutex<std::fs::File>,
    },
}

/// Where the lines go; cloned into the layer and kept by the binary to reopen the file.
#[derive(Clone)]
pub struct AuditSinkHandle {
    out: Arc<Out>,
}

impl AuditSinkHandle {
    /// Open the sink; `None` for [`AuditSink::Log`] (audit events stay in the log).
    pub fn open(sink: &AuditSink) -> std::io::Result<Option<AuditSinkHandle>> {
        let out = match sink {
            AuditSink::Log => return Ok(None),
            AuditSink::Stdout => Out::Stdout,
            AuditSink::File(path) => Out::File {
                file: Mutex::new(open_append(path)?),
                path: path.clone(),
            },
        };
        Ok(Some(AuditSinkHandle { out: Arc::new(out) }))
    }

    /// Reopen a file sink at its path (after logrotate renamed it); a no-op for stdout.
    pub fn reopen(&self) -> std::io::Result<()> {
        if let Out::File { path, file } = &*self.out {
            let fresh = open_append(path)?;
            *file.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        }
        Ok(())
    }

    /// The layer writing audit events here (it ignores every other target).
    pub fn layer<S: Subscriber>(&self) -> impl Layer<S> + Send + Sync + 'static {
        AuditLayer {
            handle: self.clone(),
        }
    }

    fn write_line(&self, line: &str) {
        let result = match &*self.out {
            Out::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes()).and_then(|()| out.flush())
            }
            Out::File { file, .. } => file
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(line.as_bytes()),
        };
        if let Err(e) = result {
            // Not through tracing: that would come back here.
            eprintln!("audit sink: cannot write an audit event: {e}");
        }
    }
}

fn open_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

struct AuditLayer {
    handle: AuditSinkHandle,
}

impl<S: Subscriber> Layer<S> for AuditLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.handle.write_line(&line(SystemTime::now(), fields.0));
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, serde_json::Value>);

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        let name = match field.name() {
            "sub" => "subject",
            n => n,
        };
        if SECRET_FIELDS.contains(&name) || (name == "message" && value == "") {
            return;
        }
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%x` fields arrive here as Display wrappers whose Debug is the Display text.
        self.put(field, format!("{value:?}").into());
    }
}

/// One JSON line (with its newline) in the documented key order.
fn line(now: SystemTime, mut fields: BTreeMap<String, serde_json::Value>) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"ts\":");
    out.push_str(&serde_json::Value::from(rfc3339(now)).to_string());
    for key in ["event", "client_id", "subject", "ip"] {
        let v = fields.remove(key).unwrap_or(serde_json::Value::Null);
        out.push_str(&format!(",\"{key}\":{v}"));
    }
    for (k, v) in fields {
        out.push(',');
        out.push_str(&serde_json::Value::from(k).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push_str("}\n");
    out
}

/// `2026-12-04T06:04:00.123Z`.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's `civil_from_days`).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.123Z
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
        // 2000-02-29T00:00:00Z
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn lines_have_the_fixed_keys_first_and_drop_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let handle = AuditSinkHandle::open(&AuditSink::File(path.clone()))
            .unwrap()
            .unwrap();
        let subscriber = tracing_subscriber::layer::SubscriberExt::with(
            tracing_subscriber::registry(),
            handle.layer(),
        );
        tracing::subscriber::with_default(subscriber, || {
            crate::audit!(event = "login", client_id = %"https://a.test/c.json", sub = "alice",
                ip = %"127.0.0.1", password = "hunter2", code = "c0de", extra = 3u64);
            tracing::info!(target: "other", event = "not_audit");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0].starts_with("{\"ts\":\"")
                && lines[0].ends_with(
                    "\",\"event\":\"login\",\"client_id\":\"https://a.test/c.json\",\
                     \"subject\":\"alice\",\"ip\":\"127.0.0.1\",\"extra\":3}"
                ),
            "{text}"
        );
        assert!(
            !text.contains("hunter2") && !text.contains("c0de"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["event"], "login");
    }
}
