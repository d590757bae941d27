/**
 * The WebGPU backend end to end on the tiny fixture models (HF transformers 4.57 float32
 * references), from the HF folder and from the big_vision npz: image features and the logits at
 * every prompt position within 1e-3 relative, the left-padded batch's logits at its real
 * positions, the 24 greedy tokens equal HF's alone and in a padded batch, and seeded sampling and
 * `pg detect` / `pg segment --constrained` give what the ONNX backend gives. Skipped, with the
 * reason, when there is no WebGPU adapter. Run by tests/webgpu_backend_test.ts in a child process.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Backend } from "../../../lib/backend/backend.ts";
import { openCheckpointModel } from "../../../lib/backend/model_source.ts";
import { openModelDir } from "../../../lib/backend/model_dir.ts";
import { openOnnxWeights } from "../../../lib/backend/onnx_weights.ts";
import type { Precision } from "../../../lib/model/precision.ts";
import { OnnxBackend } from "../../../lib/backend/onnx.ts";
import { WebGpuBackend, type WebGpuBackendOptions } from "../../../lib/backend/webgpu.ts";
import { toFloat32 } from "../../../lib/checkpoint/dtype.ts";
import { openSafetensors } from "../../../lib/checkpoint/safetensors.ts";
import { isFailure, runJobs } from "../../../lib/generate/pipeline.ts";
import { loadTokenizer } from "../../../lib/tokenizer/load.ts";
import {
  caseRow,
  convertFixture,
  FIX,
  type FixtureCase,
  fixtureCases,
  generateCases,
  withTempDir,
} from "../../generate/fixture_models.ts";
import { runPg } from "../../helpers/cli.ts";
import { findGpuAdapter } from "../../../lib/webgpu/device.ts";
import { GpuRunner } from "../../../lib/webgpu/runner.ts";
import { samplePlan } from "../../../lib/webgpu/ops_sample.ts";
import { WebGpuMaskDecoder } from "../../../lib/vqvae/webgpu.ts";
import { loadVqvaeWeights } from "../../../lib/vqvae/weights.ts";

const adapter = await findGpuAdapter();
if (!adapter) {
  console.log("tests/webgpu/backend: SKIPPED — navigator.gpu.requestAdapter() returned null");
}

/** Registers a test that needs an adapter; ignored (skipped, with the reason) without one. */
function gpuTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: adapter ? name : `${name} (skipped: no WebGPU adapter)`,
    ignore: !adapter,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

const TOL = 1e-3;
/** A buffer cap under which every weight matrix of pg1-tiny is split into row chunks. */
const LIMIT_ALL_CHUNKED = 3 * 1024;
const STEPS = 24;
const ROOT = new URL("../../../", import.meta.url).pathname;
const IMAGES = join(ROOT, "tests/fixtures/images");
const VAE = join(ROOT, "tests/fixtures/vqvae/vae.npz");

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "lengths");
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

/** Columns [0, n) of a [rows, width] matrix. */
function cols(a: Float32Array, width: number, n: number): Float32Array {
  const r = a.length / width;
  const out = new Float32Array(r * n);
  for (let i = 0; i < r; i++) out.set(a.subarray(i * width, i * width + n), i * n);
  return out;
}

/** The WebGPU backend over a fixture checkpoint (a big_vision npz gets the HF config's scalars). */
async function loadGpu(
  model: string,
  source: string,
  opts: WebGpuBackendOptions = {},
): Promise<WebGpuBackend> {
  const path = join(FIX, model, source);
  const configFile = source.endsWith(".npz") ? join(FIX, model, "hf", "config.json") : undefined;
  const ck = await openCheckpointModel(path, {
    tokenizer: join(FIX, model, "hf", "tokenizer.json"),
    configFile,
  });
  try {
    return await WebGpuBackend.load(ck.source, opts);
  } finally {
    ck.close();
  }
}

/** Greedy tokens for `cases` as one left-padded batch. */
function greedy(be: Backend, cases: readonly FixtureCase[]): Promise<number[][]> {
  return generateCases(be, cases, STEPS);
}

const SOURCES: [string, string][] = [
  ["pg1-tiny", "hf"],
  ["pg1-tiny", "bv.npz"],
  ["pg2-tiny", "hf"],
  ["pg2-tiny", "bv.npz"],
];

for (const [model, source] of SOURCES) {
  gpuTest(
    `webgpu ${model}/${source}: features and logits within 1e-3 of HF, padded batch too`,
    async () => {
      const be = await loadGpu(model, source);
      const ex = await openSafetensors(join(FIX, model, "expected.safetensors"));
      const f32 = async (n: string) => {
        const r = ex.get(n)!;
        return { data: toFloat32(await r.read(), r.dtype), shape: r.shape };
      };
      const ints = async (n: string) => {
        const r = ex.get(n)!;
        return Int32Array.from(new BigInt64Array((await r.read()).slice().buffer), Number);
      };
      try {
        const v = be.vocabSize;
        let worstF = 0;
        let worstL = 0;
        for (let i = 0; ex.get(`case${i}.logits`); i++) {
          const ids = await ints(`case${i}.input_ids`);
          const n = ids.length;
          const feats = await be.encodeImages((await f32(`case${i}.pixel_values`)).data, 1);
          worstF = Math.max(
            worstF,
            relErr(feats.data, (await f32(`case${i}.image_features`)).data),
          );
          const out = await be.prefillLogits({
            batchSize: 1,
            length: n,
            inputIds: ids,
            attentionMask: await ints(`case${i}.attention_mask`),
            positionIds: await ints(`case${i}.position_ids`),
            image: feats,
            logitsToKeep: 0,
          });
          assert.equal(out.kept, n);
          const want = await f32(`case${i}.logits`);
          const ve = want.shape[2];
          const w = Math.min(v, ve);
          worstL = Math.max(worstL, relErr(cols(out.logits, v, w), cols(want.data, ve, w)));
        }
        // The left-padded batch: compare the real positions.
        const ids = await ints("batch.input_ids");
        const mask = await ints("batch.attention_mask");
        const [b, t] = ex.get("batch.input_ids")!.shape;
        const px = (await f32("batch.pixel_values")).data;
        const out = await be.prefillLogits({
          batchSize: b,
          length: t,
          inputIds: ids,
          attentionMask: mask,
          positionIds: await ints("batch.position_ids"),
          image: await be.encodeImages(px, b),
          logitsToKeep: 0,
        });
        const want = await f32("batch.logits");
        const ve = want.shape[2];
        const w = Math.min(v, ve);
        const keep = (a: Float32Array, width: number) => {
          const kept: number[] = [];
          mask.forEach((m, j) => {
            if (m) kept.push(...a.subarray(j * width, j * width + w));
          });
          return kept;
        };
        const worstB = relErr(keep(out.logits, v), keep(want.data, ve));
        console.log(
          `  features ${worstF.toExponential(2)}, logits ${worstL.toExponential(2)}, ` +
            `padded batch ${worstB.toExponential(2)}`,
        );
        assert.ok(worstF < TOL, `image features rel err ${worstF}`);
        assert.ok(worstL < TOL, `logits rel err ${worstL}`);
        assert.ok(worstB < TOL, `padded batch logits rel err ${worstB}`);
      } finally {
        ex.close();
        await be.release();
      }
    },
  );

  gpuTest(
    `webgpu ${model}/${source}: 24 greedy tokens equal HF's, alone and in a padded batch`,
    async () => {
      const be = await loadGpu(model, source);
      try {
        const cases = await fixtureCases(model);
        assert.ok(new Set(cases.map((c) => c.ids.length)).size > 1, "cases of one length");
        // Alone: the shortest and the longest case (every case runs in the batch).
        const sorted = cases.toSorted((a, b) => a.ids.length - b.ids.length);
        for (const c of [sorted[0], sorted.at(-1)!]) {
          assert.deepEqual((await greedy(be, [c]))[0], c.greedy, `${c.prompt} alone`);
        }
        const batched = await greedy(be, cases);
        cases.forEach((c, i) => assert.deepEqual(batched[i], c.greedy, `case ${i} in the batch`));
      } finally {
        await be.release();
      }
    },
  );
}

// top-k 40 fits the device kernel's candidate capacity (64 on llvmpipe, 1024 on GPUs); top-k
// 200 overflows it on llvmpipe, so those rows take the CPU fallback there.
for (const topK of [40, 200]) {
  gpuTest(
    `webgpu pg1-tiny: seeded top-k ${topK}/top-p sampling gives the ONNX backend's tokens`,
    () =>
      withTempDir(async (dir) => {
        await convertFixture("pg1-tiny", "hf", dir);
        const md = await openModelDir(dir);
        const tok = await loadTokenizer(md.tokenizer);
        const cases = await fixtureCases("pg1-tiny");
        const jobs = cases.slice(0, 3).map((c) => ({ image: c.image, prompt: c.prompt }));
        const opts = {
          batchSize: 2,
          maxTokens: 12,
          eosIds: [],
          sampling: { temperature: 0.8, topK, topP: 0.9 },
          seed: 11,
          withProbs: true,
        };
        const run = async (be: Backend) => {
          const out: { tokens: number[]; probs: number[] }[] = [];
          try {
            for await (const r of runJobs(be, tok, jobs, opts)) {
              if (isFailure(r)) throw r.error;
              out.push({ tokens: r.tokens, probs: r.probs });
            }
          } finally {
            await be.release();
          }
          return out;
        };
        const onnx = await run(await OnnxBackend.load(md, { threads: 1 }));
        const gbe = await loadGpu("pg1-tiny", "hf");
        const cap = samplePlan(gbe.gpu).cap;
        const gpu = await run(gbe);
        console.log(`  rows picked on the CPU: ${gbe.cpuPickedRows} (device capacity ${cap})`);
        if (topK <= cap) assert.equal(gbe.cpuPickedRows, 0, "all rows picked on the device");
        else assert.ok(gbe.cpuPickedRows > 0, "overflowing rows picked on the CPU");
        onnx.forEach((o, i) => {
          assert.deepEqual(gpu[i].tokens, o.tokens, `job ${i} tokens`);
          assert.ok(relErr(gpu[i].probs, o.probs) < 1e-4, `job ${i} probabilities`);
        });
      }),
  );
}

for (const kvCache of ["f32", "f16"] as const) {
  gpuTest(
    `webgpu pg2-tiny: split-KV decode (3 key ranges), ${kvCache} KV cache, gives HF's greedy tokens`,
    async () => {
      // Decode attention in 3 key ranges merged by attn_combine (long caches pick splits by
      // themselves; the fixtures' caches are too short for that), over an f32 or f16 cache.
      const be = await loadGpu("pg2-tiny", "hf", { splitKv: 3, kvCache });
      try {
        const cases = await fixtureCases("pg2-tiny");
        const batched = await greedy(be, cases);
        cases.forEach((c, i) => assert.deepEqual(batched[i], c.greedy, `case ${i}, split-KV`));
      } finally {
        await be.release();
      }
    },
  );
}

for (const kvCache of ["f32", "f16"] as const) {
  gpuTest(`webgpu pg1-tiny: a ${kvCache} KV cache grown mid-decode keeps HF's tokens`, async () => {
    const be = await loadGpu("pg1-tiny", "hf", { kvCache });
    try {
      const [c] = await fixtureCases("pg1-tiny");
      const n = c.ids.length;
      const r = caseRow(c.ids);
      const pick = { sampling: { temperature: 0, topK: 0, topP: 1 } };
      // Room for one decoded position: the second decode step grows the cache.
      let out = await be.prefill({
        batchSize: 1,
        length: n,
        inputIds: c.ids,
        attentionMask: r.attentionMask,
        positionIds: r.positionIds,
        image: await be.encodeImages(c.pixels, 1),
        reserve: 1,
      }, pick);
      const tokens = [out.tokens[0]];
      for (let step = 0; step < 5; step++) {
        out = await be.decode({
          cache: out.cache,
          tokens: Int32Array.of(out.tokens[0]),
          positionIds: Int32Array.of(n + step + 1),
          attentionMask: new Int32Array(n + step + 1).fill(1),
        }, pick);
        tokens.push(out.tokens[0]);
      }
      assert.deepEqual(tokens, c.greedy.slice(0, 6));
    } finally {
      await be.release();
    }
  });
}

/** The JSON lines of a pg run, timings removed and scores rounded to 5 significant digits. */
function comparable(stdout: string): unknown[] {
  return stdout.trim().split("\n").map((l) =>
    JSON.parse(l, (k, v) => {
      if (k === "timings_ms") return undefined;
      if (k === "score" && typeof v === "number") return Number(v.toPrecision(5));
      return v;
    })
  );
}

gpuTest(
  "webgpu pg1-tiny: pg detect and segment --constrained give the ONNX backend's output",
  () =>
    withTempDir(async (dir) => {
      const folder = join(dir, "pg1");
      await Deno.mkdir(folder);
      await convertFixture("pg1-tiny", "hf", folder);
      const images = [join(IMAGES, "chelsea.png"), join(IMAGES, "astronaut.png")];
      const hf = join(FIX, "pg1-tiny", "hf");
      for (const cmd of ["detect", "segment"]) {
        const labels = cmd === "segment" ? ["--label", "cat"] : ["--labels", "cat ; person"];
        const common = [cmd, ...images, ...labels, "--constrained", "--json"];
        const extra = cmd === "segment"
          ? ["--max-tokens", "42", "--vae", VAE]
          : ["--max-tokens", "24"];
        const onnx = await runPg([...common, ...extra, "--model", folder]);
        assert.equal(onnx.code, 0, onnx.stderr);
        const gpu = await runPg([...common, ...extra, "--model", hf, "--backend", "webgpu"]);
        assert.equal(gpu.code, 0, gpu.stderr);
        assert.match(gpu.stderr, /webgpu: .*f32/);
        const lines = comparable(gpu.stdout) as { objects: unknown[] }[];
        assert.deepEqual(lines, comparable(onnx.stdout), cmd);
        assert.equal(lines.length, 2);
        assert.ok(lines.some((l) => l.objects.length > 0), `${cmd}: no objects to compare`);
      }
    }),
);

gpuTest(
  "webgpu pg2-tiny: pg caption and pg answer give the ONNX backend's output, byte for byte",
  () =>
    withTempDir(async (dir) => {
      const folder = join(dir, "pg2");
      await Deno.mkdir(folder);
      await convertFixture("pg2-tiny", "hf", folder);
      const images = [join(IMAGES, "chelsea.png"), join(IMAGES, "astronaut.png")];
      const hf = join(FIX, "pg2-tiny", "hf");
      const runs = [
        ["caption", ...images, "--max-tokens", "20"],
        ["caption", ...images, "--max-tokens", "20", "--json"],
        ["answer", ...images, "--question", "what is this?", "--max-tokens", "12", "--json"],
      ];
      for (const args of runs) {
        const onnx = await runPg([...args, "--model", folder]);
        assert.equal(onnx.code, 0, onnx.stderr);
        const gpu = await runPg([...args, "--model", hf, "--backend", "webgpu"]);
        assert.equal(gpu.code, 0, gpu.stderr);
        if (args.includes("--json")) {
          assert.deepEqual(comparable(gpu.stdout), comparable(onnx.stdout), args.join(" "));
        } else assert.equal(gpu.stdout, onnx.stdout, args.join(" "));
        assert.ok(onnx.stdout.trim().length > 0, `${args[0]}: empty output`);
      }
    }),
);

gpuTest("webgpu VQ-VAE decoder: the 20 fixture masks within 1e-4, one batch", async () => {
  const dir = join(ROOT, "tests/fixtures/vqvae");
  const meta = JSON.parse(await Deno.readTextFile(join(dir, "codes.json"))) as {
    sequences: { index: number; codes: number[] }[];
  };
  const st = await openSafetensors(join(dir, "masks64.safetensors"));
  const ref = st.get("masks")!;
  const want = toFloat32(await ref.read(), ref.dtype);
  st.close();
  const r = await GpuRunner.open(adapter);
  try {
    const dec = new WebGpuMaskDecoder(r, await loadVqvaeWeights(VAE));
    const got = await dec.decode(meta.sequences.map((s) => s.codes));
    let worst = 0;
    meta.sequences.forEach((s, i) => {
      const w = want.subarray(s.index * 4096, (s.index + 1) * 4096);
      for (let j = 0; j < 4096; j++) worst = Math.max(worst, Math.abs(got[i][j] - w[j]));
    });
    console.log(`  VQ-VAE masks max |diff| ${worst.toExponential(2)}`);
    assert.equal(got.length, 20);
    assert.ok(worst < 1e-4, `max |diff| ${worst}`);
    await dec.close();
  } finally {
    r.destroy();
  }
});

/** Logits at every position of each case's prompt, one case at a time. */
async function allLogits(be: Backend, cases: readonly FixtureCase[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const c of cases) {
    const r = caseRow(c.ids);
    const res = await be.prefillLogits({
      batchSize: 1,
      length: c.ids.length,
      inputIds: c.ids,
      attentionMask: r.attentionMask,
      positionIds: r.positionIds,
      image: await be.encodeImages(c.pixels, 1),
      logitsToKeep: 0,
    });
    out.push(res.logits);
  }
  return out;
}

function argmaxRows(a: Float32Array, v: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < a.length / v; r++) {
    let best = 0;
    for (let i = 1; i < v; i++) if (a[r * v + i] > a[r * v + best]) best = i;
    out.push(best);
  }
  return out;
}

/**
 * The limits tests/convert/fixtures_test.ts holds the ONNX backend to on these folders: max
 * relative logit error against fp32 and the least top-1 agreement.
 */
const LIMITS: [Precision, number, number][] = [
  ["fp32", 1e-3, 1],
  ["fp16", 0.01, 0.99],
  ["q8", 0.03, 0.93],
  ["q4", 0.15, 0.75],
];

for (const model of ["pg1-tiny", "pg2-tiny"]) {
  gpuTest(
    `webgpu ${model}: converted fp32/fp16/q8/q4 folders within the ONNX backend's bounds`,
    () =>
      withTempDir(async (dir) => {
        const cases = await fixtureCases(model);
        const hf = await loadGpu(model, "hf");
        const base = await allLogits(hf, cases);
        await hf.release();
        const failures: string[] = [];
        for (const [p, limit, minAgree] of LIMITS) {
          await convertFixture(model, "hf", dir, p);
          const md = await openModelDir(dir);
          const v = md.config.text.vocabSize;
          const measure = async (be: Backend) => {
            const got = await allLogits(be, cases);
            await be.release();
            let err = 0;
            let agree = 0;
            let total = 0;
            got.forEach((g, i) => {
              err = Math.max(err, relErr(g, base[i]));
              const a = argmaxRows(g, v);
              const b = argmaxRows(base[i], v);
              agree += a.filter((x, j) => x === b[j]).length;
              total += a.length;
            });
            return { err, agree: agree / total };
          };
          const be = await WebGpuBackend.load(openOnnxWeights(md, p), { stored: p });
          // The folder's matrices stay in their stored precision on the device.
          const storage = [...be.storage].map(([f, n]) => `${n} ${f}`).join(", ");
          const want = p === "fp32" ? "f32" : p === "fp16" ? "f16" : p;
          if (!be.storage.has(want as "f32")) failures.push(`${p}: stored as ${storage}`);
          // fp16: every matrix f16 but the patch embedding, a Conv the folder keeps in fp32.
          if (p === "fp16" && (be.storage.get("f32") ?? 0) > 1) {
            failures.push(`fp16: stored as ${storage}`);
          }
          const gpu = await measure(be);
          const ort = await measure(await OnnxBackend.load(md, { dtype: p, threads: 1 }));
          console.log(
            `  ${model} ${p} (${storage}): webgpu max rel err ${(gpu.err * 100).toFixed(3)}% ` +
              `top-1 ${(gpu.agree * 100).toFixed(1)}%; onnx ${(ort.err * 100).toFixed(3)}% ` +
              `${(ort.agree * 100).toFixed(1)}% (limits ${limit * 100}%, ${minAgree * 100}%)`,
          );
          if (gpu.err >= limit) failures.push(`${p} rel err ${gpu.err} above ${limit}`);
          if (gpu.agree < minAgree) failures.push(`${p} top-1 agreement ${gpu.agree}`);
          if (p === "fp16") {
            // The f16-arithmetic GEMM's code path (f32 types where the adapter lacks
            // shader-f16, as llvmpipe does): the same bounds.
            const logic = await measure(
              await WebGpuBackend.load(openOnnxWeights(md, p), {
                stored: p,
                arithmetic: "f16-logic",
              }),
            );
            console.log(`  ${model} fp16, f16-logic GEMM: max rel err ${logic.err}`);
            if (logic.err >= limit) failures.push(`f16-logic rel err ${logic.err}`);
            if (logic.agree < minAgree) failures.push(`f16-logic agreement ${logic.agree}`);
          }
        }
        assert.deepEqual(failures, []);
      }),
  );
}

gpuTest("webgpu decode steps: one submission each, nothing allocated after the first", async () => {
  const be = await loadGpu("pg1-tiny", "hf");
  try {
    const [c] = await fixtureCases("pg1-tiny");
    const n = c.ids.length;
    const r = caseRow(c.ids);
    const pick = { sampling: { temperature: 0, topK: 0, topP: 1 }, withProbs: true };
    let out = await be.prefill({
      batchSize: 1,
      length: n,
      inputIds: c.ids,
      attentionMask: r.attentionMask,
      positionIds: r.positionIds,
      image: await be.encodeImages(c.pixels, 1),
      reserve: 16,
    }, pick);
    const device = be.gpu.device;
    const counts = { buffers: 0, bindGroups: 0, submits: 0 };
    const createBuffer = device.createBuffer.bind(device);
    const createBindGroup = device.createBindGroup.bind(device);
    const submit = device.queue.submit.bind(device.queue);
    const tokens: number[] = [];
    for (let step = 0; step < 6; step++) {
      if (step === 2) {
        device.createBuffer = (d) => (counts.buffers++, createBuffer(d));
        device.createBindGroup = (d) => (counts.bindGroups++, createBindGroup(d));
        device.queue.submit = (c) => (counts.submits++, submit(c));
      }
      tokens.push(out.tokens[0]);
      out = await be.decode({
        cache: out.cache,
        tokens: Int32Array.of(out.tokens[0]),
        positionIds: Int32Array.of(n + step + 1),
        attentionMask: new Int32Array(n + step + 1).fill(1),
      }, pick);
    }
    device.createBuffer = createBuffer;
    device.createBindGroup = createBindGroup;
    device.queue.submit = submit;
    assert.deepEqual(tokens, c.greedy.slice(0, 6));
    // Four steps: no new buffer or bind group, one submission each (the pick's read-back).
    assert.deepEqual(counts, { buffers: 0, bindGroups: 0, submits: 4 });
  } finally {
    await be.release();
  }
});

gpuTest(
  "webgpu weights split into row chunks under a small buffer limit: identical logits",
  async () => {
    const cases = (await fixtureCases("pg1-tiny")).slice(0, 2);
    const ck = await openCheckpointModel(join(FIX, "pg1-tiny", "hf"), {
      tokenizer: join(FIX, "pg1-tiny", "hf", "tokenizer.json"),
    });
    try {
      const whole = await WebGpuBackend.load(ck.source);
      const want = await allLogits(whole, cases);
      const wantTokens = await greedy(whole, cases);
      await whole.release();
      // 100 KiB: the 2153 × 40 embedding table (336 KiB) in 4 chunks, the rest whole.
      const split = await WebGpuBackend.load(ck.source, { maxBufferBytes: 100 * 1024 });
      const got = await allLogits(split, cases);
      const gotTokens = await greedy(split, cases);
      await split.release();
      got.forEach((g, i) => assert.deepEqual(g, want[i], `case ${i} logits`));
      assert.deepEqual(gotTokens, wantTokens);
      assert.deepEqual(gotTokens, cases.map((c) => c.greedy));
      // 3 KiB: every matrix in chunks, the fused norms, residuals and GELU-gates run after them.
      const tiny = await WebGpuBackend.load(ck.source, { maxBufferBytes: LIMIT_ALL_CHUNKED });
      const gotAll = await allLogits(tiny, cases);
      const allTokens = await greedy(tiny, cases);
      await tiny.release();
      gotAll.forEach((g, i) => assert.ok(relErr(g, want[i]) < 1e-5, `case ${i}, all chunked`));
      assert.deepEqual(allTokens, wantTokens);
    } finally {
      ck.close();
    }
  },
);
