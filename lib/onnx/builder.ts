/**
 * A streaming ONNX model writer with a small graph-building API. Initializers are written to disk
 * as they are added (inline records into a side file, or appended to ONNX external data), so a
 * model never has to be held in memory; the graph structure is kept and written at `finish()`.
 * @module
 */

import { basename } from "node:path";
import { describeFsError } from "../errors.ts";
import { DATA_TYPE_BYTES, DataType, lengthDelimitedTag, onnx, varint } from "./proto.ts";

/** A tensor dimension: a fixed size or a symbolic name. */
export type Dim = number | string;

/** A float attribute (plain numbers are INT attributes). */
export interface FloatAttr {
  /** The value. */
  readonly f: number;
}

/** A float-list attribute (plain number arrays are INTS attributes). */
export interface FloatsAttr {
  /** The values. */
  readonly floats: readonly number[];
}

/** An attribute value: number = INT, number[] = INTS, string = STRING, or a float wrapper. */
export type Attr = number | readonly number[] | string | FloatAttr | FloatsAttr;

/** Tensor bytes: one buffer or chunks whose lengths add up to the tensor size. */
export type WeightData = Uint8Array | AsyncIterable<Uint8Array>;

/** Options of `OnnxModelWriter.create`. */
export interface WriterOptions {
  /** Put initializers of at least `externalMinBytes` into `<path>_data` (ONNX external data). */
  readonly externalData: boolean;
  /** Smallest initializer stored externally (default 1024 bytes). */
  readonly externalMinBytes?: number;
  /** Graph name. */
  readonly graphName?: string;
  /** Opset of the default domain (default 17). */
  readonly opset?: number;
}

interface ValueInfo {
  name: string;
  type: DataType;
  dims: readonly Dim[];
}

interface NodeRecord {
  opType: string;
  domain: string;
  name: string;
  input: string[];
  output: string[];
  attribute: Record<string, unknown>[];
}

const EXTERNAL_ALIGN = 4096;

/** Copies `data` fully to `file`; a failure is an FsError naming `path` (what `file` becomes). */
async function writeAll(file: Deno.FsFile, data: Uint8Array, path: string): Promise<void> {
  let off = 0;
  try {
    while (off < data.length) off += await file.write(data.subarray(off));
  } catch (err) {
    throw describeFsError(err, path, "writing");
  }
}

/** Opens `path` for writing (created or truncated); a failure is an FsError naming `label`. */
async function openForWriting(path: string, label = path): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { write: true, create: true, truncate: true });
  } catch (err) {
    throw describeFsError(err, label, "creating");
  }
}

function encodeAttr(name: string, value: Attr): Record<string, unknown> {
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an integer`);
    return { name, type: 2, i: value };
  }
  if (typeof value === "string") return { name, type: 3, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: 7, ints: [...value] };
  if ("f" in value) return { name, type: 1, f: value.f };
  return { name, type: 6, floats: [...(value as FloatsAttr).floats] };
}

function typeProto(type: DataType, dims: readonly Dim[]): Record<string, unknown> {
  return {
    tensorType: {
      elemType: type,
      shape: {
        dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
      },
    },
  };
}

/** Writes one ONNX model file; build the graph with `input`, `op`, `weight`, `output`, then `finish`. */
export class OnnxModelWriter {
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly nodes: NodeRecord[] = [];
  private readonly smallTensors: Uint8Array[] = [];
  private readonly names = new Set<string>();
  private readonly domains = new Set<string>();
  private counter = 0;
  private bodyBytes = 0;
  private externalBytes = 0;
  private external: Deno.FsFile | undefined;

  private constructor(
    /** Path of the `.onnx` file. */
    readonly path: string,
    private readonly options: WriterOptions,
    private readonly body: Deno.FsFile,
  ) {}

  /** Starts a model at `path` (its side files are `<path>.body` and, if used, `<path>_data`). */
  static async create(path: string, options: WriterOptions): Promise<OnnxModelWriter> {
    // The side file becomes the model file's body: failures name the model file.
    const body = await openForWriting(`${path}.body`, path);
    return new OnnxModelWriter(path, options, body);
  }

  /** Path of the external data file (exists only when some initializer went there). */
  get externalDataPath(): string {
    return `${this.path}_data`;
  }

  /** Declares a graph input. */
  input(name: string, type: DataType, dims: readonly Dim[]): string {
    this.claim(name);
    this.inputs.push({ name, type, dims });
    return name;
  }

  /** Declares a graph output; `value` is renamed to `name` with an Identity when they differ. */
  output(value: string, name: string, type: DataType, dims: readonly Dim[]): void {
    if (value !== name) this.node("Identity", [value], [name]);
    this.outputs.push({ name, type, dims });
  }

  /** A fresh value name starting with `hint`. */
  fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.counter++}`; while (this.names.has(name));
    this.names.add(name);
    return name;
  }

  /** Adds a node with explicit output names (or a count of fresh ones); returns the outputs. */
  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[] | number,
    attrs: Record<string, Attr> = {},
    domain = "",
  ): string[] {
    const out = typeof outputs === "number"
      ? Array.from({ length: outputs }, () => this.fresh(opType))
      : outputs.map((o) => (o === "" ? o : this.claim(o)));
    if (domain !== "") this.domains.add(domain);
    this.nodes.push({
      opType,
      domain,
      name: `${opType}_node_${this.nodes.length}`,
      input: [...inputs],
      output: out,
      attribute: Object.entries(attrs).map(([k, v]) => encodeAttr(k, v)),
    });
    return out;
  }

  /** Adds a single-output node and returns its output name. */
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, Attr> = {},
    domain = "",
  ): string {
    return this.node(opType, inputs, 1, attrs, domain)[0];
  }

  /** A small inline int64 constant. */
  constI64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const bytes = new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer);
    return this.small(DataType.INT64, dims, bytes);
  }

  /** A small inline float32 constant. */
  constF32(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.small(DataType.FLOAT, dims, new Uint8Array(new Float32Array(values).buffer));
  }

  /** A small inline constant of any type from raw little-endian bytes. */
  small(type: DataType, dims: readonly number[], bytes: Uint8Array, name?: string): string {
    const n = name === undefined ? this.fresh("const") : this.claim(name);
    const msg = onnx.TensorProto.encode({
      dims: [...dims],
      dataType: type,
      name: n,
      rawData: bytes,
    })
      .finish();
    this.smallTensors.push(lengthDelimitedTag(5), varint(msg.length), msg);
    return n;
  }

  /** Writes an initializer now (inline or external); returns its name. */
  async weight(
    name: string,
    type: DataType,
    dims: readonly number[],
    data: WeightData,
  ): Promise<string> {
    this.claim(name);
    const length = dims.reduce((a, b) => a * b, 1) * DATA_TYPE_BYTES[type];
    const minExternal = this.options.externalMinBytes ?? 1024;
    if (this.options.externalData && length >= minExternal) {
      await this.writeExternal(name, type, dims, data, length);
    } else {
      const header = onnx.TensorProto.encode({ dims: [...dims], dataType: type, name }).finish();
      const tail = [lengthDelimitedTag(9), varint(length)];
      const recordLen = header.length + tail[0].length + tail[1].length + length;
      for (const part of [lengthDelimitedTag(5), varint(recordLen), header, ...tail]) {
        await writeAll(this.body, part, this.path);
        this.bodyBytes += part.length;
      }
      this.bodyBytes += await this.copyData(this.body, this.path, data, length, name);
    }
    return name;
  }

  /** Writes the model file and closes the side files. */
  async finish(): Promise<void> {
    this.body.close();
    this.external?.close();
    const opsets = [{ domain: "", version: this.options.opset ?? 17 }];
    for (const d of this.domains) opsets.push({ domain: d, version: 1 });
    const meta = onnx.GraphProto.encode({
      node: this.nodes,
      name: this.options.graphName ?? "main",
      input: this.inputs.map((v) => ({ name: v.name, type: typeProto(v.type, v.dims) })),
      output: this.outputs.map((v) => ({ name: v.name, type: typeProto(v.type, v.dims) })),
    }).finish();
    const smallLen = this.smallTensors.reduce((a, b) => a + b.length, 0);
    const graphLen = meta.length + smallLen + this.bodyBytes;
    const head = onnx.ModelProto.encode({
      irVersion: 8,
      producerName: "paligemma-convert",
      producerVersion: "0.1.0",
      opsetImport: opsets,
    }).finish();
    const file = await openForWriting(this.path);
    try {
      for (
        const part of [head, lengthDelimitedTag(7), varint(graphLen), meta, ...this.smallTensors]
      ) {
        await writeAll(file, part, this.path);
      }
      const bodyPath = `${this.path}.body`;
      let body: Deno.FsFile;
      try {
        body = await Deno.open(bodyPath, { read: true });
      } catch (err) {
        throw describeFsError(err, bodyPath, "reading");
      }
      try {
        const buf = new Uint8Array(1 << 22);
        for (;;) {
          let n: number | null;
          try {
            n = await body.read(buf);
          } catch (err) {
            throw describeFsError(err, bodyPath, "reading");
          }
          if (n === null) break;
          await writeAll(file, buf.subarray(0, n), this.path);
        }
      } finally {
        body.close();
      }
    } finally {
      file.close();
    }
    try {
      await Deno.remove(`${this.path}.body`);
    } catch (err) {
      throw describeFsError(err, `${this.path}.body`, "removing");
    }
  }

  /** Closes and removes everything written so far. */
  async abort(): Promise<void> {
    for (const f of [this.body, this.external]) {
      try {
        f?.close();
      } catch { /* already closed */ }
    }
    for (const p of [`${this.path}.body`, this.externalDataPath, this.path]) {
      await Deno.remove(p).catch(() => {});
    }
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX value name ${name} used twice`);
    this.names.add(name);
    return name;
  }

  private async writeExternal(
    name: string,
    type: DataType,
    dims: readonly number[],
    data: WeightData,
    length: number,
  ): Promise<void> {
    if (!this.external) {
      this.external = await openForWriting(this.externalDataPath);
    }
    const pad = (EXTERNAL_ALIGN - (this.externalBytes % EXTERNAL_ALIGN)) % EXTERNAL_ALIGN;
    const path = this.externalDataPath;
    if (pad) await writeAll(this.external, new Uint8Array(pad), path);
    const offset = this.externalBytes + pad;
    this.externalBytes = offset + await this.copyData(this.external, path, data, length, name);
    const msg = onnx.TensorProto.encode({
      dims: [...dims],
      dataType: type,
      name,
      externalData: [
        { key: "location", value: basename(this.externalDataPath) },
        { key: "offset", value: String(offset) },
        { key: "length", value: String(length) },
      ],
      dataLocation: 1,
    }).finish();
    this.smallTensors.push(lengthDelimitedTag(5), varint(msg.length), msg);
  }

  private async copyData(
    file: Deno.FsFile,
    path: string,
    data: WeightData,
    length: number,
    name: string,
  ): Promise<number> {
    let written = 0;
    const chunks = data instanceof Uint8Array ? [data] : data;
    for await (const chunk of chunks) {
      await writeAll(file, chunk, path);
      written += chunk.length;
    }
    if (written !== length) {
      throw new Error(`initializer ${name}: got ${written} bytes, shape needs ${length}`);
    }
    return written;
  }
}
