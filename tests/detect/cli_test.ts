/**
 * `detect` and `segment` end to end, as a user runs them (`deno run main.ts …` subprocesses) on
 * a converted PG1-tiny folder with `--constrained`: the JSON is checked against the parser run on
 * the raw answer, masks against the TypeScript VQ-VAE decoder, and the PNG/COCO outputs and
 * `--expect-label` exit codes are checked.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { type Convention, placeBox } from "../../lib/detect/convention.ts";
import { type AnswerMode, parseAnswer } from "../../lib/detect/grammar.ts";
import { openModelDir } from "../../lib/backend/model_dir.ts";
import { OnnxBackend } from "../../lib/backend/onnx.ts";
import { preprocessImage } from "../../lib/image/preprocess.ts";
import { batchPrompts } from "../../lib/prompt/batch.ts";
import { buildPrompt } from "../../lib/prompt/build.ts";
import { detectPrefix } from "../../lib/prompt/tasks.ts";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";
import { pasteMask } from "../../lib/mask/paste.ts";
import { type CocoRle, decodeRle } from "../../lib/mask/rle.ts";
import { CpuVqvaeDecoder } from "../vqvae/cpu_reference.ts";
import { OnnxMaskDecoder } from "../../lib/vqvae/session.ts";
import { loadVqvaeWeights } from "../../lib/vqvae/weights.ts";
import { convertFixture, withTempDir } from "../generate/fixture_models.ts";
import { type PgRun, runPg } from "../helpers/cli.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const IMAGES = join(ROOT, "tests/fixtures/images");
const VAE = join(ROOT, "tests/fixtures/vqvae/vae.npz");
const CHELSEA = join(IMAGES, "chelsea.png");
const ASTRONAUT = join(IMAGES, "astronaut.png");

/** Runs `pg <args>` in a subprocess. */
function pg(...args: string[]): Promise<PgRun> {
  return runPg(args);
}

interface JsonObject {
  label: string;
  box: { x1: number; y1: number; x2: number; y2: number };
  box_normalized: { x1: number; y1: number; x2: number; y2: number };
  score: number | null;
  mask?: CocoRle & { area: number };
}

interface JsonLine {
  image: string;
  width: number;
  height: number;
  convention: Convention;
  objects: JsonObject[];
  skipped: { raw: string; reason: string }[];
  text: string;
}

async function pngSize(path: string): Promise<[number, number]> {
  const m = await sharp(path).metadata();
  return [m.width!, m.height!];
}

async function pngMask(path: string): Promise<Uint8Array> {
  const { data } = await sharp(path).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return Uint8Array.from(data, (v) => (v > 127 ? 1 : 0));
}

/** Checks one NDJSON line against the parser and box rules applied to its raw `text`. */
async function checkLine(
  line: JsonLine,
  mode: AnswerMode,
  labels: string[],
  decoder?: CpuVqvaeDecoder,
): Promise<void> {
  assert.deepEqual([line.width, line.height], await pngSize(line.image));
  const parsed = parseAnswer(line.text, mode);
  assert.ok(parsed.objects.length > 0, `no objects in ${JSON.stringify(line.text)}`);
  assert.equal(line.objects.length, parsed.objects.length);
  assert.deepEqual(line.skipped, parsed.skipped);
  parsed.objects.forEach((p, i) => {
    const o = line.objects[i];
    const placed = placeBox(p.loc, line.width, line.height, line.convention);
    assert.equal(o.label, p.label);
    assert.ok(labels.includes(o.label), `label ${o.label} not asked for`);
    assert.deepEqual(o.box, placed.box);
    assert.deepEqual(o.box_normalized, placed.normalized);
    assert.ok(typeof o.score === "number" && o.score > 0 && o.score <= 1, `score ${o.score}`);
    if (mode === "detect") {
      assert.equal(o.mask, undefined);
      return;
    }
    assert.ok(o.mask, "segment objects carry a mask");
    assert.deepEqual(o.mask.size, [line.height, line.width]);
    const got = decodeRle(o.mask);
    const area = got.data.reduce((a, b) => a + b, 0);
    assert.equal(o.mask.area, area);
    const want = pasteMask(
      decoder!.decode(p.seg!),
      placed.box,
      line.width,
      line.height,
      line.convention,
    );
    let diff = 0;
    for (let k = 0; k < want.data.length; k++) diff += want.data[k] !== got.data[k] ? 1 : 0;
    assert.ok(diff <= want.data.length * 0.001, `${diff} mask pixels differ from the TS decoder`);
  });
}

/** Temperature-1 softmax probability of `id` in `row`. */
function softmaxAt(row: Float32Array, id: number): number {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return Math.exp(row[id] - max) / sum;
}

/**
 * Checks each detect object's score against the model itself: the answer's token ids are rebuilt
 * from the parsed objects (as the constrained grammar emits them), fed to the ONNX backend one by
 * one after the prompt (teacher forcing, no generation loop, no grammar), and every object's score
 * must be the mean temperature-1 probability of its 4 loc tokens.
 */
async function checkDetectScores(model: string, line: JsonLine, labels: string[]): Promise<void> {
  const md = await openModelDir(model);
  const tok = await loadTokenizer(md.tokenizer);
  const parsed = parseAnswer(line.text, "detect").objects;
  const ids: number[] = [];
  const locAt: number[][] = [];
  const sep = tok.encode(" ; ");
  for (const [k, o] of parsed.entries()) {
    if (k > 0) ids.push(...sep);
    locAt.push(o.loc.map((_, j) => ids.length + j));
    ids.push(...o.loc.map((v) => tok.locBase + v), ...tok.encode(` ${o.label}`));
  }
  assert.equal(tok.decode(ids, true), line.text, "token ids rebuilt from the answer");
  const be = await OnnxBackend.load(md, { threads: 1 });
  try {
    const cfg = be.config;
    const pre = await preprocessImage(line.image, cfg.vision.imageSize);
    const feats = await be.encodeImages(pre.pixelValues, 1);
    const prompt = buildPrompt(tok, cfg.numImageTokens, detectPrefix(labels));
    const batch = batchPrompts([prompt], cfg.padTokenId);
    let out = await be.prefillLogits({ ...batch, image: feats, logitsToKeep: 1 });
    const probs: number[] = [];
    let mask = batch.attentionMask;
    let pos = batch.positionIds[batch.length - 1];
    for (const [j, id] of ids.entries()) {
      probs.push(softmaxAt(out.logits, id));
      if (j === ids.length - 1) break;
      mask = Int32Array.from([...mask, 1]);
      out = await be.decodeLogits({
        cache: out.cache,
        tokens: Int32Array.of(id),
        positionIds: Int32Array.of(++pos),
        attentionMask: mask,
      });
    }
    parsed.forEach((_, k) => {
      const want = locAt[k].reduce((a, i) => a + probs[i], 0) / 4;
      const got = line.objects[k].score!;
      assert.ok(Math.abs(got - want) <= 1e-5 * want, `object ${k}: score ${got}, model ${want}`);
    });
  } finally {
    await be.release();
  }
}

Deno.test("detect/segment CLI on pg1-tiny with --constrained: JSON, COCO, PNGs, --expect-label", () =>
  withTempDir(async (dir) => {
    const model = join(dir, "pg1");
    await Deno.mkdir(model);
    await convertFixture("pg1-tiny", "hf", model);

    // segment before the VQ-VAE graph exists: a clear error, exit 3.
    let r = await pg("segment", CHELSEA, "cat", "--model", model, "--constrained");
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /vqvae_decoder\.onnx.*--vae-only/);

    r = await pg("convert", "--vae-only", VAE, model);
    assert.equal(r.code, 0, r.stderr);

    // detect, two images, both conventions.
    for (const convention of ["big_vision", "hf-demo"] as const) {
      const coco = join(dir, `coco-${convention}.json`);
      const overlays = join(dir, `overlays-${convention}`);
      r = await pg(
        "detect",
        CHELSEA,
        ASTRONAUT,
        "--labels",
        "cat ; dog",
        "--model",
        model,
        "--constrained",
        "--json",
        "--max-tokens",
        "24",
        "--convention",
        convention,
        "--coco",
        coco,
        "--overlay",
        overlays,
      );
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as JsonLine);
      assert.deepEqual(lines.map((l) => l.image), [CHELSEA, ASTRONAUT]);
      for (const line of lines) {
        assert.equal(line.convention, convention);
        await checkLine(line, "detect", ["cat", "dog"]);
      }
      if (convention === "big_vision") await checkDetectScores(model, lines[0], ["cat", "dog"]);
      const results = JSON.parse(await Deno.readTextFile(coco));
      assert.equal(results.length, lines.reduce((a, l) => a + l.objects.length, 0));
      let k = 0;
      lines.forEach((line, i) => {
        for (const o of line.objects) {
          const e = results[k++];
          assert.equal(e.image_id, i + 1);
          assert.equal(e.category_id, ["cat", "dog"].indexOf(o.label) + 1);
          assert.deepEqual(e.bbox, [o.box.x1, o.box.y1, o.box.x2 - o.box.x1, o.box.y2 - o.box.y1]);
          assert.equal(e.score, o.score);
        }
      });
      assert.deepEqual(await pngSize(join(overlays, "chelsea.png")), [451, 300]);
      assert.deepEqual(await pngSize(join(overlays, "astronaut.png")), [256, 256]);
    }

    // Plain output: one 'label x1,y1,x2,y2 score' line per object.
    r = await pg(
      "detect",
      CHELSEA,
      "--label",
      "cat",
      "--model",
      model,
      "--constrained",
      "--max-tokens",
      "12",
    );
    assert.equal(r.code, 0, r.stderr);
    for (const line of r.stdout.trimEnd().split("\n")) {
      assert.match(line, /^cat \d+,\d+,\d+,\d+ 0\.\d{3}$/);
    }

    // segment with masks, overlay and the TypeScript decoder as the reference.
    const decoder = new CpuVqvaeDecoder(await loadVqvaeWeights(VAE));
    const masks = join(dir, "masks");
    const overlay = join(dir, "overlay.png");
    r = await pg(
      "segment",
      CHELSEA,
      "cat",
      "--model",
      model,
      "--constrained",
      "--json",
      "--max-tokens",
      "44",
      "--masks-dir",
      masks,
      "--overlay",
      overlay,
    );
    assert.equal(r.code, 0, r.stderr);
    const line = JSON.parse(r.stdout) as JsonLine;
    await checkLine(line, "segment", ["cat"], decoder);
    assert.deepEqual(await pngSize(overlay), [451, 300]);
    const files = [...Deno.readDirSync(masks)].map((e) => e.name).sort();
    assert.deepEqual(files, line.objects.map((_, i) => `chelsea_${i}_cat.png`).sort());
    for (const [i, o] of line.objects.entries()) {
      const path = join(masks, `chelsea_${i}_cat.png`);
      assert.deepEqual(await pngSize(path), [451, 300]);
      assert.deepEqual(await pngMask(path), decodeRle(o.mask!).data);
    }

    // --constrained at the default --max-tokens: the answer ends with whole objects only (without
    // the budget, the astronaut's third object is cut off and skipped as seg_count).
    r = await pg("segment", ASTRONAUT, "cat", "--model", model, "--constrained", "--json");
    assert.equal(r.code, 0, r.stderr);
    const whole = JSON.parse(r.stdout) as JsonLine;
    assert.deepEqual(whole.skipped, [], r.stdout);
    assert.ok(whole.objects.length >= 2, r.stdout);
    await checkLine(whole, "segment", ["cat"], decoder);

    // --vae with the npz builds the graph on the fly: the same objects and masks.
    r = await pg(
      "segment",
      CHELSEA,
      "cat",
      "--model",
      model,
      "--constrained",
      "--json",
      "--max-tokens",
      "44",
      "--vae",
      VAE,
    );
    assert.equal(r.code, 0, r.stderr);
    await checkLine(JSON.parse(r.stdout), "segment", ["cat"], decoder);

    // --expect-label: 0 when present, 1 when absent (or below --min-score), 2 when not looked for.
    // With room for one object only, one of the two labels is absent.
    const base = [
      "detect",
      CHELSEA,
      "cat ; dog",
      "--model",
      model,
      "--constrained",
      "--max-tokens",
      "6",
    ];
    r = await pg(...base, "--json");
    assert.equal(r.code, 0, r.stderr);
    const only = (JSON.parse(r.stdout) as JsonLine).objects;
    assert.equal(only.length, 1, r.stdout);
    const present = only[0].label;
    const absent = present === "cat" ? "dog" : "cat";
    r = await pg(...base, "--expect-label", present);
    assert.equal(r.code, 0, r.stderr);
    r = await pg(...base, "--expect-label", absent);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`chelsea\\.png: check failed: expected an object labelled '${absent}'`),
    );
    r = await pg(...base, "--expect-label", present, "--min-score", "1");
    assert.equal(r.code, 1, r.stderr);
    r = await pg(...base, "--expect-label", "bird");
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--expect-label bird: not among the labels/);
    r = await pg(
      "segment",
      CHELSEA,
      "cat",
      "--model",
      model,
      "--constrained",
      "--max-tokens",
      "22",
      "--expect-label",
      "cat",
    );
    assert.equal(r.code, 0, r.stderr);

    // convert --vae writes the decoder graph with the model; a bad --vae leaves nothing behind.
    const full = join(dir, "full");
    r = await pg("convert", join(ROOT, "tests/fixtures/models/pg1-tiny/hf"), full, "--vae", VAE);
    assert.equal(r.code, 0, r.stderr);
    const viaConvert = await OnnxMaskDecoder.load(join(full, "vqvae_decoder.onnx"));
    try {
      const codes = Array.from({ length: 16 }, (_, i) => (i * 37) % 128);
      const [m] = await viaConvert.decode([codes]);
      const want = decoder.decode(codes);
      assert.ok(m.every((v, i) => Math.abs(v - want[i]) < 1e-4));
    } finally {
      await viaConvert.close();
    }
    const notVae = join(ROOT, "tests/fixtures/models/pg1-tiny/bv.npz");
    r = await pg(
      "convert",
      join(ROOT, "tests/fixtures/models/pg1-tiny/hf"),
      join(dir, "bad"),
      "--vae",
      notVae,
    );
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /_vq_vae\._embedding/);
    assert.ok(![...Deno.readDirSync(dir)].some((e) => e.name.includes("bad")));

    // Usage errors.
    r = await pg("segment", CHELSEA, "cat ; dog", "--model", model);
    assert.equal(r.code, 2, r.stderr);
    const png = join(dir, "several.png");
    r = await pg(
      "detect",
      CHELSEA,
      ASTRONAUT,
      "--label",
      "cat",
      "--model",
      model,
      "--overlay",
      png,
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--overlay .*several\.png: a PNG file takes one image/);
    assert.ok(!(await Deno.stat(png).then(() => true, () => false)), "no folder named .png");
    r = await pg("detect", CHELSEA, "cat", "--model", model, "--convention", "coco");
    assert.equal(r.code, 2, r.stderr);
  }));
