/**
 * Runs the WebGPU kernel suite (tests/webgpu/*_gpu.ts) in a child `deno test` process.
 *
 * On Mesa's llvmpipe software adapter the process sometimes aborts in the driver's teardown
 * *after* every test has finished ("double free or corruption" at exit, a few runs in a hundred).
 * Running the suite in a child keeps that exit-time crash from killing the whole test run; any
 * kernel failure, a missing summary, or a crash before the summary still fails this test.
 * @module
 */
import assert from "node:assert/strict";

const dir = new URL("./webgpu/", import.meta.url);

Deno.test("WebGPU kernels match their CPU references (child process)", async () => {
  const files = [...Deno.readDirSync(dir)]
    .map((e) => e.name)
    .filter((n) => n.endsWith("_gpu.ts"))
    .sort()
    .map((n) => new URL(n, dir).pathname);
  assert.ok(files.length >= 5, "kernel test files missing");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-read", "--allow-env", ...files],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const summary = text.match(/^(ok|FAILED) \| (\d+) passed(?: \((\d+) steps\))? \| (\d+) failed/m);
  assert.ok(summary, `no test summary from the WebGPU suite (exit ${out.code}):\n${text}`);
  const [, verdict, passed, , failed] = summary;
  assert.equal(Number(failed), 0, text);
  assert.equal(verdict, "ok", text);
  const skipped = /SKIPPED/.test(text);
  if (!skipped) assert.ok(Number(passed) >= 40, `only ${passed} WebGPU tests ran:\n${text}`);
  console.log(`  ${passed} kernel tests passed${skipped ? " (skipped: no WebGPU adapter)" : ""}`);
  if (out.code !== 0) {
    console.log(`  note: the child exited with ${out.code} after its summary (adapter teardown)`);
  }
});
