//! How kassa's threads ask the kernel to schedule them: short time slices for the threads
//! whose wake-ups others wait for (the SQLite writer, the runtime's workers), so that a thread
//! waking on the same cores runs sooner; and where a named thread's counters are.

use std::time::Duration;

/// The time slice the writer and the runtime's worker threads ask the kernel for. Linux
/// (EEVDF, 6.12 and later) gives a thread that wakes with a shorter slice than the running one
/// an earlier deadline, so it runs sooner. While requests' signatures kept both cores busy, the
/// writer waited about 150 µs for a core at each wake-up, and every write of its batch waited
/// with it; the requests then waited together, and the cores sat idle 15 % of a create run
/// (docs/performance.md, "The writer asks for short slices"). Workers with short slices let a
/// database on the same cores run sooner too ("Short slices for the runtime's workers"). 100 µs
/// is the shortest slice the kernel takes.
pub const SHORT_SLICE: Duration = Duration::from_micros(100);

/// Asks the kernel to run this thread with time slices of `slice` (`sched_setattr`, the
/// normal policy kept: no privilege needed). A hint: a kernel without custom slices ignores it,
/// and a refusal only costs the latency it would have saved.
pub fn ask_for_short_slices(slice: Duration) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: all-zero is a valid `sched_attr` (the normal policy, nice 0); the kernel
        // reads `size` bytes of it, which is its whole size.
        let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
        attr.size = std::mem::size_of::<libc::sched_attr>() as u32;
        attr.sched_policy = libc::SCHED_OTHER as u32;
        attr.sched_runtime = slice.as_nanos() as u64;
        // SAFETY: `attr` lives through the call; pid 0 is the calling thread; flags 0.
        let refused = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) } != 0;
        if refused {
            let error = std::io::Error::last_os_error();
            tracing::debug!(%error, "short time slices were refused");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = slice;
}

/// The `/proc` directory of process `pid`'s thread named `name`, if it has one (the kernel keeps
/// a thread's first 15 bytes of name).
pub fn thread_dir(pid: u32, name: &str) -> Option<std::path::PathBuf> {
    let shown = &name[..name.len().min(15)];
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .map(|task| task.path())
        .find(|task| {
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            comm.trim_end() == shown
        })
}
