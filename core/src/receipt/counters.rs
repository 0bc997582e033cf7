//! [`KernelCounters`]: kernel evidence recorded where kernels execute.
//!
//! Whoever dispatches a kernel calls [`KernelCounters::record`] with the id
//! the kernel returned (e.g. [`crate::quant::QuantizedLinear::forward`]'s
//! `&'static str`) and the weight bytes it read, or, for a transformer
//! layer's projections, [`KernelCounters::record_projection`] with the layer
//! and the [`Projections`] the kernel computed; and calls
//! [`KernelCounters::end_pass`] after each forward pass. Nothing here can be
//! filled in advance: a receipt's kernel list is built only from these
//! counts, and its `compute_path` only from the passes.
//!
//! A pass is real (issue 7: "quantized kernels executed for every layer of
//! every generated token") when every layer `0..layers` ran a complete
//! *layer run*: all of its projections ([`Projections::ALL`]: q, k, v, o,
//! gate, up, down) through quantized kernels. A layer run is the sequence
//! of `record_projection` calls for one layer; it ends when a call names
//! another layer, repeats a projection of the run (the next batch chunk of
//! the same layer), or the pass ends. A run that missed a projection, or
//! ran one through a float kernel, makes the pass partial, even when another
//! chunk of the same pass ran that layer completely.

use heapless::Vec;

use super::schema::MAX_KERNELS;
use super::verify::is_quantized_kernel;
use crate::model::MAX_LAYERS;

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

/// A set of a transformer layer's projections (one bit each): what one
/// kernel call computed (one projection, or a fused q|k|v or gate|up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Projections(u8);

impl Projections {
    /// No projection.
    pub const NONE: Self = Self(0);
    /// `attn_q`.
    pub const Q: Self = Self(1 << 0);
    /// `attn_k`.
    pub const K: Self = Self(1 << 1);
    /// `attn_v`.
    pub const V: Self = Self(1 << 2);
    /// `attn_output`.
    pub const O: Self = Self(1 << 3);
    /// `ffn_gate`.
    pub const GATE: Self = Self(1 << 4);
    /// `ffn_up`.
    pub const UP: Self = Self(1 << 5);
    /// `ffn_down`.
    pub const DOWN: Self = Self(1 << 6);
    /// Every projection of a layer of the supported architectures
    /// (`bitnet-b1.58`, `bitnet`, `llama`).
    pub const ALL: Self = Self(0x7f);

    /// Both sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the sets share a projection.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
}

/// Words of the per-pass bit set of complete layers.
const LAYER_WORDS: usize = MAX_LAYERS.div_ceil(64);

/// Kernel calls and weight bytes per kernel id, plus per-pass, per-layer
/// evidence for the `compute_path` rule.
///
/// Fixed capacity ([`MAX_KERNELS`] ids, [`MAX_LAYERS`] layers), no
/// allocation: recording never fails. Calls of ids past the capacity are
/// counted in [`dropped_calls`](Self::dropped_calls) and make a receipt
/// unbuildable.
#[derive(Debug, Clone, Default)]
pub struct KernelCounters {
    kernels: Vec<KernelCount, MAX_KERNELS>,
    dropped_calls: u64,
    /// Kernel calls since the last `end_pass`.
    pass_calls: u64,
    /// Weight bytes read since the last `end_pass`.
    pass_bytes: u64,
    /// The layer of the open layer run, if one is open.
    run_layer: Option<usize>,
    /// Projections the open run recorded, on any kernel.
    run_seen: Projections,
    /// Projections the open run computed with quantized kernels.
    run_quantized: Projections,
    /// Layers of this pass with a complete run (bit `l` of word `l / 64`).
    pass_complete: [u64; LAYER_WORDS],
    /// Layer runs of this pass that were not complete.
    pass_incomplete_runs: u64,
    /// Forward passes ended.
    passes: u64,
    /// Passes in which some layer lacked a complete quantized run.
    partial_passes: u64,
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
            pass_calls: 0,
            pass_bytes: 0,
            run_layer: None,
            run_seen: Projections::NONE,
            run_quantized: Projections::NONE,
            pass_complete: [0; LAYER_WORDS],
            pass_incomplete_runs: 0,
            passes: 0,
            partial_passes: 0,
            max_single_token_pass_bytes: 0,
            min_batch_pass_bytes: u64::MAX,
        }
    }

    /// Counts one execution of kernel `id` that read `weight_bytes` bytes of
    /// weights. Call it right after the kernel ran, with the id it returned.
    /// For a layer's projections use
    /// [`record_projection`](Self::record_projection) instead.
    pub fn record(&mut self, id: &'static str, weight_bytes: u64) {
        self.pass_calls = self.pass_calls.saturating_add(1);
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

    /// [`record`](Self::record) for a kernel that computed `projections`
    /// of transformer layer `layer`: also the layer evidence of the pass
    /// (see the module docs). Only quantized kernel ids count as evidence.
    pub fn record_projection(
        &mut self,
        layer: usize,
        projections: Projections,
        id: &'static str,
        weight_bytes: u64,
    ) {
        self.record(id, weight_bytes);
        if self.run_layer != Some(layer) || self.run_seen.intersects(projections) {
            self.close_layer_run();
            self.run_layer = Some(layer);
        }
        self.run_seen = self.run_seen.union(projections);
        if is_quantized_kernel(id) {
            self.run_quantized = self.run_quantized.union(projections);
        }
    }

    /// Ends the open layer run, if any: its layer is complete in this pass
    /// when every projection ran quantized, else the pass is partial.
    fn close_layer_run(&mut self) {
        let Some(layer) = self.run_layer.take() else {
            return;
        };
        if self.run_quantized == Projections::ALL && layer < MAX_LAYERS {
            self.pass_complete[layer / 64] |= 1 << (layer % 64);
        } else {
            self.pass_incomplete_runs = self.pass_incomplete_runs.saturating_add(1);
        }
        self.run_seen = Projections::NONE;
        self.run_quantized = Projections::NONE;
    }

    /// Whether every layer `0..layers` has a complete run in this pass
    /// (and at least one layer exists).
    fn pass_has_every_layer(&self, layers: usize) -> bool {
        if layers == 0 || layers > MAX_LAYERS {
            return false;
        }
        let (full, rest) = (layers / 64, layers % 64);
        self.pass_complete[..full].iter().all(|&w| w == u64::MAX)
            && (rest == 0 || self.pass_complete[full] & ((1u64 << rest) - 1) == (1u64 << rest) - 1)
    }

    /// Ends one forward pass over `tokens` positions of a model with
    /// `layers` transformer layers. The pass counts as real when each of
    /// the layers ran a complete quantized layer run and no run was
    /// incomplete (see the module docs).
    pub fn end_pass(&mut self, tokens: usize, layers: usize) {
        self.close_layer_run();
        self.passes = self.passes.saturating_add(1);
        if self.pass_incomplete_runs > 0 || !self.pass_has_every_layer(layers) {
            self.partial_passes = self.partial_passes.saturating_add(1);
        }
        if tokens == 1 {
            self.max_single_token_pass_bytes =
                self.max_single_token_pass_bytes.max(self.pass_bytes);
        } else {
            self.min_batch_pass_bytes = self.min_batch_pass_bytes.min(self.pass_bytes);
        }
        self.pass_calls = 0;
        self.pass_bytes = 0;
        self.pass_complete = [0; LAYER_WORDS];
        self.pass_incomplete_runs = 0;
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

    /// Passes in which some layer lacked a complete quantized run.
    pub fn partial_passes(&self) -> u64 {
        self.partial_passes
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

    /// True when every pass ran every layer's projections through quantized
    /// kernels, no calls were recorded outside a pass, and there were at
    /// least as many passes as generated tokens (each token's logits come
    /// from a pass).
    pub fn is_real(&self, generated_tokens: u64) -> bool {
        self.passes > 0
            && self.partial_passes == 0
            && self.pass_calls == 0
            && self.run_layer.is_none()
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

    /// The seven projections of a layer, one kernel call each, as the CPU
    /// forward pass records them.
    const EACH: [Projections; 7] = [
        Projections::Q,
        Projections::K,
        Projections::V,
        Projections::O,
        Projections::GATE,
        Projections::UP,
        Projections::DOWN,
    ];

    /// One complete layer run of `layer` on kernel `id`.
    fn layer(c: &mut KernelCounters, layer: usize, id: &'static str, bytes: u64) {
        for p in EACH {
            c.record_projection(layer, p, id, bytes);
        }
    }

    #[test]
    fn counts_calls_and_bytes_per_id_in_first_use_order() {
        let mut c = KernelCounters::new();
        layer(&mut c, 0, "i2s_gemv_scalar", 100);
        layer(&mut c, 1, "i2s_gemv_scalar", 100);
        c.record("f16_gemv_scalar", 10);
        c.end_pass(1, 2);
        let k = c.kernels();
        assert_eq!(k.len(), 2);
        assert_eq!(
            (k[0].id, k[0].calls, k[0].bytes),
            ("i2s_gemv_scalar", 14, 1400)
        );
        assert_eq!(
            (k[1].id, k[1].calls, k[1].bytes),
            ("f16_gemv_scalar", 1, 10)
        );
        assert_eq!(c.quantized_calls(), 14);
        assert_eq!(c.total_bytes(), 1410);
        assert_eq!(c.weight_bytes_per_token(), 1410);
        assert!(c.is_real(1));
        assert!(!c.is_real(2), "one pass cannot produce two tokens");
    }

    #[test]
    fn fused_kernels_complete_a_layer_too() {
        // The CUDA step: q|k|v fused, o, gate|up fused, down.
        let mut c = KernelCounters::new();
        for l in 0..3 {
            c.record("quantize_act_cuda", 0);
            c.record_projection(
                l,
                Projections::Q.union(Projections::K).union(Projections::V),
                "i2s_gemv_cuda_dp4a",
                10,
            );
            c.record("attention_rope_cuda", 0);
            c.record_projection(l, Projections::O, "i2s_gemv_cuda_dp4a", 10);
            c.record_projection(
                l,
                Projections::GATE.union(Projections::UP),
                "i2s_gemv_glu_cuda_dp4a",
                20,
            );
            c.record_projection(l, Projections::DOWN, "i2s_gemv_cuda_dp4a", 10);
        }
        c.end_pass(1, 3);
        assert!(c.is_real(1));
    }

    /// Issue 7: a pass that runs 7 of 14 projections (one quantized call
    /// per layer would have satisfied the old count) is partial.
    #[test]
    fn a_pass_that_skips_a_layer_is_partial() {
        let mut c = KernelCounters::new();
        layer(&mut c, 0, "i2s_gemv_scalar", 1);
        c.end_pass(1, 2);
        assert_eq!(c.partial_passes(), 1);
        assert!(!c.is_real(1));

        // Seven quantized calls on each of two layers, but layer 1 never ran
        // (all fourteen landed on layer 0, as two chunks would).
        let mut c = KernelCounters::new();
        layer(&mut c, 0, "i2s_gemv_scalar", 1);
        layer(&mut c, 0, "i2s_gemv_scalar", 1);
        c.end_pass(2, 2);
        assert!(!c.is_real(1));

        // Every layer present but one projection missing from layer 1.
        let mut c = KernelCounters::new();
        layer(&mut c, 0, "i2s_gemv_scalar", 1);
        for p in &EACH[..6] {
            c.record_projection(1, *p, "i2s_gemv_scalar", 1);
        }
        c.end_pass(1, 2);
        assert!(!c.is_real(1));
    }

    #[test]
    fn a_projection_on_a_float_kernel_makes_the_pass_partial() {
        let mut c = KernelCounters::new();
        layer(&mut c, 0, "i2s_gemv_scalar", 1);
        for p in EACH {
            let id = if p == Projections::UP {
                "f32_gemv_scalar"
            } else {
                "i2s_gemv_scalar"
            };
            c.record_projection(1, p, id, 1);
        }
        c.end_pass(1, 2);
        assert!(!c.is_real(1));
    }

    #[test]
    fn every_chunk_of_a_pass_must_run_complete_layers() {
        // Two chunks of a one-layer model: the second one's run of layer 0
        // lacks q. The first chunk's complete run does not cover for it.
        let mut c = KernelCounters::new();
        layer(&mut c, 0, "tq2_0_gemv_scalar", 1);
        for p in &EACH[1..] {
            c.record_projection(0, *p, "tq2_0_gemv_scalar", 1);
        }
        c.end_pass(8, 1);
        assert!(!c.is_real(1));

        // Both chunks complete: real.
        let mut c = KernelCounters::new();
        layer(&mut c, 0, "tq2_0_gemv_scalar", 1);
        layer(&mut c, 0, "tq2_0_gemv_scalar", 1);
        c.end_pass(8, 1);
        assert!(c.is_real(1));
    }

    #[test]
    fn float_only_passes_are_not_real_and_open_passes_are_not_real() {
        let mut c = KernelCounters::new();
        layer(&mut c, 0, "f32_gemv_scalar", 1);
        c.end_pass(1, 1);
        assert!(!c.is_real(1));

        let mut c = KernelCounters::new();
        layer(&mut c, 0, "tq2_0_gemv_scalar", 1);
        c.end_pass(1, 1);
        assert!(c.is_real(1));
        c.record("tq2_0_gemv_scalar", 1);
        assert!(!c.is_real(1), "calls after the last end_pass");
        assert!(!KernelCounters::new().is_real(0));

        // Unlabelled quantized calls are no layer evidence.
        let mut c = KernelCounters::new();
        for _ in 0..7 {
            c.record("i2s_gemv_scalar", 1);
        }
        c.end_pass(1, 1);
        assert!(!c.is_real(1));
    }

    #[test]
    fn layers_beyond_capacity_or_zero_are_never_real() {
        let mut c = KernelCounters::new();
        layer(&mut c, 0, "i2s_gemv_scalar", 1);
        c.end_pass(1, 0);
        assert!(!c.is_real(1));
        let mut c = KernelCounters::new();
        for l in 0..=MAX_LAYERS {
            layer(&mut c, l, "i2s_gemv_scalar", 1);
        }
        c.end_pass(1, MAX_LAYERS + 1);
        assert!(!c.is_real(1));
        // Exactly MAX_LAYERS (a multiple of 64: the last word is full).
        let mut c = KernelCounters::new();
        for l in 0..MAX_LAYERS {
            layer(&mut c, l, "i2s_gemv_scalar", 1);
        }
        c.end_pass(1, MAX_LAYERS);
        assert!(c.is_real(1));
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
