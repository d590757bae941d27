/**
 * Test helper: a `pg serve` in a subprocess (started as a user starts it, stopped with SIGTERM),
 * and raw HTTP requests to it through tests/serve/raw_client.ts.
 * @module
 */

import { join } from "node:path";
import { netGrant, parseServerUrl } from "../../cli/server_url.ts";
import { pgArgs, ROOT } from "../helpers/cli.ts";

/** A running server. */
export interface TestServer {
  /** Where it listens, as a client's --server value. */
  readonly url: string;
  /** Everything it wrote on stderr so far. */
  stderr(): string;
  /** Sends SIGTERM and waits: exit code and stderr. */
  stop(): Promise<{ code: number; stderr: string }>;
  /** The process (to check it is still running). */
  readonly child: Deno.ChildProcess;
}

/** Starts `pg serve <args>` and waits for its "listening on" line. */
export async function startServer(args: readonly string[]): Promise<TestServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: pgArgs(["serve", ...args]),
    cwd: ROOT,
    env: { PALIGEMMA_MODEL: "", PG_SERVER: "" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  let url: string | undefined;
  const decoder = new TextDecoder();
  const reader = child.stderr.getReader();
  const ready = Promise.withResolvers<string>();
  (async () => {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      const m = /listening on (\S+)/.exec(text);
      if (m && url === undefined) {
        url = m[1];
        ready.resolve(url);
      }
    }
    if (url === undefined) ready.reject(new Error(`pg serve did not start:\n${text}`));
  })();
  const timer = setTimeout(
    () => ready.reject(new Error(`pg serve: no listening line:\n${text}`)),
    60_000,
  );
  try {
    url = await ready.promise;
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return {
    url,
    child,
    stderr: () => text,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const status = await child.status;
      return { code: status.code, stderr: text };
    },
  };
}

/** One request of a raw plan (see tests/serve/raw_client.ts). */
export interface RawStep {
  /** HTTP method. */
  readonly method: string;
  /** Endpoint path. */
  readonly path: string;
  /** JSON body (an object) or a raw string. */
  readonly body?: Record<string, unknown> | string;
  /** File whose bytes (base64) go into `body.image`. */
  readonly image_file?: string;
  /** Send a JSON body of this many bytes instead. */
  readonly huge_bytes?: number;
  /** Drop the connection after this many milliseconds. */
  readonly abort_after_ms?: number;
}

/** A raw reply. */
export interface RawReply {
  /** HTTP status (0 when the request failed). */
  readonly status: number;
  /** The body text. */
  readonly body: string;
}

const RAW_CLIENT = join(new URL(".", import.meta.url).pathname, "raw_client.ts");

/** Sends the steps at once to the server at `url` and returns the replies in order. */
export async function raw(url: string, steps: readonly RawStep[]): Promise<RawReply[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      `--allow-net=${netGrant(parseServerUrl(url))}`,
      RAW_CLIENT,
      url,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(steps)));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  if (out.code !== 0) throw new Error(`raw_client failed: ${dec.decode(out.stderr)}`);
  return JSON.parse(dec.decode(out.stdout));
}

/** The server's health record. */
export interface Health {
  /** Per model: name, loaded, loads, waiting, batches, rows, largest, dropped, ended. */
  readonly models: {
    name: string;
    loaded: boolean;
    loads: number;
    waiting: number;
    batches: number;
    rows: number;
    largest: number;
    dropped: number;
    ended: number;
  }[];
}

/** GET /v1/health. */
export async function health(url: string): Promise<Health> {
  const [r] = await raw(url, [{ method: "GET", path: "/v1/health" }]);
  if (r.status !== 200) throw new Error(`health: HTTP ${r.status}: ${r.body}`);
  return JSON.parse(r.body);
}

/** Whether a TCP connection to host:port succeeds (from a process allowed only that address). */
export async function canConnect(host: string, port: number): Promise<boolean> {
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", `--allow-net=${hostPart}:${port}`, RAW_CLIENT, "probe", host, String(port)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}
