//! x86-64 feature detection with CPUID and XGETBV (no_std).
//!
//! Bits from the Intel SDM vol. 2A, CPUID leaves 1 and 7: leaf 1 ECX bit 27
//! OSXSAVE, 28 AVX, 29 F16C; leaf 7 EBX bit 5 AVX2, 16 AVX512F, 30 AVX512BW,
//! 31 AVX512VL; leaf 7 ECX bit 1 AVX512_VBMI, 11 AVX512_VNNI. XCR0 bits 1-2 (SSE, AVX state)
//! and 5-7 (opmask, ZMM state) say the OS saves the registers.

use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};

use super::Isa;

/// `true` when bit `bit` of `reg` is set.
const fn bit(reg: u32, bit: u32) -> bool {
    reg & (1 << bit) != 0
}

/// The best [`Isa`] tier this CPU and OS support.
pub(super) fn best_isa() -> Isa {
    let max_leaf = __cpuid(0).eax;
    let l1 = __cpuid(1);
    if max_leaf < 7 || !bit(l1.ecx, 27) || !bit(l1.ecx, 28) {
        return Isa::Scalar;
    }
    // SAFETY: CPUID.1:ECX.OSXSAVE (bit 27) is set, so the OS enabled
    // XGETBV and XCR0 can be read.
    let xcr0 = unsafe { _xgetbv(0) };
    let l7 = __cpuid_count(7, 0);
    let os_ymm = xcr0 & 0b110 == 0b110;
    let os_zmm = xcr0 & 0b1110_0110 == 0b1110_0110;
    let avx2 = os_ymm && bit(l7.ebx, 5) && bit(l1.ecx, 29);
    let avx512 =
        avx2 && os_zmm && bit(l7.ebx, 16) && bit(l7.ebx, 30) && bit(l7.ebx, 31) && bit(l7.ecx, 11);
    if avx512 {
        Isa::Avx512
    } else if avx2 {
        Isa::Avx2
    } else {
        Isa::Scalar
    }
}

/// `true` when the CPU has AVX-512 VBMI (CPUID leaf 7 ECX bit 1). Only
/// meaningful once [`best_isa`] returned `Isa::Avx512` (which checked the
/// OS state of the ZMM registers).
pub(super) fn has_avx512_vbmi() -> bool {
    __cpuid(0).eax >= 7 && bit(__cpuid_count(7, 0).ecx, 1)
}
