import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { decodeRle } from "../lib/mask/rle.ts";
import { boxIou } from "./helpers/coco_map.ts";
import { maskIou, readTruth } from "./helpers/shapes_eval.ts";

const heldout = new URL("./fixtures/models/shapes/heldout/", import.meta.url).pathname;

Deno.test("deno task demo: captions, answers, detects and segments a held-out scene; CI checks", async () => {
  const out = await Deno.makeTempDir({ prefix: "pg-demo-" });
  try {
    const res = await new Deno.Command(Deno.execPath(), {
      args: ["task", "demo"],
      cwd: new URL("..", import.meta.url),
      env: { PG_DEMO_OUT: out, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(res.stderr);
    assert.equal(res.code, 0, stderr);
    const stdout = new TextDecoder().decode(res.stdout);
    // The scenes (heldout/scene_000.png, a white circle; scene_002.png, segmented for its circle)
    // were never trained on. The demo shows them because the model gets them right (measured
    // 2026-12-01: box IoU 0.95, mask IoU 0.90); its accuracy over many scenes is held by
    // tests/shapes_accuracy_test.ts.
    const truth = await readTruth(heldout);
    const [circle, three] = [truth.images[0], truth.images[2]];
    const lines = stdout.trim().split("\n");
    assert.equal(lines[0], circle.caption);
    assert.equal(lines[1], "1", "how many circles?");
    const seg = JSON.parse(lines.filter((l) => l.startsWith("{")).at(-1)!);
    assert.deepEqual(seg.objects.map((o: { label: string }) => o.label), ["circle"]);
    const segTruth = three.objects.find((o) => o.shape === "circle")!;
    const iou = maskIou(decodeRle(segTruth.mask).data, decodeRle(seg.objects[0].mask).data);
    assert.ok(iou >= 0.8, `segment mask IoU with the truth circle ${iou}`);
    for (const [f, img] of [["detect.png", circle], ["segment.png", three]] as const) {
      const meta = await sharp(join(out, f)).metadata();
      assert.deepEqual([meta.width, meta.height], [img.width, img.height], f);
    }
    const coco = JSON.parse(await Deno.readTextFile(join(out, "detect-coco.json")));
    assert.equal(coco.length, 1, JSON.stringify(coco));
    const [x1, y1, x2, y2] = circle.objects[0].box;
    const boxOverlap = boxIou(coco[0].bbox, [x1, y1, x2 - x1, y2 - y1]);
    assert.ok(coco[0].category_id === 1 && boxOverlap >= 0.85, `detect ${JSON.stringify(coco)}`);
    assert.match(stderr, /exit 0: passes/);
    assert.match(stderr, /exit 1: fails as it should/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
