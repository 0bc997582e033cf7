//! How threads enter the no_std core: a `join` abstraction (as in BLAKE3's
//! `join.rs`). Core code is written against [`Join`]; [`SerialJoin`] runs
//! both halves on the calling thread, and `bitnet-std` provides a rayon
//! implementation. Work is split by halving, so results never depend on the
//! number of threads: each output element is computed by exactly the same
//! code whatever the split.

/// Runs two closures, potentially in parallel, and returns both results.
pub trait Join {
    /// Whether `join` may run its halves concurrently; callers skip the
    /// bookkeeping of splitting work when it cannot.
    const PARALLEL: bool = true;

    /// Runs `a` and `b` (maybe concurrently) and waits for both.
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send;
}

/// The single-threaded [`Join`]: `a` then `b`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SerialJoin;

impl Join for SerialJoin {
    const PARALLEL: bool = false;

    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        (a(), b())
    }
}

/// Calls `f(start, chunk)` on disjoint chunks of `out` covering it, where
/// `start` is the chunk's index in `out`. Chunks hold at most `max_chunk`
/// elements (at least 1) and are split at multiples of `align` (at least
/// 1) so kernels can keep whole blocks of rows together.
pub fn for_each_chunk_mut<J, T, F>(out: &mut [T], max_chunk: usize, align: usize, f: &F)
where
    J: Join,
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    split::<J, T, F>(out, 0, max_chunk.max(1), align.max(1), f);
}

fn split<J, T, F>(out: &mut [T], start: usize, max_chunk: usize, align: usize, f: &F)
where
    J: Join,
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let len = out.len();
    // Midpoint rounded down to a multiple of `align`.
    let mid = (len / 2) / align * align;
    if len <= max_chunk || mid == 0 {
        f(start, out);
        return;
    }
    let (a, b) = out.split_at_mut(mid);
    J::join(
        || split::<J, T, F>(a, start, max_chunk, align, f),
        || split::<J, T, F>(b, start + mid, max_chunk, align, f),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn chunks_cover_output_exactly_once() {
        for len in [0usize, 1, 2, 3, 7, 64, 100, 257] {
            for (max_chunk, align) in [(1, 1), (4, 1), (16, 8), (1000, 4), (3, 2)] {
                let mut out = vec![0u32; len];
                for_each_chunk_mut::<SerialJoin, _, _>(&mut out, max_chunk, align, &|start, c| {
                    for (i, x) in c.iter_mut().enumerate() {
                        *x += (start + i) as u32 + 1;
                    }
                });
                let want: Vec<u32> = (1..=len as u32).collect();
                assert_eq!(out, want, "len {len} max {max_chunk} align {align}");
            }
        }
    }

    #[test]
    fn chunk_boundaries_respect_alignment() {
        let mut out = vec![0usize; 96];
        for_each_chunk_mut::<SerialJoin, _, _>(&mut out, 10, 8, &|start, c| {
            assert_eq!(start % 8, 0);
            c.fill(start);
        });
        assert!(out.iter().all(|&s| s % 8 == 0));
    }
}
