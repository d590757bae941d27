/**
 * Shared helpers of the WebGPU kernel tests: adapter detection (tests are skipped with a message
 * when there is none), per-run seeds, random inputs and tolerance checks.
 * @module
 */

import assert from "node:assert/strict";
import { findGpuAdapter } from "../../lib/webgpu/device.ts";
import { GpuRunner } from "../../lib/webgpu/runner.ts";

const adapter = await findGpuAdapter();
if (!adapter) {
  console.log(
    "tests/webgpu: SKIPPED — navigator.gpu.requestAdapter() returned null (no WebGPU adapter)",
  );
}

/** Seed of this run: PG_TEST_SEED when set, otherwise fresh; printed on failures. */
export const RUN_SEED = Number(Deno.env.get("PG_TEST_SEED") ?? Date.now() % 2147483647);

let runner: Promise<GpuRunner> | undefined;

/**
 * One runner (device) for the whole test run: creating and destroying a device per test churns
 * the software adapter's teardown path, which crashed the process once in ~20 runs on llvmpipe.
 */
function sharedRunner(): Promise<GpuRunner> {
  if (!runner) {
    runner = GpuRunner.open(adapter);
    // Tear the device down before the runtime exits: leaving it alive crashes at exit.
    runner.then((r) => globalThis.addEventListener("unload", () => r.destroy()));
  }
  return runner;
}

/** Registers a test run on the shared runner; ignored (skipped) when there is no adapter. */
export function gpuTest(name: string, fn: (r: GpuRunner) => Promise<void>): void {
  Deno.test({
    name: adapter ? name : `${name} (skipped: no WebGPU adapter)`,
    ignore: !adapter,
    // WebGPU devices keep internal handles alive between tests.
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => await fn(await sharedRunner()),
  });
}

/** A small deterministic PRNG (mulberry32) for test inputs. */
export class Rng {
  #s: number;
  /** Seeds from the run seed and a per-case salt, so every case and run differ. */
  constructor(readonly salt: number) {
    this.#s = (RUN_SEED ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** n float32 values uniform in [lo, hi). */
  uniform(n: number, lo = -1, hi = 1): Float32Array {
    return Float32Array.from({ length: n }, () => lo + (hi - lo) * this.next());
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** A description for failure messages. */
  get tag(): string {
    return `PG_TEST_SEED=${RUN_SEED} case ${this.salt}`;
  }
}

/** Largest absolute value. */
export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/** Asserts max |got - want| <= tol and returns that error (for logging). */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
): number {
  assert.equal(got.length, want.length, `${what}: length`);
  let err = 0;
  let at = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (Number.isNaN(e)) assert.fail(`${what}: element ${i} is ${got[i]}, want ${want[i]}`);
    if (e > err) {
      err = e;
      at = i;
    }
  }
  assert.ok(
    err <= tol,
    `${what}: max abs err ${err.toExponential(2)} at ${at} (got ${got[at]}, want ${want[at]}) ` +
      `> tol ${tol.toExponential(2)}`,
  );
  return err;
}

/** Asserts bit-exact agreement with the float32 rounding of a float64 reference. */
export function assertExactF32(got: Float32Array, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== Math.fround(want[i])) {
      assert.fail(`${what}: element ${i} is ${got[i]}, want ${Math.fround(want[i])}`);
    }
  }
}

/** Asserts |got[i] - want[i]| <= tol[i] for every i (per-element bounds). */
export function assertCloseEach(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: ArrayLike<number>,
  what: string,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= tol[i])) {
      assert.fail(
        `${what}: element ${i} is ${got[i]}, want ${want[i]} (err ${e.toExponential(2)} > ` +
          `tol ${Number(tol[i]).toExponential(2)})`,
      );
    }
  }
}
