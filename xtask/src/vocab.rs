//! `cargo xtask gen-vocab`: a Llama-3 GGUF vocabulary (tokens, merges,
//! special tokens, `pre = llama-bpe`) from a tiktoken rank file.

use std::path::Path;

use bitnet_core::gguf::{GgufWriter, OwnedValue};
use bitnet_core::tokenizer::Vocab;

use crate::tools::Result;

/// Builds the vocabulary file `out` from the tiktoken file `model`.
pub fn gen_vocab(model: &Path, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let mut vocab =
        Vocab::llama3_from_tiktoken(&text).map_err(|e| format!("{}: {e}", model.display()))?;
    vocab.pre = Some("llama-bpe".to_string());
    let mut w = GgufWriter::new();
    w.kv("general.architecture", OwnedValue::String("llama".into()));
    w.kv("general.name", OwnedValue::String("llama3-vocab".into()));
    vocab.write_gguf(&mut w);
    let bytes = w.to_bytes().map_err(|e| e.to_string())?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "wrote {} ({} tokens, {} merges)",
        out.display(),
        vocab.tokens.len(),
        vocab.merges.len()
    );
    Ok(())
}
