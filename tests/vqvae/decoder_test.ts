import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { openSafetensors } from "../../lib/checkpoint/safetensors.ts";
import { CONVENTIONS, placeBox } from "../../lib/detect/convention.ts";
import { pasteMask } from "../../lib/mask/paste.ts";
import { CpuVqvaeDecoder } from "./cpu_reference.ts";
import { writeVqvaeOnnx } from "../../lib/vqvae/onnx_graph.ts";
import { OnnxMaskDecoder, openMaskDecoder } from "../../lib/vqvae/session.ts";
import { loadVqvaeWeights } from "../../lib/vqvae/weights.ts";

const dir = new URL("../fixtures/vqvae/", import.meta.url).pathname;

interface Sequence {
  index: number;
  codes: number[];
  loc: [number, number, number, number];
  box_big_vision_xyxy: [number, number, number, number];
  box_hf_demo_xyxy: [number, number, number, number];
}

const meta = JSON.parse(Deno.readTextFileSync(join(dir, "codes.json"))) as {
  image_width: number;
  image_height: number;
  sequences: Sequence[];
};

async function expectedMasks(): Promise<Float32Array[]> {
  const st = await openSafetensors(join(dir, "masks64.safetensors"));
  try {
    const ref = st.get("masks")!;
    assert.deepEqual([...ref.shape], [20, 64, 64]);
    const all = toFloat32(await ref.read(), ref.dtype);
    return Array.from({ length: 20 }, (_, i) => all.slice(i * 4096, (i + 1) * 4096));
  } finally {
    st.close();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function readPng(path: string): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(path).extractChannel(0).raw().toBuffer({
    resolveWithObject: true,
  });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

Deno.test("vqvae: TypeScript decoder matches the fixture masks within 1e-4", async () => {
  const weights = await loadVqvaeWeights(join(dir, "vae.npz"));
  assert.equal(weights.dim, 512);
  const want = await expectedMasks();
  const dec = new CpuVqvaeDecoder(weights);
  let worst = 0;
  for (const s of meta.sequences) {
    worst = Math.max(worst, maxAbsDiff(dec.decode(s.codes), want[s.index]));
  }
  assert.ok(worst < 1e-4, `max |diff| ${worst}`);
});

Deno.test("vqvae: ONNX graph through ONNX Runtime matches within 1e-4, one mask well under 50 ms", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const path = join(tmp, "vqvae_decoder.onnx");
    await writeVqvaeOnnx(await loadVqvaeWeights(join(dir, "vae.npz")), path);
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), ["vqvae_decoder.onnx"]);
    const dec = await OnnxMaskDecoder.load(path);
    try {
      const want = await expectedMasks();
      const got = await dec.decode(meta.sequences.map((s) => s.codes));
      let worst = 0;
      for (const s of meta.sequences) {
        worst = Math.max(worst, maxAbsDiff(got[s.index], want[s.index]));
      }
      assert.ok(worst < 1e-4, `max |diff| ${worst}`);
      const times: number[] = [];
      for (const s of meta.sequences) {
        const t = performance.now();
        await dec.decode([s.codes]);
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      const median = times[times.length >> 1];
      console.log(`vqvae ONNX: median ${median.toFixed(1)} ms per mask`);
      assert.ok(median < 50, `median ${median} ms per mask`);
    } finally {
      await dec.close();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("vqvae: pasted masks equal the fixture PNGs under both conventions", async () => {
  const want = await expectedMasks();
  const dec = new CpuVqvaeDecoder(await loadVqvaeWeights(join(dir, "vae.npz")));
  const w = meta.image_width;
  const h = meta.image_height;
  for (const convention of CONVENTIONS) {
    let worstOurs = 0;
    for (const s of meta.sequences) {
      const { box } = placeBox(s.loc, w, h, convention);
      const xyxy = convention === "big_vision" ? s.box_big_vision_xyxy : s.box_hf_demo_xyxy;
      assert.deepEqual([box.x1, box.y1, box.x2, box.y2], xyxy, `box ${s.index}`);
      const png = await readPng(join(dir, "pasted", `${s.index}_${convention}.png`));
      assert.deepEqual([png.width, png.height], [w, h]);
      // From the fixture's own 64x64 mask: the resize and threshold must be exact.
      const exact = pasteMask(want[s.index], box, w, h, convention);
      let diff = 0;
      for (let i = 0; i < w * h; i++) diff += exact.data[i] !== (png.data[i] > 127 ? 1 : 0) ? 1 : 0;
      assert.equal(diff, 0, `${convention} ${s.index}: ${diff} pixels differ`);
      // From our decoder: at most 0.1% of pixels, on the threshold boundary.
      const ours = pasteMask(dec.decode(s.codes), box, w, h, convention);
      diff = 0;
      for (let i = 0; i < w * h; i++) diff += ours.data[i] !== (png.data[i] > 127 ? 1 : 0) ? 1 : 0;
      worstOurs = Math.max(worstOurs, diff / (w * h));
    }
    assert.ok(worstOurs <= 0.001, `${convention}: ${(worstOurs * 100).toFixed(3)}% pixels differ`);
  }
});

Deno.test("vqvae: --vae npz runs through ONNX Runtime, no temporary files left", async () => {
  const tmp = await Deno.makeTempDir();
  const before = Deno.env.get("TMPDIR");
  Deno.env.set("TMPDIR", tmp);
  try {
    const dec = await openMaskDecoder(tmp, join(dir, "vae.npz"));
    try {
      assert.ok(dec instanceof OnnxMaskDecoder, "an ONNX Runtime session, not the TS decoder");
      assert.deepEqual([...Deno.readDirSync(tmp)], [], "the temporary graph is removed");
      const want = await expectedMasks();
      const got = await dec.decode(meta.sequences.map((s) => s.codes));
      let worst = 0;
      for (const s of meta.sequences) {
        worst = Math.max(worst, maxAbsDiff(got[s.index], want[s.index]));
      }
      assert.ok(worst < 1e-4, `max |diff| ${worst}`);
    } finally {
      await dec.close();
    }
  } finally {
    if (before === undefined) Deno.env.delete("TMPDIR");
    else Deno.env.set("TMPDIR", before);
    await Deno.remove(tmp, { recursive: true });
  }
});
