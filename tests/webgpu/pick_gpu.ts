import assert from "node:assert/strict";
import { bitmaskWords, pickFromLogits } from "../../lib/backend/cpu_pick.ts";
import { GREEDY } from "../../lib/generate/sampling.ts";
import { pickGreedy, splitPicks } from "../../lib/webgpu/pick_ops.ts";
import { gpuTest, Rng } from "./gpu_test_util.ts";

// pick_greedy against lib/backend/cpu_pick.ts (the choice every backend must make): the same ids
// (ties to the smallest index, masked ids never picked) and the temperature-1 probability of the
// unmasked row within 1e-5 relative (float32 sums on the device, float64 on the CPU).
([[1, 7, false], [3, 2049, true], [5, 33000, true], [2, 100, false]] as const).forEach(
  ([rows, n, masked], idx) => {
    gpuTest(`webgpu pick_greedy ${rows}×${n}${masked ? " with a bitmask" : ""}`, async (r) => {
      const rng = new Rng(900 + idx);
      // Coarse values so ties happen; a few -Infinity entries like a masked row.
      const x = Float32Array.from(
        { length: rows * n },
        () => (rng.next() < 0.01 ? -Infinity : Math.round(rng.next() * 40) / 4),
      );
      const words = bitmaskWords(n);
      const allowed: Uint32Array[] = [];
      for (let i = 0; i < rows; i++) {
        const bits = new Uint32Array(words);
        for (let j = 0; j < n; j++) if (rng.next() < 0.3) bits[j >> 5] |= 1 << (j & 31);
        bits[0] |= 1; // at least one allowed id
        allowed.push(bits);
      }
      const flat = new Uint32Array(rows * words);
      allowed.forEach((b, i) => flat.set(b, i * words));
      const out = r.zeros(2 * rows);
      await pickGreedy(r, {
        x: r.tensor(x),
        bits: masked ? r.tensor(flat) : undefined,
        out,
        rows,
        n,
      });
      const { ids: gotIds, probs: gotProbs } = splitPicks(await r.readU32(out), rows);
      const want = pickFromLogits(x.slice(), rows, n, {
        sampling: GREEDY,
        allowed: masked ? allowed : undefined,
        withProbs: true,
      });
      for (let i = 0; i < rows; i++) {
        assert.equal(gotIds[i], want.tokens[i], `row ${i} id (${rng.tag})`);
        const p = want.probs![i];
        assert.ok(
          Math.abs(gotProbs[i] - p) <= 1e-5 * p + 1e-30,
          `row ${i} prob ${gotProbs[i]} vs ${p} (${rng.tag})`,
        );
      }
    });
  },
);
