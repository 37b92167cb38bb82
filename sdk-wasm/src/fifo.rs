//! The event queue: a `Vec` with a moving head.
//!
//! `VecDeque` would do, but its growth path formats a panic message, which drags core's
//! formatting machinery into the wasm build; this FIFO only uses `Vec` operations whose
//! failures are static panics, and slices through `get`.

use alloc::vec::Vec;

pub struct Fifo<T> {
    items: Vec<T>,
    /// Items before `head` are taken (left as `T::default()`).
    head: usize,
}

impl<T: Default> Fifo<T> {
    pub const fn new() -> Self {
        Fifo { items: Vec::new(), head: 0 }
    }

    pub fn len(&self) -> usize {
        self.items.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queued items, oldest first.
    pub fn live(&self) -> &[T] {
        self.items.get(self.head..).unwrap_or(&[])
    }

    pub fn live_mut(&mut self) -> &mut [T] {
        self.items.get_mut(self.head..).unwrap_or(&mut [])
    }

    pub fn front(&self) -> Option<&T> {
        self.live().first()
    }

    pub fn push_back(&mut self, item: T) {
        self.items.push(item);
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let item = self.items.get_mut(self.head).map(core::mem::take)?;
        self.head += 1;
        if self.head == self.items.len() {
            self.items.clear();
            self.head = 0;
        } else if self.head >= 1024 && self.head * 2 >= self.items.len() {
            // Drop the taken slots: O(n), amortised over at least n/2 pops.
            shift_out(&mut self.items, self.head);
            self.items.truncate(self.items.len() - self.head);
            self.head = 0;
        }
        Some(item)
    }

    /// Removes and returns the item at `at` (0 = oldest).
    pub fn remove(&mut self, at: usize) -> Option<T> {
        let slice = self.live_mut().get_mut(at..)?;
        if slice.is_empty() {
            return None;
        }
        shift_out(slice, 1);
        self.items.pop()
    }

    /// Removes `n` items from `at` on and returns them (in no particular order).
    pub fn take(&mut self, at: usize, n: usize) -> Vec<T> {
        let Some(slice) = self.live_mut().get_mut(at..) else {
            return Vec::new();
        };
        let n = n.min(slice.len());
        shift_out(slice, n);
        let mut taken = Vec::with_capacity(n);
        while taken.len() < n {
            let Some(item) = self.items.pop() else { break };
            taken.push(item);
        }
        taken
    }
}

/// Moves `slice[n..]` to the front, keeping its order; the first `n` items end up
/// at the back in some order. `rotate_left` keeps their order too, for 0.7 KB of wasm.
pub fn shift_out<T>(slice: &mut [T], n: usize) {
    for i in n..slice.len() {
        slice.swap(i - n, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_removal() {
        let mut q: Fifo<u32> = Fifo::new();
        for i in 0..3000 {
            q.push_back(i);
        }
        for i in 0..2000 {
            assert_eq!(q.pop_front(), Some(i));
        }
        assert_eq!(q.len(), 1000);
        assert_eq!(q.front(), Some(&2000));
        assert_eq!(q.remove(1), Some(2001));
        let mut taken = q.take(1, 3);
        taken.sort();
        assert_eq!(taken, vec![2002, 2003, 2004]);
        assert_eq!(q.live()[..3], [2000, 2005, 2006]);
        assert_eq!(q.remove(5000), None);
        assert_eq!(q.take(5000, 2), Vec::<u32>::new());
        while q.pop_front().is_some() {}
        assert!(q.is_empty());
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn shift_out_keeps_the_rest_in_order() {
        for len in 0..8usize {
            for n in 0..=len {
                let mut v: Vec<usize> = (0..len).collect();
                shift_out(&mut v, n);
                assert_eq!(v[..len - n], (n..len).collect::<Vec<_>>()[..], "len {len} n {n}");
                let mut back = v[len - n..].to_vec();
                back.sort();
                assert_eq!(back, (0..n).collect::<Vec<_>>(), "len {len} n {n}");
            }
        }
    }
}
