//! Token sampling, deterministic given a seed.
//!
//! The chain runs in llama.cpp's order (`common/sampling.cpp` default
//! sampler sequence, restricted to what is implemented here):
//! repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
//! Each step follows the matching `llama_sampler_*` of llama.cpp
//! (`src/llama-sampling.cpp`):
//!
//! - repetition penalty: every distinct token among the last
//!   `repeat_last_n` accepted tokens has its logit divided by `penalty` when
//!   positive and multiplied by it otherwise (once, however often it occurs);
//! - top-k: keep the `k` largest logits (`k == 0`: off);
//! - top-p: softmax over the candidates, keep the shortest prefix (by
//!   decreasing probability) whose probability mass reaches `p` (`p >= 1`:
//!   off);
//! - min-p: keep candidates whose probability is at least `min_p` times the
//!   largest (compared in logit space, `logit >= max + ln(min_p)`;
//!   `min_p <= 0`: off);
//! - temperature: divide logits by `t`; `t <= 0` means greedy;
//! - draw: softmax and one uniform number from the sampler's own PRNG
//!   (xoshiro256** seeded through splitmix64), so a seed reproduces a run
//!   on every platform. (llama.cpp's `std::mt19937` stream is not
//!   reproduced; only the distribution is the same.)
//!
//! Every filter keeps at least one candidate. Ties are broken by the lower
//! token id, so the first maximum wins, as in `argmax`.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;

/// splitmix64: used to expand a 64-bit seed into the xoshiro state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** (Blackman & Vigna), a small deterministic PRNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        Self {
            s: [
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
            ],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal sample (Box-Muller; for fixture generators).
    pub fn next_gaussian(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(core::f64::consts::TAU * u2)
    }
}

/// Sampling settings. [`SamplerParams::default`] is llama.cpp's defaults
/// (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerParams {
    /// Temperature; `<= 0` selects greedy decoding (first maximum wins).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 disables.
    pub top_k: usize,
    /// Nucleus mass; `>= 1` disables.
    pub top_p: f32,
    /// Minimum probability relative to the most likely token; `<= 0`
    /// disables.
    pub min_p: f32,
    /// Repetition penalty; 1 disables.
    pub repeat_penalty: f32,
    /// How many of the most recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// PRNG seed.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl SamplerParams {
    /// llama.cpp's defaults, as a constant (what [`SamplerParams::default`]
    /// returns; the C ABI's `bitnet_sampler_default_params` needs it in
    /// const context).
    pub const DEFAULT: Self = Self {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.95,
        min_p: 0.05,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        seed: 0,
    };

    /// Greedy decoding: argmax, first maximum wins.
    pub const fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: 0,
        }
    }
}

/// Why sampling could not produce a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleError {
    /// The logits slice is empty.
    EmptyLogits,
    /// More logits than token ids fit in a `u32`.
    VocabTooLarge {
        /// The number of logits.
        len: usize,
    },
    /// Growing the candidate buffer failed.
    AllocFailed {
        /// The requested number of candidates.
        len: usize,
    },
}

impl fmt::Display for SampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::EmptyLogits => f.write_str("cannot sample from empty logits"),
            Self::VocabTooLarge { len } => write!(f, "{len} logits exceed the u32 token id range"),
            Self::AllocFailed { len } => write!(f, "allocating {len} sampling candidates failed"),
        }
    }
}

impl core::error::Error for SampleError {}

/// A token id with its (working) logit and probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Token id.
    pub id: u32,
    /// Logit after the steps so far.
    pub logit: f32,
    /// Probability (set by the softmax steps).
    pub p: f32,
}

/// Descending logit, NaN last, ties by ascending id.
fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    let key = |c: &Candidate| {
        if c.logit.is_nan() {
            f32::NEG_INFINITY
        } else {
            c.logit
        }
    };
    key(b)
        .partial_cmp(&key(a))
        .unwrap_or(Ordering::Equal)
        .then(a.id.cmp(&b.id))
}

/// Index of the first maximum of `logits` (NaN never wins unless every value
/// is NaN, then 0); `None` if empty.
///
/// Two passes that vectorize (a decode step's 128256-wide argmax was ~0.4 %
/// of its time as one branchy loop): the largest non-NaN value, lane by
/// lane (`f32::max` skips NaN, and a maximum does not depend on the order
/// it is taken in), then the first index holding it (`-0.0 == 0.0`, as the
/// strict `>` of a running maximum treats them).
pub fn argmax(logits: &[f32]) -> Option<usize> {
    const LANES: usize = 16;
    if logits.is_empty() {
        return None;
    }
    let (chunks, tail) = logits.as_chunks::<LANES>();
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v);
        }
    }
    let max = lanes
        .into_iter()
        .chain(tail.iter().copied())
        .fold(f32::NEG_INFINITY, f32::max);
    let holds = |c: &[f32]| c.iter().fold(false, |any, &v| any | (v == max));
    let chunk = chunks.iter().position(|c| holds(c)).unwrap_or(chunks.len());
    // Every value NaN: no index holds `max` (then 0, as documented).
    Some(
        logits[chunk * LANES..]
            .iter()
            .position(|&v| v == max)
            .map_or(0, |i| chunk * LANES + i),
    )
}

/// Softmax over `c` (sorted or not) into `p`, sum in f64.
fn softmax(c: &mut [Candidate]) {
    let max = c.iter().map(|x| x.logit).fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for x in c.iter_mut() {
        x.p = libm::expf(x.logit - max);
        sum += f64::from(x.p);
    }
    for x in c.iter_mut() {
        x.p = (f64::from(x.p) / sum) as f32;
    }
}

/// The sampler: settings, PRNG, recent-token history and a reusable
/// candidate buffer.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplerParams,
    rng: Rng,
    history: VecDeque<u32>,
    cands: Vec<Candidate>,
}

impl Sampler {
    /// A sampler seeded with `params.seed`.
    pub fn new(params: SamplerParams) -> Self {
        Self {
            params,
            rng: Rng::new(params.seed),
            history: VecDeque::new(),
            cands: Vec::new(),
        }
    }

    /// The settings.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Records a token (prompt or generated) for the repetition penalty.
    pub fn accept(&mut self, token: u32) {
        if self.params.repeat_last_n == 0 {
            return;
        }
        if self.history.len() == self.params.repeat_last_n {
            self.history.pop_front();
        }
        self.history.push_back(token);
    }

    /// Forgets the history (the PRNG stream continues).
    pub fn reset_history(&mut self) {
        self.history.clear();
    }

    /// Chooses the next token from `logits` (one row of `vocab` values).
    /// Does not [`accept`](Self::accept) it.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32, SampleError> {
        if logits.is_empty() {
            return Err(SampleError::EmptyLogits);
        }
        if u32::try_from(logits.len()).is_err() {
            return Err(SampleError::VocabTooLarge { len: logits.len() });
        }
        let p = self.params;
        self.cands.clear();
        self.cands
            .try_reserve(logits.len())
            .map_err(|_| SampleError::AllocFailed { len: logits.len() })?;
        self.cands
            .extend(logits.iter().enumerate().map(|(i, &logit)| Candidate {
                id: i as u32,
                logit,
                p: 0.0,
            }));
        apply_repeat_penalty(&mut self.cands, &self.history, p.repeat_penalty);
        if p.temperature <= 0.0 {
            let best = self
                .cands
                .iter()
                .copied()
                .min_by(by_logit_desc)
                .map_or(0, |c| c.id);
            return Ok(best);
        }
        let mut n = top_k(&mut self.cands, p.top_k);
        n = top_p(&mut self.cands[..n], p.top_p);
        n = min_p(&self.cands[..n], p.min_p);
        let kept = &mut self.cands[..n];
        for c in kept.iter_mut() {
            c.logit /= p.temperature;
        }
        softmax(kept);
        Ok(draw(kept, self.rng.next_f64()))
    }
}

/// Repetition penalty on the candidates (indexed by token id, unsorted).
pub fn apply_repeat_penalty(cands: &mut [Candidate], history: &VecDeque<u32>, penalty: f32) {
    if penalty == 1.0 || history.is_empty() {
        return;
    }
    for (i, &t) in history.iter().enumerate() {
        // Each distinct token once: skip if it occurred earlier.
        if history.iter().take(i).any(|&u| u == t) {
            continue;
        }
        if let Some(c) = cands.get_mut(t as usize) {
            c.logit = if c.logit > 0.0 {
                c.logit / penalty
            } else {
                c.logit * penalty
            };
        }
    }
}

/// Sorts the `k` best candidates to the front (descending) and returns how
/// many are kept; `k == 0` or `k >= len` keeps all, sorted.
pub fn top_k(cands: &mut [Candidate], k: usize) -> usize {
    let n = if k == 0 {
        cands.len()
    } else {
        k.min(cands.len())
    };
    if n < cands.len() && n > 0 {
        cands.select_nth_unstable_by(n - 1, by_logit_desc);
    }
    cands[..n].sort_unstable_by(by_logit_desc);
    n
}

/// Nucleus filter on candidates sorted by decreasing logit: the kept count.
pub fn top_p(cands: &mut [Candidate], p: f32) -> usize {
    if p >= 1.0 || cands.is_empty() {
        return cands.len();
    }
    softmax(cands);
    let mut cum = 0.0f32;
    for (i, c) in cands.iter().enumerate() {
        cum += c.p;
        if cum >= p {
            return i + 1;
        }
    }
    cands.len()
}

/// Min-p filter on candidates sorted by decreasing logit: the kept count.
pub fn min_p(cands: &[Candidate], min_p: f32) -> usize {
    if min_p <= 0.0 || cands.is_empty() {
        return cands.len();
    }
    let threshold = cands[0].logit + libm::logf(min_p);
    let kept = cands.iter().take_while(|c| c.logit >= threshold).count();
    kept.max(1)
}

/// Picks the candidate at which the cumulative probability exceeds `u`
/// (`u` in `[0, 1)`); the last one if rounding leaves the sum below `u`.
fn draw(cands: &[Candidate], u: f64) -> u32 {
    let mut cum = 0.0f64;
    for c in cands {
        cum += f64::from(c.p);
        if u < cum {
            return c.id;
        }
    }
    cands.last().map_or(0, |c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(logits: &[f32]) -> Vec<Candidate> {
        logits
            .iter()
            .enumerate()
            .map(|(i, &logit)| Candidate {
                id: i as u32,
                logit,
                p: 0.0,
            })
            .collect()
    }

    fn ids(c: &[Candidate]) -> Vec<u32> {
        c.iter().map(|c| c.id).collect()
    }

    #[test]
    fn greedy_first_maximum_wins() {
        let mut s = Sampler::new(SamplerParams::greedy());
        assert_eq!(s.sample(&[0.5, 2.0, -1.0, 2.0]), Ok(1));
        assert_eq!(s.sample(&[f32::NAN, 1.0, 1.0]), Ok(1));
        assert_eq!(s.sample(&[-3.0]), Ok(0));
        assert_eq!(s.sample(&[]), Err(SampleError::EmptyLogits));
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), Some(0));
        assert_eq!(argmax(&[]), None);
    }

    /// The running-maximum definition `argmax` must equal: the first
    /// non-NaN value, replaced only by a strictly larger one.
    fn argmax_running(logits: &[f32]) -> Option<usize> {
        let mut best = None;
        let mut best_value = f32::NEG_INFINITY;
        for (i, &v) in logits.iter().enumerate() {
            if v > best_value || (best.is_none() && !v.is_nan()) {
                best = Some(i);
                best_value = v;
            }
        }
        if logits.is_empty() {
            None
        } else {
            Some(best.unwrap_or(0))
        }
    }

    #[test]
    fn argmax_equals_the_running_maximum_on_edge_values() {
        let mut rng = Rng::new(11);
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN,
            1.0,
        ];
        for len in (0..80).chain([128, 1000, 128_256]) {
            for trial in 0..6 {
                let v: Vec<f32> = (0..len)
                    .map(|_| {
                        let r = rng.next_f64() as f32;
                        match trial {
                            // Few distinct values: ties everywhere.
                            0 => (r * 4.0) as i32 as f32,
                            // Specials mixed into random values.
                            1 | 2 if r < 0.3 => specials[(r * 26.0) as usize % specials.len()],
                            // Only NaN and -inf.
                            3 if r < 0.5 => f32::NAN,
                            3 => f32::NEG_INFINITY,
                            // Signed zeros and NaN.
                            4 if r < 0.3 => f32::NAN,
                            4 if r < 0.6 => -0.0,
                            4 => 0.0,
                            _ => r * 20.0 - 10.0,
                        }
                    })
                    .collect();
                assert_eq!(
                    argmax(&v),
                    argmax_running(&v),
                    "len {len} trial {trial}: {v:?}"
                );
            }
        }
        let mut all_nan = [f32::NAN; 40];
        assert_eq!(argmax(&all_nan), Some(0));
        all_nan[33] = f32::NEG_INFINITY;
        assert_eq!(argmax(&all_nan), Some(33));
    }

    #[test]
    fn top_k_keeps_the_k_largest_sorted_with_id_tiebreak() {
        let mut c = cands(&[0.1, 0.9, 0.5, 0.9, -2.0, 0.7]);
        let n = top_k(&mut c, 3);
        assert_eq!(n, 3);
        assert_eq!(ids(&c[..n]), [1, 3, 5]);
        let mut c = cands(&[0.1, 0.9, 0.5]);
        assert_eq!(top_k(&mut c, 0), 3);
        assert_eq!(ids(&c), [1, 2, 0]);
    }

    #[test]
    fn top_p_keeps_the_shortest_prefix_reaching_p() {
        // Logits ln(0.5), ln(0.3), ln(0.15), ln(0.05): probabilities
        // 0.5, 0.3, 0.15, 0.05 (they sum to 1).
        let probs = [0.5f32, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|&p| libm::logf(p)).collect();
        let mut c = cands(&logits);
        // Cumulative 0.5, 0.8, 0.95, 1.0.
        assert_eq!(top_p(&mut c, 0.75), 2);
        assert!((c[0].p - 0.5).abs() < 1e-6 && (c[3].p - 0.05).abs() < 1e-6);
        assert_eq!(top_p(&mut c, 0.5), 1);
        assert_eq!(top_p(&mut c, 0.9), 3);
        assert_eq!(top_p(&mut c, 1.0), 4);
    }

    #[test]
    fn min_p_is_relative_to_the_best() {
        let probs = [0.5f32, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|&p| libm::logf(p)).collect();
        let c = cands(&logits);
        // 0.2 * 0.5 = 0.1: keeps 0.5, 0.3, 0.15.
        assert_eq!(min_p(&c, 0.2), 3);
        // 0.7 * 0.5 = 0.35: keeps 0.5 only.
        assert_eq!(min_p(&c, 0.7), 1);
        assert_eq!(min_p(&c, 0.0), 4);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut c = cands(&[2.0, -1.0, 3.0]);
        let h: VecDeque<u32> = [0, 1, 0].into_iter().collect();
        apply_repeat_penalty(&mut c, &h, 2.0);
        let l: Vec<f32> = c.iter().map(|c| c.logit).collect();
        // Token 0 penalised once although it occurs twice.
        assert_eq!(l, [1.0, -2.0, 3.0]);
        // Greedy after a penalty on the winner.
        let mut s = Sampler::new(SamplerParams {
            repeat_penalty: 4.0,
            repeat_last_n: 2,
            ..SamplerParams::greedy()
        });
        s.accept(7);
        s.accept(2); // history holds 7, 2
        assert_eq!(s.sample(&[1.0, 0.0, 3.0]), Ok(0)); // 3 / 4 < 1
        s.accept(0);
        s.accept(1); // history now 0, 1: token 2 free again
        assert_eq!(s.sample(&[1.0, 0.0, 3.0]), Ok(2));
    }

    #[test]
    fn draws_follow_the_distribution_and_the_seed() {
        // Probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1 and no
        // filters: frequencies over 20000 draws within 0.015.
        let probs = [0.5f32, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|&p| libm::logf(p)).collect();
        let params = SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: 42,
        };
        let mut s = Sampler::new(params);
        let mut counts = [0usize; 4];
        let mut seq = Vec::new();
        for _ in 0..20000 {
            let t = s.sample(&logits).unwrap() as usize;
            counts[t] += 1;
            seq.push(t);
        }
        for (c, p) in counts.iter().zip(probs) {
            assert!((*c as f32 / 20000.0 - p).abs() < 0.015, "{counts:?}");
        }
        let mut again = Sampler::new(params);
        let seq2: Vec<usize> = (0..20000)
            .map(|_| again.sample(&logits).unwrap() as usize)
            .collect();
        assert_eq!(seq, seq2);
        // top-k 1 is greedy whatever the draw.
        let mut k1 = Sampler::new(SamplerParams { top_k: 1, ..params });
        assert!((0..100).all(|_| k1.sample(&logits) == Ok(0)));
    }

    #[test]
    fn xoshiro_matches_the_reference_stream() {
        // xoshiro256** from state {1, 2, 3, 4}: first outputs of the
        // reference C implementation (prng.di.unimi.it/xoshiro256starstar.c).
        let mut r = Rng { s: [1, 2, 3, 4] };
        assert_eq!(r.next_u64(), 11520);
        assert_eq!(r.next_u64(), 0);
        assert_eq!(r.next_u64(), 1509978240);
        assert_eq!(r.next_u64(), 1215971899390074240);
        // splitmix64 from 0: 0xE220A8397B1DCDAF (Vigna's splitmix64.c).
        let mut sm = 0u64;
        assert_eq!(splitmix64(&mut sm), 0xE220_A839_7B1D_CDAF);
    }
}
