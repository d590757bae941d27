import assert from "node:assert/strict";
import { join } from "node:path";
import { expectedTensors } from "../lib/model/names.ts";
import { tinyConfig } from "./model/presets.ts";
import { writeSyntheticBigVision, writeSyntheticHf } from "../lib/synthetic.ts";
import { runPg } from "./helpers/cli.ts";

const pg = (...args: string[]) => runPg(args);

const GEMMA2_ASSUMED = [
  "queryPreAttnScalar",
  "attnLogitSoftcap",
  "finalLogitSoftcap",
  "slidingWindow",
] as const;

function count(shapes: { shape: readonly number[] }[]): number {
  return shapes.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
}

Deno.test("inspect --json reports format, config, parameters per part, dtypes and bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = tinyConfig(2);
    await writeSyntheticBigVision(join(dir, "bv.npz"), cfg, { dtype: "BF16" });
    await writeSyntheticHf(join(dir, "hf"), cfg, { dtype: "F32" });
    const groups = expectedTensors(cfg);
    const want = {
      vision: count(groups.vision),
      projector: count(groups.projector),
      text: count(groups.text),
    };
    for (
      const [path, format, dtype, width] of [
        ["bv.npz", "big_vision", "BF16", 2],
        ["hf", "hf", "F32", 4],
      ] as const
    ) {
      const r = await pg("inspect", join(dir, path), "--json");
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split("\n");
      assert.equal(lines.length, 1, "one JSON object");
      const rep = JSON.parse(lines[0]);
      assert.equal(rep.format, format);
      assert.deepEqual(rep.config, cfg);
      const total = want.vision + want.projector + want.text;
      assert.deepEqual(rep.parameters, { ...want, total });
      assert.deepEqual(Object.keys(rep.dtypes), [dtype]);
      assert.equal(rep.bytes, total * width);
      // An npz cannot store the Gemma 2 query scale, soft-caps or window; config.json does.
      assert.deepEqual(
        rep.assumed,
        format === "big_vision" ? [...GEMMA2_ASSUMED] : undefined,
        `${format}: assumed fields`,
      );
    }
    const text = await pg("inspect", join(dir, "bv.npz"));
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /format: +big_vision \.npz/);
    assert.match(text.stdout, /PaliGemma 2/);
    assert.match(text.stdout, /dtypes: +BF16/);
    assert.match(text.stdout, /query scale \d+\^-0\.5 \(assumed\)/);
    assert.match(text.stdout, /soft-caps 50\/30 \(assumed\)/);
    assert.match(text.stdout, /sliding window 4096 \(assumed\)/);
    assert.match(text.stdout, /^assumed: .*pg convert --config/m);
    const hfText = await pg("inspect", join(dir, "hf"));
    assert.equal(hfText.code, 0, hfText.stderr);
    assert.doesNotMatch(hfText.stdout, /assumed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inspect errors: one line, exit 3 (bad input) or 2 (usage)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "x.bin"), "not a checkpoint");
    const unknown = await pg("inspect", join(dir, "x.bin"));
    assert.equal(unknown.code, 3);
    assert.equal(unknown.stdout, "");
    assert.equal(unknown.stderr.trim().split("\n").length, 1);
    assert.match(unknown.stderr, /x\.bin: unknown checkpoint format/);

    await Deno.writeTextFile(join(dir, "broken.npz"), "PK\u0003\u0004 truncated");
    const broken = await pg("inspect", join(dir, "broken.npz"));
    assert.equal(broken.code, 3);
    assert.equal(broken.stderr.trim().split("\n").length, 1, broken.stderr);

    const missing = await pg("inspect", join(dir, "nothing-here"));
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /nothing-here: no such file or directory/);

    const hf = join(dir, "hf");
    await writeSyntheticHf(hf, tinyConfig(1));
    const json = JSON.parse(await Deno.readTextFile(join(hf, "config.json")));
    json.text_config.num_hidden_layers = 3;
    await Deno.writeTextFile(join(hf, "config.json"), JSON.stringify(json));
    const short = await pg("inspect", hf);
    assert.equal(short.code, 3);
    assert.equal(short.stderr.trim().split("\n").length, 1);
    assert.match(short.stderr, /missing tensor language_model\.model\.layers\.2\./);

    const usage = await pg("inspect");
    assert.equal(usage.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inspect: a PaliGemma 1 npz assumes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeSyntheticBigVision(join(dir, "bv1.npz"), tinyConfig(1));
    const r = await pg("inspect", join(dir, "bv1.npz"), "--json");
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.config.version, 1);
    assert.equal(rep.assumed, undefined);
    const text = await pg("inspect", join(dir, "bv1.npz"));
    assert.match(text.stdout, /soft-caps off\/off, sliding window off, /);
    assert.doesNotMatch(text.stdout, /assumed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
