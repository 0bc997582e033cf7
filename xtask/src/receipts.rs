//! `cargo xtask verify-receipt`: core's rules on a receipt file, with the
//! bandwidth ceiling of its fingerprint and an optional allowlist.
//!
//! Exit codes: 0 accepted; 1 the file or allowlist could not be read; 2 bad
//! command line (clap); 10 not a receipt ([`ParseError::EXIT_CODE`]); 11..
//! one per rule ([`bitnet_core::receipt::Rejection::exit_code`]).

use std::path::Path;
use std::process::ExitCode;

use bitnet_core::receipt::{ParseError, verify};
use bitnet_std::receipt::{Allowlist, ReceiptError, policy_for, read_receipt};

/// Exit code when a file could not be read (receipt or allowlist).
pub const EXIT_IO: u8 = 1;

/// Verifies the receipt at `path`: `Ok(summary)` or `Err((exit code,
/// message))`.
pub fn verify_file(
    path: &Path,
    require_gpu_kernels: bool,
    allowlist: Option<&Path>,
) -> Result<String, (u8, String)> {
    let allowlist = allowlist
        .map(Allowlist::load)
        .transpose()
        .map_err(|e| (EXIT_IO, e.to_string()))?;
    let receipt = read_receipt(path).map_err(|e| match e {
        ReceiptError::Parse { .. } => (ParseError::EXIT_CODE, e.to_string()),
        other => (EXIT_IO, other.to_string()),
    })?;
    let policy = policy_for(&receipt, allowlist.as_ref(), require_gpu_kernels);
    verify(&receipt, &policy).map_err(|rej| (rej.exit_code(), rej.to_string()))?;
    let kernels: Vec<&str> = receipt.kernels.iter().map(|k| k.id.as_str()).collect();
    Ok(format!(
        "receipt OK: schema {}, backend {}, {} tokens at {:.2} tokens/s, kernels [{}]",
        receipt.schema_version,
        receipt.backend,
        receipt.tokens.generated,
        receipt.timings.tokens_per_sec,
        kernels.join(", ")
    ))
}

/// The command: prints the verdict and exits with its code.
pub fn verify_receipt(
    path: &Path,
    require_gpu_kernels: bool,
    allowlist: Option<&Path>,
) -> ExitCode {
    match verify_file(path, require_gpu_kernels, allowlist) {
        Ok(summary) => {
            println!("{}: {summary}", path.display());
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!(
                "{}: receipt rejected (exit {code}): {message}",
                path.display()
            );
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root;

    #[test]
    fn exit_codes_of_the_command() {
        let golden = root().join("tests/golden/receipts/receipt-1.1.0.json");
        let list = root().join("ci/known_fast_gpus.yml");
        assert!(verify_file(&golden, false, Some(&list)).is_ok());
        assert_eq!(verify_file(&golden, true, Some(&list)).unwrap_err().0, 20);

        let dir = std::env::temp_dir().join(format!("xtask-receipts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = std::fs::read_to_string(&golden).unwrap();
        let tampered = dir.join("mock.json");
        std::fs::write(&tampered, text.replace("\"real\"", "\"mock\"")).unwrap();
        let (code, msg) = verify_file(&tampered, false, None).unwrap_err();
        assert_eq!(
            (code, msg.as_str()),
            (14, "compute_path is \"mock\", not \"real\"")
        );
        let garbage = dir.join("garbage.json");
        std::fs::write(&garbage, "{\"schema_version\":").unwrap();
        assert_eq!(
            verify_file(&garbage, false, None).unwrap_err().0,
            ParseError::EXIT_CODE
        );
        assert_eq!(
            verify_file(&dir.join("missing.json"), false, None)
                .unwrap_err()
                .0,
            EXIT_IO
        );
        assert_eq!(
            verify_file(&golden, false, Some(&garbage)).unwrap_err().0,
            EXIT_IO
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
