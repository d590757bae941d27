/**
 * ONNX Runtime's own log lines (coloured `[E:onnxruntime:…]` lines printed before an error is
 * thrown) stay off stderr unless the backend is loaded verbose (PG_DEBUG=1 in the CLI).
 */

import assert from "node:assert/strict";
import { withTinyModel } from "../cli/setup.ts";

const onnx = new URL("../../lib/backend/onnx.ts", import.meta.url).href;
const modelDir = new URL("../../lib/backend/model_dir.ts", import.meta.url).href;

/** A script that runs a prefill with positions past the RoPE tables, which ORT rejects. */
const script = (model: string, verbose: boolean) => `
import { OnnxBackend } from ${JSON.stringify(onnx)};
import { openModelDir } from ${JSON.stringify(modelDir)};
const be = await OnnxBackend.load(await openModelDir(${
  JSON.stringify(model)
}), { verbose: ${verbose} });
try {
  await be.prefillLogits({ batchSize: 1, length: 2, inputIds: Int32Array.of(2, 5),
    attentionMask: Int32Array.of(1, 1), positionIds: Int32Array.of(9000, 9001), image: null });
} catch (e) {
  console.log("threw", String(e).includes("RotaryEmbedding"));
}`;

Deno.test("ONNX Runtime's log lines are silent unless the backend is verbose", () =>
  withTinyModel(async (_dir, model) => {
    for (const verbose of [false, true]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--ext=ts", script(model, verbose)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(stdout.trim(), "threw true", stderr);
      if (verbose) assert.match(stderr, /onnxruntime/, "the error is logged when verbose");
      else assert.equal(stderr, "");
    }
  }));
