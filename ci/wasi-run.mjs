// Runs a wasm32-wasip1 test binary under Node's WASI (cargo's runner for
// `cargo xtask cross-test wasm32`): node ci/wasi-run.mjs BINARY.wasm ARGS...
// The repository root is preopened so tests can read tests/models.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [file, ...args] = argv.slice(2);
const wasi = new WASI({
  version: "preview1",
  args: [file, ...args],
  env,
  preopens: { "/": "/" },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
