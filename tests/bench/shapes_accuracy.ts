/**
 * Accuracy of the bundled shapes model (tests/fixtures/models/shapes/) on a held-out set, through the
 * CLI: caption exact match, count accuracy, box mAP@.5 and @[.5:.95] from `detect --coco`, mean mask
 * IoU from `segment`, under both conventions. Prints one JSON object; with --coco-dir also writes each
 * convention's `--coco` file (for the pycocotools cross-check, tests/reference/shapes/evaluate.py).
 *
 *   deno run -A tests/bench/shapes_accuracy.ts [SET_DIR] [--coco-dir DIR]
 *
 * SET_DIR defaults to the committed 24 scenes; BENCHMARKS.md uses 200
 * (`python tests/reference/shapes/make_heldout.py --n 200 --out DIR`).
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CONVENTIONS } from "../../lib/detect/convention.ts";
import { runPg } from "../helpers/cli.ts";
import { evaluateShapes } from "../helpers/shapes_eval.ts";

const root = new URL("../..", import.meta.url).pathname;
const shapes = Deno.env.get("PG_SHAPES_DIR") ?? join(root, "tests", "fixtures", "models", "shapes");

if (import.meta.main) {
  const { positionals, values } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { "coco-dir": { type: "string" } },
  });
  const dir = positionals[0] ?? join(shapes, "heldout");
  const work = values["coco-dir"] ?? await Deno.makeTempDir({ prefix: "pg-shapes-" });
  await Deno.mkdir(work, { recursive: true });
  const model = join(work, "model");
  const conv = await runPg([
    ...["convert", join(shapes, "hf"), model, "--vae", join(shapes, "vae.npz")],
  ]);
  if (conv.code !== 0) throw new Error(conv.stderr);
  const started = performance.now();
  const m = await evaluateShapes({ model, dir, conventions: CONVENTIONS, work });
  const round = (x: number) => Math.round(x * 10000) / 10000;
  const out = {
    set: dir,
    images: m.images,
    caption_exact: round(m.caption),
    count_accuracy: round(m.count),
    conventions: Object.fromEntries(
      Object.entries(m.conventions).map(([c, v]) => [c, {
        map50: round(v.map50),
        map: round(v.map),
        mask_iou: round(v.maskIou),
      }]),
    ),
    seconds: Math.round((performance.now() - started) / 100) / 10,
  };
  console.log(JSON.stringify(out));
}
