//! Returning freed memory to the system; for the long-lived and the large
//! (a daemon, a catalog of 100,000 sources). Not an allocator: the
//! program keeps glibc's.

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
