/**
 * Which converted graphs keep their weights in external data: every full-size graph (so that
 * ONNX Runtime memory-maps them instead of parsing and copying a protobuf at every load, see
 * BENCHMARKS.md "Load time"), while the tiny test fixtures stay single files.
 */

import assert from "node:assert/strict";
import { EXTERNAL_DATA_BYTES } from "../../lib/convert/convert.ts";
import { preset } from "../model/presets.ts";

Deno.test("external data: the smallest full-size graph is above the threshold", () => {
  // The smallest full-size graph is q8/q4's embedding table: 8-bit blocks of 32 (one byte per
  // weight plus an fp32 scale per 32) over PaliGemma 1 3B's 257152 x 2048 table, 0.59 GB.
  const t = preset("pg1-3b-224").text;
  const embedQ8 = t.vocabSize * t.hiddenSize * (1 + 4 / 32);
  assert.ok(embedQ8 > 0.5e9, `embedding table ${embedQ8} bytes`);
  assert.ok(EXTERNAL_DATA_BYTES < embedQ8 / 4, `threshold ${EXTERNAL_DATA_BYTES}`);
});

Deno.test("external data: the threshold stays far below protobuf's 2 GiB limit", () => {
  assert.ok(EXTERNAL_DATA_BYTES <= 256 * 1024 * 1024);
  assert.ok(EXTERNAL_DATA_BYTES >= 16 * 1024 * 1024, "test fixtures stay single files");
});
