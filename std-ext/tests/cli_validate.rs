//! `bitnet validate` end to end: good fixtures pass strict mode; each broken
//! variant (written from a good fixture with `GgufWriter`) makes
//! `--strict` (or `BITNET_STRICT=1`) exit 3 with a message naming the rule
//! and the tensor; a correction policy applies only with permission;
//! `bitnet inspect` lists the findings. Commands that load a model to run
//! it (`bitnet run`, `bitnet bench`) apply the same rules, strictness and
//! corrections, and receipts record the corrections.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bitnet_core::gguf::{Gguf, GgufWriter, OwnedValue, TensorSpec};
use sha2::{Digest, Sha256};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/models")
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_validate");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Re-encodes `fixture` with `edit` applied to its metadata and tensors.
fn variant(
    fixture: &str,
    out: &str,
    edit: impl FnOnce(&mut Vec<(String, OwnedValue)>, &mut Vec<TensorSpec>),
) -> PathBuf {
    let bytes = std::fs::read(models().join(fixture)).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let mut kvs: Vec<(String, OwnedValue)> = g
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_owned_value().unwrap()))
        .collect();
    let mut tensors: Vec<TensorSpec> = g
        .tensors()
        .iter()
        .map(|t| TensorSpec {
            name: t.name.to_string(),
            ggml_type: t.ggml_type,
            dims: t.dims.clone(),
            data: g.tensor_data(t).to_vec(),
        })
        .collect();
    edit(&mut kvs, &mut tensors);
    let mut w = GgufWriter::new();
    for (k, v) in kvs {
        w.kv(&k, v);
    }
    for t in tensors {
        w.tensor(t);
    }
    // Several tests build the same variants in parallel while others run
    // `bitnet` on them, which maps the file: write a private file and rename
    // it into place, so a mapped file is never truncated under a reader
    // (that would be SIGBUS).
    let path = scratch(out);
    let tmp = scratch(&format!("{out}.{:?}.tmp", std::thread::current().id()));
    std::fs::write(&tmp, w.to_bytes().unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn tensor<'t>(ts: &'t mut [TensorSpec], name: &str) -> &'t mut Vec<u8> {
    &mut ts.iter_mut().find(|t| t.name == name).unwrap().data
}

fn scale_f32(d: &mut [u8], k: f32) {
    for c in d.chunks_exact_mut(4) {
        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * k;
        c.copy_from_slice(&v.to_le_bytes());
    }
}

fn bitnet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitnet"));
    cmd.args(args)
        .env_remove("BITNET_STRICT")
        .env_remove("BITNET_ALLOW_CORRECTIONS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The float fixture with one norm scaled by 100: (file, rule, tensor).
fn norm_x100() -> (PathBuf, &'static str, &'static str) {
    (
        variant("bitnet-f32.gguf", "norm_x100.gguf", |_, t| {
            scale_f32(tensor(t, "blk.0.attn_norm.weight"), 100.0)
        }),
        "norm.rms",
        "blk.0.attn_norm.weight",
    )
}

/// The float fixture with `blk.1.ffn_norm.weight` x128, and a policy
/// keyed to its SHA-256 that rescales it back: (model, policy).
fn norm_x128_and_policy() -> (PathBuf, PathBuf) {
    let path = variant("bitnet-f32.gguf", "norm_x128.gguf", |_, t| {
        scale_f32(tensor(t, "blk.1.ffn_norm.weight"), 128.0)
    });
    let digest = format!("{:x}", Sha256::digest(std::fs::read(&path).unwrap()));
    let policy = scratch("norm_x128.yml");
    let tmp = scratch(&format!(
        "norm_x128.yml.{:?}.tmp",
        std::thread::current().id()
    ));
    std::fs::write(
        &tmp,
        format!(
            "corrections:\n  - match: {{sha256: \"{digest}\"}}\n    reason: exported x128\n    apply:\n      - rescale: {{tensor: blk.1.ffn_norm.weight, factor: 0.0078125}}\n"
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, &policy).unwrap();
    (path, policy)
}

/// The issue's broken fixtures: (file, rule id, tensor or key).
fn broken() -> Vec<(PathBuf, &'static str, &'static str)> {
    vec![
        norm_x100(),
        (
            variant("bitnet-b1.58-i2s.gguf", "nan_scale.gguf", |_, t| {
                let at = 256 * 256 / 4;
                tensor(t, "blk.1.attn_q.weight")[at..at + 4]
                    .copy_from_slice(&f32::NAN.to_le_bytes());
            }),
            "quant.scale",
            "blk.1.attn_q.weight",
        ),
        (
            variant("bitnet-b1.58-i2s.gguf", "i2s_code3.gguf", |_, t| {
                tensor(t, "blk.2.ffn_down.weight")[100] = 0xff;
            }),
            "quant.ternary_code",
            "blk.2.ffn_down.weight",
        ),
        (
            variant("bitnet-f32.gguf", "zeroed_proj.gguf", |_, t| {
                tensor(t, "blk.1.ffn_down.weight").fill(0);
            }),
            "proj.rms",
            "blk.1.ffn_down.weight",
        ),
        (
            variant("bitnet-f32.gguf", "vocab_mismatch.gguf", |kv, _| {
                kv.push(("bitnet.vocab_size".into(), OwnedValue::U32(600)));
            }),
            "meta.vocab",
            "bitnet.vocab_size",
        ),
        (
            variant("bitnet-b1.58-i2s.gguf", "unknown_act.gguf", |kv, _| {
                kv.push((
                    "bitnet-b1.58.hidden_act".into(),
                    OwnedValue::String("gelu_fancy".into()),
                ));
            }),
            "meta.activation",
            "bitnet-b1.58.hidden_act",
        ),
    ]
}

#[test]
fn good_fixtures_pass_strict() {
    for name in [
        "bitnet-f32.gguf",
        "bitnet-tq2_0.gguf",
        "bitnet-tq1_0.gguf",
        "bitnet-b1.58-i2s.gguf",
        "stories260K.gguf",
        "shakespeare-i2s.gguf",
        "shakespeare-tq2_0.gguf",
    ] {
        let path = models().join(name);
        let o = bitnet(&["validate", p(&path), "--strict"], &[]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
        assert!(
            text(&o).contains("0 error(s), 0 warning(s): ok"),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn strict_refuses_each_broken_fixture_naming_rule_and_tensor() {
    for (path, rule, subject) in broken() {
        for (args, env) in [
            (vec!["validate", p(&path), "--strict"], vec![]),
            (vec!["validate", p(&path)], vec![("BITNET_STRICT", "1")]),
        ] {
            let o = bitnet(&args, &env);
            assert_eq!(o.status.code(), Some(3), "{}: {}", path.display(), text(&o));
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("refusing") && err.contains(&format!("[{rule}] {subject}")),
                "{}: {err}",
                path.display()
            );
        }
        // Not strict: the findings are printed, the exit code is 0.
        let o = bitnet(&["validate", p(&path)], &[]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(
            text(&o).contains(&format!("error [{rule}] {subject}")),
            "{}",
            text(&o)
        );
        // JSON names the same rule and subject.
        let o = bitnet(&["validate", p(&path), "--json"], &[]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let hit = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == rule && f["subject"] == subject && f["severity"] == "error");
        assert!(hit, "{v:#}");
    }
}

#[test]
fn corrections_need_the_policy_and_the_permission() {
    let (path, policy) = norm_x128_and_policy();
    let file = p(&path);
    let pol = p(&policy);
    let o = bitnet(&["validate", file, "--strict", "--policy", pol], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("[policy.correction]"), "{}", text(&o));
    let o = bitnet(&["validate", file, "--strict", "--allow-corrections"], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    for (args, env) in [
        (
            vec![
                "validate",
                file,
                "--strict",
                "--policy",
                pol,
                "--allow-corrections",
            ],
            vec![],
        ),
        (
            vec!["validate", file, "--strict", "--policy", pol],
            vec![("BITNET_ALLOW_CORRECTIONS", "1")],
        ),
    ] {
        let o = bitnet(&args, &env);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(
            text(&o).contains("correction applied: rescale blk.1.ffn_norm.weight = 0.0078125"),
            "{}",
            text(&o)
        );
    }
    let o = bitnet(
        &[
            "validate",
            file,
            "--policy",
            pol,
            "--allow-corrections",
            "--json",
        ],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["corrections"][0]["matched_by"], "sha256");
    assert_eq!(v["errors"], 0);
}

#[test]
fn unreadable_policy_or_model_exits_one() {
    let bad = scratch("bad.yml");
    std::fs::write(&bad, "corrections: 3\n").unwrap();
    let model = models().join("bitnet-f32.gguf");
    let o = bitnet(&["validate", p(&model), "--policy", p(&bad)], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("corrections must be a list"),
        "{}",
        text(&o)
    );
    let o = bitnet(&["validate", "/nonexistent.gguf"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// `bitnet run` loads through the same rules: strict (`--strict` or
/// `BITNET_STRICT=1`) refuses the broken fixture with exit 3 and the rule
/// and tensor on stderr, before generating anything; not strict, the
/// finding goes to stderr and the run completes.
#[test]
fn run_applies_the_rules_when_loading() {
    let (path, rule, subject) = norm_x100();
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let args = ["run", "-m", p(&path), "--tokens", "1,2", "-n", "2"];
        bitnet(&[&args[..], extra].concat(), env)
    };
    for (extra, env) in [
        (&["--strict"][..], &[][..]),
        (&[], &[("BITNET_STRICT", "1")]),
    ] {
        let o = run(extra, env);
        assert_eq!(o.status.code(), Some(3), "{extra:?} {env:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("refusing") && err.contains(&format!("[{rule}] {subject}")),
            "{err}"
        );
        assert!(o.stdout.is_empty(), "{}", text(&o));
    }
    let o = run(&[], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("error [{rule}] {subject}")), "{err}");
    assert!(!err.contains("refusing"), "{err}");
}

/// `bitnet bench --receipt`: with a matching policy and permission the
/// correction is applied (a strict load then passes) and the receipt lists
/// it; without permission it is a warning, not applied, and the receipt
/// has no `corrections`; strict without permission refuses.
#[test]
fn bench_receipt_records_corrections_only_when_allowed() {
    let (path, policy) = norm_x128_and_policy();
    let bench = |receipt: &Path, extra: &[&str]| {
        let _ = std::fs::remove_file(receipt);
        let args = [
            "bench",
            "-m",
            p(&path),
            "-p",
            "0",
            "-n",
            "2",
            "-r",
            "1",
            "--receipt",
            p(receipt),
            "--policy",
            p(&policy),
        ];
        bitnet(&[&args[..], extra].concat(), &[])
    };
    let read = |receipt: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(receipt).unwrap()).unwrap()
    };

    let allowed = scratch("bench_allowed.json");
    let o = bench(&allowed, &["--allow-corrections", "--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = read(&allowed);
    let c = &v["corrections"];
    assert_eq!(c.as_array().map(Vec::len), Some(1), "{v:#}");
    assert_eq!(c[0]["kind"], "rescale");
    assert_eq!(c[0]["target"], "blk.1.ffn_norm.weight");
    assert_eq!(c[0]["value"], "0.0078125");
    assert_eq!(c[0]["matched_by"], "sha256");

    let not_allowed = scratch("bench_not_allowed.json");
    let o = bench(&not_allowed, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("[policy.correction]") && err.contains("not applied"),
        "{err}"
    );
    assert!(
        err.contains("error [norm.rms] blk.1.ffn_norm.weight"),
        "{err}"
    );
    let v = read(&not_allowed);
    assert!(v.get("corrections").is_none(), "{v:#}");

    let o = bench(&scratch("bench_refused.json"), &["--strict"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("[norm.rms] blk.1.ffn_norm.weight"),
        "{}",
        text(&o)
    );
}

#[test]
fn inspect_lists_the_findings() {
    let (path, rule, subject) = norm_x100();
    let o = bitnet(&["inspect", p(&path)], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("error [{rule}] {subject}")),
        "{}",
        text(&o)
    );
    let o = bitnet(&["inspect", p(&path), "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == rule)
    );
    let good = models().join("bitnet-b1.58-i2s.gguf");
    let o = bitnet(&["inspect", p(&good)], &[]);
    assert!(text(&o).contains("findings (0;"), "{}", text(&o));
}
