//! Captures `rustc -V` of the compiler building this crate for the receipt
//! fingerprint (as `bitnet-std`'s build script does).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RUSTC");
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("unknown ({} -V failed)", rustc.to_string_lossy()));
    println!("cargo:rustc-env=BITNET_RUSTC_VERSION={version}");
}
