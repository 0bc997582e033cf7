//! Helpers shared by the model tests: locating data, reading goldens,
//! checking that a golden was made from the checked-in model.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `../shared/data` (or `$BITNET_SHARED_DATA`).
pub fn shared_data(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("BITNET_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let path = dir.join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set BITNET_SHARED_DATA)", path.display()))
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A checked-in fixture model from tests/models.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = root().join("tests/models").join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with `cargo xtask gen-fixtures`)",
            path.display()
        )
    })
}

/// A golden JSON file from tests/golden.
pub fn golden(name: &str) -> Value {
    let path = root().join("tests/golden").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fails, with the command that regenerates the golden, when the golden's
/// `model_sha256` is not the sha256 of `model`.
pub fn check_sha(golden: &Value, model: &[u8], golden_name: &str) {
    let got = format!("{:x}", Sha256::digest(model));
    let want = golden["model_sha256"].as_str().unwrap_or("");
    let generator = golden["generator"].as_str().unwrap_or("?");
    assert_eq!(
        want, got,
        "tests/golden/{golden_name} is stale: it was made from another model file. \
         Regenerate it with:\n    {generator}\n(or all goldens: bash ci/reference/make_goldens.sh)"
    );
}

pub fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("token id") as u32)
        .collect()
}

/// Rows of float32 values (written exactly by refjson.py).
pub fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .expect("array of rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("float") as f32)
                .collect()
        })
        .collect()
}

/// Max |a - b| over a flat `a` and rows `b` (same total length).
pub fn max_abs_diff(a: &[f32], b: &[Vec<f32>]) -> f32 {
    let flat: Vec<f32> = b.iter().flatten().copied().collect();
    assert_eq!(a.len(), flat.len(), "logit count");
    a.iter()
        .zip(&flat)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
