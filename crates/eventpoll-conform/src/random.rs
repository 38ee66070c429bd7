//! Random differential testing (in progress).
use std::path::Path;

/// The result of a random run.
#[derive(Debug, Default)]
pub struct Report {
    /// Scenarios whose backends agreed.
    pub passed: u64,
    /// Scenarios with a mismatch.
    pub failed: u64,
}

/// Generate `n` random scenarios from `seed` and compare backends.
pub fn run_random(
    _n: u64,
    _seed: u64,
    _save: Option<&Path>,
    _progress: bool,
) -> Result<Report, String> {
    Err("--random is not implemented yet".to_string())
}
