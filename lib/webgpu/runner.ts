/**
 * A thin WebGPU runner: one device, a pipeline cache keyed by kernel name, storage-buffer
 * helpers and a command encoder that collects dispatches until `flush` (or a read) submits them.
 * All buffers hold 4-byte elements (f32, u32 or i32).
 *
 * Steady state allocates no GPU objects: each dispatch's uniform struct goes into a slot of a
 * reused uniform arena (written with `queue.writeBuffer`, slots recycled at each submit), bind
 * groups are cached by (kernel, buffers, slot), and read-back staging buffers are pooled by size.
 * A decode step that repeats the previous one's dispatches creates no buffer or bind group.
 * @module
 */

import { type KernelName, loadKernelSource } from "./kernel_source.ts";
import { findGpuAdapter, requestGpuDevice } from "./device.ts";

/** Host arrays that can be uploaded. */
export type GpuData = Float32Array | Uint32Array | Int32Array;

/** A storage buffer and its length in 4-byte elements. */
export interface GpuTensor {
  /** The buffer (usage STORAGE | COPY_SRC | COPY_DST). */
  readonly buffer: GPUBuffer;
  /** Elements of 4 bytes. */
  readonly length: number;
}

/** Workgroup counts of one dispatch. */
export type Workgroups = readonly [number, number, number];

/** Largest workgroup count in one dimension that every WebGPU adapter allows. */
export const MAX_GROUPS_PER_DIM = 65535;

/** Splits `groups` workgroups into an (x, y, z) grid with x <= 65535 (kernels linearise x + y*X). */
export function grid(groups: number, z = 1): Workgroups {
  const n = Math.max(1, Math.ceil(groups));
  const x = Math.min(n, MAX_GROUPS_PER_DIM);
  return [x, Math.ceil(n / x), z];
}

/** Packs a uniform struct of 4-byte scalars, padded to a multiple of 16 bytes. */
export class ParamWriter {
  #values: { kind: "u32" | "i32" | "f32"; v: number }[] = [];
  /** Appends a u32 field. */
  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new RangeError(`uniform u32 out of range: ${v}`);
    }
    this.#values.push({ kind: "u32", v });
    return this;
  }
  /** Appends an f32 field. */
  f32(v: number): this {
    this.#values.push({ kind: "f32", v });
    return this;
  }
  /** Appends an i32 field. */
  i32(v: number): this {
    this.#values.push({ kind: "i32", v });
    return this;
  }
  /** The bytes, little-endian, zero-padded to 16-byte multiples. */
  bytes(): ArrayBuffer {
    const size = Math.max(16, Math.ceil(this.#values.length / 4) * 16);
    const buf = new ArrayBuffer(size);
    const dv = new DataView(buf);
    this.#values.forEach(({ kind, v }, i) => {
      if (kind === "f32") dv.setFloat32(i * 4, v, true);
      else if (kind === "i32") dv.setInt32(i * 4, v, true);
      else dv.setUint32(i * 4, v, true);
    });
    return buf;
  }
}

function paddedBytes(length: number): number {
  return Math.max(16, Math.ceil((length * 4) / 16) * 16);
}

const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Bytes of one uniform arena chunk. */
const ARENA_CHUNK = 64 * 1024;

/** Bind groups kept before the cache is cleared (entries of freed buffers never hit again). */
const MAX_BIND_GROUPS = 8192;

/** Owns a device, its compiled kernels and the pending command encoder. */
export class GpuRunner {
  readonly #pipelines = new Map<KernelName, Promise<GPUComputePipeline>>();
  #encoder: GPUCommandEncoder | null = null;
  #dummy: GpuTensor | null = null;
  #error: string | null = null;
  /** Uniform arena: chunks, and the next free (chunk, byte offset) until the next submit. */
  readonly #arena: GPUBuffer[] = [];
  #arenaChunk = 0;
  #arenaOffset = 0;
  readonly #slotAlign: number;
  readonly #bindGroups = new Map<string, GPUBindGroup>();
  readonly #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 1;
  /** Idle staging buffers by byte size. */
  readonly #staging = new Map<number, GPUBuffer[]>();

  /** Wraps an open device; prefer `GpuRunner.open()`. */
  constructor(readonly device: GPUDevice) {
    this.#slotAlign = device.limits.minUniformBufferOffsetAlignment || 256;
    device.addEventListener("uncapturederror", (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.#error ??= e.message;
    });
  }

  /** Opens the default adapter's device; throws InputError when there is none. */
  static async open(adapter?: GPUAdapter | null): Promise<GpuRunner> {
    return new GpuRunner(await requestGpuDevice(adapter ?? await findGpuAdapter()));
  }

  /** The compiled pipeline of a kernel, compiled once and cached. */
  pipeline(name: KernelName): Promise<GPUComputePipeline> {
    let p = this.#pipelines.get(name);
    if (!p) {
      p = this.#compile(name);
      this.#pipelines.set(name, p);
    }
    return p;
  }

  async #compile(name: KernelName): Promise<GPUComputePipeline> {
    const code = await loadKernelSource(name);
    this.device.pushErrorScope("validation");
    const module = this.device.createShaderModule({ label: name, code });
    const pipeline = this.device.createComputePipeline({
      label: name,
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const err = await this.device.popErrorScope();
    if (err) throw new Error(`kernels/${name}.wgsl: ${err.message}`);
    return pipeline;
  }

  /** Compiles the given kernels ahead of their first use. */
  async preload(names: readonly KernelName[]): Promise<void> {
    await Promise.all(names.map((n) => this.pipeline(n)));
  }

  /** Uploads a host array into a new storage buffer. */
  tensor(data: GpuData, label?: string): GpuTensor {
    const buffer = this.device.createBuffer({
      label,
      size: paddedBytes(data.length),
      usage: STORAGE_USAGE,
      mappedAtCreation: true,
    });
    const range = buffer.getMappedRange();
    new Uint8Array(range).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    buffer.unmap();
    return { buffer, length: data.length };
  }

  /** A new zero-filled storage buffer of `length` 4-byte elements. */
  zeros(length: number, label?: string): GpuTensor {
    const buffer = this.device.createBuffer({
      label,
      size: paddedBytes(length),
      usage: STORAGE_USAGE,
    });
    return { buffer, length };
  }

  /** Overwrites the start of `t` with `data` (queued in order with submitted work). */
  write(t: GpuTensor, data: GpuData, elementOffset = 0): void {
    if (elementOffset + data.length > t.length) {
      throw new RangeError(`write of ${data.length} at ${elementOffset} overflows ${t.length}`);
    }
    this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.device.queue.writeBuffer(t.buffer, elementOffset * 4, bytes as Uint8Array<ArrayBuffer>);
  }

  /** Records a copy of `length` elements from `src` to `dst` (element offsets), in order. */
  copy(src: GpuTensor, srcOffset: number, dst: GpuTensor, dstOffset: number, length: number): void {
    if (srcOffset + length > src.length || dstOffset + length > dst.length) {
      throw new RangeError(`copy of ${length} overflows ${src.length} or ${dst.length} elements`);
    }
    this.#encoder ??= this.device.createCommandEncoder();
    this.#encoder.copyBufferToBuffer(
      src.buffer,
      srcOffset * 4,
      dst.buffer,
      dstOffset * 4,
      length * 4,
    );
  }

  /** A 1-element buffer bound where a kernel's optional input is absent. */
  get dummy(): GpuTensor {
    this.#dummy ??= this.zeros(4, "dummy");
    return this.#dummy;
  }

  #bufferId(b: GPUBuffer): number {
    let id = this.#bufferIds.get(b);
    if (id === undefined) {
      id = this.#nextBufferId++;
      this.#bufferIds.set(b, id);
    }
    return id;
  }

  /** A uniform slot of `size` bytes for this submit: its chunk and offset. */
  #slot(size: number): { chunk: number; offset: number } {
    const need = Math.ceil(size / this.#slotAlign) * this.#slotAlign;
    if (this.#arenaOffset + need > ARENA_CHUNK) {
      this.#arenaChunk++;
      this.#arenaOffset = 0;
    }
    while (this.#arena.length <= this.#arenaChunk) {
      this.#arena.push(this.device.createBuffer({
        label: `uniforms ${this.#arena.length}`,
        size: ARENA_CHUNK,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      }));
    }
    const at = { chunk: this.#arenaChunk, offset: this.#arenaOffset };
    this.#arenaOffset += need;
    return at;
  }

  /** Records one dispatch of `name` with storage `buffers` at bindings 0.., then the uniform. */
  async dispatch(
    name: KernelName,
    buffers: readonly GpuTensor[],
    params: ParamWriter,
    groups: Workgroups,
  ): Promise<void> {
    this.record(await this.pipeline(name), name, buffers, params, groups);
  }

  /**
   * Records one dispatch of an already compiled `pipeline` (a kernel variant compiled outside the
   * name cache, e.g. with override constants) with storage `buffers` at bindings 0.., then the
   * uniform.
   */
  record(
    pipeline: GPUComputePipeline,
    label: string,
    buffers: readonly GpuTensor[],
    params: ParamWriter,
    groups: Workgroups,
  ): void {
    const bytes = params.bytes();
    const { chunk, offset } = this.#slot(bytes.byteLength);
    const uniform = this.#arena[chunk];
    this.device.queue.writeBuffer(uniform, offset, bytes);
    const key = `${name}|${buffers.map((t) => this.#bufferId(t.buffer)).join(",")}|` +
      `${chunk}:${offset}:${bytes.byteLength}`;
    let bindGroup = this.#bindGroups.get(key);
    if (!bindGroup) {
      if (this.#bindGroups.size >= MAX_BIND_GROUPS) this.#bindGroups.clear();
      const entries: GPUBindGroupEntry[] = buffers.map((t, i) => ({
        binding: i,
        resource: { buffer: t.buffer },
      }));
      entries.push({
        binding: buffers.length,
        resource: { buffer: uniform, offset, size: bytes.byteLength },
      });
      bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
      this.#bindGroups.set(key, bindGroup);
    }
    this.#encoder ??= this.device.createCommandEncoder();
    const pass = this.#encoder.beginComputePass({ label });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    pass.end();
  }

  /** Submits the recorded dispatches; their uniform slots are free again afterwards. */
  flush(): void {
    if (this.#encoder) {
      this.device.queue.submit([this.#encoder.finish()]);
      this.#encoder = null;
    }
    this.#arenaChunk = 0;
    this.#arenaOffset = 0;
  }

  /** Submits and waits for all queued work; throws the first uncaptured GPU error, if any. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.#throwIfFailed();
  }

  #throwIfFailed(): void {
    if (this.#error !== null) {
      const msg = this.#error;
      this.#error = null;
      throw new Error(`WebGPU error: ${msg}`);
    }
  }

  async #readBytes(t: GpuTensor, length: number): Promise<ArrayBuffer> {
    if (length > t.length) throw new RangeError(`read of ${length} from ${t.length} elements`);
    const size = paddedBytes(length);
    const staging = this.#staging.get(size)?.pop() ?? this.device.createBuffer({
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#encoder ??= this.device.createCommandEncoder();
    this.#encoder.copyBufferToBuffer(t.buffer, 0, staging, 0, size);
    this.flush();
    let mapped = false;
    try {
      await staging.mapAsync(GPUMapMode.READ);
      mapped = true;
      this.#throwIfFailed();
      return staging.getMappedRange().slice(0, length * 4);
    } finally {
      if (mapped) {
        staging.unmap();
        const idle = this.#staging.get(size) ?? [];
        // A few per size: decode reads the same small buffers every step.
        if (idle.length < 4) {
          idle.push(staging);
          this.#staging.set(size, idle);
        } else staging.destroy();
      } else staging.destroy();
    }
  }

  /** Runs pending work and copies `length` (default all) f32 values back. */
  async read(t: GpuTensor, length = t.length): Promise<Float32Array> {
    return new Float32Array(await this.#readBytes(t, length));
  }

  /** Runs pending work and copies `length` (default all) u32 values back. */
  async readU32(t: GpuTensor, length = t.length): Promise<Uint32Array> {
    return new Uint32Array(await this.#readBytes(t, length));
  }

  /** Frees the buffers the runner made and the device. */
  destroy(): void {
    this.flush();
    this.#dummy?.buffer.destroy();
    this.#dummy = null;
    for (const b of this.#arena) b.destroy();
    this.#arena.length = 0;
    for (const list of this.#staging.values()) for (const b of list) b.destroy();
    this.#staging.clear();
    this.#bindGroups.clear();
    this.device.destroy();
  }
}
