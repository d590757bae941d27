/**
 * MLP input scaling (lib/convert/input_scaling.ts): the scales, the weighted error it minimises
 * (checked against a direct float64 computation), and the choice of α.
 * @module
 */

import assert from "node:assert/strict";
import {
  chooseInputScaling,
  mlpInputScales,
  sampleRows,
  scaleColumns,
  weightedQuantError,
} from "../../lib/convert/input_scaling.ts";
import { dequantizeRows, quantizeRows, type QuantScheme } from "../../lib/convert/quantize.ts";
import { normalRng } from "./synthetic.ts";

const Q4: QuantScheme = { bits: 4, blockSize: 32, asymmetric: true };

function randomNorm(n: number, seed: number, spread: number): Float32Array {
  const rng = normalRng(seed);
  return new Float32Array(n).map(() => spread * rng());
}

function randomMatrix(rows: number, cols: number, seed: number) {
  const rng = normalRng(seed);
  return { shape: [rows, cols], data: new Float32Array(rows * cols).map(() => 0.1 * rng()) };
}

Deno.test("input scaling: |1+w|^α with geometric mean 1, ones at α = 0", () => {
  const w = randomNorm(64, 1, 0.5);
  assert.deepEqual(Array.from(mlpInputScales(w, 0)), new Array(64).fill(1));
  for (const alpha of [0.25, 1]) {
    const s = mlpInputScales(w, alpha);
    const logMean = s.reduce((a, x) => a + Math.log(x), 0) / s.length;
    assert(Math.abs(logMean) < 1e-6, `log mean ${logMean}`);
    // Ratios follow |1+w|^α exactly.
    for (let j = 1; j < 64; j++) {
      const want = (Math.abs(1 + w[j]) / Math.abs(1 + w[0])) ** alpha;
      assert(Math.abs(s[j] / s[0] / want - 1) < 1e-5, `channel ${j}`);
    }
  }
});

Deno.test("input scaling: weighted error equals a direct float64 sum (several row chunks)", () => {
  const [rows, cols] = [2100, 64]; // more than one 1024-row chunk, the last one partial
  const w = randomMatrix(rows, cols, 2);
  const norm = randomNorm(cols, 3, 0.5);
  const s = mlpInputScales(norm, 0.5);
  const a2 = new Float32Array(cols).map((_, j) => (1 + norm[j]) ** 2);
  const scaled = scaleColumns(w, s).data;
  const deq = dequantizeRows(quantizeRows(scaled, rows, cols, Q4), rows, cols, Q4);
  let want = 0;
  for (let i = 0; i < rows * cols; i++) {
    const d = w.data[i] - deq[i] / s[i % cols];
    want += a2[i % cols] * d * d;
  }
  const got = weightedQuantError(w, s, a2, Q4);
  assert(Math.abs(got / want - 1) < 1e-9, `${got} vs ${want}`);
});

Deno.test("input scaling: the choice minimises the weighted error and is off for a flat norm", () => {
  const cols = 96;
  const mats = [randomMatrix(256, cols, 4), randomMatrix(256, cols, 5)];
  const norm = randomNorm(cols, 6, 0.6);
  const alphas = [0.25, 0.5, 1];
  const a2 = new Float32Array(cols).map((_, j) => (1 + norm[j]) ** 2);
  const errOf = (alpha: number) =>
    mats.reduce((e, m) => e + weightedQuantError(m, mlpInputScales(norm, alpha), a2, Q4), 0);
  const q4 = (w: { shape: number[]; data: Float32Array }) => ({ w, scheme: Q4 });
  const chosen = chooseInputScaling(norm, mats.map(q4), alphas);
  const best = Math.min(...[0, ...alphas].map(errOf));
  assert.equal(errOf(chosen.alpha), best);
  // With norm channels this uneven, scaling beats none (the point of it).
  assert(chosen.alpha > 0 && chosen.scales !== null, `chose α = ${chosen.alpha}`);
  assert(errOf(chosen.alpha) < 0.9 * errOf(0), `${errOf(chosen.alpha)} vs ${errOf(0)}`);
  // A constant norm weight gives constant scales (1 after normalisation): nothing to gain.
  const flat = chooseInputScaling(new Float32Array(cols).fill(0.3), mats.map(q4), alphas);
  // Nothing quantised: nothing to scale.
  assert.deepEqual(chooseInputScaling(norm, [], alphas), { alpha: 0, scales: null });
  assert.equal(flat.alpha, 0);
  assert.equal(flat.scales, null);
});

Deno.test("input scaling: tall matrices are judged on evenly sampled rows", () => {
  const cols = 64;
  const tall = randomMatrix(9000, cols, 7); // sampled every 3rd row
  const norm = randomNorm(cols, 8, 0.6);
  const alphas = [0.25, 0.5, 1];
  const every3 = {
    shape: [3000, cols],
    data: new Float32Array(3000 * cols).map((_, i) =>
      tall.data[(Math.floor(i / cols) * 3) * cols + (i % cols)]
    ),
  };
  assert.deepEqual(sampleRows(tall), every3);
  assert.equal(sampleRows(every3), every3); // 3000 rows: all of them
  assert.deepEqual(
    chooseInputScaling(norm, [{ w: tall, scheme: Q4 }], alphas),
    chooseInputScaling(norm, [{ w: every3, scheme: Q4 }], alphas),
  );
});
