//! The process's own figures for the exposition, read from Linux's `/proc/self`: CPU time,
//! resident memory, open and allowed file descriptors, start time. Elsewhere: none.

/// One reading of the process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_s: f64,
}

/// Reads `/proc/self`; `None` if it is not there or not as Linux writes it.
pub fn read() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields = stat_fields(&stat)?;
    // SAFETY: sysconf only reads a system constant.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page_bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let cpu_ticks = fields.utime + fields.stime;
    let boot_time_s = boot_time_s()?;
    Some(ProcessStats {
        cpu_seconds: cpu_ticks as f64 / ticks_per_s,
        rss_bytes: fields.rss_pages * page_bytes,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
        max_fds: max_fds().unwrap_or(0),
        start_time_s: boot_time_s + fields.start_ticks as f64 / ticks_per_s,
    })
}

struct StatFields {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    rss_pages: u64,
}

/// The fields of `/proc/self/stat` read here: utime 14, stime 15, starttime 22, rss 24.
fn stat_fields(stat: &str) -> Option<StatFields> {
    let field = |n: usize| {
        kassa_store::scheduling::stat_field(stat, n)?
            .parse::<u64>()
            .ok()
    };
    Some(StatFields {
        utime: field(14)?,
        stime: field(15)?,
        start_ticks: field(22)?,
        rss_pages: field(24)?,
    })
}

fn boot_time_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line[6..].trim().parse().ok()
}

fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_is_skipped() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 4 0 555 1000 77 18446744073709551615";
        let fields = stat_fields(stat).unwrap();
        assert_eq!((fields.utime, fields.stime), (7, 3));
        assert_eq!((fields.start_ticks, fields.rss_pages), (555, 77));
        assert!(stat_fields("garbage").is_none());
    }

    #[test]
    fn this_process_reads_sensibly() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            eprintln!("skipped: no /proc here");
            return;
        }
        let stats = read().unwrap();
        assert!(stats.rss_bytes > 1024 * 1024, "{stats:?}");
        assert!(
            stats.open_fds >= 3 && stats.max_fds >= stats.open_fds,
            "{stats:?}"
        );
        let now_s = crate::now_ms() as f64 / 1000.0;
        assert!(
            stats.start_time_s <= now_s + 1.0 && stats.start_time_s > now_s - 86_400.0,
            "{stats:?}"
        );
    }
}
