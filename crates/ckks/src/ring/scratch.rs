//! Per-thread scratch towers for the tower-parallel loops of key switching.
//!
//! Rayon calls a loop's `for_each_init` state constructor once per split of the work, and
//! with work stealing a loop over a few dozen towers may split into one task per tower: a
//! fresh (zeroed) set of N-word buffers per task would cost a pass over megabytes of memory
//! each time. [`Scratch`] takes its buffers from a small pool of the running thread and
//! gives them back when dropped. The buffers hold intermediate residues of ciphertexts
//! (never secret-key material); their contents on taking are unspecified.

use std::cell::RefCell;

/// Buffers a thread keeps for reuse at most (a few tasks' worth).
const POOL_LIMIT: usize = 16;

thread_local! {
    static POOL: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
}

/// `K` buffers of `n` words with unspecified contents, returned to the pool on drop.
pub(crate) struct Scratch<const K: usize> {
    bufs: [Vec<u64>; K],
}

impl<const K: usize> Scratch<K> {
    pub(crate) fn new(n: usize) -> Self {
        let bufs = std::array::from_fn(|_| {
            let mut v = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
            // Only a buffer of another length (another ring) is written here.
            v.resize(n, 0);
            v
        });
        Self { bufs }
    }

    pub(crate) fn bufs(&mut self) -> &mut [Vec<u64>; K] {
        &mut self.bufs
    }
}

impl<const K: usize> Drop for Scratch<K> {
    fn drop(&mut self) {
        POOL.with(|p| {
            let mut pool = p.borrow_mut();
            for b in &mut self.bufs {
                if pool.len() < POOL_LIMIT {
                    pool.push(std::mem::take(b));
                }
            }
        });
    }
}
