//! Running one scenario on several backends and comparing each transcript with the first
//! backend's (the kernel, the oracle); a difference is shown as a unified diff.

use crate::backend::BackendKind;
use crate::exec::Transcript;
use crate::script::Script;
use crate::watchdog::{run_within, DEFAULT_LIMIT};
use std::time::Duration;

/// The transcripts of one scenario: the oracle's and every other backend's.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Where the scenario came from (diff headers).
    pub path: String,
    /// The oracle's name and transcript.
    pub oracle: (&'static str, Transcript),
    /// Every other backend's name and transcript.
    pub others: Vec<(&'static str, Transcript)>,
    /// Backends that did not run the scenario because it needs what they lack (TCP and UDP
    /// sockets, for the engine: [`BackendKind::runs`]).
    pub skipped: Vec<&'static str>,
}

impl Outcome {
    /// Whether every backend printed the oracle's transcript (and none panicked or ran out
    /// of time). A scenario that no backend but the oracle ran has not passed (see
    /// [`Outcome::uncompared`]).
    pub fn passed(&self) -> bool {
        !self.others.is_empty()
            && self.oracle.1.panic.is_none()
            && self.oracle.1.timeout.is_none()
            && self.others.iter().all(|(_, t)| *t == self.oracle.1)
    }

    /// Whether the oracle was the only backend that ran the scenario (the others skipped
    /// it, or none was available): nothing was compared.
    pub fn uncompared(&self) -> bool {
        self.others.is_empty()
    }

    /// `kernel vs capi only: engine has no TCP or UDP sockets`-style note for a scenario
    /// some backends skipped, or `None`.
    pub fn skip_note(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let ran: Vec<&str> = std::iter::once(self.oracle.0)
            .chain(self.others.iter().map(|(n, _)| *n))
            .collect();
        Some(format!(
            "{} only: {} {} no TCP or UDP sockets",
            ran.join(" vs "),
            self.skipped.join(", "),
            if self.skipped.len() == 1 {
                "has"
            } else {
                "have"
            }
        ))
    }

    /// The backends whose transcript differs from the oracle's, or that ran out of time.
    pub fn failing(&self) -> Vec<&'static str> {
        std::iter::once(&self.oracle)
            .filter(|(_, t)| t.timeout.is_some())
            .chain(
                self.others
                    .iter()
                    .filter(|(_, t)| *t != self.oracle.1 || t.timeout.is_some()),
            )
            .map(|(n, _)| *n)
            .collect()
    }

    /// Whether a backend had to be left running after its time limit (see
    /// [`crate::watchdog`]): later scenarios on it may not be able to run.
    pub fn abandoned(&self) -> Option<&'static str> {
        std::iter::once(&self.oracle)
            .chain(&self.others)
            .find(|(_, t)| t.timeout.is_some_and(|x| x.abandoned))
            .map(|(n, _)| *n)
    }

    /// For each backend that ran out of time, which command; then a unified diff (oracle →
    /// backend) for each backend that differs.
    pub fn diffs(&self) -> String {
        let mut out = String::new();
        for (name, t) in std::iter::once(&self.oracle).chain(&self.others) {
            if let (Some(last), Some(_)) = (t.lines.last(), t.timeout) {
                out.push_str(&format!("{name}: {}: {last}\n", self.path));
            }
        }
        let (oname, ot) = &self.oracle;
        for (name, t) in &self.others {
            if t == ot {
                continue;
            }
            out.push_str(&unified_diff(
                &format!("{oname}: {}", self.path),
                &ot.text(),
                &format!("{name}: {}", self.path),
                &t.text(),
            ));
        }
        out
    }
}

/// A unified diff of two texts (3 lines of context).
pub fn unified_diff(old_name: &str, old: &str, new_name: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

/// Run `script` on every backend in `kinds` (the first is the oracle), each run bounded by
/// [`DEFAULT_LIMIT`].
pub fn compare(script: &Script, kinds: &[BackendKind]) -> Outcome {
    compare_within(script, kinds, DEFAULT_LIMIT)
}

/// [`compare`] with each backend's run bounded by `limit` (see [`crate::watchdog`]).
pub fn compare_within(script: &Script, kinds: &[BackendKind], limit: Duration) -> Outcome {
    let available: Vec<&BackendKind> = kinds
        .iter()
        .filter(|k| crate::backend::available(k))
        .collect();
    compare_these(script, available, limit)
}

/// Run `script` on exactly these backends (the first is the oracle), whether or not they
/// are [`crate::backend::available`] here — `capi` without `EVENTPOLL_CONFORM_CAPI`, say —
/// except those that cannot run it ([`BackendKind::runs`]).
pub fn compare_exactly(script: &Script, kinds: &[BackendKind]) -> Outcome {
    compare_these(script, kinds.iter().collect(), DEFAULT_LIMIT)
}

fn compare_these(script: &Script, available: Vec<&BackendKind>, limit: Duration) -> Outcome {
    let skipped = available
        .iter()
        .filter(|k| !k.runs(script))
        .map(|k| k.name)
        .collect();
    let mut runs = available
        .into_iter()
        .filter(|k| k.runs(script))
        .map(|k| (k.name, run_within(script, k, limit)));
    let oracle = runs.next().unwrap_or((
        "none",
        Transcript {
            lines: vec![],
            panic: None,
            timeout: None,
        },
    ));
    Outcome {
        path: script.path.clone(),
        oracle,
        others: runs.collect(),
        skipped,
    }
}
