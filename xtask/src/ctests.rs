//! `cargo xtask c-tests`: the C ABI's gate.
//!
//! 1. Regenerates `include/bitnet.h` with the pinned cbindgen (installed
//!    with `cargo install --locked` when missing) and fails if the checked-in
//!    header differs (`--bless` writes it instead).
//! 2. Builds `libbitnet.so` / `libbitnet.a` (release, with the test-only
//!    `test-panic` feature) in a Cargo target directory of its own,
//!    `target/c-tests/lib/` (the library under test is in
//!    `target/c-tests/lib/release/`), so the `target/release/libbitnet.so`
//!    that users and `cargo xtask crossval` link never carries the test
//!    export `bitnet_test_panic`. Writes `bitnet.pc` for that library and,
//!    for users (README), `target/release/bitnet.pc` describing the
//!    `cargo build --release -p bitnet-ffi` library.
//! 3. Compiles the C and C++ tests and examples with gcc/g++ (flags from
//!    that pkg-config file) and runs them on each model plainly, under
//!    Valgrind memcheck (`--error-exitcode=1 --leak-check=full`, with the
//!    suppressions of ffi/tests/c/valgrind.supp) and built with
//!    AddressSanitizer + UBSan (the Rust library is linked as usual: ASAN's
//!    runtime in the executable intercepts its allocations too). The C test
//!    also runs linked against the static library.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::root;
use crate::tools::{Result, run};

/// The cbindgen that generates include/bitnet.h. Changing it may change the
/// header: regenerate with `cargo xtask c-tests --bless` in the same commit.
pub const CBINDGEN_VERSION: &str = "0.29.2";

/// Options of `cargo xtask c-tests`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the regenerated header to include/bitnet.h instead of failing
    /// when it differs.
    #[arg(long)]
    bless: bool,
    /// Skip the Valgrind runs.
    #[arg(long)]
    no_valgrind: bool,
    /// Skip the AddressSanitizer runs.
    #[arg(long)]
    no_asan: bool,
    /// Model the tests load; repeat to run on several (default: the float
    /// llama tests/models/stories260K.gguf and the I2_S bitnet-b1.58
    /// tests/models/shakespeare-i2s.gguf).
    #[arg(long)]
    model: Vec<PathBuf>,
}

/// A test program: its source, its compiler and extra flags.
struct Program {
    name: &'static str,
    source: &'static str,
    cpp: bool,
}

const PROGRAMS: [Program; 4] = [
    Program {
        name: "api_test",
        source: "ffi/tests/c/api_test.c",
        cpp: false,
    },
    Program {
        name: "threads_test",
        source: "ffi/tests/c/threads_test.c",
        cpp: false,
    },
    Program {
        name: "generate",
        source: "ffi/examples/generate.c",
        cpp: false,
    },
    Program {
        name: "generate_cpp",
        source: "ffi/examples/generate.cpp",
        cpp: true,
    },
];

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"))
}

fn succeeds(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The pinned cbindgen: from PATH when it is that version, else installed.
fn cbindgen() -> Result<PathBuf> {
    let want = format!("cbindgen {CBINDGEN_VERSION}");
    if succeeds(Command::new("cbindgen").arg("--version")).as_deref() == Some(want.as_str()) {
        return Ok(PathBuf::from("cbindgen"));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let bin = cargo_home.join("bin/cbindgen");
    if succeeds(Command::new(&bin).arg("--version")).as_deref() != Some(want.as_str()) {
        run(Command::new("cargo").args([
            "install",
            "cbindgen",
            "--version",
            CBINDGEN_VERSION,
            "--locked",
        ]))?;
    }
    Ok(bin)
}

/// Regenerates the header into `tmp` and compares it with include/bitnet.h.
fn check_header(root: &Path, tmp: &Path, bless: bool) -> Result<()> {
    let generated = tmp.join("bitnet.h");
    run(Command::new(cbindgen()?)
        .current_dir(root)
        .args([
            "--quiet",
            "--config",
            "ffi/cbindgen.toml",
            "--crate",
            "bitnet-ffi",
            "--output",
        ])
        .arg(&generated)
        .arg("ffi"))?;
    let new = std::fs::read(&generated).map_err(|e| format!("{}: {e}", generated.display()))?;
    let checked_in = root.join("include/bitnet.h");
    let old = std::fs::read(&checked_in).unwrap_or_default();
    if new == old {
        eprintln!("include/bitnet.h is current (cbindgen {CBINDGEN_VERSION})");
        return Ok(());
    }
    if bless {
        std::fs::write(&checked_in, &new).map_err(|e| format!("{}: {e}", checked_in.display()))?;
        eprintln!("wrote include/bitnet.h");
        return Ok(());
    }
    // Show what changed when diff is available; the verdict does not need it.
    let _ = Command::new("diff")
        .arg("-u")
        .arg(&checked_in)
        .arg(&generated)
        .status();
    Err(format!(
        "include/bitnet.h is stale: regenerate it with `cargo xtask c-tests --bless` \
         (cbindgen {CBINDGEN_VERSION}) and commit it"
    ))
}

/// Writes `libdir`/bitnet.pc from ffi/bitnet.pc.in.
fn write_pc(root: &Path, libdir: &Path) -> Result<PathBuf> {
    let template = root.join("ffi/bitnet.pc.in");
    let text =
        std::fs::read_to_string(&template).map_err(|e| format!("{}: {e}", template.display()))?;
    let text = text
        .replace("@LIBDIR@", &libdir.display().to_string())
        .replace("@INCLUDEDIR@", &root.join("include").display().to_string())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    std::fs::create_dir_all(libdir).map_err(|e| format!("{}: {e}", libdir.display()))?;
    let pc = libdir.join("bitnet.pc");
    std::fs::write(&pc, text).map_err(|e| format!("{}: {e}", pc.display()))?;
    Ok(pc)
}

/// Compiler and linker flags from bitnet.pc (through pkg-config when it is
/// installed, else the same flags written out).
fn link_flags(root: &Path, libdir: &Path) -> Vec<String> {
    let pkg = Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", libdir)
        .args(["--cflags", "--libs", "bitnet"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let mut flags: Vec<String> = match pkg {
        Some(s) => s.split_whitespace().map(String::from).collect(),
        None => {
            eprintln!("pkg-config not found: using the flags of bitnet.pc directly");
            vec![
                format!("-I{}", root.join("include").display()),
                format!("-L{}", libdir.display()),
                "-lbitnet".into(),
            ]
        }
    };
    flags.push(format!("-Wl,-rpath,{}", libdir.display()));
    flags
}

/// Libs.private of the template: what the static library needs.
fn private_libs(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("ffi/bitnet.pc.in"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Libs.private:"))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

fn compile(p: &Program, root: &Path, out: &Path, extra: &[&str], link: &[String]) -> Result<()> {
    let (cc, std) = if p.cpp {
        ("g++", "-std=c++17")
    } else {
        ("gcc", "-std=c11")
    };
    run(Command::new(cc)
        .current_dir(root)
        .args([
            std,
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-g",
            "-O1",
            "-pthread",
        ])
        .args(extra)
        .arg(p.source)
        .arg("-o")
        .arg(out)
        .args(link))
}

fn ensure_valgrind() -> Result<()> {
    if succeeds(Command::new("valgrind").arg("--version")).is_some() {
        return Ok(());
    }
    eprintln!("valgrind not found: installing it with apt-get");
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get").args(["install", "-y", "-q", "valgrind"]))
}

/// `cargo xtask c-tests`.
pub fn c_tests(args: &Args) -> Result<()> {
    let root = root();
    let target = target_dir(&root);
    let out = target.join("c-tests");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;

    check_header(&root, &out, args.bless)?;

    // The test build gets its own target directory: built into
    // target/release it would replace the library users link with one that
    // exports bitnet_test_panic.
    let test_target = out.join("lib");
    run(Command::new("cargo")
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "bitnet-ffi",
            "--features",
            "test-panic",
            "--target-dir",
        ])
        .arg(&test_target))?;
    let libdir = test_target.join("release");
    write_pc(&root, &libdir)?;
    // README: `pkg-config` against the user's release build.
    write_pc(&root, &target.join("release"))?;
    let link = link_flags(&root, &libdir);

    let models: Vec<String> = if args.model.is_empty() {
        ["stories260K.gguf", "shakespeare-i2s.gguf"]
            .iter()
            .map(|m| root.join("tests/models").join(m))
            .collect()
    } else {
        args.model.clone()
    }
    .iter()
    .map(|m| m.to_string_lossy().into_owned())
    .collect();

    // Every program plainly, with ASAN + UBSan, and the C test linked
    // against the static library.
    let mut exes = Vec::new();
    for p in &PROGRAMS {
        let exe = out.join(p.name);
        compile(p, &root, &exe, &[], &link)?;
        exes.push((exe.to_string_lossy().into_owned(), false));
        if !args.no_asan {
            let asan = out.join(format!("{}_asan", p.name));
            let flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"];
            compile(p, &root, &asan, &flags, &link)?;
            exes.push((asan.to_string_lossy().into_owned(), true));
        }
    }
    let static_exe = out.join("api_test_static");
    let mut static_link = vec![
        format!("-I{}", root.join("include").display()),
        libdir.join("libbitnet.a").to_string_lossy().into_owned(),
    ];
    static_link.extend(private_libs(&root));
    compile(&PROGRAMS[0], &root, &static_exe, &[], &static_link)?;
    exes.push((static_exe.to_string_lossy().into_owned(), false));
    if !args.no_valgrind {
        ensure_valgrind()?;
    }

    let supp = format!(
        "--suppressions={}",
        root.join("ffi/tests/c/valgrind.supp").display()
    );
    let mut runs = 0;
    for model in &models {
        // Panics injected by the test print one line, not a backtrace.
        // `cargo run` puts target/debug/deps (a libbitnet.so without
        // `test-panic`) on LD_LIBRARY_PATH, which would win over the
        // executables' rpath. The API test sets and clears BITNET_STRICT
        // itself; one inherited from the shell would make its non-strict
        // loads strict.
        let runner = |argv: &[&str], asan: bool| -> Result<()> {
            let mut cmd = Command::new(argv[0]);
            cmd.args(&argv[1..])
                .arg(model)
                .env("RUST_BACKTRACE", "0")
                .env_remove("LD_LIBRARY_PATH")
                .env_remove("BITNET_STRICT")
                .current_dir(&root);
            if asan {
                cmd.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
                    .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
            }
            run(&mut cmd)
        };
        for (exe, asan) in &exes {
            runner(&[exe], *asan)?;
            runs += 1;
            if !asan && !args.no_valgrind && !exe.ends_with("_static") {
                let vg = [
                    "valgrind",
                    "--quiet",
                    "--error-exitcode=1",
                    "--leak-check=full",
                    &supp,
                    exe,
                ];
                runner(&vg, false)?;
                runs += 1;
            }
        }
    }

    eprintln!("c-tests: header current, {runs} test runs passed");
    Ok(())
}
