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
    recompute_model: Option<&Path>,
) -> ExitCode {
    let result =
        verify_file(path, require_gpu_kernels, allowlist).and_then(
            |summary| match recompute_model {
                Some(m) => recompute(path, m).map(|r| format!("{summary}; {r}")),
                None => Ok(summary),
            },
        );
    match result {
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

/// Exit code when `--recompute` generates other tokens than the receipt's.
pub const EXIT_RECOMPUTE_MISMATCH: u8 = 29;
/// Exit code when `--recompute` cannot re-run the receipt (no prompt ids,
/// another model file, a backend this build lacks).
pub const EXIT_RECOMPUTE_IMPOSSIBLE: u8 = 30;

/// Re-runs the model from the receipt's settings (prompt ids, requested
/// tokens, threads, seed, greedy or not) on `model` and checks that the
/// generated-token hash is the receipt's: a challenge a third party can run.
pub fn recompute(path: &Path, model: &Path) -> Result<String, (u8, String)> {
    use bitnet_core::kernels::KernelChoice;
    use bitnet_std::ModelFile;
    use bitnet_std::bench::{ReceiptRunSpec, receipt_run};
    use bitnet_std::engine::{Loaded, platform};
    use bitnet_std::receipt::sha256;

    let impossible = |m: String| (EXIT_RECOMPUTE_IMPOSSIBLE, m);
    let r = read_receipt(path).map_err(|e| impossible(e.to_string()))?;
    if r.backend.as_str() != "cpu" {
        return Err(impossible(format!(
            "backend '{}' cannot be re-run here (cpu only)",
            r.backend
        )));
    }
    let prompt: Vec<u32> = r
        .prompt_ids
        .as_ref()
        .ok_or_else(|| impossible("the receipt records no prompt_ids".into()))?
        .to_vec();
    let file = ModelFile::open(model).map_err(|e| impossible(e.to_string()))?;
    let digest: String = sha256(file.bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != r.model.sha256.as_str() {
        return Err(impossible(format!(
            "{} has sha256 {digest}, the receipt's model has {}",
            model.display(),
            r.model.sha256
        )));
    }
    let loaded = Loaded::new(&file).map_err(|e| impossible(e.to_string()))?;
    let spec = ReceiptRunSpec {
        n_gen: r.tokens.requested as usize,
        threads: r.threads.max(1) as usize,
        platform: platform(KernelChoice::Auto).map_err(|e| impossible(e.to_string()))?,
        deterministic: r.deterministic,
        seed: r.seed,
        load_ms: 0.0,
    };
    let run =
        receipt_run(&file, &loaded.model, &prompt, &spec).map_err(|e| impossible(e.to_string()))?;
    let (got, want) = (
        run.receipt.tokens.generated_ids_fnv1a64.as_str(),
        r.tokens.generated_ids_fnv1a64.as_str(),
    );
    if got != want {
        return Err((
            EXIT_RECOMPUTE_MISMATCH,
            format!("re-run generated token hash {got}, the receipt says {want}"),
        ));
    }
    Ok(format!(
        "recomputed {} tokens: hash {got} matches",
        run.generated.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root;

    #[test]
    fn recompute_checks_the_token_hash() {
        use bitnet_core::kernels::KernelChoice;
        use bitnet_std::ModelFile;
        use bitnet_std::bench::{ReceiptRunSpec, receipt_run};
        use bitnet_std::engine::{Loaded, platform};
        use bitnet_std::receipt::write_receipt;

        let model = root().join(crate::benchmark::DEFAULT_MODEL);
        let file = ModelFile::open(&model).unwrap();
        let loaded = Loaded::new(&file).unwrap();
        let spec = ReceiptRunSpec {
            n_gen: 16,
            threads: 2,
            platform: platform(KernelChoice::Auto).unwrap(),
            deterministic: true,
            seed: 42,
            load_ms: 1.0,
        };
        let run = receipt_run(&file, &loaded.model, &[1023, 813, 58], &spec).unwrap();
        let dir = std::env::temp_dir().join(format!("xtask-recompute-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        write_receipt(&good, &run.receipt).unwrap();
        assert!(recompute(&good, &model).is_ok());
        // Another prompt (a receipt whose tokens came from elsewhere).
        let mut other = run.receipt.clone();
        other.prompt_ids = Some(heapless::Vec::from_slice(&[1023, 813, 59]).unwrap());
        let p = dir.join("other.json");
        write_receipt(&p, &other).unwrap();
        assert_eq!(
            recompute(&p, &model).unwrap_err().0,
            EXIT_RECOMPUTE_MISMATCH
        );
        // No prompt ids, or another model file: cannot recompute.
        other.prompt_ids = None;
        write_receipt(&p, &other).unwrap();
        assert_eq!(
            recompute(&p, &model).unwrap_err().0,
            EXIT_RECOMPUTE_IMPOSSIBLE
        );
        let stories = root().join("tests/models/stories260K.gguf");
        assert_eq!(
            recompute(&good, &stories).unwrap_err().0,
            EXIT_RECOMPUTE_IMPOSSIBLE
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
