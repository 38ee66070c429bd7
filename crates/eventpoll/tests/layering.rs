//! The engine's module graph is layered: every `crate::` path in `src/` names a module of a
//! lower layer than its own, except the declared edges below — so the modules form a DAG
//! but for those, and a back edge added by mistake fails `cargo test`.
//!
//! The check reads the sources as text: it drops comments and the items under
//! `#[cfg(test)]` (unit tests may reach any layer), takes every `crate::name` path (and
//! `crate::{a, b}` groups), resolves a name re-exported at the crate root through `lib.rs`,
//! and compares the layers of the two top-level modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may name only modules before it.
const LAYERS: &[&str] = &[
    // The boundary to the host: locks, tasks, park/unpark, time.
    "platform",
    // Values: errno, event bits and the epoll_event record, open-file flags.
    "errno",
    "event",
    "open_flags",
    "readiness",
    // Per-task interrupt (signals), then the wakeup mechanism.
    "signal",
    "wait_queue",
    // Open file descriptions and the pollable contract.
    "file",
    // Epoll instances over files.
    "epoll",
    // The checker the table calls on close, dup2, ctl and wait.
    "check",
    // The descriptor table: numbers to files, the Linux-shaped system calls.
    "table",
    // The objects, whose system calls (pipe2, eventfd, ...) install files in the table.
    "objects",
    // The deterministic platform (feature `sim`): a platform implementation that drives the
    // whole engine, so it sits on top rather than beside `platform`.
    "sim",
];

/// Back edges kept on purpose, each with its reason (repeated where the edge is declared).
const DECLARED: &[(&str, &str, &str)] = &[(
    "wait_queue",
    "epoll",
    "a wait-queue entry names its epoll instance (Waiter::Item { ep: ItemOwner, a borrowed EpollShared }), \
     as the kernel's container_of reaches the epitem from its wait entry: 16 bytes per watch \
     and a direct call, where a trait object would double the entry",
)];

/// Modules of the crate root that are no layer: they only re-export or gather imports.
const NOT_MODULES: &[&str] = &["prelude", "test_prelude"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments (line, doc and block comments) and string literals.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('"', '\n'); a lifetime has no closing quote.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            let c = src[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Whether a `#[cfg(...)]` predicate holds only in test builds.
fn test_only(cfg: &str) -> bool {
    let cfg: String = cfg.chars().filter(|c| !c.is_whitespace()).collect();
    cfg == "test" || (cfg.starts_with("all(") && cfg[4..].split([',', ')']).any(|p| p == "test"))
}

/// The stripped source with every `#[cfg(test)]` item removed; also the names of the
/// `mod name;` files declared test-only.
fn without_tests(src: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(") {
        let close = rest[at..].find(")]").map(|c| at + c).unwrap();
        let cfg = &rest[at + 6..close];
        if !test_only(cfg) {
            out.push_str(&rest[..close + 2]);
            rest = &rest[close + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let item = &rest[close + 2..];
        let semi = item.find(';');
        let brace = item.find('{');
        let end = match (semi, brace) {
            (Some(s), b) if b.is_none_or(|b| s < b) => {
                let decl = item[..s].trim();
                if let Some(name) = decl.rsplit(' ').next().filter(|_| decl.contains("mod ")) {
                    test_mods.push(name.to_string());
                }
                s + 1
            }
            (_, Some(b)) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (k, c) in item[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            _ => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    (out, test_mods)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first segments of every `crate::` path of `src` (`crate::{a, b::c}` gives a and b).
fn crate_paths(src: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + 7..];
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut expect = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect = true,
                    c if expect && depth == 1 && is_ident(c) => name.push(c),
                    _ if expect && !name.is_empty() => {
                        names.push(std::mem::take(&mut name));
                        expect = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                names.push(name);
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            names.push(name);
        }
    }
    names
}

/// What `lib.rs` re-exports at the crate root: name → top-level module it comes from.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let flat: String = lib.split_whitespace().collect::<Vec<_>>().join(" ");
    for stmt in flat.split(';') {
        let stmt = stmt.trim();
        let Some(path) = stmt
            .strip_prefix("pub use ")
            .or_else(|| stmt.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let path = path
            .trim_start_matches("self::")
            .trim_start_matches("crate::");
        let Some((module, tail)) = path.split_once("::") else {
            continue;
        };
        let tail = tail.trim_start_matches('{').trim_end_matches('}');
        for part in tail.split(',') {
            let part = part.trim();
            let name = match part.split_once(" as ") {
                Some((_, alias)) => alias.trim(),
                None => part.rsplit("::").next().unwrap().trim(),
            };
            if !name.is_empty() {
                map.insert(name.to_string(), module.to_string());
            }
        }
    }
    map
}

/// The graph: module → modules it names, each with one file that names it.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The module graph of `files` ((path relative to src, source) pairs).
fn graph(files: &[(String, String)]) -> Result<Graph, String> {
    let lib = &files
        .iter()
        .find(|(p, _)| p == "lib.rs")
        .ok_or("no lib.rs")?
        .1;
    let reexports = root_reexports(&strip(lib));
    let mut test_files = BTreeSet::new();
    let mut stripped = Vec::new();
    for (path, src) in files {
        let (code, test_mods) = without_tests(&strip(src));
        let dir = Path::new(path).parent().unwrap();
        let dir = if path.ends_with("mod.rs") || path == "lib.rs" {
            dir.to_path_buf()
        } else {
            dir.join(Path::new(path).file_stem().unwrap())
        };
        for m in test_mods {
            test_files.insert(dir.join(format!("{m}.rs")).to_string_lossy().into_owned());
            test_files.insert(dir.join(&m).join("mod.rs").to_string_lossy().into_owned());
        }
        stripped.push((path.clone(), code));
    }
    let mut g = Graph::new();
    for (path, code) in &stripped {
        if path == "lib.rs" || test_files.contains(path) {
            continue;
        }
        let from = path
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        for name in crate_paths(code) {
            if NOT_MODULES.contains(&name.as_str()) {
                continue;
            }
            let to = if name == "sync" {
                "platform".to_string()
            } else if LAYERS.contains(&name.as_str()) {
                name.clone()
            } else if let Some(m) = reexports.get(&name) {
                m.clone()
            } else {
                return Err(format!(
                    "{path}: crate::{name} is no module and no root re-export"
                ));
            };
            if to != from {
                g.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert(path.clone());
            }
        }
        g.entry(from).or_default();
    }
    Ok(g)
}

/// The edges against the layer order that are not declared, and declared edges not found.
fn violations(g: &Graph) -> Vec<String> {
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut out = Vec::new();
    for (from, tos) in g {
        let Some(rf) = rank(from) else {
            out.push(format!("module {from} has no layer: add it to LAYERS"));
            continue;
        };
        for (to, file) in tos {
            let rt = rank(to).expect("targets are layers");
            let declared = DECLARED.iter().any(|(f, t, _)| f == from && t == to);
            if rt > rf && !declared {
                out.push(format!("back edge {from} -> {to} (in {file})"));
            }
        }
    }
    for (f, t, _) in DECLARED {
        if !g.get(*f).is_some_and(|tos| tos.contains_key(*t)) {
            out.push(format!(
                "declared edge {f} -> {t} no longer exists: remove it"
            ));
        }
    }
    out
}

/// The cycles of `g` as strongly connected components of more than one module.
fn cycles(g: &Graph) -> Vec<BTreeSet<String>> {
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.to_string()];
        while let Some(m) = stack.pop() {
            for to in g.get(&m).into_iter().flat_map(|t| t.keys()) {
                if seen.insert(to.clone()) {
                    stack.push(to.clone());
                }
            }
        }
        seen
    };
    let mut comps: Vec<BTreeSet<String>> = Vec::new();
    for m in g.keys() {
        let from_m = reach(m);
        let comp: BTreeSet<String> = g
            .keys()
            .filter(|n| *n == m || (from_m.contains(*n) && reach(n).contains(m)))
            .cloned()
            .collect();
        if comp.len() > 1 && !comps.contains(&comp) {
            comps.push(comp);
        }
    }
    comps
}

fn sources() -> Vec<(String, String)> {
    let root = src_dir();
    let mut paths = Vec::new();
    rust_files(&root, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn module_graph_follows_the_layers() {
    let g = graph(&sources()).unwrap();
    for (from, tos) in &g {
        println!("{from} -> {:?}", tos.keys().collect::<Vec<_>>());
    }
    let v = violations(&g);
    assert!(v.is_empty(), "layering violations:\n{}", v.join("\n"));
    // Without the declared edges the graph has no cycle; with them, every cycle goes
    // through one (wait_queue -> epoll -> file -> wait_queue is the one there is).
    let mut acyclic = g.clone();
    for (f, t, _) in DECLARED {
        acyclic.get_mut(*f).unwrap().remove(*t);
    }
    assert_eq!(cycles(&acyclic), Vec::<BTreeSet<String>>::new());
    for comp in cycles(&g) {
        assert!(
            DECLARED
                .iter()
                .any(|(f, t, _)| comp.contains(*f) && comp.contains(*t)),
            "a cycle without a declared edge: {comp:?}"
        );
    }
    assert!(
        g.len() >= LAYERS.len() - 1,
        "modules missing from the graph: {g:?}"
    );
}

#[test]
fn a_back_edge_fails_the_check() {
    for (file, line, edge) in [
        (
            "file.rs",
            "use crate::epoll::EpollShared;",
            "back edge file -> epoll",
        ),
        (
            "epoll/mod.rs",
            "fn f(t: &crate::table::FdTable) {}",
            "back edge epoll -> table",
        ),
        (
            "signal.rs",
            "use crate::{event::Events, WaitQueue};",
            "back edge signal -> wait_queue",
        ),
        (
            "platform/mod.rs",
            "use crate::objects::clock::MonotonicClock;",
            "back edge platform -> objects",
        ),
    ] {
        let mut files = sources();
        let src = &mut files.iter_mut().find(|(p, _)| p == file).unwrap().1;
        src.push_str(&format!("\n{line}\n"));
        let v = violations(&graph(&files).unwrap());
        assert!(
            v.iter().any(|m| m.starts_with(edge)),
            "{line} in {file}: {v:?}"
        );
    }
    // Under #[cfg(test)] the same line is no edge.
    let before = violations(&graph(&sources()).unwrap());
    let mut files = sources();
    let src = &mut files.iter_mut().find(|(p, _)| p == "file.rs").unwrap().1;
    src.push_str("\n#[cfg(test)]\nmod more { use crate::table::FdTable; }\n");
    assert_eq!(violations(&graph(&files).unwrap()), before);
}

#[test]
fn the_parser_reads_paths_groups_and_cfgs() {
    let code = strip("use crate::{a::X, b}; // crate::c\nlet s = \"crate::d\"; crate::e::f();");
    assert_eq!(crate_paths(&code), ["a", "b", "e"]);
    let (code, mods) = without_tests(
        "use crate::a;\n#[cfg(test)]\nmod tests;\n#[cfg(all(test, not(loom)))]\nmod t { use crate::b; }\n#[cfg(feature = \"std\")]\nuse crate::c;\n#[cfg(test)]\nmod last;",
    );
    assert_eq!(crate_paths(&code), ["a", "c"]);
    assert_eq!(mods, ["tests", "last"]);
    assert!(
        test_only("all(test, loom)") && !test_only("any(test, loom)") && !test_only("not(test)")
    );
}
