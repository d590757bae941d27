/**
 * `pg serve`: keep models loaded and run caption, answer, detect and segment for clients (the
 * image commands with `--server`, or any HTTP client) on a Unix socket, or on a TCP port of
 * localhost, with dynamic batching, an idle unload and a graceful stop on SIGINT/SIGTERM.
 * @module
 */

import { dirname } from "node:path";
import { ExitCode, UsageError } from "../lib/errors.ts";
import { Batcher } from "../lib/serve/batcher.ts";
import { ModelSlot } from "../lib/serve/model_slot.ts";
import {
  type Command,
  type FlagValues,
  intFlag,
  parseFlags,
  stringFlag,
  stringsFlag,
} from "./command.ts";
import { loadModel, parseModelArgs } from "./model_args.ts";
import { makeHandler, type Served } from "./serve_http.ts";
import {
  defaultSocketPath,
  formatAddress,
  netGrant,
  netGranted,
  type ServerAddress,
} from "./server_url.ts";
import { writeOut } from "./stdout.ts";
import { errorLine } from "./wording.ts";

/** Default `--max-batch`. */
export const DEFAULT_MAX_BATCH = 8;

/** Default `--max-body`: 64 MiB (a 896x896 image's pixel values are about 13 MB as base64). */
export const DEFAULT_MAX_BODY = 64 * 1024 * 1024;

/** Default `--batch-wait` in milliseconds. */
export const DEFAULT_BATCH_WAIT_MS = 5;

const HELP = `Usage: pg serve --model MODEL [--model MODEL2 ...] [options]

Keeps the models loaded and runs caption, answer, detect and segment for clients: the image
commands given --server URL (or PG_SERVER), which print exactly what a local run prints, or
any HTTP client (JSON requests, see README.md "Serving"). Requests that arrive together are
run as one batch (left-padded, as --batch-size does); a request whose client goes away stops
using the model. Stops cleanly on SIGINT or SIGTERM, removing its socket.

Where it listens (one of):
  --socket PATH        Unix socket (default $XDG_RUNTIME_DIR/pg/pg.sock, else
                       /tmp/pg-$UID/pg.sock); clients use --server unix:PATH
  --port N             TCP port on 127.0.0.1 (0 picks a free one); clients use
                       --server http://127.0.0.1:N. pg runs itself with network access to
                       that one address only
  --host ADDR          listen on ADDR instead of 127.0.0.1 (with --port), e.g. 0.0.0.0 for
                       every interface: only behind a firewall or a proxy you trust

Models (each --model is loaded at start; clients name one with their own --model, matched
by path or folder name):
  --model MODEL        a converted model folder or a checkpoint (repeatable)
  --dtype NAME         fp32, fp16, q8 or q4 (default: the most accurate present)
  --threads N          ONNX Runtime intra-op threads (default: one per core)
  --tokenizer FILE     tokenizer.model for a big_vision checkpoint
  --config FILE        config.json for a checkpoint

Serving:
  --max-batch N        most images per batch (default ${DEFAULT_MAX_BATCH})
  --batch-wait MS      wait this long for more requests before starting a batch on an idle
                       model (default ${DEFAULT_BATCH_WAIT_MS})
  --idle-timeout S     unload a model after S seconds without requests and load it again on
                       the next one (default 0: keep it loaded)
  --max-body BYTES     refuse request bodies over BYTES (suffix K, M or G; default 64M)

Examples:
  pg serve --model ~/models/pg2-224 &
  PG_SERVER=unix: pg caption photos/*.jpg --model ~/models/pg2-224
  pg serve --model ~/models/pg2-224 --port 8765 --idle-timeout 600
  { printf '{"name": "photo.jpg", "image": "'; base64 -w0 photo.jpg; printf '"}'; } |
    curl -s --unix-socket /tmp/pg-$UID/pg.sock http://pg/v1/caption --data-binary @-`;

/** Parses `--max-body`: bytes with an optional K, M or G suffix. */
export function parseSize(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const m = /^(\d+)([kmg]?)i?b?$/i.exec(text.trim());
  const scale = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m?.[2] ?? "").toLowerCase()];
  const n = m === null || scale === undefined ? NaN : Number(m[1]) * scale;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--max-body expects a size in bytes like 1048576 or 64M, got '${text}'`);
  }
  return n;
}

/** Where to listen, from the flags. */
function listenAddress(values: FlagValues): ServerAddress {
  const socket = stringFlag(values, "socket");
  const host = stringFlag(values, "host");
  if (values.port === undefined) {
    if (host !== undefined) throw new UsageError("serve: --host needs --port");
    return { transport: "unix", path: socket ?? defaultSocketPath() };
  }
  if (socket !== undefined) throw new UsageError("serve: give --socket or --port, not both");
  return {
    transport: "tcp",
    host: host ?? "127.0.0.1",
    port: intFlag(values, "port", 0, 0, 65535),
  };
}

/** Makes the socket's folder (owner only when it is the default one) and clears a stale socket. */
async function prepareSocket(path: string): Promise<void> {
  const dir = dirname(path);
  if (path === defaultSocketPath()) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  }
  let exists = false;
  try {
    exists = (await Deno.lstat(path)).isSocket === true;
  } catch {
    exists = false;
  }
  if (!exists) return;
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    throw new UsageError(
      `serve: ${path}: another server is listening there; stop it or give --socket PATH`,
    );
  } catch (err) {
    if (err instanceof UsageError) throw err;
    await Deno.remove(path); // stale, from a server that was killed
  }
}

/** `serve`: keep models loaded for clients. */
export const serveCommand: Command = {
  name: "serve",
  summary: "keep models loaded for --server clients and HTTP requests",
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values } = parseFlags("serve", args, {
      model: { type: "string", multiple: true },
      dtype: { type: "string" },
      threads: { type: "string" },
      tokenizer: { type: "string" },
      config: { type: "string" },
      socket: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "max-batch": { type: "string" },
      "batch-wait": { type: "string" },
      "idle-timeout": { type: "string" },
      "max-body": { type: "string" },
    });
    if (values.help) {
      writeOut(`${HELP}\n`);
      return ExitCode.ok;
    }
    const names = stringsFlag(values, "model");
    const envModel = Deno.env.get("PALIGEMMA_MODEL");
    if (names.length === 0 && envModel !== undefined && envModel !== "") names.push(envModel);
    if (names.length === 0) {
      throw new UsageError("serve: --model MODEL is required (or set PALIGEMMA_MODEL)");
    }
    const models = names.map((model) => parseModelArgs("serve", { ...values, model }));
    const address = listenAddress(values);
    const maxBatch = intFlag(values, "max-batch", DEFAULT_MAX_BATCH, 1, 4096);
    const waitMs = intFlag(values, "batch-wait", DEFAULT_BATCH_WAIT_MS, 0, 60_000);
    const idleMs = intFlag(values, "idle-timeout", 0, 0, 365 * 86400) * 1000;
    const maxBody = parseSize(stringFlag(values, "max-body"), DEFAULT_MAX_BODY);
    const grant = netGrant(address);
    if (!netGranted(grant)) {
      throw new UsageError(`serve: no network permission for ${grant} (run it as 'pg serve')`);
    }
    const log = (line: string) => console.error(`serve: ${line}`);

    const served: Served[] = models.map((m) => {
      const slot = new ModelSlot({
        name: m.model,
        dtype: m.dtype,
        load: () => loadModel(m),
        idleMs,
        log,
      });
      const batcher = new Batcher(slot, {
        maxBatch,
        waitMs,
        log,
        word: (err) => errorLine(err),
      });
      return { slot, batcher };
    });
    if (address.transport === "unix") await prepareSocket(address.path);
    for (const s of served) {
      await s.slot.acquire();
      s.slot.release();
    }

    // A bad request must never take the server down, even through a stray promise.
    const onRejection = (e: PromiseRejectionEvent) => {
      e.preventDefault();
      log(`unhandled error: ${errorLine(e.reason).message}`);
    };
    globalThis.addEventListener("unhandledrejection", onRejection);

    const stop = new AbortController();
    const handler = makeHandler({ models: served, maxBody, log });
    const quiet = () => {}; // the line below says where, on stderr
    const server = address.transport === "unix"
      ? Deno.serve({ path: address.path, signal: stop.signal, onListen: quiet }, handler)
      : Deno.serve(
        { hostname: address.host, port: address.port, signal: stop.signal, onListen: quiet },
        handler,
      );
    const listening: ServerAddress = address.transport === "tcp"
      ? { ...address, port: (server.addr as Deno.NetAddr).port }
      : address;
    log(
      `listening on ${formatAddress(listening)} (${served.length} model(s), max batch ${maxBatch})`,
    );

    const signals = ["SIGINT", "SIGTERM"] as const;
    const onSignal = () => {
      if (stop.signal.aborted) return;
      log("stopping: finishing the requests in flight");
      stop.abort();
    };
    for (const sig of signals) Deno.addSignalListener(sig, onSignal);
    await server.finished;
    for (const sig of signals) Deno.removeSignalListener(sig, onSignal);
    for (const s of served) await s.slot.unload();
    if (address.transport === "unix") await Deno.remove(address.path).catch(() => {});
    globalThis.removeEventListener("unhandledrejection", onRejection);
    log("stopped");
    return ExitCode.ok;
  },
};
