/**
 * `pg serve` and the `--server` thin client end to end, as users run them (subprocesses), on the
 * pg1-tiny fixture model: eight concurrent clients with mixed commands print exactly what local
 * runs print; concurrent HTTP requests run as one batch and equal single runs; a client killed
 * mid-request, a malformed request, a huge body and a bad image leave the server serving; an
 * unknown flag fails as locally before any server is asked; the idle timeout unloads and the next
 * request loads again; TCP listens on 127.0.0.1 only; SIGTERM stops it and removes the socket.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { convertFixture } from "../generate/fixture_models.ts";
import { FIXTURE_IMAGES, records, withoutTimings } from "../cli/setup.ts";
import { pgArgs, type PgRun, runPg } from "../helpers/cli.ts";
import { canConnect, health, raw, startServer, type TestServer } from "./server.ts";

const [ASTRONAUT, CHELSEA, EXIF6, GRAY, RGBA, ROCKET] = FIXTURE_IMAGES;
const VAE = new URL("../fixtures/vqvae/vae.npz", import.meta.url).pathname;

/** A temp folder with `model/` (pg1-tiny with its VQ-VAE decoder) and a corrupt image. */
async function withSetup(body: (dir: string, model: string, bad: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "pg-serve-test-" });
  try {
    const model = join(dir, "model");
    await Deno.mkdir(model);
    await convertFixture("pg1-tiny", "hf", model);
    const vae = await runPg(["convert", "--vae-only", VAE, model]);
    assert.equal(vae.code, 0, vae.stderr);
    const bad = join(dir, "broken.png");
    await Deno.writeFile(bad, new TextEncoder().encode("\x89PNG\r\n\x1a\n not really"));
    await body(dir, model, bad);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Stops the server, checking a clean exit and that the socket file is gone. */
async function stopped(server: TestServer, socket?: string): Promise<void> {
  const { code, stderr } = await server.stop();
  assert.equal(code, 0, stderr);
  assert.match(stderr, /serve: stopped/);
  if (socket !== undefined) assert.equal(exists(socket), false, "the socket file is removed");
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The files of a folder, name → bytes. */
async function files(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) out.set(e.name, await Deno.readFile(join(dir, e.name)));
  return out;
}

/** stdout with the timings of each NDJSON line removed (they differ between any two runs). */
function stableJson(stdout: string): string {
  return records(stdout).map((r) => JSON.stringify(withoutTimings(r))).join("\n");
}

async function pollUntil(what: string, ok: () => Promise<boolean>, seconds = 20): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`timed out waiting for ${what}`);
}

Deno.test("pg serve: concurrent mixed clients equal local runs; batching; bad requests; a killed client", () =>
  withSetup(async (dir, model, bad) => {
    const socket = join(dir, "pg.sock");
    const server = await startServer([
      "--model",
      model,
      "--socket",
      socket,
      "--max-batch",
      "8",
      "--batch-wait",
      "1000",
      "--max-body",
      "2M",
    ]);
    try {
      assert.equal(server.url, `unix:${socket}`);
      // Each case: [args, what to compare]. Output paths hold "@" for the run's own folder.
      const cases: [string[], "bytes" | "json"][] = [
        [["caption", CHELSEA, ASTRONAUT, "--max-tokens", "12"], "bytes"],
        [["answer", ROCKET, "what is this?", "--max-tokens", "10"], "bytes"],
        [["detect", CHELSEA, "cat ; dog", "--json", "--max-tokens", "20"], "bytes"],
        [
          ["segment", ASTRONAUT, "cat", "--constrained", "--json", "--masks-dir", "@/masks"],
          "bytes",
        ],
        [
          ["caption", GRAY, RGBA, "--temperature", "0.9", "--seed", "7", "--max-tokens", "9"],
          "bytes",
        ],
        [["caption", bad, EXIF6, "--json", "--max-tokens", "8"], "json"],
        [
          [
            "detect",
            ROCKET,
            "--label",
            "dog",
            "--expect-label",
            "dog",
            "--json",
            "--junit",
            "@/j.xml",
          ],
          "bytes",
        ],
        [
          ["answer", CHELSEA, "-q", "colour?", "--output-dir", "@/out", "--max-tokens", "6"],
          "bytes",
        ],
      ];
      const run = (i: number, where: string, server?: string): Promise<PgRun> => {
        const own = join(dir, `${where}-${i}`);
        const args = cases[i][0].map((a) => a.replace("@", own));
        return Deno.mkdir(own, { recursive: true }).then(() =>
          runPg([...args, "--model", model], { env: server ? { PG_SERVER: server } : {} })
        );
      };
      const local: PgRun[] = [];
      for (let i = 0; i < cases.length; i++) local.push(await run(i, "local"));
      const remote = await Promise.all(cases.map((_, i) => run(i, "remote", server.url)));
      for (const [i, [args, compare]] of cases.entries()) {
        const what = `pg ${args.join(" ")}`;
        assert.equal(remote[i].code, local[i].code, `${what}: exit code\n${remote[i].stderr}`);
        assert.ok(local[i].stdout.length > 0, `${what}: no output`);
        if (compare === "bytes") assert.equal(remote[i].stdout, local[i].stdout, what);
        else assert.equal(stableJson(remote[i].stdout), stableJson(local[i].stdout), what);
        assert.match(remote[i].stderr, /in pg serve at unix:/, `${what} ran on the server`);
      }
      assert.deepEqual([local[5].code, local[6].code], [3, 1], "a bad image; a failed check");
      assert.match(local[5].stdout, /"kind":"bad_image"/);
      const masks = [
        await files(join(dir, "local-3/masks")),
        await files(join(dir, "remote-3/masks")),
      ];
      assert.ok(masks[0].size > 0);
      assert.deepEqual(masks[1], masks[0], "the same mask PNGs");
      const out = [await files(join(dir, "local-7/out")), await files(join(dir, "remote-7/out"))];
      assert.deepEqual([...out[1].keys()], [...out[0].keys()]);
      const junit = await Deno.readTextFile(join(dir, "remote-6/j.xml"));
      assert.match(junit, /<failure/);

      // Eight HTTP requests at once, four commands: one batch, each equal to the local record.
      const before = await health(server.url);
      const requests = [
        ["caption", CHELSEA, {}],
        ["caption", ROCKET, { "max-tokens": 20 }],
        ["answer", CHELSEA, { question: "what is this?" }],
        ["answer", GRAY, { question: "what is this?" }],
        ["detect", CHELSEA, { labels: "cat ; dog" }],
        ["detect", ASTRONAUT, { label: ["cat", "dog"] }],
        ["segment", ASTRONAUT, { label: "cat", constrained: true }],
        ["segment", CHELSEA, { label: "cat" }],
      ] as const;
      const opts = (o: Record<string, unknown>) => ({ "max-tokens": 20, ...o });
      const replies = await raw(
        server.url,
        requests.map(([command, image, o]) => ({
          method: "POST",
          path: `/v1/${command}`,
          body: { name: image, options: opts(o) },
          image_file: image,
        })),
      );
      const after = await health(server.url);
      assert.equal(after.models[0].batches, before.models[0].batches + 1, "one batch");
      assert.equal(after.models[0].largest, 8);
      for (const [i, [command, image, o]] of requests.entries()) {
        const flags = Object.entries(opts(o)).flatMap(([k, v]) =>
          (Array.isArray(v) ? v : [v]).flatMap((
            x,
          ) => (x === true ? [`--${k}`] : [`--${k}`, String(x)]))
        );
        const mine = await runPg([command, image, ...flags, "--model", model, "--json"]);
        assert.equal(mine.code, 0, mine.stderr);
        assert.equal(replies[i].status, 200, replies[i].body);
        assert.deepEqual(
          withoutTimings(JSON.parse(replies[i].body)),
          withoutTimings(JSON.parse(mine.stdout)),
          `${command} ${JSON.stringify(o)} in a batch of 8 = alone`,
        );
      }

      // Bad requests: error records, and the server goes on.
      const [malformed, huge, badImage, unknown, wrongType] = await raw(server.url, [
        { method: "POST", path: "/v1/generate", body: "{not json" },
        { method: "POST", path: "/v1/caption", huge_bytes: 3 * 1024 * 1024 },
        { method: "POST", path: "/v1/caption", body: { name: "broken.png" }, image_file: bad },
        { method: "POST", path: "/v1/caption", body: { image: "", options: { bogus: 1 } } },
        { method: "POST", path: "/v1/generate", body: { model, prompt: 5 } },
      ]);
      assert.equal(malformed.status, 400);
      assert.equal(JSON.parse(malformed.body).error.kind, "bad_request");
      assert.equal(huge.status, 413);
      assert.equal(JSON.parse(huge.body).error.kind, "request_too_large");
      assert.match(JSON.parse(huge.body).error.message, /limit of 2097152/);
      assert.equal(badImage.status, 422);
      const badRecord = JSON.parse(badImage.body);
      assert.equal(badRecord.image, "broken.png");
      assert.equal(badRecord.error.kind, "bad_image");
      assert.match(badRecord.error.message, /^broken\.png: /);
      assert.equal(
        JSON.parse(unknown.body).error.message,
        "caption: unknown flag --bogus (see 'pg caption --help')",
      );
      assert.match(JSON.parse(wrongType.body).error.message, /"prompt" must be a string/);

      // A client killed mid-request: its rows leave the queue or end, and the server serves on.
      const many = Array.from({ length: 12 }, () => ROCKET);
      // Twice: a client holding its network permission (SIGKILL hits the client itself), then one
      // started as users start it, whose re-run child must stop when its killed parent is gone.
      for (const direct of [true, false]) {
        const before = (await health(server.url)).models[0];
        const victim = new Deno.Command(Deno.execPath(), {
          args: [
            ...pgArgs([]).slice(0, -1),
            ...(direct ? [`--allow-net=unix:${socket}`] : []),
            "main.ts",
            "caption",
            ...many,
            "--model",
            model,
            "--max-tokens",
            "4000",
          ],
          cwd: new URL("../..", import.meta.url),
          env: { PG_SERVER: server.url },
          stdout: "null",
          stderr: "null",
        }).spawn();
        await pollUntil(
          "the victim's first batch",
          async () => (await health(server.url)).models[0].batches > before.batches,
        );
        victim.kill("SIGKILL");
        await victim.status;
        await pollUntil("its requests to be dropped or ended", async () => {
          const m = (await health(server.url)).models[0];
          return m.dropped + m.ended > before.dropped + before.ended;
        });
        // Nothing of it runs on: no batch starts after the queue has drained.
        await pollUntil("the queue to drain", async () => {
          const m = (await health(server.url)).models[0];
          return m.waiting === 0;
        });
      }
      const again = await runPg([
        "caption",
        CHELSEA,
        ASTRONAUT,
        "--max-tokens",
        "12",
        "--model",
        model,
      ], {
        env: { PG_SERVER: server.url },
      });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout, local[0].stdout);
    } finally {
      await stopped(server, socket);
    }
  }));

Deno.test("pg serve: a client's unknown flag fails as locally, before asking the server", () =>
  withSetup(async (dir, model) => {
    const args = ["caption", CHELSEA, "--model", model, "--max-tokns", "3"];
    const local = await runPg(args);
    assert.equal(local.code, 2);
    const nowhere = `unix:${join(dir, "nobody.sock")}`;
    for (const env of [{ PG_SERVER: nowhere }, {} as Record<string, string>]) {
      const extra = "PG_SERVER" in env ? [] : ["--server", nowhere];
      const r = await runPg([...args, ...extra], { env });
      assert.deepEqual([r.code, r.stdout, r.stderr], [local.code, local.stdout, local.stderr]);
    }
    // A server that is not there: one clear line, exit 3.
    const r = await runPg(["caption", CHELSEA, "--model", model], { env: { PG_SERVER: nowhere } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /cannot reach pg serve at unix:.*nobody\.sock/);
    const badUrl = await runPg(["caption", CHELSEA, "--model", model, "--server", "ftp://x"]);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /--server expects unix:\/path\/to\/pg\.sock or http:\/\/HOST:PORT/);
  }));

Deno.test("pg serve: --idle-timeout unloads the model and the next request loads it again", () =>
  withSetup(async (dir, model) => {
    const socket = join(dir, "idle.sock");
    const server = await startServer(["--model", model, "--socket", socket, "--idle-timeout", "1"]);
    try {
      await pollUntil("the unload", async () => !(await health(server.url)).models[0].loaded);
      assert.match(server.stderr(), /unloaded after 1 s idle/);
      const args = ["caption", CHELSEA, "--model", model, "--max-tokens", "8"];
      const r = await runPg(args, { env: { PG_SERVER: server.url } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, (await runPg(args)).stdout);
      const h = (await health(server.url)).models[0];
      assert.equal(h.loads, 2, "loaded at start and again for the request");
    } finally {
      await stopped(server, socket);
    }
  }));

Deno.test("pg serve --port: listens on 127.0.0.1 only; an http:// client gets the local output", () =>
  withSetup(async (_dir, model) => {
    const server = await startServer(["--model", model, "--port", "0"]);
    try {
      const m = /^http:\/\/127\.0\.0\.1:(\d+)$/.exec(server.url);
      assert.ok(m, `listens on 127.0.0.1: ${server.url}`);
      const port = Number(m[1]);
      assert.equal(await canConnect("127.0.0.1", port), true);
      const others = Object.values(Deno.networkInterfaces())
        .filter((i) => i.family === "IPv4" && !i.address.startsWith("127."));
      if (others.length === 0) console.warn("no non-loopback IPv4 interface to probe");
      for (const i of others) {
        assert.equal(await canConnect(i.address, port), false, `not reachable on ${i.address}`);
      }
      const args = ["caption", CHELSEA, "--model", model, "--max-tokens", "8"];
      const r = await runPg(args, { env: { PG_SERVER: server.url } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, (await runPg(args)).stdout);
      assert.match(r.stderr, /in pg serve at http:\/\/127\.0\.0\.1:/);
    } finally {
      await stopped(server);
    }
  }));
