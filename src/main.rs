//! tap-harvest: a Singer tap for Harvest (REST API v2). The binary sets up the process
//! (allocator, memory options) and hands over to the library's [`tap_harvest::app::main`].

use std::process::ExitCode;

/// mimalloc: records are many small allocations (a parsed page, its shaped rows), which
/// glibc's malloc serves several times slower and with more fragmentation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (the same index in v2 and v3, which
/// libmimalloc-sys builds; it exports no constant for it): milliseconds before freed memory is returned to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Give freed memory back at once: pages come and go by the megabyte, and holding them
    // would make the peak follow how many streams run at once rather than what is in use.
    // SAFETY: sets a process-wide allocator option; no allocation is in flight that depends on it.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    // No transparent huge pages: they round every page's memory up to 2 MB, which doubles the
    // peak for no gain here. SAFETY: a plain prctl on this process.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    tap_harvest::app::main()
}
