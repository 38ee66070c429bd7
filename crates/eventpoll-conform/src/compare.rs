//! Running one scenario on several backends and comparing each transcript with the first
//! backend's (the kernel, the oracle); a difference is shown as a unified diff.

use crate::backend::BackendKind;
use crate::exec::{run_script, Transcript};
use crate::script::Script;

/// The transcripts of one scenario: the oracle's and every other backend's.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Where the scenario came from (diff headers).
    pub path: String,
    /// The oracle's name and transcript.
    pub oracle: (&'static str, Transcript),
    /// Every other backend's name and transcript.
    pub others: Vec<(&'static str, Transcript)>,
}

impl Outcome {
    /// Whether every backend printed the oracle's transcript (and none panicked).
    pub fn passed(&self) -> bool {
        self.oracle.1.panic.is_none() && self.others.iter().all(|(_, t)| *t == self.oracle.1)
    }

    /// The backends whose transcript differs from the oracle's.
    pub fn failing(&self) -> Vec<&'static str> {
        self.others
            .iter()
            .filter(|(_, t)| *t != self.oracle.1)
            .map(|(n, _)| *n)
            .collect()
    }

    /// A unified diff (oracle → backend) for each backend that differs.
    pub fn diffs(&self) -> String {
        let mut out = String::new();
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

/// Run `script` on every backend in `kinds` (the first is the oracle).
pub fn compare(script: &Script, kinds: &[BackendKind]) -> Outcome {
    let mut runs = kinds
        .iter()
        .filter(|k| crate::backend::available(k))
        .map(|k| (k.name, run_script(script, k)));
    let oracle = runs.next().unwrap_or((
        "none",
        Transcript {
            lines: vec![],
            panic: None,
        },
    ));
    Outcome {
        path: script.path.clone(),
        oracle,
        others: runs.collect(),
    }
}
