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

/// This process's usage: CPU time from `getrusage(RUSAGE_SELF)`, peak memory from `VmHWM` in
/// `/proc/self/status`. Not `ru_maxrss`: Linux carries a process's peak over into the program
/// it executes, so an engine process started by the bench would report the bench's own peak
/// (the simulators with their 200,000 records) instead of its own.
pub fn own_usage() -> ProcessUsage {
    // SAFETY: getrusage only writes the struct we hand it; a zeroed rusage is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail (EFAULT/EINVAL are excluded).
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return ProcessUsage::default();
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // ru_maxrss (KiB on Linux) only where /proc is missing.
    let peak_kib = status_kib(&status, "VmHWM:").unwrap_or(usage.ru_maxrss as u64);
    ProcessUsage {
        peak_rss_mib: peak_kib as f64 / 1024.0,
        user_cpu_seconds: seconds(usage.ru_utime),
        system_cpu_seconds: seconds(usage.ru_stime),
    }
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status` or `/proc/meminfo`, in KiB.
fn status_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
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
            memory_mib: status_kib(&meminfo, "MemTotal:").unwrap_or(0) / 1024,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cpu_model_and_the_memory_size() {
        let cpuinfo =
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("Intel(R) Xeon(R) Processor"));
        assert_eq!(status_kib("MemTotal:       24590256 kB\nMemFree:  1 kB\n", "MemTotal:"), Some(24_590_256));
        assert_eq!(status_kib("Name:\thmsync\nVmHWM:\t   39568 kB\n", "VmHWM:"), Some(39_568));
        assert_eq!(status_kib("", "VmHWM:"), None);
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
