// The inference worker: owns the wasm engine, so the page stays responsive
// while a model loads or generates. Messages in: load, generate, bench,
// tokenize. Messages out: progress, header, loaded, token, done, tokens,
// bench, error.
// Two builds of the engine: pkg-relaxed/ (simd128 + relaxed SIMD, whose
// I2_S kernel multiplies with i16x8.relaxed_dot_i8x16_i7x16_s) where the
// browser validates relaxed SIMD, else pkg/ (simd128). `?simd=plain` on the
// page forces pkg/. Both give the same tokens; receipts name the kernels.

// A module whose one function runs i16x8.relaxed_dot_i8x16_i7x16_s (0xfd
// 0x112) on two v128 constants: valid only where relaxed SIMD is enabled.
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type: [] -> [v128]
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x0a, 0x2b, 0x01, 0x29, 0x00, // code: one body of 41 bytes, no locals
  0xfd, 0x0c, ...new Array(16).fill(0), // v128.const 0
  0xfd, 0x0c, ...new Array(16).fill(0), // v128.const 0
  0xfd, 0x92, 0x02, // i16x8.relaxed_dot_i8x16_i7x16_s
  0x0b, // end
]);

const forcePlain = new URLSearchParams(self.location.search).get("simd") === "plain";
const build = !forcePlain && WebAssembly.validate(RELAXED_PROBE) ? "pkg-relaxed" : "pkg";
const ready = import(`./${build}/bitnet_wasm.js`).then(async (m) => {
  await m.default();
  return m;
});
let wasm = null;
let engine = null;
let loadMs = 0;
let stopFlag = null;

const GIB = 1024 ** 3;

self.onmessage = async (event) => {
  const m = event.data;
  try {
    wasm = await ready;
    if (m.type === "load") await load(m);
    else if (m.type === "generate") generate(m, true);
    else if (m.type === "bench") generate(m, false);
    else if (m.type === "tokenize") {
      postMessage({ type: "tokens", ids: Array.from(requireEngine().tokenize(m.text)) });
    } else throw new Error(`unknown message ${m.type}`);
  } catch (err) {
    postMessage({ type: "error", op: m.type, message: String(err && err.message ? err.message : err) });
  }
};

function requireEngine() {
  if (!engine) throw new Error("no model loaded");
  return engine;
}

/** {name, total, reader} for a File or a URL. */
async function open(source) {
  if (source.file) {
    return { name: source.file.name, total: source.file.size, reader: source.file.stream().getReader() };
  }
  const r = await fetch(source.url);
  if (!r.ok) throw new Error(`${source.url}: HTTP ${r.status}`);
  const total = Number(r.headers.get("Content-Length"));
  if (!Number.isSafeInteger(total) || total <= 0) {
    throw new Error(`${source.url}: the server sent no Content-Length`);
  }
  return { name: source.url.split("/").pop(), total, reader: r.body.getReader() };
}

function concat(chunks, length) {
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function load(m) {
  if (engine) {
    engine.free();
    engine = null;
  }
  stopFlag = m.stopFlag ? new Int32Array(m.stopFlag) : null;
  const t0 = performance.now();
  const src = await open(m.source);
  const max = wasm.maxModelBytes();
  if (src.total > max) {
    throw new Error(
      `${src.name} is ${(src.total / GIB).toFixed(2)} GiB; wasm32 memory is 4 GiB, so the browser ` +
        `build loads models up to ${(max / GIB).toFixed(0)} GiB: use the native CLI`,
    );
  }
  let lastProgress = 0;
  const progress = (loaded, force) => {
    const now = performance.now();
    if (force || now - lastProgress > 50) {
      lastProgress = now;
      postMessage({ type: "progress", loaded, total: src.total });
    }
  };

  // The header first: reject a bad, truncated or unsupported file before
  // reading (and allocating) the rest.
  const head = [];
  let headLen = 0;
  let nextPeek = 0;
  let header = null;
  for (;;) {
    if (headLen >= nextPeek) {
      const p = wasm.peekHeader(concat(head, headLen));
      if (p.complete) {
        header = p;
        break;
      }
      nextPeek = Math.max(p.needAtLeast, 2 * headLen);
    }
    const { done, value } = await src.reader.read();
    if (done) {
      const p = wasm.peekHeader(concat(head, headLen));
      if (p.complete) {
        header = p;
        break;
      }
      throw new Error(`${src.name} ends inside its GGUF header (${headLen} bytes)`);
    }
    head.push(value);
    headLen += value.length;
    progress(headLen, false);
  }
  if (header.fileBytes > src.total) {
    throw new Error(
      `${src.name} is truncated: its tensors need ${header.fileBytes} bytes, the file has ${src.total}`,
    );
  }
  postMessage({ type: "header", header });

  const loader = new wasm.ModelLoader(src.total);
  for (const c of head) loader.push(c);
  for (;;) {
    const { done, value } = await src.reader.read();
    if (done) break;
    loader.push(value);
    progress(loader.received(), false);
  }
  progress(loader.received(), true);
  // Validation as native loads: the cheap rules always (findings in
  // info().findings), every rule and a refusal when strict.
  engine = loader.finish(src.name, () => performance.now(), { strict: Boolean(m.strict) });
  loadMs = performance.now() - t0;
  postMessage({ type: "loaded", info: engine.info(), loadMs, build });
}

function generate(m, stream) {
  const e = requireEngine();
  const onToken = stream
    ? (id, text) => {
        postMessage({ type: "token", id, text });
        return !(stopFlag && Atomics.load(stopFlag, 0) !== 0);
      }
    : () => true;
  const r = e.generate(m.prompt, m.options, onToken);
  const receipt = e.receipt(
    loadMs,
    new Date().toISOString(),
    `${navigator.hardwareConcurrency} logical cores, ${navigator.platform || "platform unknown"}`,
    navigator.userAgent,
  );
  postMessage({
    type: stream ? "done" : "bench",
    promptIds: Array.from(r.promptIds),
    ids: Array.from(r.ids),
    tail: r.tail,
    stop: r.stop,
    prefillMs: r.prefillMs,
    decodeMs: r.decodeMs,
    tokensPerSec: r.tokensPerSec,
    receipt,
  });
}
