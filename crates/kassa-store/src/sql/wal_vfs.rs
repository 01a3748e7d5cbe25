//! A VFS for SQLite's writer connection that writes each commit's write-ahead-log frames with
//! one system call. SQLite writes a frame as two `pwrite`s, its 24-byte header and its page, at
//! contiguous offsets, and a create's commit share is about five frames: most of a create's
//! system calls (docs/performance.md). Here the WAL file's contiguous writes are gathered in
//! memory and written when SQLite syncs, reads, sizes, truncates, controls or closes the file,
//! or when they stop being contiguous or reach [`MAX_GATHERED_BYTES`].
//!
//! Why it is as durable as SQLite's own: with `synchronous = FULL` (every kassa connection's,
//! checked when the writer opens) a commit syncs the log before it publishes the new frames in
//! the shared-memory index, so no reader, in this process or another, can look for a frame
//! still in memory; the sync writes them first, and a failed write fails the sync, so the
//! commit. Every other file (the database, its shared memory) and every other method is SQLite's
//! "unix" VFS itself, called with the same file structure.

use rusqlite::ffi;
use std::ffi::{CStr, c_int, c_void};
use std::sync::OnceLock;

/// The VFS's registered name; [`register`] first.
pub(super) const NAME: &CStr = c"kassa-wal-gather";
/// The most a WAL file holds in memory before it writes: a commit of a full batch of creates is
/// well under it; a bigger transaction is written in pieces of this size.
const MAX_GATHERED_BYTES: usize = 4 << 20;
/// The most one base write is given: SQLite's unix VFS masks a write's size with `0x1ffff`, so
/// a larger one would be cut (and one of 128 KiB written as nothing, reported as a full disk).
const MAX_WRITE_BYTES: usize = 0x1f000;

/// What this VFS adds after the base VFS's own file structure (at [`Registered::extra_at`]).
struct Gathered {
    base: *const ffi::sqlite3_io_methods,
    bytes: Vec<u8>,
    /// The file offset of `bytes[0]`.
    at: i64,
}

struct Registered {
    base: *mut ffi::sqlite3_vfs,
    extra_at: usize,
}

// SAFETY: the pointers are SQLite's "unix" VFS and this module's own leaked VFS, both alive for
// the process and safe to use from any thread (SQLite's VFS objects are thread-safe).
unsafe impl Send for Registered {}
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Result<Registered, c_int>> = OnceLock::new();

/// Registers the VFS (once per process, not as the default).
pub(super) fn register() -> rusqlite::Result<()> {
    let registered = REGISTERED.get_or_init(|| {
        // SAFETY: `sqlite3_vfs_find` initialises SQLite and returns the unix VFS, which lives
        // forever;
        // the copy registered is leaked, so it lives forever too.
        unsafe {
            let base = ffi::sqlite3_vfs_find(c"unix".as_ptr());
            if base.is_null() {
                return Err(ffi::SQLITE_ERROR);
            }
            let base_size = usize::try_from((*base).szOsFile).map_err(|_| ffi::SQLITE_ERROR)?;
            let extra_at = base_size.next_multiple_of(std::mem::align_of::<Gathered>());
            let size = c_int::try_from(extra_at + std::mem::size_of::<Gathered>())
                .map_err(|_| ffi::SQLITE_ERROR)?;
            let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
                szOsFile: size,
                pNext: std::ptr::null_mut(),
                zName: NAME.as_ptr(),
                xOpen: Some(open),
                ..*base
            }));
            match ffi::sqlite3_vfs_register(vfs, 0) {
                ffi::SQLITE_OK => Ok(Registered { base, extra_at }),
                code => Err(code),
            }
        }
    });
    match registered {
        Ok(_) => Ok(()),
        Err(code) => Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(*code),
            Some("cannot register the WAL-gathering VFS".into()),
        )),
    }
}

fn registered() -> &'static Registered {
    match REGISTERED.get() {
        Some(Ok(registered)) => registered,
        _ => unreachable!("files of this VFS are opened only once it is registered"),
    }
}

/// Where a file of this VFS keeps its `Gathered`: after the base VFS's structure, within the
/// `szOsFile` bytes SQLite allocates for it.
unsafe fn extra(file: *mut ffi::sqlite3_file) -> *mut Gathered {
    unsafe { file.cast::<u8>().add(registered().extra_at).cast() }
}

/// SAFETY (for every method below): SQLite calls them with a file this VFS opened as a WAL
/// file, whose `Gathered` was written by [`open`] and is dropped only by [`close`].
unsafe fn gathered<'a>(file: *mut ffi::sqlite3_file) -> &'a mut Gathered {
    unsafe { &mut *extra(file) }
}

unsafe fn base<'a>(file: *mut ffi::sqlite3_file) -> &'a ffi::sqlite3_io_methods {
    unsafe { &*gathered(file).base }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let base_vfs = registered().base;
    // SAFETY: the base VFS opens into the first `szOsFile` bytes of SQLite's allocation for
    // this VFS, which is larger by `Gathered`, written only for a WAL file that opened.
    unsafe {
        let Some(base_open) = (*base_vfs).xOpen else {
            return ffi::SQLITE_ERROR;
        };
        let code = base_open(base_vfs, name, file, flags, out_flags);
        if code != ffi::SQLITE_OK || (*file).pMethods.is_null() || flags & ffi::SQLITE_OPEN_WAL == 0
        {
            return code;
        }
        extra(file).write(Gathered {
            base: (*file).pMethods,
            bytes: Vec::new(),
            at: 0,
        });
        (*file).pMethods = &METHODS;
        code
    }
}

/// Writes what is gathered; on failure it is dropped (SQLite writes those frames again).
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: see `gathered`; no reference to the `Gathered` is held across the base's call.
    unsafe {
        let (bytes, at, base) = {
            let gathered = gathered(file);
            if gathered.bytes.is_empty() {
                return ffi::SQLITE_OK;
            }
            (
                std::mem::take(&mut gathered.bytes),
                gathered.at,
                gathered.base,
            )
        };
        let write = (*base).xWrite.expect("unix files write");
        let mut code = ffi::SQLITE_OK;
        let mut offset = at;
        for piece in bytes.chunks(MAX_WRITE_BYTES) {
            let amount = piece.len() as c_int; // at most MAX_WRITE_BYTES
            code = write(file, piece.as_ptr().cast(), amount, offset);
            if code != ffi::SQLITE_OK {
                break;
            }
            offset += piece.len() as i64;
        }
        let mut kept = bytes;
        kept.clear();
        gathered(file).bytes = kept;
        code
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: see `gathered`; SQLite's `data` holds `amount` bytes.
    unsafe {
        let Ok(length) = usize::try_from(amount) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let (gathered_bytes, end) = {
            let gathered = gathered(file);
            let gathered_bytes = gathered.bytes.len();
            (gathered_bytes, gathered.at + gathered_bytes as i64)
        };
        let follows = gathered_bytes > 0 && offset == end;
        if !(follows && gathered_bytes + length <= MAX_GATHERED_BYTES) {
            let code = flush(file);
            if code != ffi::SQLITE_OK {
                return code;
            }
            if length > MAX_GATHERED_BYTES {
                let write = base(file).xWrite.expect("unix files write");
                return write(file, data, amount, offset);
            }
            gathered(file).at = offset;
        }
        let data = std::slice::from_raw_parts(data.cast::<u8>(), length);
        gathered(file).bytes.extend_from_slice(data);
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: see `gathered`; after the base closes, the file is never used again, so its
    // `Gathered` is dropped here, once.
    unsafe {
        let flushed = flush(file);
        let base_close = base(file).xClose.expect("unix files close");
        let closed = base_close(file);
        std::ptr::drop_in_place(extra(file));
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

/// A method that writes what is gathered, then is the base's.
macro_rules! flushing {
    ($name:ident, $field:ident ( $($arg:ident : $ty:ty),* ) ) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: see `gathered`.
            unsafe {
                let code = flush(file);
                if code != ffi::SQLITE_OK {
                    return code;
                }
                match base(file).$field {
                    Some(method) => method(file $(, $arg)*),
                    None => ffi::SQLITE_IOERR,
                }
            }
        }
    };
}

/// A method that is the base's alone.
macro_rules! forwarding {
    ($name:ident, $field:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty, $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: see `gathered`.
            unsafe {
                match base(file).$field {
                    Some(method) => method(file $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

flushing!(read, xRead(data: *mut c_void, amount: c_int, offset: i64));
flushing!(truncate, xTruncate(size: i64));
flushing!(sync, xSync(flags: c_int));
flushing!(file_size, xFileSize(size: *mut i64));
flushing!(file_control, xFileControl(op: c_int, argument: *mut c_void));
flushing!(fetch, xFetch(offset: i64, amount: c_int, pointer: *mut *mut c_void));
forwarding!(lock, xLock(level: c_int) -> c_int, ffi::SQLITE_IOERR);
forwarding!(unlock, xUnlock(level: c_int) -> c_int, ffi::SQLITE_IOERR);
forwarding!(check_reserved_lock, xCheckReservedLock(out: *mut c_int) -> c_int, ffi::SQLITE_IOERR);
forwarding!(sector_size, xSectorSize() -> c_int, 4096);
forwarding!(device_characteristics, xDeviceCharacteristics() -> c_int, 0);
forwarding!(shm_map, xShmMap(page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, ffi::SQLITE_IOERR);
forwarding!(shm_lock, xShmLock(offset: c_int, n: c_int, flags: c_int) -> c_int, ffi::SQLITE_IOERR);
forwarding!(shm_barrier, xShmBarrier() -> (), ());
forwarding!(shm_unmap, xShmUnmap(delete: c_int) -> c_int, ffi::SQLITE_IOERR);
forwarding!(unfetch, xUnfetch(offset: i64, pointer: *mut c_void) -> c_int, ffi::SQLITE_IOERR);

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// Drops what `connection`'s write-ahead log holds gathered, returning how many bytes. Called
/// after each transaction of the writer: a committed one left nothing (its sync wrote it), a
/// rolled-back one may have left frames SQLite no longer wants, which must never be written over
/// frames another connection commits after it.
pub(super) fn discard_uncommitted(connection: &rusqlite::Connection) -> usize {
    gathered_of(connection, true)
}

/// The bytes `connection`'s log holds gathered, not yet written (tests of the writer watch a
/// batch spill into the log with it).
#[cfg(test)]
pub(super) fn gathered_bytes(connection: &rusqlite::Connection) -> usize {
    gathered_of(connection, false)
}

/// The bytes `connection`'s log holds gathered, dropped if `drop`.
fn gathered_of(connection: &rusqlite::Connection, drop: bool) -> usize {
    let mut wal: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: the handle is the open connection's; the file control writes the log's file
    // pointer (or null) into `wal`, a file of this VFS only if its methods are ours.
    unsafe {
        let code = ffi::sqlite3_file_control(
            connection.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            (&raw mut wal).cast(),
        );
        if code != ffi::SQLITE_OK || wal.is_null() || !std::ptr::eq((*wal).pMethods, &METHODS) {
            return 0;
        }
        let gathered = gathered(wal);
        let held = gathered.bytes.len();
        if drop {
            gathered.bytes.clear();
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::super::native;
    use super::*;

    /// Write system calls this thread has made (Linux).
    fn write_calls() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        let line = io.lines().find(|line| line.starts_with("syscw:")).unwrap();
        line["syscw:".len()..].trim().parse().unwrap()
    }

    fn commits(connection: &mut rusqlite::Connection, count: i64) {
        for batch in 0..count {
            let tx = connection.transaction().unwrap();
            for row in 0..5 {
                let text = format!("row {batch}-{row} {}", "x".repeat(300));
                tx.execute("INSERT INTO t (v) VALUES (?1)", [text]).unwrap();
            }
            tx.commit().unwrap();
        }
    }

    fn count(connection: &rusqlite::Connection) -> i64 {
        connection
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn commits_are_seen_at_once_and_kept_with_fewer_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (plain_path, gathered_path) = (dir.path().join("p.db"), dir.path().join("g.db"));
        let mut plain = native::open(&plain_path).unwrap();
        let mut gathering = native::open_writer(&gathered_path).unwrap();
        for connection in [&plain, &gathering] {
            connection
                .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
                .unwrap();
        }
        let reader = native::open(&gathered_path).unwrap();
        let before = write_calls();
        commits(&mut plain, 100);
        let plain_writes = write_calls() - before;
        let before = write_calls();
        for batch in 0..100 {
            commits(&mut gathering, 1);
            assert_eq!(
                discard_uncommitted(&gathering),
                0,
                "a commit leaves nothing"
            );
            // Another connection sees each commit as soon as it returns.
            assert_eq!(count(&reader), 5 * (batch + 1));
        }
        let gathered_writes = write_calls() - before;
        // A commit of more than SQLite's largest single write (128 KiB) is written in pieces.
        let tx = gathering.transaction().unwrap();
        for row in 0..400 {
            let text = format!("big {row} {}", "z".repeat(1_000));
            tx.execute("INSERT INTO t (v) VALUES (?1)", [text]).unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(count(&reader), 900);
        assert!(
            gathered_writes * 3 < plain_writes,
            "{gathered_writes} write calls gathered against {plain_writes}"
        );
        drop((plain, gathering, reader));
        let reopened = rusqlite::Connection::open(&gathered_path).unwrap();
        let check: String = reopened
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        assert_eq!(count(&reopened), 900);
    }

    #[test]
    fn frames_of_a_rolled_back_transaction_are_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let mut gathering = native::open_writer(&path).unwrap();
        gathering
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        commits(&mut gathering, 1);
        // A cache of a few pages makes SQLite spill the transaction's pages into the log
        // before its commit, which then never comes.
        gathering.execute_batch("PRAGMA cache_size = 4").unwrap();
        let tx = gathering.transaction().unwrap();
        // Until an insert leaves spilled frames gathered (a later read may write them first).
        for row in 0.. {
            let text = format!("doomed {row} {}", "y".repeat(500));
            tx.execute("INSERT INTO t (v) VALUES (?1)", [text]).unwrap();
            if gathered_of(&tx, false) > 0 {
                break;
            }
            assert!(row < 10_000, "the transaction never spilled");
        }
        // What a rolled-back transaction may leave gathered is dropped (here before the
        // rollback, which reads and so would write them, harmlessly, past the log's end).
        assert!(discard_uncommitted(&tx) > 0, "spilled frames were gathered");
        tx.rollback().unwrap();
        assert_eq!(discard_uncommitted(&gathering), 0);
        // Another connection commits where those frames were; then the writer goes on.
        let mut other = native::open(&path).unwrap();
        commits(&mut other, 3);
        gathering
            .execute_batch("PRAGMA cache_size = -2000")
            .unwrap();
        commits(&mut gathering, 2);
        drop((gathering, other));
        let reopened = rusqlite::Connection::open(&path).unwrap();
        let check: String = reopened
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        assert_eq!(count(&reopened), 5 * (1 + 3 + 2));
        let doomed: i64 = reopened
            .query_row("SELECT count(*) FROM t WHERE v LIKE 'doomed%'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(doomed, 0);
    }
}
