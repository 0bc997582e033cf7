//! The host side of a receipt: fingerprint and timestamp.

use std::time::{SystemTime, UNIX_EPOCH};

use bitnet_core::receipt::{
    FINGERPRINT_LINE_CAP, Fingerprint, FixedString, GPU_CC_CAP, VERSION_CAP,
};

/// `rustc -V` of the compiler that built this crate (see `build.rs`).
pub const RUSTC_VERSION: &str = env!("BITNET_RUSTC_VERSION");

/// The GPU a CUDA run used, as its backend reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// Compute capability, "major.minor" ("9.0").
    pub cc: String,
    /// Product name ("NVIDIA H100 80GB HBM3").
    pub name: String,
}

/// Copies `s` into a fixed-capacity receipt string, cut at a char boundary
/// when longer (a CPU name over the capacity still identifies the CPU).
pub fn fit<const N: usize>(s: &str) -> FixedString<N> {
    let mut out = FixedString::new();
    for ch in s.chars() {
        if out.push(ch).is_err() {
            break;
        }
    }
    out
}

/// The CPU model: `model name` from `/proc/cpuinfo` (x86), else its
/// `Hardware` / `Processor` line (some ARM kernels), else the architecture.
pub fn cpu_id() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpu_id_from_cpuinfo(&info)
        .unwrap_or_else(|| format!("{} (model unknown)", std::env::consts::ARCH))
}

/// The first `model name`, `Hardware` or `Processor` value in `cpuinfo`.
pub fn cpu_id_from_cpuinfo(cpuinfo: &str) -> Option<String> {
    ["model name", "Hardware", "Processor"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_owned())
            })
        })
}

/// OS, kernel release (`/proc/sys/kernel/osrelease` on Linux) and
/// architecture: "linux 6.8.0-45-generic x86_64".
pub fn os_id() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "release-unknown".to_owned());
    format!(
        "{} {release} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// This host's fingerprint; `gpu` for runs on a GPU.
pub fn host_fingerprint(gpu: Option<&GpuInfo>) -> Fingerprint {
    Fingerprint {
        gpu_cc: gpu.map(|g| fit::<GPU_CC_CAP>(&g.cc)),
        gpu_name: gpu.map(|g| fit::<FINGERPRINT_LINE_CAP>(&g.name)),
        cpu_id: fit(&cpu_id()),
        os: fit(&os_id()),
        rustc: fit(RUSTC_VERSION),
        bitnet_version: fit::<VERSION_CAP>(env!("CARGO_PKG_VERSION")),
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms",
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `t` as RFC 3339 UTC with milliseconds: "2026-01-31T23:59:59.123Z".
/// Times before 1970 are written as the epoch.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, mo, da) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{da:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        let at = |s| rfc3339_utc(UNIX_EPOCH + Duration::from_millis(s));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (leap day of a /400 year) 12:34:56.789 UTC.
        assert_eq!(at(951_827_696_789), "2000-02-29T12:34:56.789Z");
        // 2024-12-31T23:59:59Z, the last second of a leap year.
        assert_eq!(at(1_735_689_599_000), "2024-12-31T23:59:59.000Z");
        assert_eq!(at(1_735_689_600_000), "2025-01-01T00:00:00.000Z");
    }

    #[test]
    fn cpuinfo_model_name() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n";
        assert_eq!(
            cpu_id_from_cpuinfo(x86).as_deref(),
            Some("Intel(R) Xeon(R) Platinum 8480+")
        );
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\nHardware\t: BCM2835\n";
        assert_eq!(cpu_id_from_cpuinfo(arm).as_deref(), Some("BCM2835"));
        assert_eq!(cpu_id_from_cpuinfo(""), None);
    }

    #[test]
    fn fit_cuts_at_char_boundaries() {
        let s: FixedString<4> = fit("abcé");
        assert_eq!(s.as_str(), "abc");
    }
}
