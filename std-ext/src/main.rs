//! The `bitnet` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

use bitnet_std::inspect::Report;
use bitnet_std::{Error, ModelFile};
use clap::{Parser, Subcommand};

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
    /// Summarize a GGUF file: metadata, tensors, totals.
    Inspect {
        /// The GGUF file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Inspect { file, json } => inspect(file, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
