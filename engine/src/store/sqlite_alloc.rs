//! The allocator hook: process-wide settings of the SQLite library that sqlx and rusqlite
//! share (one bundled libsqlite3-sys), made through SQLite's C interface before the first
//! connection opens. Its `unsafe` blocks are the project's only ones: `sqlite3_config` has no
//! safe wrapper in either driver, and the allocator SQLite is given is mimalloc's C interface.

/// Process-wide SQLite settings, made once before its first connection (too late when SQLite
/// was initialised already; then its defaults stay, which is correct, only slower):
/// - no memory statistics: with them, every allocation inside SQLite takes one global mutex;
/// - SQLite allocates with mimalloc instead of the C library's malloc: the statements of a
///   batch allocate and free many small buffers.
///
/// What each saves: docs/performance.md, "What limits SQLite".
pub(crate) fn configure_sqlite_library() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rusqlite::ffi;
        // SAFETY: sqlite3_config may be called before sqlite3_initialize (afterwards it returns
        // SQLITE_MISUSE without effect). MEMSTATUS takes one int; MALLOC takes a pointer to a
        // sqlite3_mem_methods, which SQLite copies; the functions it names are thread-safe.
        let methods = memory::methods();
        let codes = unsafe {
            [
                ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int),
                ffi::sqlite3_config(
                    ffi::SQLITE_CONFIG_MALLOC,
                    &methods as *const ffi::sqlite3_mem_methods,
                ),
            ]
        };
        if codes.iter().any(|&c| c != ffi::SQLITE_OK) {
            tracing::debug!(?codes, "SQLite was initialised already; its defaults stay");
        }
    });
}

/// SQLite's allocator on top of mimalloc (see [`configure_sqlite_library`]).
mod memory {
    use libmimalloc_sys as mi;
    use rusqlite::ffi::sqlite3_mem_methods;
    use std::ffi::{c_int, c_void};

    pub(super) fn methods() -> sqlite3_mem_methods {
        sqlite3_mem_methods {
            xMalloc: Some(malloc),
            xFree: Some(free),
            xRealloc: Some(realloc),
            xSize: Some(size),
            xRoundup: Some(roundup),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            pAppData: std::ptr::null_mut(),
        }
    }

    fn bytes(n: c_int) -> usize {
        usize::try_from(n).unwrap_or(0)
    }

    unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
        // SAFETY: mimalloc's malloc accepts any size (0 gives a unique pointer).
        unsafe { mi::mi_malloc(bytes(n)) }
    }

    unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: SQLite frees only what `malloc`/`realloc` above returned (or null).
        unsafe { mi::mi_free(p) }
    }

    unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        // SAFETY: as for `free`; mimalloc keeps the contents up to the smaller size.
        unsafe { mi::mi_realloc(p, bytes(n)) }
    }

    unsafe extern "C" fn size(p: *mut c_void) -> c_int {
        // SAFETY: `p` came from `malloc`/`realloc` above.
        let n = unsafe { mi::mi_usable_size(p) };
        c_int::try_from(n).unwrap_or(c_int::MAX)
    }

    unsafe extern "C" fn roundup(n: c_int) -> c_int {
        // SAFETY: a pure function of the size.
        let good = unsafe { mi::mi_good_size(bytes(n)) };
        c_int::try_from(good).unwrap_or(n)
    }

    extern "C" fn init(_: *mut c_void) -> c_int {
        rusqlite::ffi::SQLITE_OK
    }

    extern "C" fn shutdown(_: *mut c_void) {}
}
