//! Peak memory and CPU time of a process (`getrusage(RUSAGE_SELF)`), and the machine a run
//! was measured on.

use serde::{Deserialize, Serialize};

/// What a process used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// Peak resident set size (`ru_maxrss`), in MiB.
    pub peak_rss_mib: f64,
    pub user_cpu_seconds: f64,
    pub system_cpu_seconds: f64,
}

impl ProcessUsage {
    pub fn cpu_seconds(&self) -> f64 {
        self.user_cpu_seconds + self.system_cpu_seconds
    }
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// This process's usage.
pub fn own_usage() -> ProcessUsage {
    // SAFETY: getrusage only writes the struct we hand it; a zeroed rusage is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail (EFAULT/EINVAL are excluded).
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return ProcessUsage::default();
    }
    ProcessUsage {
        // Linux reports ru_maxrss in KiB.
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        user_cpu_seconds: seconds(usage.ru_utime),
        system_cpu_seconds: seconds(usage.ru_stime),
    }
}

/// The machine a run was measured on (for the report's header).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `nproc`: CPUs this process may use.
    pub cpus: usize,
    pub memory_mib: u64,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_mib: meminfo_total_kib(&meminfo) / 1024,
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
        }
    }
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`): other work on the machine shows
/// in every time a run measures.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn meminfo_total_kib(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cpu_model_and_the_memory_size() {
        let cpuinfo =
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("Intel(R) Xeon(R) Processor"));
        assert_eq!(meminfo_total_kib("MemTotal:       24590256 kB\nMemFree:  1 kB\n"), 24_590_256);
        assert_eq!(meminfo_total_kib(""), 0);
    }

    #[test]
    fn own_usage_grows_with_work_and_memory() {
        let before = own_usage();
        let block = vec![1u8; 64 * 1024 * 1024];
        let mut x = 0u64;
        for (i, b) in block.iter().enumerate().step_by(4096) {
            x = x.wrapping_add(u64::from(*b) * i as u64);
        }
        assert!(x > 0);
        let after = own_usage();
        assert!(after.peak_rss_mib >= 64.0, "{after:?}");
        assert!(after.peak_rss_mib >= before.peak_rss_mib);
        assert!(after.cpu_seconds() >= before.cpu_seconds());
    }
}
