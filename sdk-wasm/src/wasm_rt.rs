//! The runtime of the `no_std` browser build: a small allocator and a panic handler
//! that traps without formatting anything.
//!
//! std's allocator (dlmalloc) and its panic machinery (message formatting, `Debug` for
//! strings, Unicode tables) are about a quarter of a wasm build this size. The SDK
//! allocates short strings at a steady rate, so power-of-two size classes with free
//! lists (no splitting, no merging) serve it well: freed blocks are reused for the next
//! event or batch of the same size class. A trap is caught by the JavaScript entry,
//! which then drops further calls quietly.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;

const PAGE: usize = 65_536;
/// Size classes 16 B, 32 B, … 2 GiB.
const CLASSES: usize = 28;
const MIN_ALIGN: usize = 16;

struct State {
    free: [usize; CLASSES],
    next: usize,
    end: usize,
}

struct SizeClasses(UnsafeCell<State>);

// SAFETY: wasm32-unknown-unknown without `atomics` has one thread.
unsafe impl Sync for SizeClasses {}

#[global_allocator]
static ALLOC: SizeClasses = SizeClasses(UnsafeCell::new(State { free: [0; CLASSES], next: 0, end: 0 }));

/// The class index and block size for a layout, or `None` when too large.
fn class(layout: Layout) -> Option<(usize, usize)> {
    let size = layout.size().max(layout.align()).max(MIN_ALIGN).checked_next_power_of_two()?;
    let index = (size.trailing_zeros() - MIN_ALIGN.trailing_zeros()) as usize;
    (index < CLASSES).then_some((index, size))
}

impl State {
    /// Takes `size` bytes from the end of the heap, growing memory as needed.
    fn bump(&mut self, size: usize, align: usize) -> *mut u8 {
        let align = align.max(MIN_ALIGN);
        let mut start = (self.next + align - 1) & !(align - 1);
        if start + size > self.end || self.end == 0 {
            let pages = (size + align).div_ceil(PAGE).max(16);
            let prev = wasm32::memory_grow(0, pages);
            if prev == usize::MAX {
                out_of_memory();
            }
            let base = prev * PAGE;
            if base != self.end {
                // Not contiguous with what we had (first use): start in the new pages.
                self.next = base;
            }
            self.end = base + pages * PAGE;
            start = (self.next + align - 1) & !(align - 1);
        }
        self.next = start + size;
        start as *mut u8
    }
}

/// Out of memory traps here instead of returning null: Rust's alloc-error path
/// formats a message, and the JavaScript entry catches the trap anyway.
fn out_of_memory() -> ! {
    wasm32::unreachable()
}

/// Tells the optimiser a block is never null, so callers' alloc-error paths go away.
fn non_null(ptr: *mut u8) -> *mut u8 {
    if ptr.is_null() {
        out_of_memory();
    }
    ptr
}

unsafe impl GlobalAlloc for SizeClasses {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((index, size)) = class(layout) else {
            out_of_memory();
        };
        // SAFETY: single-threaded, and no allocator call re-enters another.
        let st = unsafe { &mut *self.0.get() };
        let head = st.free[index];
        if head != 0 && head % layout.align() == 0 {
            // SAFETY: a free block holds the address of the next free block.
            st.free[index] = unsafe { *(head as *const usize) };
            return non_null(head as *mut u8);
        }
        non_null(st.bump(size, layout.align()))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((index, _)) = class(layout) else {
            return;
        };
        // SAFETY: as in `alloc`; the block is at least 16 bytes and ours again.
        let st = unsafe { &mut *self.0.get() };
        unsafe { *(ptr as *mut usize) = st.free[index] };
        st.free[index] = ptr as usize;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            out_of_memory();
        };
        if class(layout).map(|c| c.0) == class(new_layout).map(|c| c.0) {
            return non_null(ptr);
        }
        // SAFETY: the caller's contract for `realloc`, passed on; `alloc` never returns null.
        unsafe {
            let new = self.alloc(new_layout);
            core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
            new
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    wasm32::unreachable()
}
