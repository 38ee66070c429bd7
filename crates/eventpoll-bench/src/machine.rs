//! A description of the machine the benchmark ran on (kernel, CPU, cores, descriptor limit),
//! read from /proc without any unsafe code, for the report and the JSON output.

use serde_json::{json, Value};

/// The machine a benchmark ran on.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// `uname -r` (from /proc/sys/kernel/osrelease).
    pub kernel: String,
    /// The kernel's build string (`uname -v`).
    pub kernel_build: String,
    /// The CPU model name from /proc/cpuinfo.
    pub cpu_model: String,
    /// Cores this process may run on.
    pub cores: usize,
    /// `RLIMIT_NOFILE` (soft, hard) after the benchmark raised the soft limit.
    pub fd_limit: (u64, u64),
    /// The 1-minute load average when the run started (other work skews the figures).
    pub load_1min: f64,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The 1-minute load average now (NaN when `/proc/loadavg` cannot be read).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

impl Machine {
    /// Describe this machine.
    pub fn describe() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            kernel_build: read_trimmed("/proc/sys/kernel/version"),
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            fd_limit: crate::sys::fd_limit().unwrap_or((0, 0)),
            load_1min: load_average(),
        }
    }

    /// One line for the report header.
    pub fn summary(&self) -> String {
        format!(
            "Linux {}, {} ({} cores), descriptor limit {}, load average {:.2} at start",
            self.kernel, self.cpu_model, self.cores, self.fd_limit.0, self.load_1min
        )
    }

    /// The JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "kernel": self.kernel,
            "kernel_build": self.kernel_build,
            "cpu_model": self.cpu_model,
            "cores": self.cores,
            "fd_limit_soft": self.fd_limit.0,
            "fd_limit_hard": self.fd_limit.1,
            "load_1min": self.load_1min,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_machine() {
        let m = Machine::describe();
        assert!(m.cores >= 1);
        assert!(
            m.kernel.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{}",
            m.kernel
        );
        assert!(m.fd_limit.0 > 0 && m.fd_limit.0 <= m.fd_limit.1);
        assert_eq!(m.to_json()["cores"], m.cores);
        assert!(m.load_1min >= 0.0, "{}", m.load_1min);
    }
}
