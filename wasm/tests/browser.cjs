// Browser test driver for `cargo xtask wasm --test` (which sets the
// environment): opens the demo page in headless Chromium, loads the
// built-in model with strict validation (it must pass every rule, with no
// finding), generates greedily, compares the token ids with the
// native engine's, checks the text is on screen, takes a screenshot, then
// measures decode speed without per-token messages, each browser run next
// to a native one (the native bench process of BITNET_NATIVE_BENCH).
"use strict";
const { spawn } = require("node:child_process");
const readline = require("node:readline");
const { chromium } = require("playwright-core");

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set (run through cargo xtask wasm --test)`);
  return v;
};

/** The native decode-speed process: one `MODEL|PROMPT|TOKENS` line in,
 * one tokens/s line out (`cargo xtask wasm --native-bench`). */
function nativeBench() {
  const [cmd, ...args] = JSON.parse(env("BITNET_NATIVE_BENCH"));
  const child = spawn(cmd, args, { cwd: env("BITNET_ROOT"), stdio: ["pipe", "pipe", "inherit"] });
  const waiting = [];
  const fail = (why) => {
    while (waiting.length) waiting.shift().reject(new Error(`native bench: ${why}`));
  };
  readline.createInterface({ input: child.stdout }).on("line", (l) => {
    const w = waiting.shift();
    const v = Number(l);
    if (!w) return;
    if (Number.isFinite(v)) w.resolve(v);
    else w.reject(new Error(`native bench said ${JSON.stringify(l)}`));
  });
  child.on("exit", (code) => fail(`exited (${code})`));
  child.on("error", (e) => fail(e.message));
  return {
    run: (model, prompt, tokens) =>
      new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        child.stdin.write(`${model}|${prompt}|${tokens}\n`);
      }),
    close: () => child.stdin.end(),
  };
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

async function main() {
  const expectIds = env("BITNET_EXPECT_IDS").split(",").map(Number);
  const expectText = env("BITNET_EXPECT_TEXT");
  const browser = await chromium.launchPersistentContext(env("BITNET_PROFILE"), {
    executablePath: env("BITNET_CHROMIUM"),
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-quic",
      "--disable-sync",
    ],
  });
  let failed = false;
  try {
    const page = browser.pages()[0] || (await browser.newPage());
    page.on("console", (m) => console.error(`page: ${m.text()}`));
    page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
    await page.goto(env("BITNET_URL"));
    await page.waitForFunction(() => window.bitnetDemo && !document.getElementById("builtin").disabled);
    const isolated = await page.evaluate(() => self.crossOriginIsolated);
    console.error(`crossOriginIsolated: ${isolated}`);

    await page.check("#strict");
    await page.click("#builtin");
    await page.waitForFunction(() => ["loaded", "error"].includes(window.bitnetDemo.state), null, { timeout: 60000 });
    const loadError = await page.evaluate(() => window.bitnetDemo.error);
    if (loadError) throw new Error(loadError);
    const findings = await page.evaluate(() => window.bitnetDemo.info.findings);
    console.log(`strict load, validation findings: ${JSON.stringify(findings)}`);
    if (!Array.isArray(findings) || findings.length !== 0) failed = true;

    await page.fill("#maxTokens", env("BITNET_TOKENS"));
    await page.fill("#temperature", "0");
    await page.uncheck("#stopAtEos");
    await page.click("#generate");
    await page.waitForFunction(() => ["done", "error"].includes(window.bitnetDemo.state), null, { timeout: 60000 });
    const run = await page.evaluate(() => window.bitnetDemo.lastRun);
    if (!run) throw new Error(await page.evaluate(() => window.bitnetDemo.error));

    const same = run.ids.length === expectIds.length && run.ids.every((id, i) => id === expectIds[i]);
    console.log(`wasm ids:   ${run.ids.join(",")}`);
    console.log(`native ids: ${expectIds.join(",")}`);
    console.log(`token ids equal: ${same}`);
    if (!same) failed = true;

    const shown = await page.locator("#out-text").textContent();
    const visible = await page.locator("#out-text").isVisible();
    console.log(`shown text: ${JSON.stringify(shown)}`);
    if (!visible || shown !== expectText) {
      console.log(`expected text: ${JSON.stringify(expectText)} (visible: ${visible})`);
      failed = true;
    }
    const receipt = JSON.parse(run.receipt);
    const kernels = receipt.kernels.map((k) => k.id);
    console.log(`engine build: ${await page.evaluate(() => window.bitnetDemo.build)}`);
    console.log(`receipt: backend ${receipt.backend}, compute_path ${receipt.compute_path}, kernels ${kernels.join("+")}`);
    if (receipt.backend !== "wasm" || receipt.tokens.generated !== expectIds.length) failed = true;
    // Chromium has relaxed SIMD: the page must pick that build.
    if (!kernels.includes("i2s_gemv_simd128_relaxed") || !kernels.includes("f16_gemv_simd128")) {
      console.log("expected the relaxed-SIMD I2_S and simd128 F16 kernels");
      failed = true;
    }
    console.log(`page tokens/s (streamed): ${run.tokensPerSec.toFixed(1)}`);

    // lmHead "q8": the int8 head runs and the receipt says so; an unknown
    // value is refused with a message.
    await page.selectOption("#lmHead", "q8");
    await page.click("#generate");
    await page.waitForFunction(() => ["done", "error"].includes(window.bitnetDemo.state), null, { timeout: 60000 });
    const q8 = await page.evaluate(() => window.bitnetDemo.lastRun);
    if (!q8) throw new Error(await page.evaluate(() => window.bitnetDemo.error));
    const q8Receipt = JSON.parse(q8.receipt);
    const q8Kernels = q8Receipt.kernels.map((k) => k.id);
    console.log(`lmHead q8: ${q8.ids.length} tokens, kernels ${q8Kernels.join("+")}; ${q8Receipt.backend_summary}`);
    if (!q8Kernels.includes("q8_head_gemv_simd128") || q8Kernels.some((k) => k.startsWith("f16_gemv"))) failed = true;
    await page.evaluate(() => {
      const o = document.createElement("option");
      o.value = "int8";
      document.getElementById("lmHead").append(o);
    });
    await page.selectOption("#lmHead", "int8");
    await page.click("#generate");
    await page.waitForFunction(() => ["done", "error"].includes(window.bitnetDemo.state), null, { timeout: 60000 });
    const badHead = await page.evaluate(() => window.bitnetDemo.error);
    console.log(`lmHead "int8": ${badHead}`);
    if (!badHead || !badHead.includes("lmHead")) failed = true;
    await page.selectOption("#lmHead", "f16");

    // The plain simd128 build (for browsers without relaxed SIMD) gives the
    // same tokens.
    const plain = await browser.newPage();
    plain.on("pageerror", (e) => console.error(`page error: ${e.message}`));
    await plain.goto(`${env("BITNET_URL")}?simd=plain`);
    await plain.waitForFunction(() => window.bitnetDemo && !document.getElementById("builtin").disabled);
    await plain.click("#builtin");
    await plain.waitForFunction(() => ["loaded", "error"].includes(window.bitnetDemo.state), null, { timeout: 60000 });
    await plain.fill("#maxTokens", env("BITNET_TOKENS"));
    await plain.fill("#temperature", "0");
    await plain.uncheck("#stopAtEos");
    await plain.click("#generate");
    await plain.waitForFunction(() => ["done", "error"].includes(window.bitnetDemo.state), null, { timeout: 60000 });
    const plainRun = await plain.evaluate(() => window.bitnetDemo.lastRun);
    if (!plainRun) throw new Error(await plain.evaluate(() => window.bitnetDemo.error));
    const plainKernels = JSON.parse(plainRun.receipt).kernels.map((k) => k.id);
    const plainSame = plainRun.ids.length === expectIds.length && plainRun.ids.every((id, i) => id === expectIds[i]);
    console.log(`plain simd128 build (${await plain.evaluate(() => window.bitnetDemo.build)}): token ids equal: ${plainSame}, kernels ${plainKernels.join("+")}`);
    if (!plainSame || !plainKernels.includes("i2s_gemv_simd128")) failed = true;
    await plain.close();

    await page.locator("#output").scrollIntoViewIfNeeded();
    await page.screenshot({ path: env("BITNET_SCREENSHOT"), fullPage: true });

    // Decode speed, engine only (no per-token messages). Each browser run
    // is followed by a native one, so load on this shared machine moves
    // both sides of a pair alike; the first BITNET_BENCH_WARMUP pairs are
    // not measured (V8 tiers hot wasm up from Liftoff to TurboFan in the
    // background during the first runs), then the medians of the measured
    // runs and of their per-pair ratios.
    const native = nativeBench();
    try {
      const [warmup, runs] = [Number(env("BITNET_BENCH_WARMUP")), Number(env("BITNET_BENCH_RUNS"))];
      for (const line of env("BITNET_PERF_MODELS").split("\n")) {
        const [url, modelPath, prompt] = line.split("|");
        await page.evaluate((u) => window.bitnetDemo.loadUrl(u), url);
        await page.waitForFunction(() => ["loaded", "error"].includes(window.bitnetDemo.state), null, { timeout: 60000 });
        const err = await page.evaluate(() => window.bitnetDemo.error);
        if (err) throw new Error(err);
        await page.fill("#prompt", prompt);
        await page.fill("#maxTokens", env("BITNET_BENCH_TOKENS"));
        await page.fill("#temperature", "0");
        await page.uncheck("#stopAtEos");
        const name = url.split("/").pop();
        const [wasm, nat] = [[], []];
        for (let i = 0; i < warmup + runs; i++) {
          await page.evaluate(() => window.bitnetDemo.bench());
          await page.waitForFunction(() => ["done", "error"].includes(window.bitnetDemo.state), null, { timeout: 120000 });
          const b = await page.evaluate(() => window.bitnetDemo.lastBench);
          if (!b) throw new Error(await page.evaluate(() => window.bitnetDemo.error));
          const n = await native.run(modelPath, prompt, env("BITNET_BENCH_TOKENS"));
          const tag = i < warmup ? "warm-up" : "measured";
          console.log(
            `bench ${name} run ${i + 1} (${tag}): wasm ${b.tokensPerSec.toFixed(1)}, native ${n.toFixed(1)}, ` +
              `wasm/native ${((100 * b.tokensPerSec) / n).toFixed(1)}%`,
          );
          if (i >= warmup) {
            wasm.push(b.tokensPerSec);
            nat.push(n);
          }
        }
        console.log(`wasm decode tokens/s ${name}: ${median(wasm).toFixed(1)}`);
        console.log(`native decode tokens/s ${name}: ${median(nat).toFixed(1)}`);
        const pairs = wasm.map((w, i) => (100 * w) / nat[i]);
        console.log(`wasm/native per run, median ${name}: ${median(pairs).toFixed(1)}%`);
      }
    } finally {
      native.close();
    }
  } finally {
    await browser.close();
  }
  if (failed) process.exit(1);
}

main().catch((e) => {
  console.error(`browser test: ${e.stack || e}`);
  process.exit(1);
});
