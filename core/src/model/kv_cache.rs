//! [`KvCache`]: keys and values of every layer and position, in f32.
//!
//! Layout per layer: `[n_ctx x kv_dim]` row-major, position-major, so the
//! rows of one position are contiguous and attention walks positions in
//! order. (An f16 cache would change only this file's element type.)

use alloc::vec::Vec;

use super::error::{ModelError, mul, zeroed};

/// Keys and values for `n_layers` layers, `n_ctx` positions, `kv_dim` floats
/// per position (all KV heads together).
#[derive(Debug, Clone)]
pub struct KvCache {
    /// `[n_layers x n_ctx x kv_dim]`.
    k: Vec<f32>,
    /// `[n_layers x n_ctx x kv_dim]`.
    v: Vec<f32>,
    n_ctx: usize,
    kv_dim: usize,
}

impl KvCache {
    /// A zeroed cache.
    pub fn new(n_layers: usize, n_ctx: usize, kv_dim: usize) -> Result<Self, ModelError> {
        let len = mul("KV cache", mul("KV cache", n_layers, n_ctx)?, kv_dim)?;
        Ok(Self {
            k: zeroed(len)?,
            v: zeroed(len)?,
            n_ctx,
            kv_dim,
        })
    }

    /// Positions per layer.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Range of the row of (`layer`, `pos`) in `k` / `v`.
    fn row(&self, layer: usize, pos: usize) -> core::ops::Range<usize> {
        let start = (layer * self.n_ctx + pos) * self.kv_dim;
        start..start + self.kv_dim
    }

    /// Stores the key and value rows (`kv_dim` floats each) of one position.
    pub(crate) fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let r = self.row(layer, pos);
        self.k[r.clone()].copy_from_slice(k);
        self.v[r].copy_from_slice(v);
    }

    /// Keys and values of positions `0..n` of `layer`, each `[n x kv_dim]`.
    pub(crate) fn layer(&self, layer: usize, n: usize) -> (&[f32], &[f32]) {
        let start = layer * self.n_ctx * self.kv_dim;
        let r = start..start + n * self.kv_dim;
        (&self.k[r.clone()], &self.v[r])
    }
}
