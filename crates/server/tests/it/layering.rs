//! The layering rule of `crates/server` (docs/architecture.md, *Layering of crates/server*),
//! checked on the source itself: leaf ← domain ← channels ← app.
//!
//! - leaf modules import only leaf modules;
//! - domain modules import only leaf and domain modules, and never `axum`;
//! - the channels (`front`, `back`) import leaf and domain modules and themselves, never each
//!   other;
//! - only `lib.rs` imports `app`;
//! - the file-level import graph has no cycle.
//!
//! Imports are read from the text: every `crate::…` path, every `super::…` path, and the child
//! modules a `mod.rs` names; `#[cfg(test)]` modules are left out (tests may reach anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Leaf,
    Domain,
    Channel,
    App,
}

fn layer_of(top: &str) -> Option<Layer> {
    Some(match top {
        "audit" | "config" | "error" | "page_headers" | "rand" | "seal" | "secret"
        | "telemetry" | "time" | "tls" => Layer::Leaf,
        "services" | "clients" | "governance" | "grant" | "tokens" | "identity" | "ratelimit"
        | "store_adapters" | "store_metrics" => Layer::Domain,
        "front" | "back" | "admin" => Layer::Channel,
        "app" => Layer::App,
        _ => return None,
    })
}

/// A source file as a module path (`["front", "login"]`; `[]` for lib.rs).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// Test-only files: `tests.rs`, `*_tests.rs` and anything under a `tests/` folder of `src/`.
fn is_test_file(rel: &Path) -> bool {
    let name = rel.file_name().unwrap().to_string_lossy();
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || rel.iter().any(|p| p == "tests" || p == "tests.rs")
}

/// The text without `#[cfg(test)]` items (from the attribute to the end of the item) and
/// without comments.
fn production_text(src: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut pending_cfg_test = false;
    for line in src.lines() {
        let code = line.split("//").next().unwrap_or("");
        if let Some(depth) = skip_depth.as_mut() {
            *depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
            if *depth <= 0 && (code.contains('}') || code.trim_end().ends_with(';')) {
                skip_depth = None;
            }
            continue;
        }
        if code.trim() == "#[cfg(test)]" {
            pending_cfg_test = true;
            continue;
        }
        if pending_cfg_test {
            if code.trim_start().starts_with("#[") {
                continue;
            }
            pending_cfg_test = false;
            let depth = code.matches('{').count() as i32 - code.matches('}').count() as i32;
            if depth > 0 {
                skip_depth = Some(depth);
            }
            continue;
        }
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every path the text names after `crate::` or `super::` (brace groups expanded one level),
/// as module paths relative to the crate root, plus the children a module file declares.
fn referenced_paths(module: &[String], is_mod_file: bool, text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // `super` is the parent module: in `front/mod.rs` (module `front`) the crate root, in
    // `front/login.rs` (module `front::login`) `front`.
    let super_base: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", super_base)] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            for path in expand(rest) {
                let mut full = base.clone();
                full.extend(path);
                out.push(full);
            }
        }
    }
    if is_mod_file || module.is_empty() {
        for stmt in text.split([';', '\n']) {
            let t = stmt.trim();
            for kw in ["use ", "pub use "] {
                if let Some(r) = t.strip_prefix(kw) {
                    let first = r.split("::").next().unwrap_or("").trim();
                    if !first.is_empty()
                        && first
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                        && !["crate", "super", "self", "std"].contains(&first)
                    {
                        for path in expand(r) {
                            let mut full = module.to_vec();
                            full.extend(path);
                            out.push(full);
                        }
                    }
                }
            }
        }
    }
    out
}

/// `a::b::{c, d::e}…` → `[a, b, c]`, `[a, b, d, e]` (identifier segments only).
fn expand(s: &str) -> Vec<Vec<String>> {
    let mut head = Vec::new();
    let mut rest = s;
    loop {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            if let Some(inner) = rest.strip_prefix('{') {
                let end = matching_brace(inner);
                let mut out = Vec::new();
                for part in split_top(&inner[..end]) {
                    for tail in expand(part.trim()) {
                        let mut p = head.clone();
                        p.extend(tail);
                        out.push(p);
                    }
                }
                return out;
            }
            return vec![head];
        }
        rest = &rest[ident.len()..];
        head.push(ident);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => return vec![head],
        }
    }
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    s.len()
}

fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The import graph: file module → the file modules it imports.
struct Graph {
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    texts: BTreeMap<Vec<String>, String>,
}

fn graph(files: &BTreeMap<PathBuf, String>) -> Graph {
    let modules: BTreeSet<Vec<String>> = files
        .keys()
        .filter(|p| !is_test_file(p))
        .map(|p| module_of(p))
        .collect();
    let mut edges = BTreeMap::new();
    let mut texts = BTreeMap::new();
    for (path, src) in files {
        if is_test_file(path) {
            continue;
        }
        let module = module_of(path);
        let is_mod_file = path.ends_with("mod.rs")
            || path.file_name().is_some_and(|n| n == "lib.rs")
            || modules
                .iter()
                .any(|m| m.len() == module.len() + 1 && m.starts_with(&module));
        let text = production_text(src);
        let mut targets = BTreeSet::new();
        for p in referenced_paths(&module, is_mod_file, &text) {
            // The longest known module prefix of the path is the file it reaches.
            if let Some(target) = (0..=p.len())
                .rev()
                .map(|n| p[..n].to_vec())
                .find(|m| modules.contains(m))
                && target != module
                && !target.is_empty()
            {
                targets.insert(target);
            }
        }
        texts.insert(module.clone(), text);
        edges.insert(module, targets);
    }
    Graph { edges, texts }
}

/// Every breach of the layering rule, one line each.
fn breaches(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (from, targets) in &g.edges {
        let Some(top_from) = from.first() else {
            continue; // lib.rs declares and re-exports everything
        };
        let Some(l_from) = layer_of(top_from) else {
            out.push(format!("{}: module of no layer", from.join("::")));
            continue;
        };
        if l_from == Layer::Domain && g.texts[from].contains("axum") {
            out.push(format!("{}: a domain module uses axum", from.join("::")));
        }
        for to in targets {
            let top_to = &to[0];
            let Some(l_to) = layer_of(top_to) else {
                continue;
            };
            let bad = if l_to > l_from {
                Some("imports a higher layer")
            } else if l_from == Layer::Channel && l_to == Layer::Channel && top_from != top_to {
                Some("one channel imports the other")
            } else {
                None
            };
            if let Some(why) = bad {
                out.push(format!("{} → {}: {why}", from.join("::"), to.join("::")));
            }
        }
    }
    out
}

/// One cycle of the file graph, if any.
fn cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        g: &Graph,
        n: &Vec<String>,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut c: Vec<String> = stack[start..].iter().map(|m| m.join("::")).collect();
                c.push(n.join("::"));
                return Some(c);
            }
            None => {}
        }
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for t in g.edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, t, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.edges.keys().filter(|n| !n.is_empty()) {
        if let Some(c) = visit(g, n, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

fn read_tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                files.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    files
}

#[test]
fn server_modules_point_one_way_and_form_no_cycle() {
    let files = read_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(files.len() > 30, "read the source tree");
    let g = graph(&files);
    // The graph is real: known imports are seen.
    let login = vec!["front".to_owned(), "login".to_owned()];
    assert!(
        g.edges[&login].contains(&vec!["front".to_owned(), "consent".to_owned()]),
        "front::login imports front::consent: {:?}",
        g.edges[&login]
    );
    let b = breaches(&g);
    assert!(b.is_empty(), "layering breaches:\n{}", b.join("\n"));
    assert_eq!(cycle(&g), None, "import cycle");
}

fn tree(files: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
    files
        .iter()
        .map(|(p, s)| (PathBuf::from(p), (*s).to_owned()))
        .collect()
}

#[test]
fn the_check_catches_every_kind_of_breach() {
    let ok = [
        (
            "lib.rs",
            "pub mod app; pub mod error; pub mod grant; pub mod front; pub mod back;",
        ),
        ("error.rs", "pub struct E;"),
        ("grant/mod.rs", "pub mod pkce; use crate::error::E;"),
        ("grant/pkce.rs", "use super::super::error::E;"),
        ("front/mod.rs", "pub mod a; pub mod b; use a::x;"),
        ("front/a.rs", "use super::b::y; use crate::grant::pkce;"),
        (
            "front/b.rs",
            "pub fn y() {}\n#[cfg(test)]\nmod tests {\n use crate::app::App;\n}",
        ),
        ("back/mod.rs", "use crate::{error::E, grant::pkce::P};"),
        ("app.rs", "use crate::front::a; use crate::back;"),
    ];
    let g = graph(&tree(&ok));
    assert_eq!(breaches(&g), Vec::<String>::new());
    assert_eq!(cycle(&g), None);
    // (file replaced, new text, what must be reported)
    let cases = [
        (
            "error.rs",
            "use crate::grant::pkce;",
            "imports a higher layer",
        ),
        (
            "grant/pkce.rs",
            "use crate::front::a;",
            "imports a higher layer",
        ),
        ("grant/pkce.rs", "use axum::Router;", "uses axum"),
        (
            "front/a.rs",
            "use crate::back;",
            "one channel imports the other",
        ),
        (
            "back/mod.rs",
            "use crate::{error::E, front::b};",
            "one channel imports the other",
        ),
        (
            "front/b.rs",
            "use crate::app::App;",
            "imports a higher layer",
        ),
        ("front/b.rs", "use super::a::z;", "cycle"),
        (
            "grant/mod.rs",
            "pub mod pkce; use pkce::P; pub struct G;",
            "none",
        ),
        ("grant/pkce.rs", "use super::G;", "none"),
    ];
    for (file, text, want) in cases {
        let mut files = tree(&ok);
        files.insert(PathBuf::from(file), text.to_owned());
        let g = graph(&files);
        let b = breaches(&g);
        let c = cycle(&g);
        match want {
            "cycle" => assert!(c.is_some(), "{file}: {text}: no cycle found"),
            "none" => assert!(b.is_empty(), "{file}: {text}: {b:?}"),
            w => assert!(
                b.iter().any(|l| l.contains(w)),
                "{file}: {text}: want {w:?}, got {b:?}"
            ),
        }
    }
    // A child importing an item of its parent's file while the parent imports the child.
    let mut files = tree(&ok);
    files.insert(
        PathBuf::from("grant/mod.rs"),
        "pub mod pkce; use pkce::P; pub struct G;".into(),
    );
    files.insert(PathBuf::from("grant/pkce.rs"), "use super::G;".into());
    assert!(cycle(&graph(&files)).is_some(), "mod.rs ↔ child cycle");
}
