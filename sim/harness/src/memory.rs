//! What a run holds in memory: a counting global allocator that keeps, per thread, the bytes
//! allocated there and not yet freed, so a run (one madsim runtime on one thread) can be held
//! to a memory budget, and a test can see that a finished run released what it held.
//!
//! The binary installs it (`#[global_allocator] static A: CountingAlloc<MiMalloc>`); where it
//! is not installed `thread_live_bytes` stays 0 and no budget trips.

#![allow(unsafe_code)] // `GlobalAlloc` is an unsafe trait; each method only forwards.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

thread_local! {
    /// Bytes allocated on this thread minus bytes freed on it. Memory freed on another thread
    /// than the one that allocated it skews both counts; a run keeps to its own thread.
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

/// Wraps an allocator and counts each thread's live bytes.
#[derive(Debug, Default)]
pub struct CountingAlloc<A>(pub A);

fn add(bytes: usize, sign: i64) {
    // `try_with`: a thread being torn down has no counter left; its allocations go uncounted.
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + sign * bytes as i64));
}

// SAFETY: every method forwards to the wrapped allocator with the caller's arguments unchanged,
// so the wrapped allocator's guarantees carry over; the counting touches no allocation.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: forwarded unchanged.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(layout.size(), -1);
        // SAFETY: forwarded unchanged.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size, 1);
        add(layout.size(), -1);
        // SAFETY: forwarded unchanged.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// Bytes this thread allocated and has not freed, since it started (0 without the allocator).
pub fn thread_live_bytes() -> i64 {
    LIVE_BYTES.try_with(Cell::get).unwrap_or(0)
}
