/**
 * The HTTP side of `pg serve`: routes, the request body limit, JSON in and out, and the mapping of
 * every failure to an error record, so that no request can take the server down.
 *
 * - `GET  /v1/health`: the served models and batching counters.
 * - `POST /v1/caption`, `/v1/answer`, `/v1/detect`, `/v1/segment`: one image (base64 file bytes)
 *   and the command's options; the reply is the NDJSON record `pg <command> --json` prints.
 *
 * A request refused before it runs gets a 4xx status and `{"error": …}`; one that runs gets 200
 * and its record, possibly an error record, after leading spaces (see `streamed`).
 * - `POST /v1/session`, `/v1/generate`, `/v1/masks`: the model step, for `--server` clients.
 * @module
 */

import { basename } from "node:path";
import type { Batcher } from "../lib/serve/batcher.ts";
import type { ModelSlot, ServedModel } from "../lib/serve/model_slot.ts";
import {
  BadRequest,
  base64ToFloats,
  type ErrorBody,
  floatsToBase64,
  type Json,
  readGenerateRequest,
  readMasksRequest,
  readSessionRequest,
  type SessionInfo,
} from "../lib/serve/protocol.ts";
import { runImageRequest } from "./serve_commands.ts";
import { errorLine } from "./wording.ts";

/** One served model: its slot and its queue. */
export interface Served {
  /** Loading and unloading. */
  readonly slot: ModelSlot;
  /** The batch queue. */
  readonly batcher: Batcher;
}

/** What the handler serves. */
export interface ServerState {
  /** The models, in `--model` order. */
  readonly models: readonly Served[];
  /** Largest request body accepted, in bytes. */
  readonly maxBody: number;
  /** Log line sink (stderr). */
  readonly log: (line: string) => void;
}

/** A failure with an HTTP status and an error record. */
export class HttpFailure extends Error {
  /** `status` and the record's kind, message and exit code. */
  constructor(readonly status: number, readonly body: ErrorBody) {
    super(body.message);
    this.name = "HttpFailure";
  }
}

const STATUS: Readonly<Record<string, number>> = {
  bad_request: 400,
  unknown_model: 404,
  request_too_large: 413,
  prompt_too_long: 422,
  bad_image: 422,
  cancelled: 499,
  usage: 400,
};

/** The JSON response of `body` with `status`. */
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** The error response of `error` (status from its kind unless given). */
export function errorResponse(error: ErrorBody, status?: number, image?: string): Response {
  const body = image === undefined ? { error } : { image, error };
  return json(body, status ?? STATUS[error.kind] ?? 500);
}

/** Milliseconds between the spaces a streamed reply sends while its request waits or runs. */
export const HEARTBEAT_MS = 200;

/**
 * A reply sent while `run` works: status 200 at once, then a space every HEARTBEAT_MS, then the
 * JSON `run` resolves to (or `{"error": …}`) on one line. The spaces are what lets the server
 * notice a client that went away (Deno does not report a closed connection whose request body was
 * large until something is written to it): the next one fails, and `run`'s signal aborts, which
 * drops the request from the queue or ends its row. JSON parsers skip the leading spaces.
 */
export function streamed(
  run: (gone: AbortSignal) => Promise<unknown>,
  log: (line: string) => void,
): Response {
  const gone = new AbortController();
  const enc = new TextEncoder();
  let timer: ReturnType<typeof setInterval> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(ctl) {
      timer = setInterval(() => {
        try {
          ctl.enqueue(enc.encode(" "));
        } catch {
          gone.abort();
        }
      }, HEARTBEAT_MS);
      run(gone.signal).then(
        (value) => JSON.stringify(value),
        (err) => {
          if (err instanceof HttpFailure) return JSON.stringify({ error: err.body });
          const line = errorLine(err);
          if (!line.expected) log(`a request failed: ${line.message}`);
          return JSON.stringify({ error: { kind: "server_error", message: line.message } });
        },
      ).then((text) => {
        clearInterval(timer);
        if (gone.signal.aborted) return;
        try {
          ctl.enqueue(enc.encode(text + "\n"));
          ctl.close();
        } catch {
          gone.abort();
        }
      });
    },
    cancel() {
      clearInterval(timer);
      gone.abort();
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
}

/** Reads the body, refusing more than `limit` bytes without reading further. */
export async function readBody(req: Request, limit: number): Promise<Uint8Array> {
  const tooLarge = (n: string) =>
    new HttpFailure(413, {
      kind: "request_too_large",
      message: `the request body is ${n} bytes, more than this server's limit of ${limit} ` +
        "(pg serve --max-body)",
      exit_code: 3,
    });
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(String(declared));
  if (req.body === null) return new Uint8Array();
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(`over ${limit}`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Parses a body as JSON (a bad_request failure when it is not). */
export function parseJson(bytes: Uint8Array): Json {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    const why = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw new HttpFailure(400, { kind: "bad_request", message: `the body is not JSON: ${why}` });
  }
}

/** The served model a client's `--model` (and `--dtype`) names. */
export function findModel(state: ServerState, model: string, dtype?: string): Served {
  const strip = (s: string) => s.replace(/\/+$/, "");
  const real = (s: string) => {
    try {
      return Deno.realPathSync(s);
    } catch {
      return undefined;
    }
  };
  const wanted = real(model);
  const match = state.models.find((m) => strip(m.slot.opts.name) === strip(model)) ??
    state.models.find((m) => wanted !== undefined && real(m.slot.opts.name) === wanted) ??
    state.models.find((m) => basename(strip(m.slot.opts.name)) === basename(strip(model)));
  if (match === undefined) {
    const names = state.models.map((m) => m.slot.opts.name).join(", ");
    throw new HttpFailure(404, {
      kind: "unknown_model",
      message: `--model ${model}: this pg serve does not serve it (it serves ${names})`,
      exit_code: 2,
    });
  }
  const served = match.slot.opts.dtype;
  if (dtype !== undefined && served !== undefined && dtype !== served) {
    throw new HttpFailure(404, {
      kind: "unknown_model",
      message: `--dtype ${dtype}: this pg serve runs ${match.slot.opts.name} as ${served}`,
      exit_code: 2,
    });
  }
  return match;
}

/** Runs `body` with the model of `served` held (loaded first if it was unloaded). */
export async function withModel<T>(
  served: Served,
  body: (model: ServedModel) => Promise<T>,
): Promise<T> {
  let model: ServedModel;
  try {
    model = await served.slot.acquire();
  } catch (err) {
    const line = errorLine(err);
    throw new HttpFailure(500, {
      kind: "model_failed",
      message: line.message,
      exit_code: line.exitCode,
    });
  }
  try {
    return await body(model);
  } finally {
    served.slot.release();
  }
}

/** The session reply for `model` and `prompt`. */
function sessionInfo(served: Served, model: ServedModel, prompt: string): SessionInfo {
  const cfg = model.backend.config;
  return {
    path: model.dir.path,
    tokenizer_path: model.dir.tokenizer,
    backend: model.backend.name,
    load_ms: model.loadMs,
    eos_ids: model.dir.eosIds,
    loc_base: model.tokenizer.locBase,
    seg_base: model.tokenizer.segBase,
    context_length: model.backend.contextLength,
    num_image_tokens: cfg.numImageTokens,
    prompt_length: served.slot.prompt(model, prompt).inputIds.length,
    image_size: cfg.vision.imageSize,
    preprocess: model.dir.preprocess,
  };
}

/** The request handler of a server over `state`. */
export function makeHandler(state: ServerState): (req: Request) => Promise<Response> {
  return async (req) => {
    const url = new URL(req.url);
    try {
      return await route(state, req, url.pathname);
    } catch (err) {
      if (err instanceof HttpFailure) return errorResponse(err.body, err.status);
      if (err instanceof BadRequest) {
        return errorResponse({ kind: "bad_request", message: err.message, exit_code: 2 }, 400);
      }
      const line = errorLine(err);
      if (!line.expected) state.log(`${req.method} ${url.pathname}: ${line.message}`);
      return errorResponse(
        { kind: line.expected ? "failed" : "server_error", message: line.message },
        line.expected ? 422 : 500,
      );
    }
  };
}

async function route(state: ServerState, req: Request, path: string): Promise<Response> {
  if (path === "/v1/health" || path === "/") {
    if (req.method !== "GET") throw methodNotAllowed(req.method, path);
    return json({
      ok: true,
      models: state.models.map((m) => ({
        name: m.slot.opts.name,
        loaded: m.slot.loaded,
        loads: m.slot.loads,
        waiting: m.batcher.waiting,
        ...m.batcher.stats,
      })),
    });
  }
  const command = /^\/v1\/(caption|answer|detect|segment)$/.exec(path)?.[1];
  const known = command !== undefined ||
    ["/v1/session", "/v1/generate", "/v1/masks"].includes(path);
  if (!known) {
    throw new HttpFailure(404, { kind: "bad_request", message: `no endpoint ${path}` });
  }
  if (req.method !== "POST") throw methodNotAllowed(req.method, path);
  const body = parseJson(await readBody(req, state.maxBody));
  if (command !== undefined) return await runImageRequest(state, command, body);
  if (path === "/v1/session") {
    const r = readSessionRequest(body);
    const served = findModel(state, r.model, r.dtype);
    return json(await withModel(served, (m) => Promise.resolve(sessionInfo(served, m, r.prompt))));
  }
  if (path === "/v1/masks") {
    const r = readMasksRequest(body);
    const served = findModel(state, r.model, r.dtype);
    return await withModel(served, async (m) => {
      let decoder;
      try {
        decoder = await served.slot.maskDecoder(m);
      } catch (err) {
        const line = errorLine(err);
        throw new HttpFailure(422, {
          kind: "no_mask_decoder",
          message: line.message,
          exit_code: line.exitCode,
        });
      }
      const masks = r.codes.length === 0 ? [] : await decoder.decode(r.codes);
      return json({ masks: masks.map(floatsToBase64) });
    });
  }
  const r = readGenerateRequest(body);
  const served = findModel(state, r.model, r.dtype);
  const pixels = base64ToFloats(r.pixels, "pixels");
  return streamed((gone) =>
    served.batcher.submit({
      prompt: r.prompt,
      index: r.index,
      pixels,
      maxTokens: r.max_tokens,
      sampling: r.sampling,
      seed: r.seed,
      withProbs: r.with_probs,
      grammar: r.grammar,
      signal: gone,
    }), state.log);
}

function methodNotAllowed(method: string, path: string): HttpFailure {
  return new HttpFailure(405, { kind: "bad_request", message: `${method} ${path}: not allowed` });
}
