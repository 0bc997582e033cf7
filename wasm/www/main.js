// The demo page: file picking, progress, sampling controls and streamed
// output. All inference runs in worker.js; this thread only renders.
const $ = (id) => document.getElementById(id);

/** What the page knows; the browser test reads it. */
const demo = { state: "idle", info: null, build: null, lastRun: null, lastBench: null, error: null };
window.bitnetDemo = demo;

let worker = null;
let builtin = null;
let lastSource = null;
// Stop flag shared with the worker (needs a cross-origin isolated page,
// which `cargo xtask wasm --serve` provides through COOP/COEP headers).
const stopFlag = self.crossOriginIsolated ? new Int32Array(new SharedArrayBuffer(4)) : null;

function setState(state, status) {
  demo.state = state;
  document.body.dataset.state = state;
  if (status !== undefined) $("status").textContent = status;
  const busy = state === "loading" || state === "generating";
  $("generate").disabled = busy || !demo.info;
  $("stop").disabled = state !== "generating";
  $("builtin").disabled = busy || !builtin;
  $("file").disabled = busy;
}

function startWorker() {
  // The page's query (`?simd=plain`) reaches the worker, which picks the
  // engine build.
  worker = new Worker(`worker.js${location.search}`, { type: "module" });
  worker.onmessage = (e) => onMessage(e.data);
  worker.onerror = (e) => fail(`worker failed: ${e.message}`);
}

function fail(message) {
  demo.error = message;
  setState("error", message);
}

const fmtBytes = (n) =>
  n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;

function showInfo(info, loadMs) {
  const rows = [
    ["file", `${info.fileName} (${fmtBytes(info.fileBytes)})`],
    ["name", info.name],
    ["arch", info.arch],
    ["parameters", info.parameters.toLocaleString("en")],
    ["tensor types", info.quantTypes],
    ["layers / dim", `${info.layers} / ${info.dim}`],
    ["heads / kv", `${info.heads} / ${info.kvHeads}`],
    ["vocab / ctx", `${info.vocab} / ${info.context}`],
    ["tokenizer", info.tokenizer],
    ["sha256", info.sha256],
    ["wasm", info.simd128 ? "simd128" : "no simd128"],
    ["load time", `${loadMs.toFixed(0)} ms`],
    ["validation", info.findings.length ? info.findings.join("\n") : "no findings"],
  ];
  const dl = $("info");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
}

function onMessage(m) {
  switch (m.type) {
    case "progress":
      $("progress").value = m.loaded / m.total;
      $("status").textContent = `Reading ${fmtBytes(m.loaded)} of ${fmtBytes(m.total)}…`;
      break;
    case "header":
      $("status").textContent = `GGUF v${m.header.version}, ${m.header.architecture ?? "unknown arch"}, ${m.header.nTensors} tensors: reading…`;
      break;
    case "loaded":
      demo.info = m.info;
      demo.build = m.build;
      $("progress").value = 1;
      showInfo(m.info, m.loadMs);
      setState("loaded", `Loaded ${m.info.name} in ${m.loadMs.toFixed(0)} ms (engine ${m.build}).`);
      break;
    case "token":
      $("out-text").textContent += m.text;
      demo.streamed = (demo.streamed ?? 0) + 1;
      $("stats").textContent = `${demo.streamed} tokens…`;
      break;
    case "done": {
      $("out-text").textContent += m.tail;
      demo.lastRun = m;
      const prefillTok = m.promptIds.length;
      $("stats").textContent =
        `${m.ids.length} tokens (${m.stop.replace("_", " ")}) · ${m.tokensPerSec.toFixed(1)} tokens/s decode · ` +
        `prefill ${prefillTok} tokens in ${m.prefillMs.toFixed(1)} ms`;
      $("receipt").textContent = JSON.stringify(JSON.parse(m.receipt), null, 2);
      setState("done", "Done.");
      break;
    }
    case "bench":
      demo.lastBench = m;
      $("receipt").textContent = JSON.stringify(JSON.parse(m.receipt), null, 2);
      setState("done", `Benchmark: ${m.ids.length} tokens, ${m.tokensPerSec.toFixed(1)} tokens/s decode.`);
      break;
    case "error":
      fail(m.op === "load" ? `Cannot load the model: ${m.message}` : `Error: ${m.message}`);
      if (m.op === "load") demo.info = null;
      setState("error");
      break;
  }
}

function load(source) {
  lastSource = source;
  demo.info = null;
  demo.error = null;
  $("info").replaceChildren();
  $("progress").value = 0;
  setState("loading", "Opening…");
  worker.postMessage({
    type: "load",
    source,
    strict: $("strict").checked,
    stopFlag: stopFlag ? stopFlag.buffer : null,
  });
}

function options() {
  const n = (id) => Number($(id).value);
  return {
    maxTokens: n("maxTokens"),
    temperature: n("temperature"),
    topK: n("topK"),
    topP: n("topP"),
    minP: n("minP"),
    repeatPenalty: n("repeatPenalty"),
    seed: n("seed"),
    stopAtEos: $("stopAtEos").checked,
    lmHead: $("lmHead").value,
  };
}

function generate(type = "generate") {
  if (stopFlag) Atomics.store(stopFlag, 0, 0);
  demo.lastRun = null;
  demo.lastBench = null;
  demo.streamed = 0;
  $("out-prompt").textContent = $("prompt").value;
  $("out-text").textContent = "";
  $("receipt").textContent = "";
  $("stats").textContent = "";
  setState("generating", "Generating…");
  worker.postMessage({ type, prompt: $("prompt").value, options: options() });
}

/** For the benchmark in `cargo xtask wasm --test`: no per-token messages. */
demo.bench = () => generate("bench");
demo.loadUrl = (url) => load({ url });

function stop() {
  if (stopFlag) {
    Atomics.store(stopFlag, 0, 1);
    return;
  }
  // Without a shared flag the busy worker cannot hear a message: end it and
  // load the model again in a new one.
  worker.terminate();
  startWorker();
  $("stats").textContent += " (stopped)";
  if (lastSource) load(lastSource);
}

async function init() {
  startWorker();
  $("file").addEventListener("change", (e) => e.target.files[0] && load({ file: e.target.files[0] }));
  $("builtin").addEventListener("click", () => {
    $("prompt").value = builtin.prompt;
    load({ url: builtin.path });
  });
  $("generate").addEventListener("click", () => generate());
  $("stop").addEventListener("click", stop);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) load({ file: f });
  });
  try {
    const r = await fetch("builtin.json");
    if (r.ok) builtin = await r.json();
  } catch (_) {
    builtin = null;
  }
  const v = await import("./pkg/bitnet_wasm.js");
  await v.default();
  $("version").textContent = `v${v.version()}`;
  setState("idle", builtin ? "Choose a model, or use the built-in one." : "Choose a model.");
  $("builtin").title = builtin ? builtin.path : "no built-in model in this build";
}

init().catch((e) => fail(String(e)));
