//! How kassa's threads ask the kernel to schedule them: short time slices for the threads
//! whose wake-ups others wait for (the SQLite writer, the runtime's workers), so that a thread
//! waking on the same cores runs sooner; a higher priority for the SQLite writer, whose commit
//! a whole batch of requests waits for; and where a named thread's counters are and how its
//! `stat` file reads.

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
        // The thread's nice value kept: asking for nice 0 from a thread started under `nice`
        // would be refused without privilege, and the slice with it.
        attr.sched_nice = thread_nice().unwrap_or(0);
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

/// How many nice levels ahead of the request workers the SQLite writer asks to run. Every
/// create of a batch waits for the writer's commit; while requests' signatures kept both cores
/// busy, a writer that woke at the workers' priority waited for one, and the cores sat idle
/// 5–7 % of a create run where the null gateway left them idle 0.5 %; ten levels ahead (about
/// nine times the weight) it runs when it wakes, and they sat idle about 2 % (docs/performance.md,
/// "The SQLite writer ahead of the workers"). The writer takes under a tenth of the CPU, so
/// the workers lose little to it.
pub const WRITER_PRIORITY_BOOST: i32 = 10;

/// The calling thread's nice value, `None` where it cannot be read.
pub fn thread_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions; `getpriority` returns -1 both as a nice value
        // and as an error, so errno is cleared first and read after (both the thread's own).
        unsafe {
            let tid = libc::gettid() as libc::id_t;
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, tid);
            (nice != -1 || *libc::__errno_location() == 0).then_some(nice)
        }
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Asks the kernel to run the calling thread `by` nice levels ahead of where it runs now (a
/// lower nice value, at most -20). Raising a priority needs `CAP_SYS_NICE` or a nice limit
/// (`RLIMIT_NICE`) that reaches the level (docs/operations.md, "The SQLite writer's
/// priority"); where neither does, the thread keeps its priority. Returns the nice value the
/// thread runs at after the call.
pub fn ask_for_higher_priority(by: i32) -> Result<i32, std::io::Error> {
    #[cfg(target_os = "linux")]
    {
        let now = thread_nice().ok_or_else(std::io::Error::last_os_error)?;
        let wanted = (now - by).max(-20);
        // SAFETY: `gettid` has no preconditions; `setpriority` on this thread's own id (Linux
        // takes a thread id for `PRIO_PROCESS`) changes only this thread.
        let refused = unsafe {
            let tid = libc::gettid() as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, wanted) != 0
        };
        if refused {
            return Err(std::io::Error::last_os_error());
        }
        Ok(wanted)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = by;
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// Field `n` of a `stat` file of `/proc` (a process's or a thread's), numbered from 1 as
/// proc(5) numbers them: 14 and 15 the CPU ticks in user and system mode, 19 the nice value.
/// The command name (field 2) may hold spaces and parentheses, so the text is cut at its last
/// `)` and the fields counted from 3 after it.
pub fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(n.checked_sub(3)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis_of_the_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194304 10 0 0 0 7 3 0 0 20 5 2";
        assert_eq!(stat_field(stat, 3), Some("S"));
        assert_eq!(stat_field(stat, 14), Some("7"));
        assert_eq!(stat_field(stat, 15), Some("3"));
        assert_eq!(stat_field(stat, 19), Some("5"));
        assert_eq!(
            stat_field(stat, 2),
            None,
            "the name is not a field after it"
        );
        assert_eq!(stat_field(stat, 30), None);
        assert_eq!(stat_field("no name here", 3), None);
    }

    /// Runs `check` on a thread of its own started at nice 3 (lowering a priority needs no
    /// privilege), so the test's other threads keep theirs.
    #[cfg(target_os = "linux")]
    fn at_nice_3(check: impl FnOnce() + Send + 'static) {
        std::thread::spawn(move || {
            // SAFETY: this thread's own id; raising a nice value is always allowed.
            let set =
                unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 3) };
            assert_eq!(set, 0, "nice 3: {}", std::io::Error::last_os_error());
            assert_eq!(thread_nice(), Some(3));
            check();
        })
        .join()
        .unwrap();
    }

    /// A thread started under `nice` keeps its nice value when it asks for short slices, and
    /// gets them: asking for nice 0 too would be refused without privilege, slices and all.
    #[test]
    #[cfg(target_os = "linux")]
    fn short_slices_keep_the_threads_nice_value() {
        at_nice_3(|| {
            ask_for_short_slices(SHORT_SLICE);
            assert_eq!(
                thread_nice(),
                Some(3),
                "the nice value after asking for slices"
            );
            if crate::testing::custom_slices_kept().is_err() {
                return;
            }
            // SAFETY: `gettid` has no preconditions.
            let task = format!("/proc/self/task/{}", unsafe { libc::gettid() });
            if let Some(slice) = crate::testing::thread_slice_ns(task.as_ref()) {
                assert_eq!(slice, SHORT_SLICE.as_nanos() as u64, "the slice");
            }
        });
    }

    /// A higher priority is granted where the process may raise it that far, and refused with
    /// the thread's priority unchanged where it may not.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_higher_priority_is_granted_where_allowed_and_refused_cleanly_elsewhere() {
        at_nice_3(|| {
            let asked = ask_for_higher_priority(5);
            if crate::testing::may_raise_priority_to(-2) {
                assert_eq!(asked.unwrap(), -2);
                assert_eq!(thread_nice(), Some(-2));
            } else {
                assert!(asked.is_err(), "granted without the right: {asked:?}");
                assert_eq!(thread_nice(), Some(3));
            }
            // Never past the highest priority there is.
            if crate::testing::may_raise_priority_to(-20) {
                assert_eq!(ask_for_higher_priority(40).unwrap(), -20);
            }
        });
    }
}
