//! How the process uses glibc's allocator: how many arenas, and returning
//! freed memory to the system; for the long-lived and the large (a daemon,
//! a catalog of 100,000 sources). Not an allocator: the program keeps
//! glibc's.

/// At most one malloc arena per core, set before any thread starts. glibc
/// gives threads up to eight arenas a core, and each keeps the fragments of
/// what its threads freed: a daemon of 100,000 sources rose round after
/// round to 150 MB with them, and stays at about 80 MB with one a core. No
/// more threads than cores run at once, so little waits on an arena's lock.
pub fn one_arena_per_core(cores: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's <malloc.h>: M_ARENA_MAX.
        const M_ARENA_MAX: std::ffi::c_int = -8;
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        let arenas = std::ffi::c_int::try_from(cores.max(1)).unwrap_or(std::ffi::c_int::MAX);
        // SAFETY: mallopt changes a limit of the allocator's own; called
        // from `main` before the runtime's threads exist.
        unsafe {
            mallopt(M_ARENA_MAX, arenas);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = cores;
}

/// Hands the pages the allocator holds free back to the system. glibc
/// keeps what a thread freed in that thread's arena, for that thread: the
/// memory of reading a catalog on two threads, or of a round of checks,
/// would stay resident after it, and the next one's would come on top.
pub fn give_back_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim only releases free pages of the allocator's
        // own heaps; it touches no memory the program holds.
        unsafe {
            malloc_trim(0);
        }
    }
}
