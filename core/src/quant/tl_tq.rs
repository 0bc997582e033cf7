//! TL1 / TL2 repacking of the llama.cpp ternary formats TQ1_0 and TQ2_0.
//!
//! A TQ row is a sequence of 256-weight blocks, each with its own f16
//! scale, and its activations are Q8_K blocks of 256 with their own f32
//! scale (DESIGN.md §5). The portable dot
//! ([`crate::quant::tq2_0::vec_dot_tq2_0_q8_k`],
//! [`crate::quant::tq1_0::vec_dot_tq1_0_q8_k`]) therefore needs one exact
//! integer per block, `sumi_b = sum w_k * q_k` over the block, combined in
//! block order as `sumf += sumi_b as f32 * (d_a * d_w)`.
//!
//! So the repacked layout is one [`TlMatrix`] per 256-column block (all
//! rows, `K = 256`: 128 TL1 pairs or 86 TL2 triples, the last with two zero
//! weights) plus the block scales as f32 (`rows x K / 256`, row-major; an
//! f16 widens exactly). The activation tables of a token are built per
//! block from that block's Q8_K quants ([`TlBlocks::build_tables`]); the TL
//! kernels of [`crate::kernels::Platform::tl_gemm`] give each `sumi_b`
//! exactly, and [`TlBlocks::gemv`] combines them with the portable kernel's
//! float operations in its order, so outputs are bit-identical.
//!
//! TQ2_0's never-written code 3 reads as weight +2 in llama.cpp; no ternary
//! table holds it, so a tensor containing one is refused
//! ([`QuantError::NotTernary`]) rather than repacked.

use alloc::vec::Vec;
use core::ops::Range;

use super::q8_k::{BlockQ8K, QK_K};
use super::tl::{TL_TABLE_BYTES, TlKind, TlLayout, TlMatrix, tl_build_tables};
use super::tq1_0::BlockTq1_0;
use super::tq2_0::BlockTq2_0;
use super::{QuantError, QuantType, blocks_of, check_len, f16_le, mul_size};
use crate::kernels::Platform;

/// Rows per inner step of [`TlBlocks::gemv`] (the stack buffer of block
/// dots).
const STEP_ROWS: usize = 64;

/// A TQ1_0 or TQ2_0 matrix repacked into TL tiles per 256-column block
/// (module docs); owns its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct TlBlocks {
    qtype: QuantType,
    rows: usize,
    cols: usize,
    /// One `rows x 256` matrix per column block.
    blocks: Vec<TlMatrix>,
    /// The f16 block scales as f32, `rows x cols / 256`.
    scales: Vec<f32>,
}

impl TlBlocks {
    /// Repacks a complete TQ1_0 or TQ2_0 tensor (`rows x cols`, `cols` a
    /// multiple of 256) into `kind`'s layout.
    pub fn from_tq(
        tensor: &[u8],
        qtype: QuantType,
        rows: usize,
        cols: usize,
        kind: TlKind,
    ) -> Result<Self, QuantError> {
        let block_bytes = match qtype {
            QuantType::TQ1_0 => BlockTq1_0::BYTES,
            QuantType::TQ2_0 => BlockTq2_0::BYTES,
            _ => {
                return Err(QuantError::UnsupportedType { name: qtype.name() });
            }
        };
        if rows == 0 || cols == 0 {
            return Err(QuantError::EmptyShape { rows, cols });
        }
        let nb = blocks_of("TQ row length", cols, QK_K)?;
        let row_bytes = mul_size("TQ row bytes", nb, block_bytes)?;
        check_len(
            "TQ weight bytes",
            mul_size("TQ weight bytes", rows, row_bytes)?,
            tensor.len(),
        )?;
        let mut blocks = Vec::new();
        blocks
            .try_reserve_exact(nb)
            .map_err(|_| QuantError::AllocFailed { bytes: nb })?;
        for _ in 0..nb {
            blocks.push(TlMatrix::zeroed(kind, TlLayout::Tiles, rows, QK_K)?);
        }
        let n_scales = mul_size("TQ block scales", rows, nb)?;
        let mut scales = Vec::new();
        scales
            .try_reserve_exact(n_scales)
            .map_err(|_| QuantError::AllocFailed {
                bytes: n_scales.saturating_mul(4),
            })?;
        let mut w = [0i8; QK_K];
        for (r, row) in tensor.chunks_exact(row_bytes).enumerate() {
            for (b, (blk, m)) in row
                .chunks_exact(block_bytes)
                .zip(blocks.iter_mut())
                .enumerate()
            {
                if qtype == QuantType::TQ2_0 {
                    super::tq2_0::block_weights(&blk[..QK_K / 4], &mut w).map_err(|i| {
                        QuantError::NotTernary {
                            index: r * cols + b * QK_K + i,
                            value: 2,
                        }
                    })?;
                } else {
                    super::tq1_0::block_weights(blk, &mut w);
                }
                m.pack_row(r, &w);
                scales.push(f16_le(blk[block_bytes - 2], blk[block_bytes - 1]).to_f32());
            }
        }
        Ok(Self {
            qtype,
            rows,
            cols,
            blocks,
            scales,
        })
    }

    /// The format it was repacked from.
    pub fn qtype(&self) -> QuantType {
        self.qtype
    }

    /// The TL family.
    pub fn kind(&self) -> TlKind {
        self.blocks[0].kind()
    }

    /// Output features M.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features K.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of the repacked tiles and scales.
    pub fn bytes(&self) -> usize {
        self.blocks.iter().map(|m| m.data().len()).sum::<usize>() + 4 * self.scales.len()
    }

    /// Bytes of one token's activation tables (all blocks).
    pub fn tables_len(&self) -> usize {
        self.blocks.len() * self.block_tables_len()
    }

    /// Bytes of one block's tables.
    fn block_tables_len(&self) -> usize {
        self.kind().groups(QK_K) * TL_TABLE_BYTES
    }

    /// Builds one token's tables from its Q8_K activations (`K / 256`
    /// blocks) into `tables` ([`tables_len`](Self::tables_len) bytes),
    /// block by block.
    pub fn build_tables(&self, act: &[BlockQ8K], tables: &mut [i8]) -> Result<(), QuantError> {
        check_len("Q8_K activation blocks", self.blocks.len(), act.len())?;
        check_len("TL activation tables", self.tables_len(), tables.len())?;
        let kind = self.kind();
        for (ab, t) in act
            .iter()
            .zip(tables.chunks_exact_mut(self.block_tables_len()))
        {
            tl_build_tables(kind, &ab.qs, t)?;
        }
        Ok(())
    }

    /// GEMV on a row range with `platform`'s TL kernels: `out[i]` equals
    /// the portable TQ dot of row `rows.start + i` with `act`, bit for bit;
    /// `tables` were built from `act` by
    /// [`build_tables`](Self::build_tables). Returns the TL kernel id.
    pub fn gemv(
        &self,
        platform: Platform,
        rows: Range<usize>,
        act: &[BlockQ8K],
        tables: &[i8],
        out: &mut [f32],
    ) -> Result<&'static str, QuantError> {
        let nb = self.blocks.len();
        check_len("Q8_K activation blocks", nb, act.len())?;
        check_len("TL activation tables", self.tables_len(), tables.len())?;
        if rows.start > rows.end || rows.end > self.rows {
            return Err(QuantError::LengthMismatch {
                what: "TL row range end",
                expected: self.rows,
                actual: rows.end,
            });
        }
        check_len("outputs for the row range", rows.len(), out.len())?;
        let per = self.block_tables_len();
        let mut id = "";
        let mut dots = [0i32; STEP_ROWS];
        for (s, o) in out.chunks_mut(STEP_ROWS).enumerate() {
            let r0 = rows.start + s * STEP_ROWS;
            let dots = &mut dots[..o.len()];
            o.fill(0.0);
            for (b, (m, ab)) in self.blocks.iter().zip(act).enumerate() {
                let t = &tables[b * per..(b + 1) * per];
                id = platform.tl_gemm(m, r0..r0 + o.len(), t, dots)?;
                for (i, (o, &sumi)) in o.iter_mut().zip(dots.iter()).enumerate() {
                    // The portable kernels' `sumf += sumi as f32 * d` with
                    // `d = d_a * d_w` (f32 products commute exactly).
                    *o += sumi as f32 * (ab.d * self.scales[(r0 + i) * nb + b]);
                }
            }
        }
        Ok(id)
    }
}
