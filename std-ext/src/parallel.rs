//! The rayon implementation of core's [`Join`] (feature `rayon`, on by
//! default) and a helper that runs work on a pool of a chosen size.

use bitnet_core::parallel::Join;

/// [`Join`] through `rayon::join`: both halves may run on the current
/// rayon pool's threads.
#[cfg(feature = "rayon")]
#[derive(Debug, Clone, Copy, Default)]
pub struct RayonJoin;

#[cfg(feature = "rayon")]
impl Join for RayonJoin {
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        rayon::join(a, b)
    }
}

/// Runs `f` inside a rayon pool of `threads` threads (0 = rayon's default,
/// one per core), so that [`RayonJoin`] uses exactly that many.
#[cfg(feature = "rayon")]
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    Ok(pool.install(f))
}

#[cfg(all(test, feature = "rayon"))]
mod tests {
    use super::*;
    use bitnet_core::parallel::{SerialJoin, for_each_chunk_mut};

    #[test]
    fn rayon_and_serial_give_identical_results() {
        let work = |start: usize, c: &mut [f32]| {
            for (i, x) in c.iter_mut().enumerate() {
                *x = ((start + i) as f32).sqrt() * 1.5;
            }
        };
        let mut serial = vec![0f32; 1000];
        for_each_chunk_mut::<SerialJoin, _, _>(&mut serial, 7, 1, &work);
        for threads in [1, 2, 4] {
            let mut par = vec![0f32; 1000];
            with_threads(threads, || {
                for_each_chunk_mut::<RayonJoin, _, _>(&mut par, 7, 1, &work)
            })
            .unwrap();
            assert_eq!(par, serial, "{threads} threads");
        }
    }
}
