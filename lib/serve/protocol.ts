/**
 * The JSON that `pg serve` and its clients exchange: the request and reply shapes, their checks
 * (a malformed request is refused with a message naming the field), and float arrays as base64.
 * The endpoints are documented in README.md ("Serving").
 * @module
 */

import { Buffer } from "node:buffer";
import type { AnswerMode } from "../detect/grammar.ts";
import type { PreprocessConfig } from "../image/preprocess_config.ts";
import type { SamplingOptions } from "../generate/sampling.ts";
import type { GrammarSpec } from "./constraint.ts";

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** An error reply: what failed, the one-line message, and the exit code the CLI gives it. */
export interface ErrorBody {
  /** `bad_request`, `request_too_large`, `unknown_model`, `bad_image`, `model_failed`, … */
  readonly kind: string;
  /** One line. */
  readonly message: string;
  /** Exit code of the matching local failure (2 usage, 3 bad input or model). */
  readonly exit_code?: number;
}

/** `POST /v1/session`: open (load if needed) a served model for a run with one prompt. */
export interface SessionRequest {
  /** The `--model` the client was given (matched against the served models). */
  readonly model: string;
  /** `--dtype` when the client gave one (must match what the server loaded). */
  readonly dtype?: string;
  /** The prompt every image of the run gets. */
  readonly prompt: string;
}

/** Reply to `POST /v1/session`: what a client needs to prepare images and word its output. */
export interface SessionInfo {
  /** The model folder on the server. */
  readonly path: string;
  /** The tokenizer file on the server. */
  readonly tokenizer_path: string;
  /** Backend name. */
  readonly backend: string;
  /** Milliseconds the (last) load took. */
  readonly load_ms: number;
  /** End-of-sequence ids. */
  readonly eos_ids: readonly number[];
  /** Id of `<loc0000>` or -1. */
  readonly loc_base: number;
  /** Id of `<seg000>` or -1. */
  readonly seg_base: number;
  /** Context length in tokens. */
  readonly context_length: number;
  /** Image tokens per prompt. */
  readonly num_image_tokens: number;
  /** Tokens of the request's prompt. */
  readonly prompt_length: number;
  /** Side of the square model input. */
  readonly image_size: number;
  /** Image pre-processing of the model folder. */
  readonly preprocess: PreprocessConfig;
}

/** `POST /v1/generate`: one pre-processed image and its prompt (what the CLI client sends). */
export interface GenerateRequest {
  /** As in SessionRequest. */
  readonly model: string;
  /** As in SessionRequest. */
  readonly dtype?: string;
  /** Prompt text, e.g. `caption en`. */
  readonly prompt: string;
  /** The job's position in the client's list (selects its sampling stream). */
  readonly index: number;
  /** `image_size`² × 3 float32 pixel values (CHW), little-endian, base64. */
  readonly pixels: string;
  /** Most new tokens. */
  readonly max_tokens: number;
  /** Token choice. */
  readonly sampling: SamplingOptions;
  /** Sampling seed. */
  readonly seed: number;
  /** Return each token's probability. */
  readonly with_probs: boolean;
  /** Constrained decoding. */
  readonly grammar?: GrammarSpec;
}

/** The model's output for one image. */
export interface GenerateResult {
  /** Generated text. */
  readonly text: string;
  /** Generated ids. */
  readonly tokens: number[];
  /** Token probabilities (empty unless asked for). */
  readonly probs: number[];
  /** Why generation stopped. */
  readonly stop: "eos" | "max_tokens" | "context";
  /** Milliseconds of the batch's stages. */
  readonly timings: { readonly vision: number; readonly prefill: number; readonly decode: number };
  /** Rows in the batch this image ran in. */
  readonly batch_size: number;
}

/** `POST /v1/masks`: decode seg codes with the served model's VQ-VAE decoder. */
export interface MasksRequest {
  /** As in SessionRequest. */
  readonly model: string;
  /** As in SessionRequest. */
  readonly dtype?: string;
  /** 16-code sequences. */
  readonly codes: number[][];
}

/** A request body that is not what the endpoint takes (HTTP 400). */
export class BadRequest extends Error {
  /** `message` names the field and what was expected. */
  constructor(message: string) {
    super(message);
    this.name = "BadRequest";
  }
}

/** Float32 values as little-endian base64. */
export function floatsToBase64(values: Float32Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString("base64");
}

/** Base64 little-endian float32 back to values; `field` names it in errors. */
export function base64ToFloats(text: string, field: string): Float32Array {
  const bytes = Buffer.from(text, "base64");
  if (bytes.length % 4 !== 0) throw new BadRequest(`${field}: not a base64 float32 array`);
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** Field readers over a parsed JSON object, each refusing a wrong type with a clear message. */
export class Fields {
  private readonly obj: { [key: string]: Json };

  /** Wraps `value`, which must be a JSON object (`what` names it in errors). */
  constructor(value: Json, private readonly what = "request") {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new BadRequest(`${what}: expected a JSON object`);
    }
    this.obj = value;
  }

  /** The raw value of `key`. */
  raw(key: string): Json | undefined {
    return this.obj[key];
  }

  /** A required string. */
  string(key: string): string {
    const v = this.obj[key];
    if (typeof v !== "string") throw new BadRequest(`${this.what}: "${key}" must be a string`);
    return v;
  }

  /** An optional string. */
  optString(key: string): string | undefined {
    return this.obj[key] === undefined || this.obj[key] === null ? undefined : this.string(key);
  }

  /** A required finite number within [min, max] (whole when `int`). */
  number(key: string, min: number, max: number, int = false): number {
    const v = this.obj[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
      throw new BadRequest(`${this.what}: "${key}" must be a number from ${min} to ${max}`);
    }
    if (int && !Number.isInteger(v)) {
      throw new BadRequest(`${this.what}: "${key}" must be a whole number`);
    }
    return v;
  }

  /** A boolean (false when absent). */
  flag(key: string): boolean {
    const v = this.obj[key];
    if (v === undefined) return false;
    if (typeof v !== "boolean") {
      throw new BadRequest(`${this.what}: "${key}" must be true or false`);
    }
    return v;
  }

  /** A nested object. */
  object(key: string): Fields {
    return new Fields(this.obj[key] ?? null, `${this.what}.${key}`);
  }
}

/** Reads a GenerateRequest, checking every field. */
export function readGenerateRequest(body: Json): GenerateRequest {
  const f = new Fields(body);
  const head = {
    model: f.string("model"),
    dtype: f.optString("dtype"),
    prompt: f.string("prompt"),
    index: f.number("index", 0, Number.MAX_SAFE_INTEGER, true),
    pixels: f.string("pixels"),
    max_tokens: f.number("max_tokens", 1, 1 << 20, true),
  };
  const s = f.object("sampling");
  const grammar = f.raw("grammar");
  return {
    ...head,
    sampling: {
      temperature: s.number("temperature", 0, 1e6),
      topK: s.number("topK", 0, Number.MAX_SAFE_INTEGER, true),
      topP: s.number("topP", 0, 1),
    },
    seed: f.number("seed", 0, Number.MAX_SAFE_INTEGER, true),
    with_probs: f.flag("with_probs"),
    grammar: grammar === undefined || grammar === null ? undefined : readGrammar(grammar),
  };
}

function readGrammar(value: Json): GrammarSpec {
  const g = new Fields(value, "request.grammar");
  const mode = g.string("mode");
  if (mode !== "detect" && mode !== "segment") {
    throw new BadRequest(`request.grammar: "mode" must be detect or segment`);
  }
  const labels = g.raw("labels");
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === "string") || labels.length < 1) {
    throw new BadRequest(`request.grammar: "labels" must be a non-empty list of strings`);
  }
  return { mode: mode as AnswerMode, labels: labels as string[] };
}

/** Reads a SessionRequest. */
export function readSessionRequest(body: Json): SessionRequest {
  const f = new Fields(body);
  return { model: f.string("model"), dtype: f.optString("dtype"), prompt: f.string("prompt") };
}

/** Reads a MasksRequest. */
export function readMasksRequest(body: Json): MasksRequest {
  const f = new Fields(body);
  const codes = f.raw("codes");
  const ok = Array.isArray(codes) &&
    codes.every((c) => Array.isArray(c) && c.every((x) => Number.isInteger(x)));
  if (!ok) throw new BadRequest(`request: "codes" must be a list of lists of whole numbers`);
  return { model: f.string("model"), dtype: f.optString("dtype"), codes: codes as number[][] };
}
