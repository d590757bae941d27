/**
 * Benchmark (a script, not a test): writes a full-size PaliGemma 1 3B 224 bf16 checkpoint with
 * random weights in the HF (sharded safetensors) and big_vision (.npz) layouts under
 * /root/.cache/pg/synthetic/, then reads each back tensor by tensor through openCheckpoint.
 * Existing files are kept and never written twice.
 *
 *   deno run -A tests/bench/synthetic.ts write-hf|write-bv|read-hf|read-bv|all
 *
 * Run each step under `/usr/bin/time -v` for peak RSS (see BENCHMARKS.md).
 * @module
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { bigVisionVocab, preset } from "../model/presets.ts";
import { syntheticBytes, writeSyntheticBigVision, writeSyntheticHf } from "../../lib/synthetic.ts";
import { expectedTensorList } from "../../lib/model/names.ts";
import { numel } from "../../lib/checkpoint/tensor.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";

const ROOT = Deno.env.get("PG_SYNTHETIC_DIR") ?? "/root/.cache/pg/synthetic";
const HF_DIR = join(ROOT, "pg1-3b-224-bf16-hf");
const BV_PATH = join(ROOT, "pg1-3b-224-bf16.npz");
const HF_CONFIG = preset("pg1-3b-224");
const BV_CONFIG = bigVisionVocab(HF_CONFIG);
const READ_CHUNK = 64 * 1024 * 1024;

function gb(bytes: number): string {
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

function bytesOf(config: PaliGemmaConfig): number {
  return expectedTensorList(config).reduce((s, t) => s + numel(t.shape) * 2, 0);
}

/** Free bytes on the file system holding `dir` (via df). */
async function freeBytes(dir: string): Promise<number> {
  const out = await new Deno.Command("df", { args: ["-B1", "--output=avail", dir] }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return Number(lines.at(-1));
}

async function ensureSpace(need: number): Promise<boolean> {
  await Deno.mkdir(ROOT, { recursive: true });
  const free = await freeBytes(ROOT);
  const margin = 2e9;
  if (free < need + margin) {
    console.error(
      `NOT ENOUGH DISK: ${ROOT} has ${gb(free)} free; this step needs ${gb(need)} + ${gb(margin)}`,
    );
    return false;
  }
  return true;
}

async function write(kind: "hf" | "bv"): Promise<void> {
  const path = kind === "hf" ? HF_DIR : BV_PATH;
  if (existsSync(path)) {
    console.log(`${path}: exists, not written again`);
    return;
  }
  const need = bytesOf(kind === "hf" ? HF_CONFIG : BV_CONFIG);
  if (!(await ensureSpace(need))) Deno.exit(4);
  const t0 = performance.now();
  if (kind === "hf") await writeSyntheticHf(HF_DIR, HF_CONFIG, { dtype: "BF16" });
  else await writeSyntheticBigVision(BV_PATH, BV_CONFIG, { dtype: "BF16", prefix: "params/" });
  const s = (performance.now() - t0) / 1000;
  console.log(
    `write ${kind}: ${gb(need)} in ${s.toFixed(1)} s (${(need / 1e6 / s).toFixed(0)} MB/s)`,
  );
}

async function read(kind: "hf" | "bv"): Promise<void> {
  const path = kind === "hf" ? HF_DIR : BV_PATH;
  if (!existsSync(path)) {
    console.error(`${path}: missing; run write-${kind} first`);
    Deno.exit(4);
  }
  const t0 = performance.now();
  const ck = await openCheckpoint(path);
  const tOpen = performance.now() - t0;
  let total = 0;
  let checksum = 0;
  const verify = new Set([
    "language_model.model.layers.7.mlp.gate_proj.weight",
    "language_model.model.layers.17.self_attn.o_proj.weight",
    "vision_tower.vision_model.encoder.layers.26.self_attn.q_proj.weight",
  ]);
  let verified = 0;
  for (const [name, ref] of ck.tensors) {
    for (let off = 0; off < ref.byteLength; off += READ_CHUNK) {
      const bytes = await ref.read(off, Math.min(READ_CHUNK, ref.byteLength - off));
      total += bytes.length;
      checksum = (checksum + bytes[0] + bytes[bytes.length - 1]) % 65521;
      if (verify.has(name) && off === 0) {
        const want = syntheticBytes(name, ref.shape, "BF16");
        if (bytes.length !== want.length || !bytes.every((b, i) => b === want[i])) {
          throw new Error(`${name}: bytes differ from the synthetic generator`);
        }
        verified++;
      }
    }
  }
  ck.close();
  const s = (performance.now() - t0) / 1000;
  console.log(
    `read ${kind}: ${ck.tensors.size} tensors, ${gb(total)} in ${s.toFixed(1)} s ` +
      `(${(total / 1e6 / s).toFixed(0)} MB/s; open ${tOpen.toFixed(0)} ms; ${verified} tensors ` +
      `checked against the generator; checksum ${checksum})`,
  );
}

const step = Deno.args[0] ?? "all";
const steps: Record<string, () => Promise<void>> = {
  "write-hf": () => write("hf"),
  "write-bv": () => write("bv"),
  "read-hf": () => read("hf"),
  "read-bv": () => read("bv"),
  all: async () => {
    await write("hf");
    await write("bv");
    await read("hf");
    await read("bv");
  },
};
const run = steps[step];
if (!run) {
  console.error(`usage: synthetic.ts ${Object.keys(steps).join("|")}`);
  Deno.exit(2);
}
await run();
