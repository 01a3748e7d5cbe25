//! SQLite's own page cache behind a thin layer that renames one page number. When a B-tree
//! balance sorts the pages of a split, SQLite moves a page through a temporary number for a
//! moment: the locking page's, one past `PENDING_BYTE / page size` (262,145 with 4 KiB pages),
//! which no database ever stores a page in. SQLite's cache then remembers that number as its
//! highest key, and the next truncation of the cache, at the commit, scans its whole hash table
//! instead of a few slots: 4–6 % of the writer's CPU during a callbacks drain
//! (docs/performance.md, "A page cache that forgets a balance's temporary page number").
//! Here that number is cache key 0, which SQLite never uses for a page; every other key, and
//! every other method, is SQLite's cache itself.
//!
//! The layer must be installed before SQLite initialises ([`install`], at the program's start
//! and at the first store's connect); where something initialised SQLite first, its cache
//! stays as it is, which changes nothing but the cost above.

use rusqlite::ffi;
use std::ffi::{c_int, c_uint};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// SQLite's `PENDING_BYTE`: the locking page starts here (SQLite's default, which only its own
/// test builds move).
const PENDING_BYTE: c_uint = 0x4000_0000;
/// The cache key the temporary page number is kept under: page numbers start at 1.
const TEMPORARY_KEY: c_uint = 0;

/// SQLite's cache methods, called through by this layer.
struct Base(ffi::sqlite3_pcache_methods2);

// SAFETY: the methods are SQLite's own functions and its argument pointer, valid for the
// process and callable from any thread (the cache is created in SQLite's threadsafe mode).
unsafe impl Send for Base {}
unsafe impl Sync for Base {}

/// SQLite's methods, kept before the layer is configured: SQLite may call the layer the moment
/// it is in its configuration.
static BASE: OnceLock<Base> = OnceLock::new();
/// Whether SQLite took the layer.
static INSTALLED: OnceLock<bool> = OnceLock::new();
/// Temporary page numbers renamed so far (a rare event: one per sorted split).
static RENAMED: AtomicU64 = AtomicU64::new(0);

/// One cache: SQLite's, with its page size's temporary number and the two methods called for
/// every page SQLite reads (kept here, so that a fetch costs one indirect call more, not a
/// look-up of the configuration).
struct Cache {
    base: *mut ffi::sqlite3_pcache,
    temporary_page: c_uint,
    fetch: Fetch,
    unpin: Unpin,
}

type Fetch = unsafe extern "C" fn(*mut ffi::sqlite3_pcache, c_uint, c_int) -> *mut Page;
type Unpin = unsafe extern "C" fn(*mut ffi::sqlite3_pcache, *mut Page, c_int);
type Page = ffi::sqlite3_pcache_page;

/// Installs the layer once per process, before SQLite initialises; true if it is in place.
/// SQLite's configuration must not change while another thread uses SQLite: a program calls
/// this before it starts threads (the store's connect calls it again, for programs and tests
/// that did not, where it is done at once or refused harmlessly once SQLite is initialised).
pub fn install() -> bool {
    *INSTALLED.get_or_init(|| {
        let mut sqlites = std::mem::MaybeUninit::<ffi::sqlite3_pcache_methods2>::zeroed();
        // SAFETY: reads SQLite's global configuration into `sqlites`, which outlives the call;
        // refused (SQLITE_MISUSE) once SQLite is initialised.
        let got =
            unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, sqlites.as_mut_ptr()) };
        if got != ffi::SQLITE_OK {
            return false;
        }
        // SAFETY: SQLite filled it in.
        let sqlites = unsafe { sqlites.assume_init() };
        let Some(layered) = layered_methods(&BASE.get_or_init(|| Base(sqlites)).0) else {
            return false;
        };
        // SAFETY: SQLite copies the table; its functions are this module's, for the process.
        unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &layered) == ffi::SQLITE_OK }
    })
}

/// Whether the layer is in place in this process.
pub fn installed() -> bool {
    INSTALLED.get().is_some_and(|installed| *installed)
}

/// How many times a balance's temporary page number was renamed to [`TEMPORARY_KEY`].
pub fn temporary_pages_renamed() -> u64 {
    RENAMED.load(Ordering::Relaxed)
}

/// The layer's methods: SQLite's initialisation with its own argument, every cache method
/// through this module (each unwraps the [`Cache`]). None if SQLite's table lacks a method.
fn layered_methods(base: &ffi::sqlite3_pcache_methods2) -> Option<ffi::sqlite3_pcache_methods2> {
    base.xCreate?;
    base.xCachesize?;
    base.xPagecount?;
    base.xFetch?;
    base.xUnpin?;
    base.xRekey?;
    base.xTruncate?;
    base.xDestroy?;
    Some(ffi::sqlite3_pcache_methods2 {
        iVersion: base.iVersion,
        pArg: base.pArg,
        xInit: base.xInit,
        xShutdown: base.xShutdown,
        xCreate: Some(create),
        xCachesize: Some(cachesize),
        xPagecount: Some(pagecount),
        xFetch: Some(fetch),
        xUnpin: Some(unpin),
        xRekey: Some(rekey),
        xTruncate: Some(truncate),
        xDestroy: Some(destroy),
        xShrink: base.xShrink.map(|_| shrink as unsafe extern "C" fn(_)),
    })
}

fn base() -> &'static ffi::sqlite3_pcache_methods2 {
    // SQLite calls the layer only once `install` has kept its methods and configured it.
    &BASE.get().expect("SQLite's methods are kept first").0
}

/// The key SQLite's cache keeps `page` under in `cache`.
fn key_of(cache: &Cache, page: c_uint) -> c_uint {
    if page == cache.temporary_page {
        TEMPORARY_KEY
    } else {
        page
    }
}

/// # Safety
/// `cache` must be a pointer [`create`] returned and [`destroy`] has not freed.
unsafe fn cache<'a>(cache: *mut ffi::sqlite3_pcache) -> &'a Cache {
    // SAFETY: by the caller's contract.
    unsafe { &*(cache as *const Cache) }
}

unsafe extern "C" fn create(
    page_size: c_int,
    extra_size: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let methods = base();
    let (Some(create), Some(fetch), Some(unpin)) =
        (methods.xCreate, methods.xFetch, methods.xUnpin)
    else {
        unreachable!("checked at install");
    };
    // SAFETY: SQLite's own method with SQLite's arguments.
    let base = unsafe { create(page_size, extra_size, purgeable) };
    if base.is_null() {
        return base;
    }
    let page_size = c_uint::try_from(page_size).unwrap_or(1).max(1);
    let cache = Box::new(Cache {
        base,
        temporary_page: PENDING_BYTE / page_size + 1,
        fetch,
        unpin,
    });
    Box::into_raw(cache).cast()
}

unsafe extern "C" fn cachesize(wrapped: *mut ffi::sqlite3_pcache, pages: c_int) {
    let cachesize = base().xCachesize.expect("checked at install");
    // SAFETY: SQLite passes a cache `create` returned.
    unsafe { cachesize(cache(wrapped).base, pages) }
}

unsafe extern "C" fn pagecount(wrapped: *mut ffi::sqlite3_pcache) -> c_int {
    let pagecount = base().xPagecount.expect("checked at install");
    // SAFETY: as in `cachesize`.
    unsafe { pagecount(cache(wrapped).base) }
}

unsafe extern "C" fn fetch(
    wrapped: *mut ffi::sqlite3_pcache,
    page: c_uint,
    create: c_int,
) -> *mut Page {
    // SAFETY: as in `cachesize`.
    let cache = unsafe { cache(wrapped) };
    // SAFETY: SQLite's method on SQLite's cache.
    unsafe { (cache.fetch)(cache.base, key_of(cache, page), create) }
}

unsafe extern "C" fn unpin(wrapped: *mut ffi::sqlite3_pcache, page: *mut Page, discard: c_int) {
    // SAFETY: as in `cachesize`; `page` is one SQLite's cache handed out.
    let cache = unsafe { cache(wrapped) };
    // SAFETY: SQLite's method on SQLite's cache and page.
    unsafe { (cache.unpin)(cache.base, page, discard) }
}

unsafe extern "C" fn rekey(
    wrapped: *mut ffi::sqlite3_pcache,
    page: *mut Page,
    old_page: c_uint,
    new_page: c_uint,
) {
    let rekey = base().xRekey.expect("checked at install");
    // SAFETY: as in `cachesize`.
    let cache = unsafe { cache(wrapped) };
    if new_page == cache.temporary_page {
        RENAMED.fetch_add(1, Ordering::Relaxed);
    }
    let (old_key, new_key) = (key_of(cache, old_page), key_of(cache, new_page));
    // SAFETY: SQLite's method on SQLite's cache and page, with the keys they are kept under.
    unsafe { rekey(cache.base, page, old_key, new_key) }
}

/// Drops pages numbered `limit` and above: SQLite's own truncation. It keeps [`TEMPORARY_KEY`]
/// unless it drops every page (limit 0), which is right: no page holds the temporary number
/// outside a balance, which renames it back before anything else touches the cache.
unsafe extern "C" fn truncate(wrapped: *mut ffi::sqlite3_pcache, limit: c_uint) {
    let truncate = base().xTruncate.expect("checked at install");
    // SAFETY: as in `cachesize`.
    unsafe { truncate(cache(wrapped).base, limit) }
}

unsafe extern "C" fn destroy(wrapped: *mut ffi::sqlite3_pcache) {
    let destroy = base().xDestroy.expect("checked at install");
    // SAFETY: SQLite destroys a cache once, after its last use: the box `create` made is
    // taken back here and freed with it.
    let cache = unsafe { Box::from_raw(wrapped as *mut Cache) };
    // SAFETY: SQLite's method on SQLite's cache.
    unsafe { destroy(cache.base) }
}

/// Configured only where SQLite's cache has the method.
unsafe extern "C" fn shrink(wrapped: *mut ffi::sqlite3_pcache) {
    let shrink = base().xShrink.expect("configured only with SQLite's");
    // SAFETY: as in `cachesize`.
    unsafe { shrink(cache(wrapped).base) }
}
