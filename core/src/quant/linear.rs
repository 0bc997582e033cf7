//! [`QuantizedLinear`]: `y = W x` for a weight matrix borrowed in its file
//! format, never dequantized.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use super::bf16::dot_bf16_f32;
use super::f32::dot_f32;
use super::i2s::{I2S_MAX_K, i2s_output, i2s_scale};
use super::q8_0::{BlockQ8_0, QK8_0, quantize_row_q8_0, vec_dot_q8_0_q8_0};
use super::q8_head::Q8Rows;
use super::q8_k::{BlockQ8K, QK_K, quantize_row_q8_k};
use super::tl::{TL2_WIDE_TILE_ROWS, TlKind, TlLayout, TlMatrix};
use super::tl_tq::TlBlocks;
use super::{QuantError, QuantType, blocks_of, check_len, mul_size};
use crate::kernels::Platform;
use crate::parallel::{Join, SerialJoin, for_each_chunk_mut};

/// Weight rows per parallel task of a one-token matmul (decode): at
/// K = 2560 that is 40 KiB of I2_S weights, enough to amortize a task while
/// leaving tens of tasks per matrix to balance over the threads.
pub const ROWS_PER_TASK: usize = 64;

/// Weight rows per parallel task of a batch (prefill GEMMs): a task's
/// work is `batch` times a decode task's, so balance needs fewer tasks, and
/// each task re-reads its tokens' activations once per group of rows. On
/// the 2B-4T shapes with 512 tokens the I2_S GEMM ran 3-7 % faster per
/// thread with 128 rows than with 64 (docs/perf.md, "I2_S prefill GEMM").
pub const BATCH_ROWS_PER_TASK: usize = 128;

/// Tile edge of [`transpose_band`].
const TRANSPOSE_TILE: usize = 16;

/// `band[t][r] = map(src[r * batch + t], t)`: `src` is `rows x batch`,
/// row-major by weight row as the GEMMs write it, `band` holds the same
/// rows of each token's output (`batch` slices of `rows`). In square
/// tiles: `f(seg, t, dst)` maps a run of one row's outputs for tokens
/// `t..t + seg.len()` into a tile row (contiguous on both sides, so its
/// divisions vectorize), [`Platform::transpose16`] turns the tile, and its
/// rows are copied out whole. Each output is the map of one input, so
/// neither the tiling nor the split into bands changes any bit.
fn transpose_band<T, F>(platform: Platform, src: &[T], batch: usize, band: &mut [&mut [f32]], f: &F)
where
    T: Copy,
    F: Fn(&[T], usize, &mut [f32]),
{
    let rows = band.first().map_or(0, |b| b.len());
    let mut tile = [[0.0f32; TRANSPOSE_TILE]; TRANSPOSE_TILE];
    for r0 in (0..rows).step_by(TRANSPOSE_TILE) {
        let r1 = (r0 + TRANSPOSE_TILE).min(rows);
        for c0 in (0..batch).step_by(TRANSPOSE_TILE) {
            let n = (batch - c0).min(TRANSPOSE_TILE);
            for (r, row) in (r0..r1).zip(&mut tile) {
                f(&src[r * batch + c0..][..n], c0, &mut row[..n]);
            }
            platform.transpose16(&mut tile);
            for (o, col) in band[c0..c0 + n].iter_mut().zip(&tile) {
                // A whole tile row has a constant length, so its copy is
                // inlined (a `memmove` call per 16 values was ~3.5 % of
                // pp512).
                match o[r0..r1].as_mut_array::<TRANSPOSE_TILE>() {
                    Some(o) => *o = *col,
                    None => o[r0..r1].copy_from_slice(&col[..r1 - r0]),
                }
            }
        }
    }
}

/// [`run_rows`] for a batch whose outputs are wanted token-major: each
/// task runs `f(rows, dots)` on its rows (`dots` is `rows.len() x batch`,
/// row-major as the GEMMs write it) and then, while those dots are still
/// in its cache, maps them into the same rows of every token of `out`
/// (`out[t * m + r]`) through `g` as [`transpose_band`]. A separate
/// transposing pass re-read all the dots from memory after the GEMM, in a
/// parallel region of its own (~5 % of a 2B-4T prefill). Tasks of
/// `task_rows` rows, by default [`BATCH_ROWS_PER_TASK`] (also when `J`
/// is serial); the results do not depend on the split. Returns the kernel
/// id.
fn run_rows_transposed<J, T, F, G>(
    platform: Platform,
    dots: &mut [T],
    (m, batch): (usize, usize),
    task_rows: Option<usize>,
    out: &mut [f32],
    f: F,
    g: G,
) -> Result<&'static str, QuantError>
where
    J: Join,
    T: Copy + Send + Sync,
    F: Fn(core::ops::Range<usize>, &mut [T]) -> Result<&'static str, QuantError> + Sync,
    G: Fn(&[T], usize, &mut [f32]) + Sync,
{
    // Tasks of the same size without threads too: each still transposes
    // its dots while they are in cache.
    let task_rows = task_rows.unwrap_or(BATCH_ROWS_PER_TASK).max(1);
    let mut bands: Vec<Vec<&mut [f32]>> = (0..m.div_ceil(task_rows))
        .map(|_| Vec::with_capacity(batch))
        .collect();
    for token in out[..batch * m].chunks_exact_mut(m.max(1)) {
        for (band, piece) in bands.iter_mut().zip(token.chunks_mut(task_rows)) {
            band.push(piece);
        }
    }
    let mut tasks: Vec<_> = dots[..batch * m]
        .chunks_mut(task_rows * batch)
        .zip(bands)
        .map(|(d, b)| (Ok(""), d, b))
        .collect();
    for_each_chunk_mut::<J, _, _>(&mut tasks, 1, 1, &|first, items| {
        for (i, (res, d, band)) in items.iter_mut().enumerate() {
            let r0 = (first + i) * task_rows;
            *res = f(r0..(r0 + task_rows).min(m), d);
            if res.is_ok() {
                transpose_band(platform, d, batch, band, &g);
            }
        }
    });
    let mut id = "";
    for (res, _, _) in tasks {
        id = res?;
    }
    Ok(id)
}

/// Runs `f(rows, out_rows)` over `0..m` weight rows, where `out` holds
/// `per_row` outputs per weight row: in one call when `J` is serial or the
/// matrix is small, else in tasks of `task_rows` rows, by default
/// [`ROWS_PER_TASK`] (one output per row) or [`BATCH_ROWS_PER_TASK`] (a
/// batch), through `J`. Every output is computed by the same kernel code
/// whatever the split, so results do not depend on the thread count.
/// Returns the kernel id.
fn run_rows<J, T, F>(
    out: &mut [T],
    m: usize,
    per_row: usize,
    task_rows: Option<usize>,
    f: F,
) -> Result<&'static str, QuantError>
where
    J: Join,
    T: Send,
    F: Fn(core::ops::Range<usize>, &mut [T]) -> Result<&'static str, QuantError> + Sync,
{
    let task_rows = task_rows.unwrap_or(if per_row > 1 {
        BATCH_ROWS_PER_TASK
    } else {
        ROWS_PER_TASK
    });
    if !J::PARALLEL || m <= task_rows {
        return f(0..m, out);
    }
    let task_len = task_rows * per_row;
    let mut tasks: Vec<(Result<&'static str, QuantError>, &mut [T])> =
        out.chunks_mut(task_len).map(|c| (Ok(""), c)).collect();
    for_each_chunk_mut::<J, _, _>(&mut tasks, 1, 1, &|first, items| {
        for (i, (res, chunk)) in items.iter_mut().enumerate() {
            let r0 = (first + i) * task_rows;
            *res = f(r0..(r0 + task_rows).min(m), chunk);
        }
    });
    let mut id = "";
    for (res, _) in tasks {
        id = res?;
    }
    Ok(id)
}

/// Rows per parallel task of a TL matmul: two wide tiles where the layout
/// is wide (the wide kernel runs tiles in pairs, one table load for both),
/// else [`run_rows`]'s default.
fn tl_task_rows(tl: &TlMatrix) -> Option<usize> {
    match tl.layout() {
        TlLayout::Wide => Some(2 * TL2_WIDE_TILE_ROWS),
        TlLayout::Tiles => None,
    }
}

/// Reusable buffers for the quantized activations of one matmul input.
///
/// They grow to the largest batch seen and are then reused, so a decode loop
/// allocates nothing after its first token.
#[derive(Debug, Default, Clone)]
pub struct ActScratch {
    /// I2_S: per-token i8 activations, `batch x K`.
    i8s: Vec<i8>,
    /// I2_S: per-token activation scales, `batch`.
    scales: Vec<f32>,
    /// TQ1_0 / TQ2_0: Q8_K blocks, `batch x K / 256`.
    q8k: Vec<BlockQ8K>,
    /// Q8_0: Q8_0 blocks, `batch x K / 32`.
    q8_0: Vec<BlockQ8_0>,
    /// I2_S: integer dots, `M x batch` (row-major by weight row).
    dots: Vec<i32>,
    /// TL1 / TL2: activation tables, `batch x groups x 32`.
    tl_tables: Vec<i8>,
    /// What `tl_tables` holds when an I2_S matmul built them: the
    /// family, layout and row length, and the activations they were built
    /// from (`batch x K`). A matmul whose activations and layout are the
    /// same (Q, K and V of one input; gate and up) reuses them: tables are
    /// a function of the activations alone.
    tl_key: Option<(TlKind, TlLayout, usize)>,
    /// The activations of `tl_key`.
    tl_src: Vec<i8>,
    /// I2_S and TQ batches: outputs in the layout of `dots` (row-major by
    /// weight row), before the transpose.
    outs: Vec<f32>,
}

impl ActScratch {
    /// Makes `tl_tables` hold the tables of `tl`'s family and layout for
    /// the `batch x k` activations in `i8s` (built unless they already are:
    /// Q, K and V of one input, gate and up); returns their length.
    fn prepare_tl(
        &mut self,
        platform: Platform,
        tl: &TlMatrix,
        k: usize,
        batch: usize,
    ) -> Result<usize, QuantError> {
        let per = tl.table_bytes();
        let key = Some((tl.kind(), tl.layout(), k));
        let n = mul_size("TL tables", per, batch)?;
        let q = &self.i8s[..batch * k];
        if self.tl_key == key && self.tl_src.as_slice() == q && self.tl_tables.len() >= n {
            return Ok(n);
        }
        self.tl_key = None;
        let tables = grow(&mut self.tl_tables, n, 0)?;
        for (qt, t) in q.chunks_exact(k).zip(tables.chunks_exact_mut(per)) {
            platform.tl_build_tables(tl, qt, t)?;
        }
        self.tl_src.clear();
        grow(&mut self.tl_src, q.len(), 0)?.copy_from_slice(q);
        self.tl_key = key;
        Ok(n)
    }

    /// Empty scratch; buffers grow on first use.
    pub const fn new() -> Self {
        Self {
            i8s: Vec::new(),
            scales: Vec::new(),
            q8k: Vec::new(),
            q8_0: Vec::new(),
            dots: Vec::new(),
            tl_tables: Vec::new(),
            tl_key: None,
            tl_src: Vec::new(),
            outs: Vec::new(),
        }
    }
}

/// Grows `v` to at least `len` elements (filled with `fill`), reporting
/// allocation failure instead of aborting; returns the first `len`.
fn grow<T: Copy>(v: &mut Vec<T>, len: usize, fill: T) -> Result<&mut [T], QuantError> {
    if v.len() < len {
        let bytes = len.saturating_mul(core::mem::size_of::<T>());
        v.try_reserve(len - v.len())
            .map_err(|_| QuantError::AllocFailed { bytes })?;
        v.resize(len, fill);
    }
    Ok(&mut v[..len])
}

/// A linear layer (no bias) whose `rows x cols` weight matrix (out features
/// M x in features K, row-major, K contiguous) stays in its file format.
///
/// The bytes are borrowed, typically from a memory-mapped GGUF file; the
/// constructor checks their length against the shape, so
/// [`forward`](Self::forward) cannot index out of bounds. An I2_S matrix
/// can additionally own a TL1/TL2 repacking ([`repack_tl`](Self::repack_tl));
/// the zero-copy bytes stay the default; so can a TQ1_0 / TQ2_0 matrix
/// ([`crate::quant::tl_tq`]).
#[derive(Debug, Clone)]
pub struct QuantizedLinear<'a> {
    /// Weight bytes, `QuantType::tensor_bytes(rows, cols)` long.
    weight: &'a [u8],
    /// Their format.
    qtype: QuantType,
    /// Output features M.
    rows: usize,
    /// Input features K.
    cols: usize,
    /// Bytes per weight row.
    row_bytes: usize,
    /// The per-tensor scale for I2_S (1.0, unused, for other types).
    i2s_scale: f32,
    /// An owned TL1/TL2 repacking of an I2_S matrix; when present the
    /// matmul runs the TL kernels on it (same integers).
    tl: Option<Arc<TlMatrix>>,
    /// An owned TL1/TL2 repacking of a TQ1_0 / TQ2_0 matrix (per 256-column
    /// block); when present the matmul runs the TL kernels on it (same
    /// integers per block, same float combination).
    tl_tq: Option<Arc<TlBlocks>>,
    /// An owned int8-per-row copy of a float matrix (`--lm-head q8`); when
    /// present the matmul runs on it instead (changes numerics).
    q8: Option<Arc<Q8Rows>>,
}

impl<'a> QuantizedLinear<'a> {
    /// Wraps `weight` as a `rows x cols` matrix of type `qtype`, checking its
    /// byte length (including the I2_S tail) and that `cols` is a multiple of
    /// the format's block length.
    pub fn new(
        weight: &'a [u8],
        qtype: QuantType,
        rows: usize,
        cols: usize,
    ) -> Result<Self, QuantError> {
        if rows == 0 || cols == 0 {
            return Err(QuantError::EmptyShape { rows, cols });
        }
        let row_bytes = qtype.row_bytes(cols)?;
        check_len(
            "weight bytes",
            qtype.tensor_bytes(rows, cols)?,
            weight.len(),
        )?;
        let i2s_scale = match qtype {
            QuantType::I2S if cols > I2S_MAX_K => {
                return Err(QuantError::TooLarge {
                    what: "I2_S row length",
                    value: cols,
                    max: I2S_MAX_K,
                });
            }
            QuantType::I2S => i2s_scale(weight, rows, cols)?,
            _ => 1.0,
        };
        Ok(Self {
            weight,
            qtype,
            rows,
            cols,
            row_bytes,
            i2s_scale,
            tl: None,
            tl_tq: None,
            q8: None,
        })
    }

    /// Repacks a ternary matrix (I2_S, TQ1_0, TQ2_0) into `kind`'s
    /// lookup-table layout (owned, about `M * K / 4` or `M * K * 5 / 24`
    /// bytes, plus the block scales for TQ) so that the matmul runs the TL
    /// kernels; outputs stay bit-identical. Returns `false` (and changes
    /// nothing) for other formats; a TQ2_0 matrix holding the non-ternary
    /// code 3 is refused ([`QuantError::NotTernary`]). `layout` applies to
    /// I2_S matrices (a TQ matrix's 256-column blocks keep the tiles).
    pub fn repack_tl(&mut self, kind: TlKind, layout: TlLayout) -> Result<bool, QuantError> {
        match self.qtype {
            QuantType::I2S => {
                let packed = TlMatrix::from_i2s(self.weight, self.rows, self.cols, kind, layout)?;
                self.tl = Some(Arc::new(packed));
            }
            QuantType::TQ1_0 | QuantType::TQ2_0 => {
                let packed =
                    TlBlocks::from_tq(self.weight, self.qtype, self.rows, self.cols, kind)?;
                self.tl_tq = Some(Arc::new(packed));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Quantizes a float matrix (F32/F16/BF16) to int8 per row
    /// ([`crate::quant::q8_head`]) and runs the matmul on that from now
    /// on. **Changes numerics**; meant for the LM head only. Returns `false`
    /// (and changes nothing) for other formats.
    pub fn quantize_q8(&mut self) -> Result<bool, QuantError> {
        if !matches!(
            self.qtype,
            QuantType::F32 | QuantType::F16 | QuantType::BF16
        ) {
            return Ok(false);
        }
        let q8 = Q8Rows::from_float(self.weight, self.qtype, self.rows, self.cols)?;
        self.q8 = Some(Arc::new(q8));
        Ok(true)
    }

    /// The int8 copy, if any.
    pub fn q8(&self) -> Option<&Q8Rows> {
        self.q8.as_deref()
    }

    /// The int8 copy as a shared handle, to hand to another view of the
    /// same weights ([`use_q8`](Self::use_q8)) without quantizing again.
    pub fn q8_shared(&self) -> Option<Arc<Q8Rows>> {
        self.q8.clone()
    }

    /// Runs the matmul on `q8` from now on: the int8 copy that
    /// [`quantize_q8`](Self::quantize_q8) made of this matrix in an earlier
    /// view of the same bytes (a caller that rebuilds its views per run,
    /// like the wasm engine, keeps it across runs). **Changes numerics**
    /// as `quantize_q8` does. Fails when this is not a float matrix or the
    /// shapes differ.
    pub fn use_q8(&mut self, q8: Arc<Q8Rows>) -> Result<(), QuantError> {
        if !matches!(
            self.qtype,
            QuantType::F32 | QuantType::F16 | QuantType::BF16
        ) {
            return Err(QuantError::UnsupportedType {
                name: self.qtype.name(),
            });
        }
        check_len("q8 head rows", self.rows, q8.rows())?;
        check_len("q8 head columns", self.cols, q8.cols())?;
        self.q8 = Some(q8);
        Ok(())
    }

    /// The TL repacking of an I2_S matrix, if any.
    pub fn tl(&self) -> Option<&TlMatrix> {
        self.tl.as_deref()
    }

    /// The TL repacking of a TQ1_0 / TQ2_0 matrix, if any.
    pub fn tl_tq(&self) -> Option<&TlBlocks> {
        self.tl_tq.as_deref()
    }

    /// The weight bytes one matmul reads: the int8 copy (`--lm-head q8`)
    /// or the TL repacking when present, else the borrowed bytes.
    pub fn weight_bytes(&self) -> usize {
        match (&self.q8, &self.tl, &self.tl_tq) {
            (Some(q), _, _) => q.bytes(),
            (None, Some(t), _) => t.data().len(),
            (None, None, Some(t)) => t.bytes(),
            (None, None, None) => self.weight.len(),
        }
    }

    /// The borrowed weight bytes.
    pub fn weight(&self) -> &'a [u8] {
        self.weight
    }

    /// The weight format.
    pub fn qtype(&self) -> QuantType {
        self.qtype
    }

    /// Output features M.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features K.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `out = x W^T`: `x` is `batch x K` (row-major), `out` is `batch x M`,
    /// with the best kernels this CPU supports ([`Platform::detect`]).
    /// Results are bit-identical to the portable kernels; see
    /// [`forward_with`](Self::forward_with).
    pub fn forward(
        &self,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut ActScratch,
    ) -> Result<&'static str, QuantError> {
        self.forward_with(Platform::detect(), x, out, scratch)
    }

    /// `out = x W^T` with the kernels of `platform`
    /// ([`Platform::portable`] for the portable path).
    ///
    /// Each activation row is quantized once per call in the format's
    /// activation scheme (I2_S: per-token i8; TQ1_0/TQ2_0: Q8_K; Q8_0: Q8_0;
    /// float types: none), then the dot runs for every weight row (I2_S,
    /// TQ1_0, TQ2_0 and F16 through `platform`'s dispatch). Returns the id of
    /// the matmul kernel that ran (e.g. `"i2s_gemv_scalar"`,
    /// `"i2s_gemm_avx512vnni"`), for receipts.
    pub fn forward_with(
        &self,
        platform: Platform,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut ActScratch,
    ) -> Result<&'static str, QuantError> {
        self.forward_in::<SerialJoin>(platform, x, out, scratch)
    }

    /// `N` matmuls of one input `x` (Q, K and V; gate and up): the same
    /// bits as [`forward_in`](Self::forward_in) on each in turn. One token
    /// through I2_S matrices of the same width and kernel family (the
    /// decode's case) is quantized once and runs the row tasks of all `N`
    /// in one parallel region, one fork-join instead of `N`; anything else
    /// runs them in turn.
    pub fn forward_many_in<J: Join, const N: usize>(
        platform: Platform,
        lins: [&Self; N],
        x: &[f32],
        outs: [&mut [f32]; N],
        scratch: &mut ActScratch,
    ) -> Result<[&'static str; N], QuantError> {
        let k = lins.first().map_or(0, |l| l.cols);
        let tl = lins.map(|l| l.tl.as_deref());
        let key = |t: Option<&TlMatrix>| t.map(|t| (t.kind(), t.layout()));
        let fused = x.len() == k
            && lins.iter().zip(tl).all(|(l, t)| {
                l.qtype == QuantType::I2S && l.q8.is_none() && l.cols == k && key(t) == key(tl[0])
            });
        if !fused {
            let mut ids = [""; N];
            for ((l, o), id) in lins.iter().zip(outs).zip(&mut ids) {
                *id = l.forward_in::<J>(platform, x, o, scratch)?;
            }
            return Ok(ids);
        }
        for (l, o) in lins.iter().zip(&outs) {
            check_len("output", l.rows, o.len())?;
        }
        let s = platform
            .i2s_quantize_act(x, grow(&mut scratch.i8s, k, 0)?)?
            .0;
        let n_tables = match tl[0] {
            Some(t) => scratch.prepare_tl(platform, t, k, 1)?,
            None => 0,
        };
        let total = lins.iter().map(|l| l.rows).sum();
        grow(&mut scratch.dots, total, 0)?;
        let (q, tables) = (&scratch.i8s[..k], &scratch.tl_tables[..n_tables]);
        // Row tasks of every matrix: (matrix, rows, their dots, result).
        type Task<'d> = (
            usize,
            Range<usize>,
            &'d mut [i32],
            Result<&'static str, QuantError>,
        );
        let mut tasks: Vec<Task<'_>> = Vec::new();
        let mut rest = &mut scratch.dots[..total];
        for (i, (l, t)) in lins.iter().zip(tl).enumerate() {
            let (dots, tail) = core::mem::take(&mut rest).split_at_mut(l.rows);
            rest = tail;
            let step = t.and_then(tl_task_rows).unwrap_or(ROWS_PER_TASK);
            for (c, d) in dots.chunks_mut(step).enumerate() {
                tasks.push((i, c * step..c * step + d.len(), d, Ok("")));
            }
        }
        for_each_chunk_mut::<J, _, _>(&mut tasks, 1, 1, &|_, items| {
            for (i, rows, d, res) in items.iter_mut() {
                let rows = rows.clone();
                *res = match tl[*i] {
                    Some(t) => platform.tl_gemm(t, rows, tables, d),
                    None => platform.i2s_gemv(lins[*i].weight, k, rows, q, d),
                };
            }
        });
        let mut ids = [""; N];
        for (i, _, _, res) in tasks {
            ids[i] = res?;
        }
        let mut dots = &scratch.dots[..total];
        for (l, o) in lins.iter().zip(outs) {
            let (d, tail) = dots.split_at(l.rows);
            dots = tail;
            for (o, &dot) in o.iter_mut().zip(d) {
                *o = i2s_output(dot, s, l.i2s_scale);
            }
        }
        Ok(ids)
    }

    /// [`forward_with`](Self::forward_with) with the weight rows of the
    /// I2_S, TQ and F16 kernels split over threads through `J`. Outputs are
    /// identical for any `J` and thread count.
    pub fn forward_in<J: Join>(
        &self,
        platform: Platform,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut ActScratch,
    ) -> Result<&'static str, QuantError> {
        let batch = blocks_of("activations", x.len(), self.cols)?;
        check_len("output", mul_size("output", batch, self.rows)?, out.len())?;
        let k = self.cols;
        if let Some(h) = self.q8.as_deref() {
            let q = grow(&mut scratch.i8s, batch * k, 0)?;
            let scales = grow(&mut scratch.scales, batch, 0.0)?;
            let dots = grow(&mut scratch.dots, self.rows, 0)?;
            let mut id = "";
            for ((xt, qt), (s, ot)) in x
                .chunks_exact(k)
                .zip(q.chunks_exact_mut(k))
                .zip(scales.iter_mut().zip(out.chunks_exact_mut(self.rows)))
            {
                *s = platform.i2s_quantize_act(xt, qt)?.0;
                let qt = &*qt;
                id = run_rows::<J, _, _>(dots, self.rows, 1, None, |rows, d| {
                    platform.q8_head_gemv(h, rows, qt, d)
                })?;
                for ((o, &dot), &d) in ot.iter_mut().zip(dots.iter()).zip(h.scales()) {
                    *o = i2s_output(dot, *s, d);
                }
            }
            return Ok(id);
        }
        match self.qtype {
            QuantType::I2S => {
                let q = grow(&mut scratch.i8s, batch * k, 0)?;
                let scales = grow(&mut scratch.scales, batch, 0.0)?;
                for ((xt, qt), s) in x
                    .chunks_exact(k)
                    .zip(q.chunks_exact_mut(k))
                    .zip(scales.iter_mut())
                {
                    *s = platform.i2s_quantize_act(xt, qt)?.0;
                }
                grow(&mut scratch.dots, batch * self.rows, 0)?;
                let tl = self
                    .tl
                    .as_deref()
                    .filter(|_| batch == 1 || !platform.batch_prefers_i2s());
                let ws = self.i2s_scale;
                let n_tables = match tl {
                    Some(tl) => scratch.prepare_tl(platform, tl, k, batch)?,
                    None => 0,
                };
                let tables = &scratch.tl_tables[..n_tables];
                if batch == 1 {
                    let dots = &mut scratch.dots[..self.rows];
                    let id = if let Some(tl) = tl {
                        run_rows::<J, _, _>(dots, self.rows, 1, tl_task_rows(tl), |rows, d| {
                            platform.tl_gemm(tl, rows, tables, d)
                        })?
                    } else {
                        let q = &scratch.i8s[..k];
                        run_rows::<J, _, _>(dots, self.rows, 1, None, |rows, d| {
                            platform.i2s_gemv(self.weight, k, rows, q, d)
                        })?
                    };
                    let s = scratch.scales[0];
                    for (o, &dot) in out.iter_mut().zip(dots.iter()) {
                        *o = i2s_output(dot, s, ws);
                    }
                    return Ok(id);
                }
                // Each task scales runs of its rows' dots (contiguous, so
                // the divisions vectorize) while transposing them into
                // token-major `out`.
                let scales = &scratch.scales[..batch];
                let scale = |seg: &[i32], t: usize, dst: &mut [f32]| {
                    for ((o, &dot), &s) in dst.iter_mut().zip(seg).zip(&scales[t..]) {
                        *o = i2s_output(dot, s, ws);
                    }
                };
                let dots = &mut scratch.dots[..batch * self.rows];
                let shape = (self.rows, batch);
                return if let Some(tl) = tl {
                    let gemm = |rows, d: &mut [i32]| platform.tl_gemm(tl, rows, tables, d);
                    run_rows_transposed::<J, _, _, _>(
                        platform,
                        dots,
                        shape,
                        tl_task_rows(tl),
                        out,
                        gemm,
                        scale,
                    )
                } else {
                    let q = &scratch.i8s[..batch * k];
                    let gemm = |rows, d: &mut [i32]| platform.i2s_gemm(self.weight, k, rows, q, d);
                    run_rows_transposed::<J, _, _, _>(platform, dots, shape, None, out, gemm, scale)
                };
            }
            QuantType::TQ1_0 | QuantType::TQ2_0 => {
                let nb = k / QK_K;
                let act = grow(&mut scratch.q8k, batch * nb, BlockQ8K::ZERO)?;
                quantize_row_q8_k(x, act)?;
                let mut id = self.qtype.scalar_kernel_id();
                if let Some(tl) = self.tl_tq.as_deref() {
                    scratch.tl_key = None;
                    let tables = grow(&mut scratch.tl_tables, tl.tables_len(), 0)?;
                    for (ab, ob) in act.chunks_exact(nb).zip(out.chunks_exact_mut(self.rows)) {
                        tl.build_tables(ab, tables)?;
                        let tables = &*tables;
                        id = run_rows::<J, _, _>(ob, self.rows, 1, None, |rows, o| {
                            tl.gemv(platform, rows, ab, tables, o)
                        })?;
                    }
                    return Ok(id);
                }
                let (w, qtype, act) = (self.weight, self.qtype, &*act);
                if batch == 0 {
                    return Ok(id);
                }
                if batch == 1 {
                    return run_rows::<J, _, _>(out, self.rows, 1, None, |rows, o| match qtype {
                        QuantType::TQ1_0 => platform.tq1_0_gemv(w, k, rows, act, o),
                        _ => platform.tq2_0_gemv(w, k, rows, act, o),
                    });
                }
                // A batch: the GEMM (each weight block decoded once per group
                // of tokens) into the row-major layout, then transposed to
                // token-major as for I2_S.
                let outs = grow(&mut scratch.outs, batch * self.rows, 0.0)?;
                let gemm = |rows, o: &mut [f32]| match qtype {
                    QuantType::TQ1_0 => platform.tq1_0_gemm(w, k, rows, act, o),
                    _ => platform.tq2_0_gemm(w, k, rows, act, o),
                };
                let copy = |seg: &[f32], _, dst: &mut [f32]| dst.copy_from_slice(seg);
                return run_rows_transposed::<J, _, _, _>(
                    platform,
                    outs,
                    (self.rows, batch),
                    None,
                    out,
                    gemm,
                    copy,
                );
            }
            QuantType::F16 => {
                let mut id = self.qtype.scalar_kernel_id();
                let w = self.weight;
                for (xb, ob) in x.chunks_exact(k).zip(out.chunks_exact_mut(self.rows)) {
                    id = run_rows::<J, _, _>(ob, self.rows, 1, None, |rows, o| {
                        platform.f16_gemv(w, k, rows, xb, o)
                    })?;
                }
                return Ok(id);
            }
            QuantType::Q8_0 => {
                let nb = k / QK8_0;
                let act = grow(&mut scratch.q8_0, batch * nb, BlockQ8_0::ZERO)?;
                quantize_row_q8_0(x, act)?;
                let act = &*act;
                self.for_each_output(out, batch, |w, b| {
                    vec_dot_q8_0_q8_0(w, &act[b * nb..(b + 1) * nb])
                })?;
            }
            QuantType::F32 | QuantType::BF16 => {
                let dot: fn(&[u8], &[f32]) -> Result<f32, QuantError> = match self.qtype {
                    QuantType::F32 => dot_f32,
                    _ => dot_bf16_f32,
                };
                self.for_each_output(out, batch, |w, b| dot(w, &x[b * k..(b + 1) * k]))?;
            }
        }
        Ok(self.qtype.scalar_kernel_id())
    }

    /// Sets `out[b * M + m] = dot(weight row m, b)` for every row and token,
    /// weight row outermost so each row is read once per call.
    fn for_each_output(
        &self,
        out: &mut [f32],
        batch: usize,
        mut dot: impl FnMut(&[u8], usize) -> Result<f32, QuantError>,
    ) -> Result<(), QuantError> {
        let body = &self.weight[..self.rows * self.row_bytes];
        for (m, w) in body.chunks_exact(self.row_bytes).enumerate() {
            for b in 0..batch {
                out[b * self.rows + m] = dot(w, b)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn weight_bytes_are_the_bytes_the_matmul_reads() {
        // 8 x 64 F16: 1024 bytes as stored; the int8 copy reads one byte
        // per weight plus an f32 scale per row.
        let w: Vec<u8> = (0..8 * 64)
            .flat_map(|i| half::f16::from_f32(i as f32 / 512.0 - 0.5).to_le_bytes())
            .collect();
        let mut lin = QuantizedLinear::new(&w, QuantType::F16, 8, 64).unwrap();
        assert_eq!(lin.weight_bytes(), 1024);
        assert!(lin.quantize_q8().unwrap());
        assert_eq!(lin.weight_bytes(), 8 * 64 + 4 * 8);
    }

    /// An I2_S tensor of `rows x cols` with seeded codes 0..=2 and scale
    /// `scale`.
    fn i2s_tensor(rows: usize, cols: usize, seed: u64, scale: f32) -> Vec<u8> {
        let mut x = seed;
        let mut w: Vec<u8> = (0..rows * cols / 4)
            .map(|_| {
                (0..4).fold(0u8, |b, i| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    b | (((x >> 33) % 3) as u8) << (2 * i)
                })
            })
            .collect();
        w.extend_from_slice(&scale.to_le_bytes());
        w.resize(rows * cols / 4 + 32, 0);
        w
    }

    #[test]
    fn many_matmuls_of_one_input_equal_each_matmul_alone() {
        // Q/K/V-like shapes (rows not multiples of a task or a tile), with
        // the I2_S kernels and both TL2 layouts, one token (fused) and a
        // batch of two (in turn).
        let k = 384;
        let shapes = [(200usize, 0.5f32), (70, 1.25), (131, 2.0)];
        let tensors: Vec<Vec<u8>> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(m, sc))| i2s_tensor(m, k, 7 + i as u64, sc))
            .collect();
        let x: Vec<f32> = (0..2 * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let platform = Platform::detect();
        for tl in [None, Some(TlLayout::Tiles), Some(TlLayout::Wide)] {
            let mut lins: Vec<QuantizedLinear<'_>> = tensors
                .iter()
                .zip(shapes)
                .map(|(t, (m, _))| QuantizedLinear::new(t, QuantType::I2S, m, k).unwrap())
                .collect();
            if let Some(layout) = tl {
                for l in &mut lins {
                    assert!(l.repack_tl(TlKind::Tl2, layout).unwrap());
                }
            }
            for batch in [1, 2] {
                let x = &x[..batch * k];
                let mut scratch = ActScratch::new();
                let mut want: Vec<Vec<f32>> = Vec::new();
                let mut want_ids = Vec::new();
                for l in &lins {
                    let mut o = vec![0.0; batch * l.rows];
                    want_ids.push(
                        l.forward_in::<SerialJoin>(platform, x, &mut o, &mut scratch)
                            .unwrap(),
                    );
                    want.push(o);
                }
                // The fused path splits rows into tasks whatever the
                // join (SerialJoin runs them in turn).
                let mut got: Vec<Vec<f32>> = lins
                    .iter()
                    .map(|l| vec![f32::NAN; batch * l.rows])
                    .collect();
                let [a, b, c] = &mut got[..] else {
                    unreachable!()
                };
                let ids = QuantizedLinear::forward_many_in::<SerialJoin, 3>(
                    platform,
                    [&lins[0], &lins[1], &lins[2]],
                    x,
                    [&mut a[..], &mut b[..], &mut c[..]],
                    &mut ActScratch::new(),
                )
                .unwrap();
                assert_eq!(ids.to_vec(), want_ids, "{tl:?} batch {batch}");
                for (g, w) in got.iter().zip(&want) {
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(g), bits(w), "{tl:?} batch {batch}");
                }
            }
        }
        // A wrong output length is an error, not a panic.
        let lins: Vec<QuantizedLinear<'_>> = tensors
            .iter()
            .zip(shapes)
            .map(|(t, (m, _))| QuantizedLinear::new(t, QuantType::I2S, m, k).unwrap())
            .collect();
        let (mut a, mut b) = (vec![0.0; 200], vec![0.0; 69]);
        let err = QuantizedLinear::forward_many_in::<SerialJoin, 2>(
            platform,
            [&lins[0], &lins[1]],
            &x[..k],
            [&mut a, &mut b],
            &mut ActScratch::new(),
        );
        assert!(err.is_err());
    }

    #[test]
    fn run_rows_transposed_matches_the_plain_loop_on_edge_shapes() {
        for (rows, batch, task_rows) in [
            (1, 1, 4),
            (1, 17, 4),
            (17, 1, 4),
            (16, 16, 16),
            (33, 5, 16),
            (40, 47, 16),
            (3, 70, 2),
            (300, 33, 128),
        ] {
            // The "GEMM" writes each dot's own row-major index, so a dot
            // in the wrong place shows.
            let gemm = |r: core::ops::Range<usize>, d: &mut [i32]| {
                assert_eq!(d.len(), r.len() * batch);
                for (i, v) in d.iter_mut().enumerate() {
                    *v = (r.start * batch + i) as i32;
                }
                Ok("test")
            };
            let map = |seg: &[i32], t: usize, dst: &mut [f32]| {
                for (i, (o, &v)) in dst.iter_mut().zip(seg).enumerate() {
                    *o = v as f32 + 0.5 * (t + i) as f32;
                }
            };
            for p in Platform::available() {
                let mut split = vec![f32::NAN; rows * batch];
                let mut whole = vec![f32::NAN; rows * batch];
                let mut dots = vec![0i32; rows * batch];
                let shape = (rows, batch);
                let id = run_rows_transposed::<SerialJoin, _, _, _>(
                    p,
                    &mut dots,
                    shape,
                    Some(task_rows),
                    &mut split,
                    gemm,
                    map,
                );
                assert_eq!(id, Ok("test"));
                let whole_task = Some(rows);
                run_rows_transposed::<SerialJoin, _, _, _>(
                    p, &mut dots, shape, whole_task, &mut whole, gemm, map,
                )
                .unwrap();
                for r in 0..rows {
                    for t in 0..batch {
                        let want = (r * batch + t) as f32 + 0.5 * t as f32;
                        let isa = p.isa();
                        assert_eq!(
                            split[t * rows + r],
                            want,
                            "{isa:?} {rows}x{batch}/{task_rows}"
                        );
                        assert_eq!(whole[t * rows + r], want, "{isa:?} {rows}x{batch}");
                    }
                }
            }
        }
    }
}
