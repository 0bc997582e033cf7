//! `cargo xtask crossval`: our engine against llama.cpp, logit by logit.
//!
//! 1. Setup (`--setup` stops here): builds the reference llama.cpp with
//!    ci/setup-llama.sh (cached; our relu² patch applied), `libbitnet.so`
//!    (`cargo build --release -p bitnet-ffi`) and the C++ harness
//!    ci/crossval/harness.cpp with g++ into `target/crossval/`.
//! 2. For every fixture (and every `--model`), writes the re-encodings
//!    llama.cpp needs (see [`reencode`]) and runs the threshold checks,
//!    `cargo test -p bitnet-std --features crossval --test crossval`, with
//!    `BITNET_GGUF` (our side), `BITNET_CROSSVAL_REF_GGUF` (llama.cpp's
//!    side), `BITNET_CROSSVAL_HARNESS`, `BITNET_CROSSVAL_LIB_PATH` (the
//!    release libbitnet.so's and llama.cpp's library directories, the
//!    harness's whole LD_LIBRARY_PATH) and `BITNET_CROSSVAL_SUMMARY` set.
//! 3. Prints the summary table the tests wrote; fails if any case failed.
//!
//! Thresholds and their derivation: std-ext/tests/crossval.rs and
//! docs/development/validation-framework.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use bitnet_core::gguf::{GgmlType, Gguf, GgufWriter, OwnedValue, TensorSpec};
use bitnet_core::quant::i2s::dequantize_i2s;
use bitnet_core::quant::tq2_0::quantize_row_tq2_0;
use half::{bf16, f16};

use crate::root;
use crate::tools::{Result, run};

/// The fixtures every run covers (tests/models/).
const FIXTURES: [&str; 7] = [
    "stories260K.gguf",
    "bitnet-f32.gguf",
    "bitnet-tq2_0.gguf",
    "bitnet-tq1_0.gguf",
    "bitnet-b1.58-i2s.gguf",
    "shakespeare-i2s.gguf",
    "shakespeare-tq2_0.gguf",
];

/// The GGUF key our llama.cpp patch (ci/crossval/llama-relu2.patch) reads.
const HIDDEN_ACT_KEY: &str = "bitnet.hidden_act";

/// Options of `cargo xtask crossval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only build llama.cpp, libbitnet.so and the harness.
    #[arg(long)]
    setup: bool,
    /// Also check this model (repeatable).
    #[arg(long)]
    model: Vec<PathBuf>,
    /// Skip the tests/models fixtures (only the `--model` files).
    #[arg(long)]
    no_fixtures: bool,
    /// Threads of both engines.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// What the built pieces are.
struct Built {
    harness: PathBuf,
    lib_path: String,
}

/// One comparison: our engine on `ours`, llama.cpp on `reference`.
struct Case {
    label: String,
    ours: PathBuf,
    reference: PathBuf,
}

pub fn crossval(args: &Args) -> Result<()> {
    let root = root();
    let out = root.join("target/crossval");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let built = setup(&root, &out)?;
    if args.setup {
        println!("harness: {}", built.harness.display());
        return Ok(());
    }
    let mut models: Vec<PathBuf> = if args.no_fixtures {
        Vec::new()
    } else {
        FIXTURES
            .iter()
            .map(|m| root.join("tests/models").join(m))
            .collect()
    };
    for m in &args.model {
        // The tests run in std-ext/: pass absolute paths.
        models.push(std::fs::canonicalize(m).map_err(|e| format!("{}: {e}", m.display()))?);
    }
    if models.is_empty() {
        return Err("no models: give --model or drop --no-fixtures".into());
    }
    let mut cases = Vec::new();
    for m in &models {
        cases.extend(plan(m, &out)?);
    }
    let summary = out.join("summary.jsonl");
    let _ = std::fs::remove_file(&summary);
    let mut failed = Vec::new();
    for c in &cases {
        eprintln!("crossval: {}", c.label);
        let ok = run(Command::new("cargo")
            .current_dir(&root)
            .args([
                "test",
                "--quiet",
                "-p",
                "bitnet-std",
                "--features",
                "crossval",
                "--test",
                "crossval",
                "--",
                "--nocapture",
            ])
            .env("BITNET_GGUF", &c.ours)
            .env("BITNET_CROSSVAL_REF_GGUF", &c.reference)
            .env("BITNET_CROSSVAL_HARNESS", &built.harness)
            .env("BITNET_CROSSVAL_SUMMARY", &summary)
            .env("BITNET_CROSSVAL_LABEL", &c.label)
            .env("BITNET_CROSSVAL_THREADS", args.threads.to_string())
            // Not LD_LIBRARY_PATH: `cargo test` prepends target/debug/deps
            // to it, where a debug libbitnet.so of another ABI may lie, and
            // the harness would load that one. The test hands this path to
            // the harness alone.
            .env("BITNET_CROSSVAL_LIB_PATH", &built.lib_path))
        .is_ok();
        if !ok {
            failed.push(c.label.clone());
        }
    }
    print_table(&summary)?;
    if failed.is_empty() {
        println!("crossval: {} cases passed", cases.len());
        Ok(())
    } else {
        Err(format!("crossval failed: {}", failed.join(", ")))
    }
}

/// Builds llama.cpp (cached), libbitnet.so and the harness.
fn setup(root: &Path, out: &Path) -> Result<Built> {
    let script = root.join("ci/setup-llama.sh");
    let o = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !o.status.success() {
        return Err(format!(
            "ci/setup-llama.sh failed ({}):\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let env_sh = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    let dir = env_sh
        .parent()
        .ok_or("ci/setup-llama.sh printed no path")?
        .to_path_buf();
    let llama_src = dir.join("src/vendor/llama.cpp");
    let llama_lib = dir.join("build/bin");

    run(Command::new("cargo")
        .current_dir(root)
        .args(["build", "--release", "-p", "bitnet-ffi"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"));
    let bitnet_lib = target.join("release");

    let harness = out.join("crossval_harness");
    let inc = |p: PathBuf| format!("-I{}", p.display());
    let lib = |p: &Path| {
        [
            format!("-L{}", p.display()),
            format!("-Wl,-rpath,{}", p.display()),
        ]
    };
    run(Command::new("g++")
        .args(["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror"])
        // DT_RPATH, not DT_RUNPATH: searched before LD_LIBRARY_PATH, so the
        // harness finds the release libbitnet.so it was linked against even
        // when run by hand from an environment such as `cargo test`'s.
        .arg("-Wl,--disable-new-dtags")
        .arg(inc(root.join("include")))
        .arg(inc(llama_src.join("include")))
        .arg(inc(llama_src.join("ggml/include")))
        .arg(root.join("ci/crossval/harness.cpp"))
        .arg("-o")
        .arg(&harness)
        .args(lib(&bitnet_lib))
        .arg("-lbitnet")
        .args(lib(&llama_lib))
        .args(["-lllama", "-lggml", "-lggml-base"]))?;
    Ok(Built {
        harness,
        lib_path: format!("{}:{}", bitnet_lib.display(), llama_lib.display()),
    })
}

/// The cases for one model: ours on the file itself against llama.cpp on
/// the file or its re-encoding; for I2_S models also ours on the TQ2_0
/// re-encoding against the same reference (identical arithmetic).
fn plan(model: &Path, out: &Path) -> Result<Vec<Case>> {
    let bytes = std::fs::read(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let g = Gguf::parse(&bytes).map_err(|e| format!("{}: {e}", model.display()))?;
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let has_i2s = g.tensors().iter().any(|t| t.ggml_type == GgmlType::I2S);
    let needs_ref = has_i2s
        || g.architecture() == Some("bitnet-b1.58")
        || g.tensors()
            .iter()
            .any(|t| matches!(t.ggml_type, GgmlType::F16 | GgmlType::BF16));
    let reference = if needs_ref {
        let p = out.join(format!("{stem}.llama.gguf"));
        reencode(&g, &p, Target::Llama).map_err(|e| format!("{}: {e}", model.display()))?;
        p
    } else {
        model.to_path_buf()
    };
    let mut cases = vec![Case {
        label: stem.clone(),
        ours: model.to_path_buf(),
        reference: reference.clone(),
    }];
    if has_i2s {
        let p = out.join(format!("{stem}.tq2_0.gguf"));
        reencode(&g, &p, Target::Ours).map_err(|e| format!("{}: {e}", model.display()))?;
        cases.push(Case {
            label: format!("{stem} (as TQ2_0)"),
            ours: p,
            reference,
        });
    }
    Ok(cases)
}

/// Who reads a re-encoding.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// The reference llama.cpp: I2_S becomes TQ2_0 + `.scale`, F16/BF16
    /// becomes F32, `bitnet-b1.58` becomes `bitnet` with
    /// `bitnet.hidden_act = "relu2"`.
    Llama,
    /// Our engine: only I2_S becomes TQ2_0 + `.scale` (arch kept).
    Ours,
}

/// Writes a copy of `g` to `dst` with the same weight *values* in formats
/// the target reads with llama.cpp's arithmetic:
///
/// - I2_S (ternary `w` and one f32 scale per tensor; stock llama.cpp has no
///   type 36) becomes TQ2_0 blocks of the bare ternaries (block scale
///   `d = 1`, exact in f16) plus the one-element F32 `<name>.scale` tensor
///   llama.cpp's `bitnet` graph multiplies the matmul output by. Exact.
/// - F16 / BF16 tensors become F32 (exact). llama.cpp rounds the activations
///   to f16 before an F16 matmul, our engine keeps them in f32 (see
///   core/src/quant/f16.rs); with F32 weights both multiply f32 by f32.
/// - `bitnet-b1.58` (unknown to llama.cpp) becomes `bitnet` with every
///   `bitnet-b1.58.*` key renamed and `bitnet.hidden_act = "relu2"`, which
///   our patched llama.cpp reads to use relu² instead of SiLU.
fn reencode(g: &Gguf<'_>, dst: &Path, target: Target) -> Result<()> {
    const B158: &str = "bitnet-b1.58";
    let arch = g.architecture().unwrap_or("");
    let rename = target == Target::Llama && arch == B158;
    if rename && g.tensor("output.weight").is_some() {
        return Err(
            "llama.cpp's bitnet arch always ties the LM head to token_embd; \
                    this bitnet-b1.58 file has a separate output.weight"
                .into(),
        );
    }
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        let v = v.to_owned_value().map_err(|e| e.to_string())?;
        match *k {
            "general.architecture" if rename => {
                w.kv(k, OwnedValue::String("bitnet".into()));
            }
            // It names the source's storage type, which changed.
            "general.file_type" => {}
            // The same pre-tokenizer under the name llama.cpp knows (our
            // tokenizer accepts both; llama.cpp refuses to load "gpt2").
            "tokenizer.ggml.pre"
                if target == Target::Llama && v == OwnedValue::String("gpt2".into()) =>
            {
                w.kv(k, OwnedValue::String("gpt-2".into()));
            }
            _ => match k.strip_prefix(B158).filter(|_| rename) {
                Some(rest) => {
                    w.kv(&format!("bitnet{rest}"), v);
                }
                None => {
                    w.kv(k, v);
                }
            },
        }
    }
    if rename {
        w.kv(HIDDEN_ACT_KEY, OwnedValue::String("relu2".into()));
    }
    for t in g.tensors() {
        let data = g.tensor_data(t);
        let spec = |ggml_type, data| TensorSpec {
            name: t.name.to_string(),
            ggml_type,
            dims: t.dims.clone(),
            data,
        };
        match t.ggml_type {
            GgmlType::I2S => {
                let (tq2, scale) = i2s_to_tq2_0(t.name, &t.dims, data)?;
                w.tensor(spec(GgmlType::TQ2_0, tq2));
                let base = t.name.strip_suffix(".weight").unwrap_or(t.name);
                let scale_name = format!("{base}.scale");
                if g.tensor(&scale_name).is_some() {
                    return Err(format!("{}: I2_S tensor with a {scale_name}", t.name));
                }
                w.tensor(TensorSpec {
                    name: scale_name,
                    ggml_type: GgmlType::F32,
                    dims: vec![1],
                    data: scale.to_le_bytes().to_vec(),
                });
            }
            GgmlType::F16 if target == Target::Llama => {
                let f = data
                    .chunks_exact(2)
                    .flat_map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32().to_le_bytes());
                w.tensor(spec(GgmlType::F32, f.collect()));
            }
            GgmlType::BF16 if target == Target::Llama => {
                let f = data
                    .chunks_exact(2)
                    .flat_map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32().to_le_bytes());
                w.tensor(spec(GgmlType::F32, f.collect()));
            }
            ty => {
                w.tensor(spec(ty, data.to_vec()));
            }
        }
    }
    let bytes = w.to_bytes().map_err(|e| e.to_string())?;
    // Round trip through our own loader before writing.
    let back = Gguf::parse(&bytes).map_err(|e| format!("re-encoding: {e}"))?;
    if target == Target::Ours {
        bitnet_core::model::Model::from_gguf(&back).map_err(|e| format!("re-encoding: {e}"))?;
    }
    std::fs::write(dst, &bytes).map_err(|e| format!("{}: {e}", dst.display()))
}

/// An I2_S tensor (`dims = [K, M]`) as TQ2_0 rows of its bare ternaries,
/// and the I2_S scale.
fn i2s_to_tq2_0(name: &str, dims: &[u64], data: &[u8]) -> Result<(Vec<u8>, f32)> {
    let [k, m] = dims else {
        return Err(format!("{name}: I2_S tensor with {} dims", dims.len()));
    };
    let (k, m) = (
        usize::try_from(*k).map_err(|e| e.to_string())?,
        usize::try_from(*m).map_err(|e| e.to_string())?,
    );
    if k % 256 != 0 {
        return Err(format!(
            "{name}: row length {k} is not a multiple of 256, TQ2_0 cannot hold it"
        ));
    }
    let n = k.checked_mul(m).ok_or("I2_S tensor size overflows")?;
    let mut scaled = vec![0f32; n];
    dequantize_i2s(data, m, k, &mut scaled).map_err(|e| format!("{name}: {e}"))?;
    let scale = bitnet_core::quant::i2s::i2s_scale(data, m, k).map_err(|e| e.to_string())?;
    // dequantize gives `w * scale` exactly (w in {-1, 0, 1}); take w back.
    let plain: Vec<f32> = scaled
        .iter()
        .map(|&x| {
            if x == 0.0 {
                0.0
            } else if (x > 0.0) == (scale > 0.0) {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    let mut out = vec![0u8; n / 256 * 66];
    quantize_row_tq2_0(&plain, &mut out).map_err(|e| format!("{name}: {e}"))?;
    Ok((out, scale))
}

/// Prints the rows the tests appended to `summary` (one JSON object per
/// line) as a table.
fn print_table(summary: &Path) -> Result<()> {
    let text = std::fs::read_to_string(summary).unwrap_or_default();
    let cols = [
        ("model", 34),
        ("format", 16),
        ("positions", 9),
        ("<= 1e-3", 7),
        ("min corr", 10),
        ("(bound)", 7),
        ("max abs err", 11),
        ("(bound)", 7),
        ("matching tokens", 15),
        ("result", 6),
    ];
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (c, (_, w)) in cells.iter().zip(cols) {
            s.push_str(&format!(" {c:<w$} |"));
        }
        s
    };
    println!();
    println!("{}", line(&cols.map(|(n, _)| n.to_string())));
    println!("{}", line(&cols.map(|(_, w)| "-".repeat(w))));
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(l).map_err(|e| format!("{}: {e}", summary.display()))?;
        let s = |k: &str| match &v[k] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!(
            "{}",
            line(&[
                s("label"),
                s("format"),
                s("positions"),
                s("float_level"),
                format!("{:.7}", v["min_corr"].as_f64().unwrap_or(f64::NAN)),
                s("corr_bound"),
                format!("{:.2e}", v["max_abs_err"].as_f64().unwrap_or(f64::NAN)),
                format!("{:.0e}", v["bound"].as_f64().unwrap_or(f64::NAN)),
                s("matching_tokens"),
                s("result"),
            ])
        );
    }
    println!();
    Ok(())
}

#[cfg(test)]
mod tests {
    use bitnet_core::quant::i2s::quantize_i2s;
    use bitnet_core::quant::tq2_0::dequantize_row_tq2_0;

    use super::*;

    /// I2_S -> TQ2_0 keeps every ternary and the scale exactly, including
    /// an all-zero block and a negative scale.
    #[test]
    fn i2s_to_tq2_0_is_exact() {
        let (rows, cols) = (3, 512);
        let mut w: Vec<i8> = (0..rows * cols).map(|i| (i * 7 % 3) as i8 - 1).collect();
        w[256..512].fill(0);
        for scale in [0.0625f32, -1.5] {
            let i2s = quantize_i2s(&w, scale, rows, cols).unwrap();
            let dims = [cols as u64, rows as u64];
            let (tq2, s) = i2s_to_tq2_0("t", &dims, &i2s).unwrap();
            assert_eq!(s, scale);
            let mut back = vec![0f32; rows * cols];
            dequantize_row_tq2_0(&tq2, &mut back).unwrap();
            let want: Vec<f32> = w.iter().map(|&x| f32::from(x)).collect();
            assert_eq!(back, want);
        }
    }

    /// The llama.cpp re-encoding of the bitnet-b1.58 I2_S fixture: arch
    /// `bitnet` with relu² selected, no `bitnet-b1.58.*` key left, F32
    /// embedding with the same values, TQ2_0 projections with their scales.
    #[test]
    fn llama_reencoding_of_the_i2s_fixture() {
        let src = std::fs::read(root().join("tests/models/bitnet-b1.58-i2s.gguf")).unwrap();
        let g = Gguf::parse(&src).unwrap();
        let dst = std::env::temp_dir().join(format!("crossval-test-{}.gguf", std::process::id()));
        reencode(&g, &dst, Target::Llama).unwrap();
        let bytes = std::fs::read(&dst).unwrap();
        std::fs::remove_file(&dst).unwrap();
        let r = Gguf::parse(&bytes).unwrap();
        assert_eq!(r.architecture(), Some("bitnet"));
        assert_eq!(r.get_str(HIDDEN_ACT_KEY).unwrap(), "relu2");
        assert!(
            r.metadata()
                .iter()
                .all(|(k, _)| !k.starts_with("bitnet-b1.58"))
        );
        assert_eq!(
            r.get_usize("bitnet.block_count").unwrap(),
            g.get_usize("bitnet-b1.58.block_count").unwrap()
        );
        let (e0, e1) = (
            g.tensor("token_embd.weight").unwrap(),
            r.tensor("token_embd.weight").unwrap(),
        );
        assert_eq!((e0.ggml_type, e1.ggml_type), (GgmlType::F16, GgmlType::F32));
        let (a, b) = (g.tensor_data(e0), r.tensor_data(e1));
        assert!(a.chunks_exact(2).zip(b.chunks_exact(4)).all(|(h, f)| {
            f16::from_le_bytes([h[0], h[1]]).to_f32()
                == f32::from_le_bytes([f[0], f[1], f[2], f[3]])
        }));
        let q = r.tensor("blk.0.attn_q.weight").unwrap();
        assert_eq!(q.ggml_type, GgmlType::TQ2_0);
        let scale = r.tensor("blk.0.attn_q.scale").unwrap();
        let i2s = g.tensor("blk.0.attn_q.weight").unwrap();
        let (k, m) = (i2s.dims[0] as usize, i2s.dims[1] as usize);
        let want = bitnet_core::quant::i2s::i2s_scale(g.tensor_data(i2s), m, k).unwrap();
        assert_eq!(r.tensor_data(scale), want.to_le_bytes());
    }

    /// Rows TQ2_0 cannot hold are refused with a message, not a panic.
    #[test]
    fn i2s_to_tq2_0_refuses_short_rows() {
        let w = vec![1i8; 2 * 128];
        let i2s = quantize_i2s(&w, 1.0, 2, 128).unwrap();
        let e = i2s_to_tq2_0("t", &[128, 2], &i2s).unwrap_err();
        assert!(e.contains("multiple of 256"), "{e}");
    }
}
