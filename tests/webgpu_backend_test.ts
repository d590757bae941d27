/**
 * Runs the WebGPU backend's end-to-end suite (tests/webgpu/backend/*_gpu.ts) in a child
 * `deno test` process, as tests/webgpu_test.ts does for the kernels: llvmpipe sometimes aborts in
 * its teardown after the summary, which must not take the whole run down; any failure, a missing
 * summary or a crash before it still fails here. Without an adapter the child reports its tests
 * as ignored (skipped, with the reason), never as passed.
 * @module
 */
import assert from "node:assert/strict";

const dir = new URL("./webgpu/backend/", import.meta.url);

Deno.test("WebGPU backend end to end on the tiny fixtures (child process)", async () => {
  const files = [...Deno.readDirSync(dir)]
    .map((e) => e.name)
    .filter((n) => n.endsWith("_gpu.ts"))
    .sort()
    .map((n) => new URL(n, dir).pathname);
  assert.ok(files.length >= 1, "backend test files missing");
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      "--allow-run",
      ...files,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const summary = text.match(/^(ok|FAILED) \| (\d+) passed(?: \((\d+) steps\))? \| (\d+) failed/m);
  assert.ok(summary, `no test summary from the WebGPU backend suite (exit ${out.code}):\n${text}`);
  const [, verdict, passed, , failed] = summary;
  assert.equal(Number(failed), 0, text);
  assert.equal(verdict, "ok", text);
  const skipped = /SKIPPED/.test(text);
  if (!skipped) {
    assert.ok(Number(passed) >= 10, `only ${passed} WebGPU backend tests ran:\n${text}`);
  }
  for (const line of text.split("\n").filter((l) => /^\s+features /.test(l))) console.log(line);
  console.log(`  ${passed} backend tests passed${skipped ? " (skipped: no WebGPU adapter)" : ""}`);
  if (out.code !== 0) {
    console.log(`  note: the child exited with ${out.code} after its summary (adapter teardown)`);
  }
});
