import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";

Deno.test("deno task demo: converts the bundled model, captions, detects and segments", async () => {
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
    const seg = stdout.trim().split("\n").at(-1)!;
    const obj = JSON.parse(seg);
    assert.equal(obj.objects[0].label, "cat");
    for (const f of ["detect.png", "segment.png", "masks/chelsea_0_cat.png"]) {
      const meta = await sharp(join(out, f)).metadata();
      assert.deepEqual([meta.width, meta.height], [451, 300], f);
    }
    const coco = JSON.parse(await Deno.readTextFile(join(out, "detect-coco.json")));
    assert.ok(Array.isArray(coco) && coco.length > 0);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
