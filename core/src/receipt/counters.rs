//! [`KernelCounters`]: kernel evidence recorded where kernels execute.
//!
//! Whoever dispatches a kernel calls [`KernelCounters::record`] with the id
//! the kernel returned (e.g. [`crate::quant::QuantizedLinear::forward`]'s
//! `&'static str`) and the weight bytes it read, and calls
//! [`KernelCounters::end_pass`] after each forward pass. Nothing here can be
//! filled in advance: a receipt's kernel list is built only from these
//! counts, and its `compute_path` only from the passes.

use heapless::Vec;

use super::schema::MAX_KERNELS;
use super::verify::is_quantized_kernel;

/// One kernel id and what it did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelCount {
    /// The id the kernel reported.
    pub id: &'static str,
    /// Times it ran.
    pub calls: u64,
    /// Weight bytes it read, summed over calls.
    pub bytes: u64,
}

/// Kernel calls and weight bytes per kernel id, plus per-pass evidence for
/// the `compute_path` rule.
///
/// Fixed capacity ([`MAX_KERNELS`] ids), no allocation: recording never
/// fails. Calls of ids past the capacity are counted in
/// [`dropped_calls`](Self::dropped_calls) and make a receipt unbuildable.
#[derive(Debug, Clone, Default)]
pub struct KernelCounters {
    kernels: Vec<KernelCount, MAX_KERNELS>,
    dropped_calls: u64,
    /// Quantized-kernel calls since the last `end_pass`.
    pass_quantized_calls: u64,
    /// Weight bytes read since the last `end_pass`.
    pass_bytes: u64,
    /// Forward passes ended.
    passes: u64,
    /// Passes in which fewer quantized kernels ran than the model has layers.
    short_passes: u64,
    /// Largest weight bytes of one single-token pass.
    max_single_token_pass_bytes: u64,
    /// Smallest weight bytes of one multi-token pass (`u64::MAX`: none yet).
    min_batch_pass_bytes: u64,
}

impl KernelCounters {
    /// No calls yet.
    pub const fn new() -> Self {
        Self {
            kernels: Vec::new(),
            dropped_calls: 0,
            pass_quantized_calls: 0,
            pass_bytes: 0,
            passes: 0,
            short_passes: 0,
            max_single_token_pass_bytes: 0,
            min_batch_pass_bytes: u64::MAX,
        }
    }

    /// Counts one execution of kernel `id` that read `weight_bytes` bytes of
    /// weights. Call it right after the kernel ran, with the id it returned.
    pub fn record(&mut self, id: &'static str, weight_bytes: u64) {
        if is_quantized_kernel(id) {
            self.pass_quantized_calls = self.pass_quantized_calls.saturating_add(1);
        }
        self.pass_bytes = self.pass_bytes.saturating_add(weight_bytes);
        if let Some(k) = self.kernels.iter_mut().find(|k| k.id == id) {
            k.calls = k.calls.saturating_add(1);
            k.bytes = k.bytes.saturating_add(weight_bytes);
            return;
        }
        let first = KernelCount {
            id,
            calls: 1,
            bytes: weight_bytes,
        };
        if self.kernels.push(first).is_err() {
            self.dropped_calls = self.dropped_calls.saturating_add(1);
        }
    }

    /// Ends one forward pass over `tokens` positions of a model with
    /// `layers` transformer layers. The pass counts as real when at least
    /// one quantized kernel call per layer ran in it.
    pub fn end_pass(&mut self, tokens: usize, layers: usize) {
        self.passes = self.passes.saturating_add(1);
        let layers = u64::try_from(layers).unwrap_or(u64::MAX).max(1);
        if self.pass_quantized_calls < layers {
            self.short_passes = self.short_passes.saturating_add(1);
        }
        if tokens == 1 {
            self.max_single_token_pass_bytes =
                self.max_single_token_pass_bytes.max(self.pass_bytes);
        } else {
            self.min_batch_pass_bytes = self.min_batch_pass_bytes.min(self.pass_bytes);
        }
        self.pass_quantized_calls = 0;
        self.pass_bytes = 0;
    }

    /// Kernels that ran, in first-use order.
    pub fn kernels(&self) -> &[KernelCount] {
        &self.kernels
    }

    /// Calls of kernel ids that did not fit [`MAX_KERNELS`].
    pub fn dropped_calls(&self) -> u64 {
        self.dropped_calls
    }

    /// Forward passes ended with [`end_pass`](Self::end_pass).
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Calls of quantized kernels (see [`is_quantized_kernel`]).
    pub fn quantized_calls(&self) -> u64 {
        self.kernels
            .iter()
            .filter(|k| is_quantized_kernel(k.id))
            .fold(0u64, |n, k| n.saturating_add(k.calls))
    }

    /// Weight bytes read, all kernels, all calls.
    pub fn total_bytes(&self) -> u64 {
        self.kernels
            .iter()
            .fold(0u64, |n, k| n.saturating_add(k.bytes))
    }

    /// True when every pass ran a quantized kernel for every layer, no
    /// calls were recorded outside a pass, and there were at least as many
    /// passes as generated tokens (each token's logits come from a pass).
    pub fn is_real(&self, generated_tokens: u64) -> bool {
        self.passes > 0
            && self.short_passes == 0
            && self.pass_bytes == 0
            && self.pass_quantized_calls == 0
            && self.passes >= generated_tokens
    }

    /// Weight bytes one generated token reads: the largest single-token
    /// pass, or, when no pass had one token, the smallest batched pass
    /// (a batch reads each matrix once, like one token). 0 before any pass.
    pub fn weight_bytes_per_token(&self) -> u64 {
        if self.max_single_token_pass_bytes > 0 {
            self.max_single_token_pass_bytes
        } else if self.min_batch_pass_bytes != u64::MAX {
            self.min_batch_pass_bytes
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_and_bytes_per_id_in_first_use_order() {
        let mut c = KernelCounters::new();
        c.record("i2s_gemv_scalar", 100);
        c.record("f16_gemv_scalar", 10);
        c.record("i2s_gemv_scalar", 100);
        c.end_pass(1, 2);
        let k = c.kernels();
        assert_eq!(k.len(), 2);
        assert_eq!(
            (k[0].id, k[0].calls, k[0].bytes),
            ("i2s_gemv_scalar", 2, 200)
        );
        assert_eq!(
            (k[1].id, k[1].calls, k[1].bytes),
            ("f16_gemv_scalar", 1, 10)
        );
        assert_eq!(c.quantized_calls(), 2);
        assert_eq!(c.total_bytes(), 210);
        assert_eq!(c.weight_bytes_per_token(), 210);
        assert!(c.is_real(1));
        assert!(!c.is_real(2), "one pass cannot produce two tokens");
    }

    #[test]
    fn a_pass_with_fewer_quantized_calls_than_layers_is_not_real() {
        let mut c = KernelCounters::new();
        c.record("i2s_gemv_scalar", 1);
        c.end_pass(4, 2);
        c.record("i2s_gemv_scalar", 1);
        c.record("i2s_gemv_scalar", 1);
        c.end_pass(1, 2);
        assert!(!c.is_real(1));
    }

    #[test]
    fn float_only_passes_are_not_real_and_open_passes_are_not_real() {
        let mut c = KernelCounters::new();
        c.record("f32_gemv_scalar", 1);
        c.end_pass(1, 1);
        assert!(!c.is_real(1));

        let mut c = KernelCounters::new();
        c.record("tq2_0_gemv_scalar", 1);
        c.end_pass(1, 1);
        c.record("tq2_0_gemv_scalar", 1);
        assert!(!c.is_real(1), "calls after the last end_pass");
        assert!(!KernelCounters::new().is_real(0));
    }

    #[test]
    fn ids_past_capacity_are_counted_as_dropped() {
        const IDS: [&str; 34] = [
            "k00", "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09", "k10", "k11",
            "k12", "k13", "k14", "k15", "k16", "k17", "k18", "k19", "k20", "k21", "k22", "k23",
            "k24", "k25", "k26", "k27", "k28", "k29", "k30", "k31", "k32", "k33",
        ];
        assert!(IDS.len() > MAX_KERNELS);
        let mut c = KernelCounters::new();
        for id in IDS {
            c.record(id, 1);
        }
        assert_eq!(c.kernels().len(), MAX_KERNELS);
        assert_eq!(c.dropped_calls(), (IDS.len() - MAX_KERNELS) as u64);
    }

    #[test]
    fn bytes_per_token_prefers_single_token_passes() {
        let mut c = KernelCounters::new();
        c.record("i2s_gemv_scalar", 500);
        c.record("i2s_gemv_scalar", 500);
        c.end_pass(8, 1);
        assert_eq!(c.weight_bytes_per_token(), 1000);
        c.record("i2s_gemv_scalar", 300);
        c.end_pass(1, 1);
        assert_eq!(c.weight_bytes_per_token(), 300);
    }
}
