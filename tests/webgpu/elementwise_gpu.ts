import assert from "node:assert/strict";
import { add, argmax, embedding, gelu, geluMul, relu, scale } from "../../lib/webgpu/ops.ts";
import { addRef, argmaxRef, embeddingRef, geluMulRef, geluRef, reluRef } from "./cpu_reference.ts";
import { assertClose, assertExactF32, gpuTest, Rng } from "./gpu_test_util.ts";

/** gelu tolerance: max abs err <= 2e-6 · max(1, |x|) over x in [-12, 12]. */
const GELU_TOL = 2e-6 * 12;

[1, 1000, 4097].forEach((n, idx) => {
  gpuTest(`webgpu gelu_tanh n=${n}`, async (r) => {
    const rng = new Rng(300 + idx);
    const x = rng.uniform(n, -12, 12);
    const out = r.zeros(n);
    await gelu(r, { x: r.tensor(x), out, n });
    assertClose(await r.read(out), geluRef(x), GELU_TOL, `gelu (${rng.tag})`);
  });

  gpuTest(`webgpu relu n=${n}`, async (r) => {
    const rng = new Rng(310 + idx);
    const x = rng.uniform(n);
    const out = r.zeros(n);
    await relu(r, { x: r.tensor(x), out, n });
    assertExactF32(await r.read(out), reluRef(x), `relu (${rng.tag})`);
  });

  gpuTest(`webgpu scale n=${n}`, async (r) => {
    const rng = new Rng(320 + idx);
    const x = rng.uniform(n);
    const s = Math.fround(rng.uniform(1, 0.5, 50)[0]);
    const out = r.zeros(n);
    await scale(r, { x: r.tensor(x), out, n, s });
    assertExactF32(await r.read(out), Float64Array.from(x, (v) => v * s), `scale (${rng.tag})`);
  });
});

[[1, 1], [5, 37], [3, 300]].forEach(([rows, cols], idx) => {
  gpuTest(`webgpu gelu_mul ${rows}×${cols} (separate and fused gate|up)`, async (r) => {
    const rng = new Rng(330 + idx);
    const g = rng.uniform(rows * cols, -6, 6);
    const u = rng.uniform(rows * cols, -2, 2);
    const want = geluMulRef(g, u);
    const tol = 4e-6 * 6 * 2;
    const out = r.zeros(rows * cols);
    await geluMul(r, { gate: r.tensor(g), up: r.tensor(u), out, rows, cols });
    assertClose(await r.read(out), want, tol, `gelu_mul separate (${rng.tag})`);
    const fused = new Float32Array(rows * 2 * cols);
    for (let i = 0; i < rows; i++) {
      fused.set(g.subarray(i * cols, (i + 1) * cols), i * 2 * cols);
      fused.set(u.subarray(i * cols, (i + 1) * cols), i * 2 * cols + cols);
    }
    const out2 = r.zeros(rows * cols);
    await geluMul(r, { gate: r.tensor(fused), out: out2, rows, cols });
    assertClose(await r.read(out2), want, tol, `gelu_mul fused (${rng.tag})`);
  });
});

[[1, 1], [300, 300], [1024, 64]].forEach(([n, nb], idx) => {
  gpuTest(`webgpu add n=${n} nb=${nb}`, async (r) => {
    const rng = new Rng(340 + idx);
    const a = rng.uniform(n);
    const b = rng.uniform(nb);
    const out = r.zeros(n);
    await add(r, { a: r.tensor(a), b: r.tensor(b), out, n, nb });
    assertExactF32(await r.read(out), addRef(a, b), `add (${rng.tag})`);
  });
});

[[1, 1, 1], [9, 33, 50], [4, 256, 1000]].forEach(([rows, dim, vocab], idx) => {
  gpuTest(`webgpu embedding ${rows} ids of [${vocab}, ${dim}]`, async (r) => {
    const rng = new Rng(350 + idx);
    const table = rng.uniform(vocab * dim);
    const ids = Uint32Array.from({ length: rows }, () => rng.int(vocab));
    if (rows > 1) ids[rows - 1] = vocab; // out of range: a zero row
    const s = idx === 2 ? Math.fround(Math.sqrt(2048)) : 1;
    const out = r.zeros(rows * dim);
    await embedding(r, {
      table: r.tensor(table),
      ids: r.tensor(ids),
      out,
      rows,
      dim,
      vocab,
      scale: s,
    });
    assertExactF32(
      await r.read(out),
      embeddingRef(table, ids, dim, vocab, s),
      `embedding (${rng.tag})`,
    );
  });
});

[[1, 1], [3, 1000], [2, 70001]].forEach(([rows, n], idx) => {
  gpuTest(`webgpu argmax ${rows}×${n} (ties, NaN)`, async (r) => {
    const rng = new Rng(360 + idx);
    const x = rng.uniform(rows * n, -30, 30);
    if (n > 2) {
      // Row 0: a tie between two late positions; row 1: a NaN before the max.
      const top = 31;
      x[n - 2] = top;
      x[n - 1] = top;
      x[n + 1] = NaN;
    }
    const out = r.zeros(rows);
    await argmax(r, { x: r.tensor(x), out, rows, n });
    const got = await r.readU32(out);
    const want = argmaxRef(x, rows, n);
    assert.deepEqual([...got], [...want], `argmax (${rng.tag})`);
    if (n > 2) assert.equal(got[0], n - 2, "a tie goes to the first index");
  });
});
