//! `eventpoll check [--log FILE] [--json FILE] [--error-exitcode N] -- PROGRAM [ARGS...]`:
//! runs a program with `libeventpoll.so` preloaded and `EVENTPOLL_CHECK` set (children
//! inherit both through the environment), shows each finding line as it happens (on
//! standard error, or in `--log FILE`), then prints a table of the findings: each kind,
//! how many times, and its first occurrence. The exit status is the program's, unless
//! `--error-exitcode N` is given and there were findings.
//!
//! The library writes the findings (see `crates/eventpoll-capi/src/check.rs`): one line
//! each, `eventpoll-check: KIND pid=P epfd=E fd=F data=0xD call=N file=TYPE: sentence`,
//! and one `eventpoll-check: summary: ...` line per process at its exit, which also counts
//! the repeats of a finding (printed once).

use clap::Args;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::Duration;

/// The finding kinds, in the order of the table.
const KINDS: [&str; 6] = [
    "ghost-item",
    "ghost-event",
    "undrained-edge",
    "oneshot-unarmed",
    "herd",
    "et-blocking-fd",
];

/// Arguments of `eventpoll check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Write the finding lines to FILE instead of standard error.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Also write the findings and the summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Exit with N when there were findings (else the program's own status).
    #[arg(long, value_name = "N")]
    error_exitcode: Option<u8>,
    /// The program to run, and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "PROGRAM")]
    program: Vec<String>,
}

/// One finding line, parsed.
#[derive(Clone, Debug, Default)]
struct Finding {
    kind: String,
    fields: Vec<(String, String)>,
    sentence: String,
}

impl Finding {
    fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("-", |(_, v)| v.as_str())
    }
}

fn parse_finding(line: &str) -> Option<Finding> {
    let rest = line.strip_prefix("eventpoll-check: ")?;
    if rest.starts_with("summary:") {
        return None;
    }
    let (head, sentence) = rest.split_once(": ").unwrap_or((rest, ""));
    let mut words = head.split(' ');
    let kind = words.next()?.to_string();
    let fields = words
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(Finding {
        kind,
        fields,
        sentence: sentence.to_string(),
    })
}

/// The kind counts of one summary line (`summary: N findings (a 1, b 2)`).
fn parse_summary(line: &str) -> Option<Vec<(String, u64)>> {
    let rest = line.strip_prefix("eventpoll-check: summary: ")?;
    let Some((_, list)) = rest.split_once('(') else {
        return Some(Vec::new());
    };
    Some(
        list.trim_end_matches(')')
            .split(", ")
            .filter_map(|p| {
                let (k, n) = p.rsplit_once(' ')?;
                Some((k.to_string(), n.parse().ok()?))
            })
            .collect(),
    )
}

/// Where the library is: `EVENTPOLL_LIB`, next to this binary (or its parent directory:
/// test binaries live in `deps/`), or in the install prefix (`../lib`).
fn find_library() -> Result<PathBuf, String> {
    let mut tried = Vec::new();
    let mut candidates = Vec::new();
    match std::env::var_os("EVENTPOLL_LIB") {
        // Asked for by name: that one or an error, never another copy.
        Some(p) => {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!(
                    "EVENTPOLL_LIB={} is not a file; set it to the path of libeventpoll.so",
                    p.display()
                ))
            };
        }
        None => tried.push("EVENTPOLL_LIB (not set)".to_string()),
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("libeventpoll.so"));
            if let Some(up) = dir.parent() {
                candidates.push(up.join("libeventpoll.so"));
                candidates.push(up.join("lib/libeventpoll.so"));
            }
        }
    }
    for c in candidates {
        if c.is_file() {
            return Ok(std::fs::canonicalize(&c).unwrap_or(c));
        }
        tried.push(format!("{} (no such file)", c.display()));
    }
    Err(format!(
        "libeventpoll.so was not found; looked at: {}. Build it (`cargo build -p \
         eventpoll-capi`, or `scripts/capi-install.sh PREFIX`) or set \
         EVENTPOLL_LIB=/path/to/libeventpoll.so",
        tried.join(", ")
    ))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Copies the finding lines the library appends to a file onto standard error.
struct Tail {
    file: std::fs::File,
    partial: String,
}

impl Tail {
    fn pump(&mut self) {
        let mut buf = String::new();
        if self.file.read_to_string(&mut buf).is_err() {
            return;
        }
        self.partial.push_str(&buf);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            if !line.starts_with("eventpoll-check: summary:") {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

fn exit_code_of(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => (128 + sig) as u8,
        _ => 1,
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("eventpoll check: {msg}");
    ExitCode::from(2)
}

/// Run `eventpoll check`.
pub fn run(args: CheckArgs) -> ExitCode {
    let lib = match find_library() {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let (path, temporary) = match &args.log {
        Some(l) => (absolute(l), false),
        None => (
            std::env::temp_dir().join(format!("eventpoll-check-{}.log", std::process::id())),
            true,
        ),
    };
    // A fresh file: this run's findings only.
    if let Err(e) = std::fs::File::create(&path) {
        return fail(&format!("cannot create {}: {e}", path.display()));
    }
    let preload = match std::env::var_os("LD_PRELOAD") {
        Some(old) if !old.is_empty() => {
            let mut v = lib.clone().into_os_string();
            v.push(" ");
            v.push(old);
            v
        }
        _ => lib.clone().into_os_string(),
    };
    let mut child = match Command::new(&args.program[0])
        .args(&args.program[1..])
        .env("LD_PRELOAD", preload)
        .env("EVENTPOLL_CHECK", &path)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(&format!("cannot run {}: {e}", args.program[0])),
    };
    let mut tail = if temporary {
        std::fs::File::open(&path).ok().map(|file| Tail {
            file,
            partial: String::new(),
        })
    } else {
        None
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return fail(&format!("waiting for {}: {e}", args.program[0])),
        }
        if let Some(t) = &mut tail {
            t.pump();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(t) = &mut tail {
        t.pump();
    }
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(&path) {
        let _ = f.seek(SeekFrom::Start(0));
        let _ = f.read_to_string(&mut text);
    }
    if temporary {
        let _ = std::fs::remove_file(&path);
    }
    let findings: Vec<Finding> = text.lines().filter_map(parse_finding).collect();
    let mut summed: Vec<(String, u64)> = Vec::new();
    let mut processes = 0;
    for s in text.lines().filter_map(parse_summary) {
        processes += 1;
        for (k, n) in s {
            match summed.iter_mut().find(|(sk, _)| *sk == k) {
                Some(e) => e.1 += n,
                None => summed.push((k, n)),
            }
        }
    }
    // Per kind: the repeats the summaries counted, and at least the lines printed (a
    // process that ended without its exit handlers printed no summary).
    let mut rows: Vec<(String, u64, Option<&Finding>)> = Vec::new();
    let mut kinds: Vec<String> = KINDS.iter().map(|k| k.to_string()).collect();
    for f in &findings {
        if !kinds.contains(&f.kind) {
            kinds.push(f.kind.clone());
        }
    }
    for k in &kinds {
        let lines = findings.iter().filter(|f| &f.kind == k).count() as u64;
        let summed = summed.iter().find(|(sk, _)| sk == k).map_or(0, |e| e.1);
        let n = lines.max(summed);
        if n > 0 {
            rows.push((k.clone(), n, findings.iter().find(|f| &f.kind == k)));
        }
    }
    let total: u64 = rows.iter().map(|r| r.1).sum();
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "kind", "count", "pid", "call", "epfd", "fd", "data", "file",
    ]);
    for (k, n, first) in &rows {
        let f = first.cloned().unwrap_or_default();
        table.add_row(vec![
            k.clone(),
            n.to_string(),
            f.field("pid").to_string(),
            f.field("call").to_string(),
            f.field("epfd").to_string(),
            f.field("fd").to_string(),
            f.field("data").to_string(),
            f.field("file").to_string(),
        ]);
    }
    if total > 0 {
        eprintln!("{table}");
    }
    eprintln!(
        "eventpoll check: {total} findings ({processes} process{} reported)",
        if processes == 1 { "" } else { "es" }
    );
    if let Some(j) = &args.json {
        let list: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| {
                let mut o = serde_json::Map::new();
                o.insert("kind".into(), f.kind.clone().into());
                for (k, v) in &f.fields {
                    o.insert(k.clone(), v.clone().into());
                }
                o.insert("message".into(), f.sentence.clone().into());
                serde_json::Value::Object(o)
            })
            .collect();
        let counts: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, n, _)| (k.clone(), (*n).into()))
            .collect();
        let doc = serde_json::json!({
            "program": args.program,
            "exit_status": exit_code_of(status),
            "total": total,
            "counts": counts,
            "findings": list,
        });
        let body = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if let Err(e) = std::fs::write(j, body + "\n") {
            eprintln!("eventpoll check: cannot write {}: {e}", j.display());
        }
    }
    match args.error_exitcode {
        Some(n) if total > 0 => ExitCode::from(n),
        _ => ExitCode::from(exit_code_of(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_and_summary_lines_parse() {
        let f = parse_finding(
            "eventpoll-check: herd pid=7 epfd=4 fd=3 data=0x1 call=4 file=eventfd: one wakeup: x",
        )
        .unwrap();
        assert_eq!(
            (f.kind.as_str(), f.field("fd"), f.field("file")),
            ("herd", "3", "eventfd")
        );
        assert_eq!(f.sentence, "one wakeup: x");
        assert_eq!(
            parse_summary("eventpoll-check: summary: 3 findings (herd 1, ghost-item 2)").unwrap(),
            vec![("herd".to_string(), 1), ("ghost-item".to_string(), 2)]
        );
        assert!(parse_summary("eventpoll-check: summary: 0 findings")
            .unwrap()
            .is_empty());
    }
}
