//! `cargo xtask <command>`: project automation.

mod tools;
mod vocab;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "bitnet project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build bitnet-core for a bare-metal target and for wasm32 (installs
    /// the rustup targets when missing).
    NoStdCheck,
    /// Run every fuzz target for a short time (installs nightly and
    /// cargo-fuzz when missing).
    FuzzSmoke {
        /// Seconds per target.
        #[arg(long, default_value_t = 30)]
        seconds: u32,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// Write a Llama-3 GGUF vocabulary (tokens, merges, special tokens,
    /// pre = llama-bpe) built from a tiktoken rank file.
    GenVocab {
        /// The tiktoken file (base64 token, rank per line).
        #[arg(long, default_value = "../shared/data/llama3-tokenizer.model")]
        model: PathBuf,
        /// Output GGUF file.
        #[arg(long, default_value = "target/llama3-vocab.gguf")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().cmd {
        Cmd::NoStdCheck => tools::no_std_check(),
        Cmd::FuzzSmoke { seconds, target } => tools::fuzz_smoke(seconds, target.as_deref()),
        Cmd::GenVocab { model, out } => vocab::gen_vocab(&model, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}
