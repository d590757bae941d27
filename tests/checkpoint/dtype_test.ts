import assert from "node:assert/strict";
import { fromFloat32, toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { type DType, DTYPE_BYTES } from "../../lib/checkpoint/tensor.ts";
import { fromB64, prng, randomBytes } from "./format_helpers.ts";

const FIX = new URL("../fixtures/formats/", import.meta.url);
const cases = JSON.parse(await Deno.readTextFile(new URL("dtype_cases.json", FIX)));
const u16 = (b: Uint8Array) => new Uint16Array(b.slice().buffer);

/** Compares half/bf16 bit patterns exactly, NaN only as NaN (payloads may differ). */
function assertBits(got: Uint16Array, want: Uint16Array, expMask: number, what: string) {
  assert.deepEqual(got.length, want.length);
  const isNaN = (h: number) => (h & expMask) === expMask && (h & ~expMask & 0x7fff) !== 0;
  for (let i = 0; i < got.length; i++) {
    if (isNaN(want[i])) assert.ok(isNaN(got[i]), `${what}[${i}] should be NaN`);
    else {assert.deepEqual(
        got[i],
        want[i],
        `${what}[${i}]: got ${got[i].toString(16)}, want ${want[i].toString(16)}`,
      );}
  }
}

Deno.test("fromFloat32 F16 matches numpy astype(float16) bit for bit", () => {
  const f32 = new Float32Array(fromB64(cases.f32).buffer);
  assertBits(u16(fromFloat32(f32, "F16")), u16(fromB64(cases.f16_bits)), 0x7c00, "f16");
});

Deno.test("fromFloat32 BF16 matches ml_dtypes bfloat16 bit for bit", () => {
  const f32 = new Float32Array(fromB64(cases.f32).buffer);
  assertBits(u16(fromFloat32(f32, "BF16")), u16(fromB64(cases.bf16_bits)), 0x7f80, "bf16");
});

Deno.test("toFloat32 F16 matches numpy float16->float32 exactly", () => {
  const got = toFloat32(fromB64(cases.half_in), "F16");
  const want = new Float32Array(fromB64(cases.half_as_f32).buffer);
  assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer));
});

Deno.test("every non-NaN F16 survives toFloat32 -> fromFloat32", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = u16(fromFloat32(toFloat32(new Uint8Array(all.buffer), "F16"), "F16"));
  for (let h = 0; h < 65536; h++) {
    const nan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (nan) assert.ok((back[h] & 0x7c00) === 0x7c00 && (back[h] & 0x3ff) !== 0);
    else assert.deepEqual(back[h], h);
  }
});

Deno.test("toFloat32 of BF16, F64 and integer dtypes equals a DataView decode", () => {
  const next = prng(7);
  const read: Record<Exclude<DType, "F16">, (v: DataView, i: number) => number> = {
    F32: (v, i) => v.getFloat32(i * 4, true),
    F64: (v, i) => Math.fround(v.getFloat64(i * 8, true)),
    BF16: (v, i) => {
      const d = new DataView(new ArrayBuffer(4));
      d.setUint32(0, v.getUint16(i * 2, true) << 16);
      return d.getFloat32(0);
    },
    I64: (v, i) => Math.fround(Number(v.getBigInt64(i * 8, true))),
    U64: (v, i) => Math.fround(Number(v.getBigUint64(i * 8, true))),
    I32: (v, i) => Math.fround(v.getInt32(i * 4, true)),
    U32: (v, i) => Math.fround(v.getUint32(i * 4, true)),
    I16: (v, i) => v.getInt16(i * 2, true),
    U16: (v, i) => v.getUint16(i * 2, true),
    I8: (v, i) => v.getInt8(i),
    U8: (v, i) => v.getUint8(i),
    BOOL: (v, i) => v.getUint8(i) ? 1 : 0,
  };
  for (
    const [dtype, decode] of Object.entries(read) as [DType, (v: DataView, i: number) => number][]
  ) {
    const n = 37;
    // One extra leading byte so the typed view is unaligned.
    const raw = randomBytes(next, "U8", [n * DTYPE_BYTES[dtype] + 1]).subarray(1);
    const got = toFloat32(raw, dtype);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < n; i++) {
      const want = decode(view, i);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(got[i]), `${dtype}[${i}]`);
      else assert.deepEqual(got[i], want, `${dtype}[${i}]`);
    }
  }
});

Deno.test("fromFloat32 F32 copies bytes", () => {
  const v = new Float32Array([1.5, -0, NaN, 3e38]);
  assert.deepEqual(fromFloat32(v, "F32"), new Uint8Array(v.buffer));
});
