#!/usr/bin/env bash
# Builds the reference llama.cpp (the copy vendored in the PyPI
# `llama-cpp-python` sdist) into a cache directory that later runs reuse.
#
# Output (idempotent; a finished build is detected by its stamp file):
#   $BITNET_CACHE/llama.cpp-$VER/src      unpacked sdist (llama_cpp python package + vendor/llama.cpp)
#   $BITNET_CACHE/llama.cpp-$VER/build    CMake build: bin/llama-bench, bin/llama-completion,
#                                         bin/llama-tokenize, bin/*.so (libllama, libggml*)
#   $BITNET_CACHE/llama.cpp-$VER/env.sh   exports LLAMA_CPP_LIB_PATH, PYTHONPATH, LLAMA_CPP_DIR
# Prints the env.sh path on stdout.
#
# The vendored llama.cpp gets one patch of ours before building,
# ci/crossval/llama-relu2.patch (its `bitnet` arch honours the GGUF string
# `bitnet.hidden_act` = "relu2"; without that key nothing changes). The stamp
# carries the patch's hash, so a changed patch is re-applied (the old one is
# reversed first) and the build redone incrementally.
set -euo pipefail
VER=0.3.36
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATCH="$HERE/crossval/llama-relu2.patch"
PATCH_HASH=$(sha256sum "$PATCH" | cut -c1-16)
CACHE="${BITNET_CACHE:-$HOME/.cache/bitnet}"
DIR="$CACHE/llama.cpp-$VER"
STAMP="$DIR/.built-$PATCH_HASH"
if [ -f "$STAMP" ]; then echo "$DIR/env.sh"; exit 0; fi
mkdir -p "$DIR"
log() { echo "setup-llama: $*" >&2; }
python3 -m pip --version >/dev/null
command -v cmake >/dev/null || python3 -m pip install -q cmake >&2
command -v ninja >/dev/null || python3 -m pip install -q ninja >&2
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install -q numpy >&2
# runtime deps of the llama_cpp python package (its __init__ imports llama.py,
# which imports jinja2 and diskcache); the package itself is used from the sdist.
python3 -c 'import jinja2, diskcache, typing_extensions' 2>/dev/null || \
  python3 -m pip install -q jinja2 diskcache typing-extensions >&2
if [ ! -d "$DIR/src/vendor/llama.cpp" ]; then
  log "downloading llama-cpp-python $VER sdist"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary=llama-cpp-python "llama-cpp-python==$VER" -d "$tmp" >&2
  rm -rf "$DIR/src"; mkdir -p "$DIR/src"
  tar xzf "$tmp"/llama_cpp_python-$VER.tar.gz -C "$DIR/src" --strip-components=1
  rm -rf "$tmp"
fi
APPLIED="$DIR/src/.bitnet-applied.patch"
# apply_patch [-R] FILE: `patch` where installed, else `git apply` (outside
# any repository it applies to plain files).
apply_patch() {
  local vendor="$DIR/src/vendor/llama.cpp"
  if command -v patch >/dev/null; then
    patch $1 -p1 -d "$vendor" < "$2" >&2
  else
    git -C "$vendor" apply $1 -p1 "$2" >&2
  fi
}
if [ -f "$APPLIED" ] && ! cmp -s "$APPLIED" "$PATCH"; then
  log "reverting the previous llama.cpp patch"
  apply_patch -R "$APPLIED"
  rm -f "$APPLIED"
fi
if [ ! -f "$APPLIED" ]; then
  log "applying $(basename "$PATCH")"
  apply_patch "" "$PATCH"
  cp "$PATCH" "$APPLIED"
fi
rm -f "$DIR"/.built*
log "building llama.cpp (CPU only; a few minutes on 2 cores)"
cmake -S "$DIR/src/vendor/llama.cpp" -B "$DIR/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON \
  -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=ON >&2
cmake --build "$DIR/build" -j "$(nproc)" --target llama llama-bench llama-completion llama-tokenize >&2
cat > "$DIR/env.sh" <<ENV
export LLAMA_CPP_DIR="$DIR"
export LLAMA_CPP_LIB_PATH="$DIR/build/bin"
export LD_LIBRARY_PATH="$DIR/build/bin:\${LD_LIBRARY_PATH:-}"
export PYTHONPATH="$DIR/src:\${PYTHONPATH:-}"
ENV
touch "$STAMP"
echo "$DIR/env.sh"
