/**
 * One ONNX Runtime session, either in this thread or in a worker thread of its own.
 *
 * `InferenceSession.create` in onnxruntime-node runs on the JS thread and blocks it: parsing, graph
 * optimisation and weight pre-packing (5-8 s for a 3B decoder, single-threaded). Sessions created
 * in workers are created at the same time as each other and as whatever this thread does meanwhile
 * (building the tokenizer), on the machine's other cores. A worker session is used through the same
 * `run` as a local one: feeds and outputs cross as typed arrays (transferred where this module owns
 * them: the outputs of the worker, and feeds the caller marks as consumed).
 * @module
 */

import * as ort from "onnxruntime-node";
import type { WireTensor, WorkerReply, WorkerRequest } from "./onnx_session_worker.ts";

/** What the backend needs of a session, wherever it lives. */
export interface SessionHandle {
  /** The graph's input names. */
  readonly inputNames: readonly string[];
  /** The graph's output names. */
  readonly outputNames: readonly string[];
  /**
   * Runs the graph. Tensors in `consumed` are handed over (their buffers may be detached after the
   * call): the caller promises not to read them again.
   */
  run(
    feeds: Record<string, ort.Tensor>,
    consumed?: ReadonlySet<ort.Tensor>,
  ): Promise<Record<string, ort.Tensor>>;
  /** Frees the session (and its worker). */
  release(): Promise<void>;
}

/** A session in this thread. */
export async function openLocalSession(
  path: string,
  options: ort.InferenceSession.SessionOptions,
): Promise<SessionHandle> {
  const s = await ort.InferenceSession.create(path, options);
  return {
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    run: async (feeds) => await s.run(feeds),
    release: () => s.release(),
  };
}

function toWire(t: ort.Tensor): WireTensor {
  return { type: t.type, data: t.data as WireTensor["data"], dims: [...t.dims] };
}

function fromWire(w: WireTensor): ort.Tensor {
  return new ort.Tensor(w.type as "float32", w.data as Float32Array, w.dims);
}

/** An error from the worker, rebuilt in this thread with its message. */
class WorkerSessionError extends Error {
  override name = "WorkerSessionError";
}

/**
 * A session created and run in a worker thread (a web Worker: Deno delivers its messages within a
 * millisecond, where node:worker_threads took 300-800 ms per message on this machine). The worker
 * lives until `release`: a program that loads a model and never releases it keeps running, so
 * release it (the CLI exits with `Deno.exit`).
 */
export function openWorkerSession(
  path: string,
  options: ort.InferenceSession.SessionOptions,
  logLevel: ort.Env["logLevel"],
): Promise<SessionHandle> {
  const worker = new Worker(new URL("./onnx_session_worker.ts", import.meta.url), {
    type: "module",
  });
  let nextId = 0;
  let pending = new Map<number, (r: WorkerReply) => void>();
  let dead: Error | null = null;
  const failAll = (err: Error) => {
    dead = err;
    for (const settle of pending.values()) settle({ id: -1, error: err.message });
    pending = new Map();
  };
  worker.onmessage = (e: MessageEvent<WorkerReply>) => {
    const r = e.data;
    const settle = pending.get(r.id);
    if (settle === undefined) return;
    pending.delete(r.id);
    settle(r);
  };
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    failAll(new Error(e.message));
  };

  const call = (req: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply> => {
    if (dead !== null) return Promise.reject(dead);
    return new Promise((resolve, reject) => {
      pending.set(
        req.id,
        (r) => r.error !== undefined ? reject(new WorkerSessionError(r.error)) : resolve(r),
      );
      try {
        worker.postMessage(req, transfer);
      } catch {
        worker.postMessage(req); // buffers that cannot be handed over are copied
      }
    });
  };

  return call({ id: nextId++, op: "create", path, options, logLevel }).then((created) => ({
    inputNames: created.inputNames ?? [],
    outputNames: created.outputNames ?? [],
    async run(feeds, consumed) {
      const wire: Record<string, WireTensor> = {};
      const transfer = new Set<ArrayBuffer>();
      for (const [name, t] of Object.entries(feeds)) {
        wire[name] = toWire(t);
        const view = t.data as ArrayBufferView;
        const buf = view.buffer;
        // Only whole buffers that hold nothing else can be handed over; the rest are copied.
        const whole = view.byteOffset === 0 && view.byteLength === buf.byteLength;
        if (consumed?.has(t) && buf instanceof ArrayBuffer && whole && buf.byteLength > 0) {
          transfer.add(buf);
        }
      }
      const r = await call({ id: nextId++, op: "run", feeds: wire }, [...transfer]);
      const out: Record<string, ort.Tensor> = {};
      for (const [name, w] of Object.entries(r.outputs ?? {})) out[name] = fromWire(w);
      return out;
    },
    async release() {
      if (dead === null) {
        await call({ id: nextId++, op: "release" }).catch(() => {});
      }
      worker.terminate();
      dead = new Error("the session was released");
    },
  }), (err) => {
    worker.terminate();
    throw err;
  });
}
