/**
 * The small pure parts of `pg serve` and its client: server addresses, the one network grant a
 * command needs, request options as flags, body sizes, the request field checks, and the
 * batch-forming rule (rows that would stop differently in one batch are not batched).
 */

import assert from "node:assert/strict";
import { netNeeded } from "../../cli/net_access.ts";
import { parseSize } from "../../cli/serve.ts";
import { optionArgs } from "../../cli/serve_commands.ts";
import {
  defaultSocketPath,
  formatAddress,
  netGrant,
  parseServerUrl,
} from "../../cli/server_url.ts";
import { UsageError } from "../../lib/errors.ts";
import { forceEnd } from "../../lib/serve/constraint.ts";
import {
  BadRequest,
  base64ToFloats,
  floatsToBase64,
  readGenerateRequest,
} from "../../lib/serve/protocol.ts";

Deno.test("server URLs: unix sockets, http host:port, and refusals", () => {
  assert.deepEqual(parseServerUrl("unix:/run/pg.sock"), {
    transport: "unix",
    path: "/run/pg.sock",
  });
  assert.deepEqual(parseServerUrl("/run/pg.sock"), { transport: "unix", path: "/run/pg.sock" });
  assert.deepEqual(parseServerUrl("unix:"), { transport: "unix", path: defaultSocketPath() });
  assert.deepEqual(parseServerUrl("http://127.0.0.1:8765"), {
    transport: "tcp",
    host: "127.0.0.1",
    port: 8765,
  });
  assert.deepEqual(parseServerUrl("http://[::1]:9"), { transport: "tcp", host: "::1", port: 9 });
  for (
    const bad of ["https://x:1", "http://x", "ftp://x:1", "unix://", "pg.sock", "http://x:1/a"]
  ) {
    assert.throws(() => parseServerUrl(bad), UsageError, bad);
  }
  assert.equal(formatAddress(parseServerUrl("http://[::1]:9")), "http://[::1]:9");
  assert.equal(netGrant(parseServerUrl("http://127.0.0.1:8765")), "127.0.0.1:8765");
  assert.equal(netGrant({ transport: "tcp", host: "127.0.0.1", port: 0 }), "127.0.0.1");
  assert.equal(netGrant(parseServerUrl("unix:/run/pg.sock")), "unix:/run/pg.sock");
});

Deno.test("the one network address each command line needs", () => {
  const env = Deno.env.get("PG_SERVER");
  Deno.env.delete("PG_SERVER");
  try {
    assert.equal(netNeeded(["caption", "a.png"]), undefined);
    assert.equal(netNeeded(["caption", "a.png", "--server", "http://127.0.0.1:5"]), "127.0.0.1:5");
    assert.equal(netNeeded(["detect", "--server=unix:/s.sock", "a.png"]), "unix:/s.sock");
    assert.equal(netNeeded(["convert", "--server", "http://127.0.0.1:5"]), undefined);
    assert.equal(netNeeded(["serve", "--port", "80"]), "127.0.0.1:80");
    assert.equal(netNeeded(["serve", "--port", "0", "--host", "0.0.0.0"]), "0.0.0.0");
    assert.equal(netNeeded(["serve", "--socket", "/x/pg.sock"]), "unix:/x/pg.sock");
    assert.equal(netNeeded(["serve"]), `unix:${defaultSocketPath()}`);
    assert.equal(netNeeded(["caption", "--server", "nonsense"]), undefined);
    Deno.env.set("PG_SERVER", "http://127.0.0.1:7");
    assert.equal(netNeeded(["answer", "a.png", "q"]), "127.0.0.1:7");
    assert.equal(netNeeded(["inspect", "m"]), undefined);
  } finally {
    if (env === undefined) Deno.env.delete("PG_SERVER");
    else Deno.env.set("PG_SERVER", env);
  }
});

Deno.test("request options become the command's flags", () => {
  assert.deepEqual(
    optionArgs({ "max-tokens": 20, label: ["cat", "dog"], constrained: true, json: false }),
    ["--max-tokens=20", "--label=cat", "--label=dog", "--constrained"],
  );
  assert.deepEqual(optionArgs(undefined), []);
  assert.throws(() => optionArgs([1]), UsageError);
  assert.throws(() => optionArgs({ x: { y: 1 } }), UsageError);
});

Deno.test("--max-body sizes", () => {
  assert.equal(parseSize(undefined, 7), 7);
  assert.equal(parseSize("1000", 7), 1000);
  assert.equal(parseSize("2M", 7), 2 * 1024 * 1024);
  assert.equal(parseSize("1g", 7), 1024 ** 3);
  assert.equal(parseSize("64MiB", 7), 64 * 1024 * 1024);
  for (const bad of ["", "0", "-1", "1.5M", "12T", "lots"]) {
    assert.throws(() => parseSize(bad, 7), UsageError, bad);
  }
});

Deno.test("generate requests: float arrays round-trip; a wrong field is named", () => {
  const seed = Math.floor(Math.random() * 1e9);
  let s = seed;
  const values = Float32Array.from({ length: 37 }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31 - 0.5;
  });
  assert.deepEqual(base64ToFloats(floatsToBase64(values), "x"), values, `seed ${seed}`);
  assert.throws(() => base64ToFloats("AAA=", "pixels"), /pixels: not a base64 float32 array/);
  const good = {
    model: "m",
    prompt: "caption en",
    index: 3,
    pixels: floatsToBase64(values),
    max_tokens: 5,
    sampling: { temperature: 0, topK: 0, topP: 1 },
    seed: 0,
    grammar: { mode: "detect", labels: ["cat"] },
  };
  const r = readGenerateRequest(good);
  assert.equal(r.index, 3);
  assert.equal(r.with_probs, false);
  assert.deepEqual(r.grammar, { mode: "detect", labels: ["cat"] });
  const wrong: [Record<string, unknown>, RegExp][] = [
    [{ max_tokens: 0 }, /"max_tokens" must be a number from 1/],
    [{ index: 1.5 }, /"index" must be a whole number/],
    [{ sampling: null }, /request\.sampling: expected a JSON object/],
    [{ grammar: { mode: "caption", labels: ["x"] } }, /"mode" must be detect or segment/],
    [{ grammar: { mode: "detect", labels: [] } }, /"labels" must be a non-empty list/],
    [{ with_probs: "yes" }, /"with_probs" must be true or false/],
  ];
  for (const [patch, message] of wrong) {
    assert.throws(() => readGenerateRequest({ ...good, ...patch }), BadRequest);
    assert.throws(() => readGenerateRequest({ ...good, ...patch }), message);
  }
  assert.throws(() => readGenerateRequest([1, 2]), /request: expected a JSON object/);
});

Deno.test("a cancelled row's mask allows only the end of sequence", () => {
  const allowed = (bits: Uint32Array, vocab: number) =>
    [...Array(vocab).keys()].filter((i) => (bits[i >>> 5] >>> (i & 31)) & 1);
  assert.deepEqual(allowed(forceEnd(2, 4), 4), [2]);
  assert.deepEqual(allowed(forceEnd(33, 70), 70), [33]);
  assert.equal(forceEnd(33, 70).length, 3);
});
