//! CPU time and memory of processes, from Linux's /proc.

use std::fs;
use std::process::Command;

/// Clock ticks per second of /proc's utime and stime (`getconf CLK_TCK`;
/// 100 on every Linux we run on, used when getconf is missing).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// Fields of /proc/<pid>/stat after the command name (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime of one process in ticks (fields 14 and 15 of stat).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let f = stat_fields(pid)?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// utime + stime of `pid` and of every process whose parent is `pid`
/// (a PostgreSQL postmaster and its backends).
pub fn tree_cpu_ticks(pid: u32) -> Option<u64> {
    let mut total = cpu_ticks(pid)?;
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(f) = stat_fields(child) else {
            continue;
        };
        if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            total += cpu_ticks(child).unwrap_or(0);
        }
    }
    Some(total)
}

/// A `Vm*:` line of /proc/self/status in KiB (`VmHWM`, `VmRSS`).
pub fn self_status_kib(field: &str) -> Option<u64> {
    status_kib("self", field)
}

/// A `Vm*:` line of another process's `/proc/<pid>/status` in KiB.
pub fn pid_status_kib(pid: u32, field: &str) -> Option<u64> {
    status_kib(&pid.to_string(), field)
}

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Every process of process group `pgid` (field 5 of `/proc/<pid>/stat`).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat_fields(*pid)
                .and_then(|f| f.get(2)?.parse::<u32>().ok())
                .is_some_and(|group| group == pgid)
        })
        .collect()
}

/// The command name of a process (`/proc/<pid>/comm`, at most 15 bytes).
pub fn command_name(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end().to_owned())
}
