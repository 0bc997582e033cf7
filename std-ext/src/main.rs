//! The `bitnet` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

use bitnet_core::tokenizer::{EncodeOptions, Tokenizer};
use bitnet_std::inspect::Report;
use bitnet_std::{Error, ModelFile};
use clap::{Parser, Subcommand};

mod cli_run;

#[derive(Parser)]
#[command(
    name = "bitnet",
    version,
    about = "Run BitNet b1.58 ternary language models"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate text from a prompt.
    Run(cli_run::RunArgs),
    /// Write the logits of every position of a token sequence to .npy.
    Logits(cli_run::LogitsArgs),
    /// Chat interactively (BitNet-b1.58-2B-4T chat format).
    Chat(cli_run::ChatArgs),
    /// Measure prompt (pp) and generation (tg) throughput, llama-bench style.
    Bench(cli_run::BenchArgs),
    /// Perplexity of a text file (llama-perplexity's convention).
    Perplexity(cli_run::PerplexityArgs),
    /// Summarize a GGUF file: metadata, tensors, totals.
    Inspect {
        /// The GGUF file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a model against the validation rules (docs/howto/validate-models.md).
    /// Exit 0: no error-level finding (or not strict); 1: unreadable model or
    /// policy; 3: strict mode refused the model.
    Validate {
        /// The GGUF file.
        file: PathBuf,
        /// Refuse (exit 3) on any error-level finding; also BITNET_STRICT=1.
        #[arg(long)]
        strict: bool,
        /// A correction policy (YAML).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Apply the policy's corrections; also BITNET_ALLOW_CORRECTIONS=1.
        #[arg(long)]
        allow_corrections: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Tokenize text with a model's vocabulary.
    Tokenize {
        /// The GGUF file holding the vocabulary.
        #[arg(short = 'm', long = "model")]
        model: PathBuf,
        /// The text.
        text: String,
        /// Print a JSON array of ids only (default: one `id  'piece'` per line).
        #[arg(long)]
        ids: bool,
        /// Prepend BOS.
        #[arg(long)]
        add_bos: bool,
        /// Match special-token texts (e.g. `<|eot_id|>`) as those tokens.
        #[arg(long)]
        parse_special: bool,
    },
}

fn inspect(file: PathBuf, json: bool) -> Result<(), Error> {
    let mf = ModelFile::open(&file)?;
    let g = mf.gguf()?;
    let report = Report::new(&g, mf.bytes().len() as u64);
    if json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Render(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn tokenize(
    model: PathBuf,
    text: &str,
    ids: bool,
    add_bos: bool,
    parse_special: bool,
) -> Result<(), Error> {
    let mf = ModelFile::open(&model)?;
    let g = mf.gguf()?;
    let tok = Tokenizer::from_gguf(&g)?;
    let opts = EncodeOptions {
        add_bos,
        add_eos: false,
        parse_special,
    };
    let out = tok.encode(text, opts)?;
    if ids {
        let list: Vec<String> = out.iter().map(u32::to_string).collect();
        println!("[{}]", list.join(", "));
    } else {
        for id in out {
            let piece = tok.token_bytes(id, true)?;
            println!("{id}  {}", quote_piece(piece));
        }
    }
    Ok(())
}

/// A token's piece between single quotes, as llama.cpp's `llama-tokenize`
/// prints it (`%6d -> '%s'`), but always on one line and readable:
/// control characters are escaped (`\n`, `\t`, `\u{85}`), a backslash is
/// doubled, and bytes that are not UTF-8 on their own (byte-fallback tokens,
/// part of a character) are written `\xNN`. A `'` inside stays as it is:
/// the piece runs from the first quote to the last.
fn quote_piece(bytes: &[u8]) -> String {
    let mut s = String::from("'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' || c.is_control() {
                s.extend(c.escape_default());
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('\'');
    s
}

fn main() -> ExitCode {
    // llama.cpp spells the GPU layer count `-ngl` (one dash, several
    // letters), which clap cannot declare: read it as `--n-gpu-layers`.
    let cli = Cli::parse_from(std::env::args_os().map(|a| {
        if a == "-ngl" {
            "--n-gpu-layers".into()
        } else {
            a
        }
    }));
    let result = match cli.cmd {
        Cmd::Inspect { file, json } => inspect(file, json),
        Cmd::Validate {
            file,
            strict,
            policy,
            allow_corrections,
            json,
        } => {
            return bitnet_std::validate_cmd::command(
                &file,
                strict,
                policy.as_deref(),
                allow_corrections,
                json,
            );
        }
        Cmd::Run(a) => cli_run::run(a),
        Cmd::Logits(a) => cli_run::logits(a),
        Cmd::Chat(a) => cli_run::chat(a),
        Cmd::Bench(a) => cli_run::bench_cmd(a),
        Cmd::Perplexity(a) => cli_run::perplexity(a),
        Cmd::Tokenize {
            model,
            text,
            ids,
            add_bos,
            parse_special,
        } => tokenize(model, &text, ids, add_bos, parse_special),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                Error::Refused(_) => ExitCode::from(bitnet_std::validate_cmd::EXIT_REFUSED),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
