/**
 * The WebGPU backend's refusals that need no adapter: no adapter at all (simulated with
 * DENO_WEBGPU_BACKEND naming a backend this machine lacks) is one line on stderr and exit 3, never
 * a hang; a model whose tensors do not fit the adapter's buffer limits is refused before any
 * upload, with a one-line InputError naming the tensor and the limit; `--backend` takes onnx or
 * webgpu only.
 */

import assert from "node:assert/strict";
import { InputError, UsageError } from "../../lib/errors.ts";
import { checkModelFits } from "../../lib/webgpu/model_weights.ts";
import { parseModelArgs } from "../../cli/model_args.ts";
import { readHfConfig } from "../../lib/checkpoint/hf.ts";
import { runPg } from "../helpers/cli.ts";

const HF = new URL("../fixtures/models/pg1-tiny/hf", import.meta.url).pathname;

Deno.test("webgpu: a model whose rows exceed the adapter's limit is refused naming the limit", async () => {
  const cfg = await readHfConfig(HF);
  const big = { maxBufferSize: 1 << 30, maxStorageBufferBindingSize: 1 << 30 };
  checkModelFits(cfg, big);
  // Matrices are split into row chunks: the table itself need not fit, one row of it must.
  const table = cfg.text.vocabSize * cfg.text.hiddenSize * 4;
  checkModelFits(cfg, { ...big, maxStorageBufferBindingSize: table - 1 });
  const row = cfg.text.hiddenSize * 4;
  assert.ok(cfg.vision.intermediateSize * 4 > row && cfg.text.intermediateSize * 4 > row);
  for (const k of ["maxStorageBufferBindingSize", "maxBufferSize"] as const) {
    const limits = { ...big, [k]: row - 1 };
    assert.throws(() => checkModelFits(cfg, limits), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(
        e.message,
        new RegExp(
          `one row of language_model\\.model\\.embed_tokens\\.weight .* over the adapter's ${k}`,
        ),
      );
      assert.equal(e.message.split("\n").length, 1);
      return true;
    });
  }
});

Deno.test("--backend takes onnx or webgpu", () => {
  const args = (backend: string) => parseModelArgs("caption", { model: HF, backend });
  assert.equal(args("webgpu").backend, "webgpu");
  assert.equal(args("onnx").backend, "onnx");
  assert.throws(
    () => args("cuda"),
    (e: unknown) => e instanceof UsageError && /onnx or webgpu/.test(e.message),
  );
});

Deno.test("--backend webgpu without an adapter: one line on stderr, exit 3", async () => {
  const image = new URL("../fixtures/images/expected/chelsea_56.png", import.meta.url).pathname;
  const r = await runPg(["caption", image, "--model", HF, "--backend", "webgpu", "--json"], {
    env: { DENO_WEBGPU_BACKEND: Deno.build.os === "windows" ? "metal" : "dx12" },
  });
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /WebGPU: no GPU adapter available/);
});
