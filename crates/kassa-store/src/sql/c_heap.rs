//! How the C heap that SQLite allocates from grows. SQLite takes its page cache and each
//! B-tree balance's scratch space from the C library's `malloc`, not from Rust's allocator; on
//! glibc the writer thread's arena then grows 4 KiB at a time while the cache fills, each step
//! an `mprotect` call under the process's memory-map lock. During creates that came to about
//! one `mprotect` every five orders, and the same RSA signature on the runtime threads took
//! about 15 % longer than in a process without them (docs/performance.md, "The C heap's growth").
//! A larger top pad makes each arena grow in 16 MiB steps instead (and keep up to 16 MiB free
//! at its top when it trims).

/// The padding glibc adds to each growth of an arena's top (and keeps when trimming it):
/// address space, made resident only when SQLite's cache or scratch space touches it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD_BYTES: libc::c_int = 16 << 20;

/// Sets the C heap's growth step, once per process (before the first SQLite connection).
pub(super) fn grow_in_large_steps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes glibc's tuning parameters, under its own lock.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_TOP_PAD, TOP_PAD_BYTES);
        });
    }
}
