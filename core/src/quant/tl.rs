//! TL1 / TL2: our lookup-table (LUT) layouts for ternary weights
//! (DESIGN.md §4), repacked at load time from I2_S and multiplied by table
//! look-ups (`pshufb` on x86). They are kernel families, not file formats:
//! bitnet.cpp's TL files depend on a per-shape build configuration, so we
//! never read them; we only borrow the idea (bitnet.cpp `src/ggml-bitnet-lut.cpp`,
//! `utils/codegen_tl2.py`: weight groups index per-activation tables).
//!
//! The integer contract is [`crate::quant::i2s::i2s_dot_i32`]: for every row
//! and token the TL dot is exactly `sum_k w_k * q_k` with the same int8
//! activations ([`crate::quant::i2s::quantize_act_i2s`]) and the same weights
//! (I2_S code 3 reads as weight 0), so outputs are bit-identical to the I2_S
//! path.
//!
//! # Weight groups and indices
//!
//! * **TL1**: a row is cut into `G = K / 2` pairs `(w0, w1) = (w[2g],
//!   w[2g + 1])`; the pair's index is `3 * (w0 + 1) + (w1 + 1)` in `0..9`
//!   (4 bits, 2 bits per weight).
//! * **TL2**: a row is cut into `G = ceil(K / 3)` triples `(w0, w1, w2) =
//!   (w[3g], w[3g + 1], w[3g + 2])`; weights past `K` (the remainder when
//!   `3` does not divide `K`) are 0 and meet zero activations, which keeps the
//!   remainder exact. The triple's value `v = 9 w0 + 3 w1 + w2` lies in
//!   `-13..=13`; it is stored as a magnitude `|v|` in `0..14` (4 bits) and a
//!   sign bit (`v < 0`), 5 bits per 3 weights (1.67 bits per weight). The
//!   weights of `-v` are the negated weights of `v`, so one 14-entry table
//!   of sums serves both signs.
//!
//! # Byte layout (one [`TlMatrix`])
//!
//! Rows are grouped into tiles of [`TL_TILE_ROWS`] = 32 (the last tile is
//! padded with all-zero rows). Tiles follow each other; a tile is `G`
//! group records, one after the other ([`TlKind::record_bytes`]):
//!
//! * bytes `0..16`, the index part: byte `j` holds the 4-bit index (TL1)
//!   or magnitude (TL2) of the group in tile row `j` in bits 3..0 and that
//!   of tile row `16 + j` in bits 7..4;
//! * TL2 only, bytes `16..20`, the sign part: the little-endian u32 has bit
//!   `r` set when the group of tile row `r` is negative.
//!
//! So a TL1 tile is `16 G` bytes (2 bits per weight) and a TL2 tile `20 G`
//! bytes (`20 / 96` bytes per weight, 1.67 bits). A group's signs sit next
//! to its indices so that a kernel reads one sequential stream per tile
//! (separate index and sign areas made two, and the TL2 GEMV waited on
//! the sign loads).
//!
//! # Activation tables
//!
//! Per token and group, one 32-byte table [`TL_TABLE_BYTES`]: the sums
//! `sum_i w_i * a_i` for every index, split exactly in two int8 halves by
//! splitting each activation `q = 16 * qh + ql` (`ql = q & 15` in `0..16`,
//! `qh = q >> 4` in `-8..8`): bytes `0..16` hold the sums over `ql`
//! (|.| <= 45), bytes `16..32` the sums over `qh` (|.| <= 24), unused
//! indices 0. The group's sum is `lo[i] + 16 * hi[i]`, negated for a TL2
//! sign bit. Both halves fit a `pshufb` table and survive a byte negation,
//! so the SIMD kernels combine them with one `pmaddubsw` by `(1, 16)`.
//!
//! # The wide TL2 layout ([`TlLayout::Wide`], AVX-512 VBMI)
//!
//! The same 5 bits per triple, arranged for `vpermi2b` (a 128-entry byte
//! table from two registers) and `vpdpbusd`. Rows are grouped into tiles of
//! [`TL2_WIDE_TILE_ROWS`] = 64 (padded with zero rows), groups into blocks
//! of 4 (padded with zero groups). A tile is, block after block, four
//! [`TL2_WIDE_RECORD_BYTES`] = 40-byte records, record `s` covering tile
//! rows `16 s .. 16 s + 16`. In a record, position `p` in `0..64` is tile
//! row `16 s + p / 4` and group `4 b + p % 4` of the block `b`:
//!
//! * bytes `0..32`: the magnitude of position `p < 32` in bits 3..0 of byte
//!   `p`, that of position `32 + p` in bits 7..4;
//! * bytes `32..40`: a little-endian u64 whose bit `p` is the sign.
//!
//! So 4 adjacent positions are one row's 4 groups: `vpdpbusd` against ones
//! sums them into the row's i32 lane. Per token and block, a
//! [`TL2_WIDE_TABLE_BYTES`] = 256-byte table holds the signed sums: byte
//! `32 j + 16 s + m` of the first half is the low-part sum of group `4 b + j`
//! for magnitude `m`, negated when `s = 1` (byte `128 + ...` the high part),
//! so the index `32 j + 16 sign + m` reads a position's signed value with no
//! sign arithmetic. Groups past the row's end have all-zero tables.

use alloc::vec::Vec;

use super::i2s::{I2S_BLOCK_BYTES, I2S_BLOCK_LEN, I2S_MAX_K, i2s_scale};
use super::{QuantError, blocks_of, check_len, mul_size};

/// Rows per tile.
pub const TL_TILE_ROWS: usize = 32;
/// Bytes of one group's activation table (16 low-part + 16 high-part sums).
pub const TL_TABLE_BYTES: usize = 32;
/// Bytes of one group's index record in a tile.
pub const TL_INDEX_BYTES: usize = 16;
/// Bytes of one group's TL2 sign record in a tile.
pub const TL2_SIGN_BYTES: usize = 4;
/// Rows per tile of the wide TL2 layout.
pub const TL2_WIDE_TILE_ROWS: usize = 64;
/// Groups per block of the wide TL2 layout.
pub const TL2_WIDE_BLOCK_GROUPS: usize = 4;
/// Bytes of one wide record (16 rows x 4 groups: magnitudes, then signs).
pub const TL2_WIDE_RECORD_BYTES: usize = 40;
/// Bytes of one block of a wide tile (four records).
pub const TL2_WIDE_BLOCK_BYTES: usize = 4 * TL2_WIDE_RECORD_BYTES;
/// Bytes of one block's activation tables (one token) in the wide layout.
pub const TL2_WIDE_TABLE_BYTES: usize = 256;

/// Every family and layout a [`TlMatrix`] can have: TL1 and TL2 in tiles,
/// TL2 wide (for tests and benchmarks).
pub const TL_VARIANTS: [(TlKind, TlLayout); 3] = [
    (TlKind::Tl1, TlLayout::Tiles),
    (TlKind::Tl2, TlLayout::Tiles),
    (TlKind::Tl2, TlLayout::Wide),
];

/// How the bytes of a [`TlMatrix`] are arranged (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlLayout {
    /// 32-row tiles of per-group records: the kernels of every tier.
    Tiles,
    /// TL2 only: 64-row tiles of 4-group blocks, for AVX-512 VBMI.
    Wide,
}

/// Which lookup-table family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlKind {
    /// Pairs, 9-entry tables, 2 bits per weight.
    Tl1,
    /// Triples, sign + 14-entry tables, 1.67 bits per weight.
    Tl2,
}

impl TlKind {
    /// Weights per group (2 or 3).
    pub const fn group_len(self) -> usize {
        match self {
            Self::Tl1 => 2,
            Self::Tl2 => 3,
        }
    }

    /// Groups per row of `k` weights.
    pub const fn groups(self, k: usize) -> usize {
        k.div_ceil(self.group_len())
    }

    /// Bytes of one group record of a tile (index part, then TL2's sign
    /// part).
    pub const fn record_bytes(self) -> usize {
        match self {
            Self::Tl1 => TL_INDEX_BYTES,
            Self::Tl2 => TL_INDEX_BYTES + TL2_SIGN_BYTES,
        }
    }

    /// Bytes of one tile of a row length `k`.
    pub const fn tile_bytes(self, k: usize) -> usize {
        self.groups(k) * self.record_bytes()
    }

    /// Lower-case name (`tl1`, `tl2`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tl1 => "tl1",
            Self::Tl2 => "tl2",
        }
    }
}

/// The weights of group index `idx` (TL1 index, or TL2 magnitude), low
/// weight first; `None` for indices the family never writes.
pub const fn group_weights(kind: TlKind, idx: u8) -> Option<[i8; 3]> {
    match kind {
        TlKind::Tl1 if idx < 9 => Some([(idx / 3) as i8 - 1, (idx % 3) as i8 - 1, 0]),
        TlKind::Tl2 if idx < 14 => {
            // Balanced ternary digits of idx, least significant last.
            let m = idx as i8;
            let w2 = (m + 1) % 3 - 1;
            let d = (m - w2) / 3;
            let w1 = (d + 1) % 3 - 1;
            let w0 = (d - w1) / 3;
            Some([w0, w1, w2])
        }
        _ => None,
    }
}

/// A ternary matrix repacked into a TL layout (see the module docs); owns
/// its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlMatrix {
    kind: TlKind,
    layout: TlLayout,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl TlMatrix {
    /// Repacks a complete I2_S tensor (`rows x cols`, with its tail) into
    /// `kind`'s `layout`. Code 3 becomes weight 0, as in
    /// [`crate::quant::i2s::i2s_dot_i32`].
    pub fn from_i2s(
        tensor: &[u8],
        rows: usize,
        cols: usize,
        kind: TlKind,
        layout: TlLayout,
    ) -> Result<Self, QuantError> {
        if rows == 0 || cols == 0 {
            return Err(QuantError::EmptyShape { rows, cols });
        }
        if cols > I2S_MAX_K {
            return Err(QuantError::TooLarge {
                what: "I2_S row length",
                value: cols,
                max: I2S_MAX_K,
            });
        }
        // Checks the shape and the byte length (tail included).
        i2s_scale(tensor, rows, cols)?;
        let blocks = blocks_of("I2_S row length", cols, I2S_BLOCK_LEN)?;
        let row_bytes = blocks * I2S_BLOCK_BYTES;
        let mut m = Self::zeroed(kind, layout, rows, cols)?;
        if layout == TlLayout::Wide {
            m.fill_wide_from_i2s(tensor, row_bytes)?;
            return Ok(m);
        }
        let mut w = zeroed_i8(cols)?;
        for (r, row) in tensor.chunks_exact(row_bytes).take(rows).enumerate() {
            i2s_row_weights(row, &mut w);
            m.pack_row(r, &w);
        }
        Ok(m)
    }

    /// Fills a zeroed wide matrix from its I2_S tensor, a tile at a time:
    /// the tile's rows decoded into one buffer (rows past the last and
    /// weights past `cols` zero), then every 40-byte record written in
    /// order.
    fn fill_wide_from_i2s(&mut self, tensor: &[u8], row_bytes: usize) -> Result<(), QuantError> {
        // The padded row: whole 4-group blocks of triples.
        let kp = 3 * TL2_WIDE_BLOCK_GROUPS * wide_blocks(self.cols);
        let mut w = zeroed_i8(mul_size("TL2 repack buffer", TL2_WIDE_TILE_ROWS, kp)?)?;
        let (rows, cols, tile_bytes) = (self.rows, self.cols, self.tile_bytes());
        for (t, tile) in self.data.chunks_exact_mut(tile_bytes).enumerate() {
            for (i, wr) in w.chunks_exact_mut(kp).enumerate() {
                let r = t * TL2_WIDE_TILE_ROWS + i;
                if r < rows {
                    i2s_row_weights(&tensor[r * row_bytes..(r + 1) * row_bytes], &mut wr[..cols]);
                } else {
                    wr[..cols].fill(0);
                }
            }
            for (b, block) in tile.chunks_exact_mut(TL2_WIDE_BLOCK_BYTES).enumerate() {
                for (s, rec) in block.chunks_exact_mut(TL2_WIDE_RECORD_BYTES).enumerate() {
                    let mut signs = 0u64;
                    for p in 0..64 {
                        let o = (16 * s + p / 4) * kp + 3 * (TL2_WIDE_BLOCK_GROUPS * b + p % 4);
                        let v = 9 * w[o] + 3 * w[o + 1] + w[o + 2];
                        rec[p % 32] |= v.unsigned_abs() << (4 * (p / 32));
                        signs |= u64::from(v < 0) << p;
                    }
                    rec[32..].copy_from_slice(&signs.to_le_bytes());
                }
            }
        }
        Ok(())
    }

    /// An all-zero-weight matrix of `rows x cols` (rows then set by
    /// [`pack_row`](Self::pack_row)). The wide layout is TL2's only.
    pub(crate) fn zeroed(
        kind: TlKind,
        layout: TlLayout,
        rows: usize,
        cols: usize,
    ) -> Result<Self, QuantError> {
        if rows == 0 || cols == 0 {
            return Err(QuantError::EmptyShape { rows, cols });
        }
        if layout == TlLayout::Wide && kind != TlKind::Tl2 {
            return Err(QuantError::UnsupportedType {
                name: "the wide lookup-table layout with TL1 (it is TL2's)",
            });
        }
        let tiles = rows.div_ceil(layout_tile_rows(layout));
        let total = mul_size(
            "TL matrix bytes",
            tiles,
            layout_tile_bytes(kind, layout, cols)?,
        )?;
        let mut data = Vec::new();
        data.try_reserve_exact(total)
            .map_err(|_| QuantError::AllocFailed { bytes: total })?;
        data.resize(total, 0);
        Ok(Self {
            kind,
            layout,
            rows,
            cols,
            data,
        })
    }

    /// Writes row `r` (zero so far) of a matrix in tiles from its `cols`
    /// ternary weights `w` (each -1, 0 or +1; the caller guarantees it).
    /// Weights past `cols` in the last group are 0. (A wide matrix is
    /// filled by [`from_i2s`](Self::from_i2s).)
    pub(crate) fn pack_row(&mut self, r: usize, w: &[i8]) {
        debug_assert_eq!(self.layout, TlLayout::Tiles);
        let (kind, groups, glen) = (self.kind, self.groups(), self.kind.group_len());
        let tile_bytes = self.tile_bytes();
        let tile = &mut self.data[(r / TL_TILE_ROWS) * tile_bytes..][..tile_bytes];
        let (tr, shift) = (r % 16, 4 * ((r % TL_TILE_ROWS) / 16));
        let stride = kind.record_bytes();
        for (g, wg) in w.chunks(glen).enumerate().take(groups) {
            let rec = &mut tile[g * stride..(g + 1) * stride];
            let mut ws = [0i8; 3];
            ws[..wg.len()].copy_from_slice(wg);
            let (nib, neg) = match kind {
                TlKind::Tl1 => (3 * (ws[0] + 1) + (ws[1] + 1), false),
                TlKind::Tl2 => {
                    let v = 9 * ws[0] + 3 * ws[1] + ws[2];
                    (v.abs(), v < 0)
                }
            };
            rec[tr] |= (nib as u8) << shift;
            if neg {
                let bit = r % TL_TILE_ROWS;
                rec[TL_INDEX_BYTES + bit / 8] |= 1 << (bit % 8);
            }
        }
    }

    /// The family.
    pub fn kind(&self) -> TlKind {
        self.kind
    }

    /// The byte arrangement.
    pub fn layout(&self) -> TlLayout {
        self.layout
    }

    /// Rows per tile (32, or 64 for the wide layout).
    pub fn tile_rows(&self) -> usize {
        layout_tile_rows(self.layout)
    }

    /// Bytes of one token's activation tables
    /// ([`build_tables`](Self::build_tables)).
    pub fn table_bytes(&self) -> usize {
        // Cannot overflow: at most 256 bytes per 12 columns of a matrix
        // whose column count fits its (larger) packed bytes.
        match self.layout {
            TlLayout::Tiles => self.groups() * TL_TABLE_BYTES,
            TlLayout::Wide => wide_blocks(self.cols) * TL2_WIDE_TABLE_BYTES,
        }
    }

    /// Builds one token's activation tables for this matrix: `q` holds its
    /// `cols` int8 activations, `tables` [`table_bytes`](Self::table_bytes)
    /// bytes (module docs).
    pub fn build_tables(&self, q: &[i8], tables: &mut [i8]) -> Result<(), QuantError> {
        check_len("TL activations", self.cols, q.len())?;
        match self.layout {
            TlLayout::Tiles => tl_build_tables(self.kind, q, tables),
            TlLayout::Wide => tl2_wide_tables(q, tables),
        }
    }

    /// Output features M.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features K.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Groups per row.
    pub fn groups(&self) -> usize {
        self.kind.groups(self.cols)
    }

    /// The packed bytes (all tiles).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Bytes of one tile.
    pub fn tile_bytes(&self) -> usize {
        match self.layout {
            TlLayout::Tiles => self.kind.tile_bytes(self.cols),
            TlLayout::Wide => wide_blocks(self.cols) * TL2_WIDE_BLOCK_BYTES,
        }
    }
}

/// A zero-filled buffer of `n` int8 values (allocation failure an error).
fn zeroed_i8(n: usize) -> Result<Vec<i8>, QuantError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| QuantError::AllocFailed { bytes: n })?;
    v.resize(n, 0);
    Ok(v)
}

/// The ternary weights of one I2_S row (`w.len()` = its length), code 3
/// read as 0 as in [`crate::quant::i2s::i2s_dot_i32`]: weight `32 j + i`
/// of a 128-weight block is bits `7 - 2 j ..= 6 - 2 j` of its byte `i`.
fn i2s_row_weights(row: &[u8], w: &mut [i8]) {
    const WEIGHT: [i8; 4] = [-1, 0, 1, 0];
    for (block, wb) in row
        .chunks_exact(I2S_BLOCK_BYTES)
        .zip(w.chunks_exact_mut(I2S_BLOCK_LEN))
    {
        for (j, wj) in wb.chunks_exact_mut(I2S_BLOCK_BYTES).enumerate() {
            let shift = 6 - 2 * j;
            for (v, &byte) in wj.iter_mut().zip(block) {
                *v = WEIGHT[usize::from((byte >> shift) & 3)];
            }
        }
    }
}

/// Rows per tile of `layout`.
const fn layout_tile_rows(layout: TlLayout) -> usize {
    match layout {
        TlLayout::Tiles => TL_TILE_ROWS,
        TlLayout::Wide => TL2_WIDE_TILE_ROWS,
    }
}

/// Bytes per tile of `kind` in `layout` for rows of `cols` weights.
fn layout_tile_bytes(kind: TlKind, layout: TlLayout, cols: usize) -> Result<usize, QuantError> {
    match layout {
        TlLayout::Tiles => mul_size("TL tile bytes", kind.groups(cols), kind.record_bytes()),
        TlLayout::Wide => mul_size("TL tile bytes", wide_blocks(cols), TL2_WIDE_BLOCK_BYTES),
    }
}

/// 4-group blocks of a wide row of `cols` weights.
const fn wide_blocks(cols: usize) -> usize {
    TlKind::Tl2.groups(cols).div_ceil(TL2_WIDE_BLOCK_GROUPS)
}

/// The weights of every index of `kind` (unused indices all zero), low
/// weight first: the table-building constants.
const fn weight_table(kind: TlKind) -> [[i8; 3]; 16] {
    let mut t = [[0i8; 3]; 16];
    let mut i = 0;
    while i < 16 {
        if let Some(w) = group_weights(kind, i as u8) {
            t[i] = w;
        }
        i += 1;
    }
    t
}

/// TL1 index weights (`weight_table`).
const TL1_WEIGHTS: [[i8; 3]; 16] = weight_table(TlKind::Tl1);
/// TL2 magnitude weights (`weight_table`), also the SIMD table builders' constants.
pub(crate) const TL2_WEIGHTS: [[i8; 3]; 16] = weight_table(TlKind::Tl2);

/// Builds the activation tables of one token: `q` holds `K` int8
/// activations, `tables` receives `groups(K) * 32` bytes (module docs).
pub fn tl_build_tables(kind: TlKind, q: &[i8], tables: &mut [i8]) -> Result<(), QuantError> {
    let groups = kind.groups(q.len());
    check_len(
        "TL activation tables",
        mul_size("TL tables", groups, TL_TABLE_BYTES)?,
        tables.len(),
    )?;
    let glen = kind.group_len();
    let weights = match kind {
        TlKind::Tl1 => &TL1_WEIGHTS,
        TlKind::Tl2 => &TL2_WEIGHTS,
    };
    let full = q.len() / glen;
    let (body, rest) = tables.split_at_mut(full * TL_TABLE_BYTES);
    for (t, qg) in body
        .chunks_exact_mut(TL_TABLE_BYTES)
        .zip(q.chunks_exact(glen))
    {
        let mut a = [0i8; 3];
        a[..glen].copy_from_slice(qg);
        fill_table(weights, a, t);
    }
    // The remainder group: activations past K are 0.
    if let Some(t) = rest.get_mut(..TL_TABLE_BYTES) {
        let mut a = [0i8; 3];
        for (v, &x) in a.iter_mut().zip(&q[full * glen..]) {
            *v = x;
        }
        fill_table(weights, a, t);
    }
    Ok(())
}

/// One group's table from its three activations `a` (module docs).
#[inline]
fn fill_table(weights: &[[i8; 3]; 16], a: [i8; 3], t: &mut [i8]) {
    let lo = a.map(|v| v & 15);
    let hi = a.map(|v| v >> 4);
    let (tl, th) = t.split_at_mut(16);
    for ((l, h), w) in tl.iter_mut().zip(th.iter_mut()).zip(weights) {
        // |lo sum| <= 45 and |hi sum| <= 24 (module docs): no i8 overflow.
        *l = w[0] * lo[0] + w[1] * lo[1] + w[2] * lo[2];
        *h = w[0] * hi[0] + w[1] * hi[1] + w[2] * hi[2];
    }
}

/// Builds one token's wide TL2 tables (module docs): `q` holds `K` int8
/// activations, `tables` receives `ceil(ceil(K / 3) / 4) * 256` bytes.
pub fn tl2_wide_tables(q: &[i8], tables: &mut [i8]) -> Result<(), QuantError> {
    let groups = TlKind::Tl2.groups(q.len());
    check_len(
        "wide TL2 activation tables",
        mul_size(
            "wide TL2 tables",
            groups.div_ceil(TL2_WIDE_BLOCK_GROUPS),
            TL2_WIDE_TABLE_BYTES,
        )?,
        tables.len(),
    )?;
    for (b, t) in tables.chunks_exact_mut(TL2_WIDE_TABLE_BYTES).enumerate() {
        let (lo, hi) = t.split_at_mut(TL2_WIDE_TABLE_BYTES / 2);
        for j in 0..TL2_WIDE_BLOCK_GROUPS {
            let g = TL2_WIDE_BLOCK_GROUPS * b + j;
            let mut a = [0i8; 3];
            for (i, v) in a.iter_mut().enumerate() {
                *v = q.get(3 * g + i).copied().unwrap_or(0);
            }
            let mut narrow = [0i8; TL_TABLE_BYTES];
            fill_table(&TL2_WEIGHTS, a, &mut narrow);
            let (nl, nh) = narrow.split_at(16);
            for (half, n) in [(&mut *lo, nl), (&mut *hi, nh)] {
                let (pos, neg) = half[32 * j..32 * j + 32].split_at_mut(16);
                for ((p, m), &v) in pos.iter_mut().zip(neg.iter_mut()).zip(n) {
                    // |v| <= 45 (module docs): negation cannot overflow.
                    *p = v;
                    *m = -v;
                }
            }
        }
    }
    Ok(())
}

/// Portable dot of one wide TL2 tile: `out[r]` = the integer dot of tile
/// row `r` with the token whose wide tables are `tables`.
pub(crate) fn tl2_wide_tile_dot(tile: &[u8], tables: &[i8], out: &mut [i32; TL2_WIDE_TILE_ROWS]) {
    *out = [0; TL2_WIDE_TILE_ROWS];
    for (block, t) in tile
        .chunks_exact(TL2_WIDE_BLOCK_BYTES)
        .zip(tables.chunks_exact(TL2_WIDE_TABLE_BYTES))
    {
        for (sub, rec) in block.chunks_exact(TL2_WIDE_RECORD_BYTES).enumerate() {
            let mut sb = [0u8; 8];
            sb.copy_from_slice(&rec[32..]);
            let signs = u64::from_le_bytes(sb);
            for p in 0..64 {
                let mag = usize::from((rec[p % 32] >> (4 * (p / 32))) & 15);
                let idx = 32 * (p % 4) + 16 * ((signs >> p) & 1) as usize + mag;
                out[16 * sub + p / 4] += i32::from(t[idx]) + 16 * i32::from(t[128 + idx]);
            }
        }
    }
}

/// Portable TL dot of one tile: `out[r]` = the integer dot of tile row `r`
/// with the token whose tables are `tables`, by table look-ups.
pub(crate) fn tl_tile_dot(kind: TlKind, tile: &[u8], tables: &[i8], out: &mut [i32; 32]) {
    *out = [0; 32];
    for (rec, t) in tile
        .chunks_exact(kind.record_bytes())
        .zip(tables.chunks_exact(TL_TABLE_BYTES))
    {
        let neg = match kind {
            TlKind::Tl1 => 0,
            TlKind::Tl2 => {
                let s = &rec[TL_INDEX_BYTES..][..TL2_SIGN_BYTES];
                u32::from_le_bytes([s[0], s[1], s[2], s[3]])
            }
        };
        for (r, o) in out.iter_mut().enumerate() {
            let idx = usize::from((rec[r % 16] >> (4 * (r / 16))) & 15);
            let v = i32::from(t[idx]) + 16 * i32::from(t[16 + idx]);
            *o += if neg >> r & 1 == 1 { -v } else { v };
        }
    }
}

/// Checks `tables` (whole tokens) against `w` and returns the bytes per
/// token.
pub(crate) fn check_tables(w: &TlMatrix, tables_len: usize) -> Result<usize, QuantError> {
    let per_token = w.table_bytes();
    if tables_len == 0 || per_token == 0 || !tables_len.is_multiple_of(per_token) {
        return Err(QuantError::NotBlockMultiple {
            what: "TL activation tables",
            len: tables_len,
            block: per_token,
        });
    }
    Ok(per_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tl2_magnitudes_cover_every_triple() {
        let mut seen = [false; 27];
        for m in 0..14u8 {
            let [a, b, c] = group_weights(TlKind::Tl2, m).unwrap();
            assert_eq!(i32::from(9 * a + 3 * b + c), i32::from(m));
            for s in [1i8, -1] {
                let v = 9 * a * s + 3 * b * s + c * s + 13;
                seen[v as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(group_weights(TlKind::Tl2, 14), None);
        assert_eq!(group_weights(TlKind::Tl1, 9), None);
        assert_eq!(group_weights(TlKind::Tl1, 0), Some([-1, -1, 0]));
    }

    #[test]
    fn table_halves_fit_and_recombine() {
        let q = [-128i8, 127, -128, 127, 127, -128];
        for kind in [TlKind::Tl1, TlKind::Tl2] {
            let mut t = alloc::vec![0i8; kind.groups(6) * TL_TABLE_BYTES];
            tl_build_tables(kind, &q, &mut t).unwrap();
            for (g, tg) in t.chunks_exact(TL_TABLE_BYTES).enumerate() {
                for idx in 0..14u8 {
                    let Some(ws) = group_weights(kind, idx) else {
                        continue;
                    };
                    let want: i32 = (0..kind.group_len())
                        .map(|i| i32::from(ws[i]) * i32::from(q[g * kind.group_len() + i]))
                        .sum();
                    let i = usize::from(idx);
                    assert_eq!(i32::from(tg[i]) + 16 * i32::from(tg[16 + i]), want);
                }
            }
        }
    }
}
