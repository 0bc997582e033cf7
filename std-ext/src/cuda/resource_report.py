"""Compiles kernels.cu with NVRTC (the backend's options) for a real
architecture and prints each kernel's registers, stack frame and static
shared memory from the cubin: the compiler's resource report, without a GPU.

Usage: python3 std-ext/src/cuda/resource_report.py [sm_90 [-DNAME=VALUE ...]]
Needs libnvrtc (e.g. the nvidia-cuda-nvrtc wheel); set NVRTC=/path/libnvrtc.so.N
if it is not on the loader path.
"""
import ctypes, os, struct, sys

arch = sys.argv[1] if len(sys.argv) > 1 else "sm_90"
lib = ctypes.CDLL(os.environ.get("NVRTC", "libnvrtc.so"))
src = open(os.path.join(os.path.dirname(__file__), "kernels.cu"), "rb").read()
prog = ctypes.c_void_p()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"kernels.cu", 0, None, None) == 0
opts = [b"--fmad=false", b"--prec-div=true", b"--prec-sqrt=true", b"--ftz=false",
        b"--gpu-architecture=" + arch.encode()] + [a.encode() for a in sys.argv[2:]]
rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
n = ctypes.c_size_t()
lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
log = ctypes.create_string_buffer(n.value)
lib.nvrtcGetProgramLog(prog, log)
if rc != 0:
    sys.exit("NVRTC failed:\n" + log.value.decode())
lib.nvrtcGetCUBINSize(prog, ctypes.byref(n))
d = ctypes.create_string_buffer(n.value)
lib.nvrtcGetCUBIN(prog, d)
d = d.raw

# ELF64 section headers, symbol table, and the .nv.info attributes
# (EIATTR_REGCOUNT 0x2f, EIATTR_FRAME_SIZE 0x11).
shoff = struct.unpack_from("<Q", d, 0x28)[0]
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
secs = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize) for i in range(shnum)]
def cstr(at):
    return d[at:d.index(b"\0", at)].decode()
names = [cstr(secs[shstrndx][4] + s[0]) for s in secs]
symtab = next(s for s in secs if s[1] == 2)
strtab = secs[symtab[6]][4]
syms = [cstr(strtab + struct.unpack_from("<I", d, symtab[4] + i * 24)[0])
        for i in range(symtab[5] // 24)]
info = {}
for s, name in zip(secs, names):
    if not name.startswith(".nv.info"):
        continue
    o, end = s[4], s[4] + s[5]
    while o < end:
        fmt, attr = d[o], d[o + 1]
        if fmt == 4:
            size = struct.unpack_from("<H", d, o + 2)[0]
            pay = d[o + 4:o + 4 + size]
            o += 4 + size
        else:
            pay = b""
            o += 4 if fmt == 3 else 2
        if attr in (0x2F, 0x11) and len(pay) >= 8:
            sym, val = struct.unpack_from("<II", pay)
            key = "regs" if attr == 0x2F else "frame"
            info.setdefault(syms[sym], {})[key] = val
shared = {n[len(".nv.shared."):]: s[5] for s, n in zip(secs, names) if n.startswith(".nv.shared.")}
print(f"{'kernel':<22} {'regs':>5} {'frame':>6} {'static smem':>12}")
for k in sorted(n[len(".text."):] for n in names if n.startswith(".text.")):
    i = info.get(k, {})
    print(f"{k:<22} {i.get('regs', '?'):>5} {i.get('frame', '?'):>6} {shared.get(k, 0):>12}")
