/**
 * The worker side of `openWorkerSession` (onnx_session.ts), a web Worker: holds one ONNX Runtime
 * session and answers `create`, `run` and `release` requests; outputs are transferred, not copied.
 * @module
 */

import * as ort from "onnxruntime-node";

/** A tensor as it crosses between threads. */
export interface WireTensor {
  /** ORT element type, e.g. `float32`, `int64`. */
  readonly type: string;
  /** The values. */
  readonly data: Float32Array | BigInt64Array | Int32Array | Uint8Array | Float64Array;
  /** Shape. */
  readonly dims: readonly number[];
}

/** A request from the owning thread. */
export type WorkerRequest =
  | {
    readonly id: number;
    readonly op: "create";
    readonly path: string;
    readonly options: ort.InferenceSession.SessionOptions;
    readonly logLevel: ort.Env["logLevel"];
  }
  | { readonly id: number; readonly op: "run"; readonly feeds: Record<string, WireTensor> }
  | { readonly id: number; readonly op: "release" };

/** The answer to one request: `error` (its message) or its results. */
export interface WorkerReply {
  /** The request's id. */
  readonly id: number;
  /** Set when the request failed. */
  readonly error?: string;
  /** `create`: the graph's input names. */
  readonly inputNames?: readonly string[];
  /** `create`: the graph's output names. */
  readonly outputNames?: readonly string[];
  /** `run`: the outputs. */
  readonly outputs?: Record<string, WireTensor>;
}

let session: ort.InferenceSession | null = null;

async function answer(req: WorkerRequest): Promise<[WorkerReply, ArrayBuffer[]]> {
  if (req.op === "create") {
    if (req.logLevel !== undefined) ort.env.logLevel = req.logLevel;
    session = await ort.InferenceSession.create(req.path, req.options);
    const reply = {
      id: req.id,
      inputNames: [...session.inputNames],
      outputNames: [...session.outputNames],
    };
    return [reply, []];
  }
  if (session === null) throw new Error("no session in this worker");
  if (req.op === "release") {
    await session.release();
    session = null;
    return [{ id: req.id }, []];
  }
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, w] of Object.entries(req.feeds)) {
    feeds[name] = new ort.Tensor(w.type as "float32", w.data as Float32Array, w.dims);
  }
  const result = await session.run(feeds);
  const outputs: Record<string, WireTensor> = {};
  const transfer = new Set<ArrayBuffer>();
  for (const [name, t] of Object.entries(result)) {
    const data = t.data as WireTensor["data"];
    outputs[name] = { type: t.type, data, dims: [...t.dims] };
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    if (whole && data.buffer instanceof ArrayBuffer && data.byteLength > 0) {
      transfer.add(data.buffer);
    }
  }
  return [{ id: req.id, outputs }, [...transfer]];
}

/** The worker's side of the channel (this module runs as a web Worker). */
interface WorkerScope {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerReply, transfer?: Transferable[]): void;
}

if ("WorkerGlobalScope" in globalThis) {
  const scope = globalThis as unknown as WorkerScope;
  scope.onmessage = async (e) => {
    const req = e.data;
    try {
      const [reply, transfer] = await answer(req);
      try {
        scope.postMessage(reply, transfer);
      } catch {
        scope.postMessage(reply); // buffers that cannot be handed over are copied
      }
    } catch (err) {
      scope.postMessage({ id: req.id, error: err instanceof Error ? err.message : String(err) });
    }
  };
}
