//! Facts about the machine a run measured on (the report's Environment), and the two
//! machine settings a run may change for its duration: the kernel's TCP congestion control
//! (`--tcp-congestion`) and the driver's CPU affinity (the isolated throughput runs). Both
//! are put back by a guard's `Drop`, also on an early return.

use std::path::Path;

use anyhow::{bail, Context as _, Result};

use crate::harness::pin;

/// The kernel's TCP congestion control setting.
pub(crate) const TCP_CONGESTION: &str = "/proc/sys/net/ipv4/tcp_congestion_control";

/// A `/proc` (or any text) file's content, trimmed; the error as text when it cannot be
/// read, since these are facts for the report, not inputs the run depends on.
pub(crate) fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("({path}: {e})"))
}

/// A command's stdout, trimmed, or why it could not be had (for the report).
pub(crate) fn command_output(program: &Path, args: &[&str], cwd: &Path) -> String {
    match std::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Ok(o) => format!(
            "({} failed: {})",
            program.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("({} not run: {e})", program.display()),
    }
}

/// This program, to start a helper process of it (the relay, the access-cost child).
/// `/proc/self/exe` rather than the path it was started from: a `cargo build` that replaces
/// `target/release/bench` during a run (others build in the same tree) leaves that path
/// naming another binary, or none, while `/proc/self/exe` still opens the running one.
pub(crate) fn own_exe() -> anyhow::Result<std::path::PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if proc_exe.exists() {
        return Ok(proc_exe.to_path_buf());
    }
    std::env::current_exe().context("locating the bench binary")
}

/// The number of CPUs this process may run on.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Sets the kernel's TCP congestion control for the run (`--tcp-congestion`) and puts the
/// machine's own back when dropped, also on an early return. Every socket the run opens
/// afterwards (agent, functions, clients) starts with the new one.
pub(crate) struct TcpCongestion {
    machine: String,
    changed: bool,
}

impl TcpCongestion {
    /// Switches to `wanted` when given and different from the machine's setting.
    pub(crate) fn set(wanted: Option<&str>) -> Result<Self> {
        let machine = read_trimmed(TCP_CONGESTION);
        let Some(wanted) = wanted.filter(|w| *w != machine) else {
            return Ok(Self {
                machine,
                changed: false,
            });
        };
        std::fs::write(TCP_CONGESTION, wanted).with_context(|| {
            format!(
                "setting {TCP_CONGESTION} to {wanted} (needs root; available: {})",
                read_trimmed("/proc/sys/net/ipv4/tcp_available_congestion_control")
            )
        })?;
        Ok(Self {
            machine,
            changed: true,
        })
    }

    /// The Environment line: what the run used, and the machine's own when it differs.
    pub(crate) fn describe(&self) -> String {
        let qdisc = read_trimmed("/proc/sys/net/core/default_qdisc");
        if self.changed {
            format!(
                "congestion control {} (set by `--tcp-congestion`; the machine's is {}), default qdisc {qdisc}",
                read_trimmed(TCP_CONGESTION),
                self.machine
            )
        } else {
            format!("congestion control {}, default qdisc {qdisc}", self.machine)
        }
    }
}

impl Drop for TcpCongestion {
    fn drop(&mut self) {
        if self.changed {
            if let Err(e) = std::fs::write(TCP_CONGESTION, &self.machine) {
                eprintln!(
                    "bench: could not restore {TCP_CONGESTION} to {}: {e}",
                    self.machine
                );
            }
        }
    }
}

/// Keeps the driver on the given CPUs while alive, and gives it every CPU back when dropped
/// (also on an early return), so that only the isolated runs are pinned.
pub(crate) struct DriverPin {
    /// Every CPU, as a `taskset` list.
    pub(crate) all: String,
}

impl DriverPin {
    /// Pins the driver to `cpus` (a `taskset` list) of the machine's `ncpu`.
    pub(crate) fn to(cpus: &str, ncpu: usize) -> Result<Self> {
        if ncpu < 2 {
            bail!("pinning needs at least 2 CPUs");
        }
        pin(std::process::id(), cpus)?;
        Ok(Self {
            all: format!("0-{}", ncpu.saturating_sub(1)),
        })
    }
}

impl Drop for DriverPin {
    fn drop(&mut self) {
        if let Err(e) = pin(std::process::id(), &self.all) {
            eprintln!("bench: could not unpin the driver: {e:#}");
        }
    }
}

/// What the report says about the machine: CPUs, memory, kernel.
pub(crate) fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    format!(
        "{} CPUs ({model}), {:.1} GiB RAM, Linux {}",
        cpus(),
        mem_kb as f64 / 1024.0 / 1024.0,
        read_trimmed("/proc/sys/kernel/osrelease")
    )
}
