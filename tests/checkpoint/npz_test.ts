import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import { encodeNpyHeader, parseNpyHeader } from "../../lib/checkpoint/npy.ts";
import { openNpz, writeNpz } from "../../lib/checkpoint/npz.ts";
import { readIndex, type WritableTensor } from "../../lib/checkpoint/tensor.ts";
import { crc32, crc32Table, ZipArchive, ZipWriter } from "../../lib/checkpoint/zip.ts";
import {
  ALL_DTYPES,
  assertInputError,
  prng,
  randomBytes,
  tensorOf,
  withTempDir,
} from "./format_helpers.ts";

const SHAPES: number[][] = [[3, 5, 7], [], [0, 4], [1], [2, 1, 3]];

Deno.test("npz round trip is bit-exact for every dtype and odd, scalar, empty shapes", async () => {
  await withTempDir(async (dir) => {
    const next = prng(11);
    const items: { t: WritableTensor; bytes: Uint8Array }[] = [];
    for (const dtype of ALL_DTYPES) {
      for (const [k, shape] of SHAPES.entries()) {
        const bytes = randomBytes(next, dtype, shape);
        const name = `params/llm/${dtype}/${k}`;
        items.push({ t: tensorOf(name, dtype, shape, bytes, k % 2 ? 7 : undefined), bytes });
      }
    }
    const path = join(dir, "a.npz");
    // An async iterable of tensors, as a converter would produce them.
    await writeNpz(
      path,
      (async function* () {
        for (const i of items) yield i.t;
      })(),
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.npz"]);
    const store = await openNpz(path);
    try {
      assert.equal(store.format, "npz");
      assert.deepEqual(store.names(), items.map((i) => i.t.name));
      for (const { t, bytes } of items) {
        const ref = store.get(t.name)!;
        assert.equal(ref.dtype, t.dtype);
        assert.deepEqual(ref.shape, t.shape);
        assert.deepEqual(await ref.read(), bytes, t.name);
        if (bytes.length > 5) assert.deepEqual(await ref.read(2, 3), bytes.subarray(2, 5));
      }
      assert.equal(store.get("params/llm/F32/0.npy"), undefined);
      assert.equal(store.get("missing"), undefined);
    } finally {
      store.close();
    }
  });
});

Deno.test("npz writer emits ZIP64 records (local, central, end) and the reader uses them", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "z.npz");
    const bytes = randomBytes(prng(5), "F32", [10]);
    await writeNpz(path, [
      tensorOf("w", "F32", [10], bytes),
      tensorOf("b", "BF16", [3], new Uint8Array(6)),
    ]);
    const raw = await Deno.readFile(path);
    const v = new DataView(raw.buffer);
    const eocd = raw.length - 22;
    assert.equal(v.getUint32(eocd, true), 0x06054b50);
    // The 32-bit fields are saturated, so only the ZIP64 record can locate the directory.
    assert.equal(v.getUint32(eocd + 16, true), 0xffffffff);
    assert.equal(v.getUint16(eocd + 10, true), 0xffff);
    assert.equal(v.getUint32(eocd - 20, true), 0x07064b50);
    const rec = Number(v.getBigUint64(eocd - 12, true));
    assert.equal(v.getUint32(rec, true), 0x06064b50);
    assert.equal(v.getUint32(18, true), 0xffffffff); // local header sizes deferred to ZIP64 extra
    assert.equal(v.getUint16(30 + "w.npy".length, true), 0x0001);
    const zip = await ZipArchive.open(path);
    try {
      assert.equal(zip.zip64, true);
      assert.deepEqual(zip.entries.map((e) => [e.name, e.zip64, e.method]), [
        ["w.npy", true, 0],
        ["b.npy", true, 0],
      ]);
      const w = zip.entries[0];
      assert.equal(w.size, 128 + 40);
      const member = await zip.read(w, 0, w.size, true);
      assert.equal(crc32(member), w.crc32);
      assert.deepEqual(member.subarray(128), bytes);
    } finally {
      zip.close();
    }
  });
});

Deno.test("readIndex reads one layer of a stacked stored npz member", async () => {
  await withTempDir(async (dir) => {
    const bytes = randomBytes(prng(6), "BF16", [6, 4, 5]);
    const path = join(dir, "s.npz");
    await writeNpz(path, [tensorOf("params/stack", "BF16", [6, 4, 5], bytes)]);
    const store = await openNpz(path);
    try {
      const ref = store.get("params/stack")!;
      for (const i of [5, 0, 3]) {
        assert.deepEqual(await readIndex(ref, i), bytes.subarray(i * 40, (i + 1) * 40));
      }
    } finally {
      store.close();
    }
  });
});

Deno.test("deflated member: byte ranges, forwards and backwards, and readIndex", async () => {
  await withTempDir(async (dir) => {
    // ~3 MB of low-entropy data: many inflate pushes and output chunks.
    const shape = [12, 256, 256];
    const next = prng(9);
    const data = new Uint8Array(12 * 256 * 256 * 4);
    for (let i = 0; i < data.length; i++) data[i] = (next() & 3) * 9;
    const header = encodeNpyHeader("F32", shape);
    const member = new Uint8Array(header.length + data.length);
    member.set(header);
    member.set(data, header.length);
    const path = join(dir, "c.npz");
    await Deno.writeFile(path, zipSync({ "params/x.npy": [member, { level: 6 }] }));
    const store = await openNpz(path);
    try {
      const ref = store.get("params/x")!;
      assert.deepEqual(ref.shape, shape);
      const ranges: [number, number][] = [
        [1_000_003, 777],
        [2_500_000, 300_000],
        [10, 20], // behind the cursor: inflates again from the start
        [data.length - 5, 5],
      ];
      for (const [off, len] of ranges) {
        assert.deepEqual(await ref.read(off, len), data.subarray(off, off + len), `${off}+${len}`);
      }
      for (const i of [0, 1, 7, 11, 2]) {
        const stride = 256 * 256 * 4;
        assert.deepEqual(await readIndex(ref, i), data.subarray(i * stride, (i + 1) * stride));
      }
      // Concurrent reads of one deflated member are serialized correctly.
      const got = await Promise.all([ref.read(5, 9), ref.read(3_000_000, 16), ref.read(0, 4)]);
      assert.deepEqual(got, [
        data.subarray(5, 14),
        data.subarray(3_000_000, 3_000_016),
        data.subarray(0, 4),
      ]);
      assert.deepEqual(await ref.read(), data);
    } finally {
      store.close();
    }
  });
});

Deno.test("npy header: 64-byte aligned v1, v2 for long headers, parse round trip", () => {
  const h = encodeNpyHeader("BF16", [3, 4]);
  assert.equal(h.length % 64, 0);
  assert.equal(
    new TextDecoder().decode(h.subarray(10)).trimEnd(),
    "{'descr': '<V2', 'fortran_order': False, 'shape': (3, 4), }",
  );
  assert.deepEqual(parseNpyHeader(h, "x"), {
    version: 1,
    dtype: "BF16",
    shape: [3, 4],
    headerLength: 128,
  });
  assert.deepEqual(parseNpyHeader(encodeNpyHeader("I8", [7]), "x").shape, [7]);
  assert.deepEqual(parseNpyHeader(encodeNpyHeader("U64", []), "x").shape, []);
  const long = Array(23000).fill(1);
  const h2 = encodeNpyHeader("F16", long);
  assert.equal(h2[6], 2);
  assert.equal(h2.length % 64, 0);
  assert.deepEqual(parseNpyHeader(h2, "x").shape, long);
});

/** Writes an npz with one member holding `npyBytes` exactly. */
async function rawNpz(path: string, member: string, npyBytes: Uint8Array): Promise<void> {
  const zip = ZipWriter.create(path);
  await zip.addStored(member, npyBytes.length, (write) => write(npyBytes));
  await zip.finish();
}

/** A `.npy` whose header dict is `dict` followed by `dataBytes` zero bytes. */
function npyWith(dict: string, dataBytes: number): Uint8Array {
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const out = new Uint8Array(total + dataBytes).fill(0x20, 0, total);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, total - 10, true);
  out.set(new TextEncoder().encode(dict), 10);
  out[total - 1] = 0x0a;
  return out;
}

Deno.test("npz bad input: each is a one-line InputError naming the file (and member)", async () => {
  await withTempDir(async (dir) => {
    const p = (n: string) => join(dir, n);
    await Deno.writeFile(p("notzip.npz"), randomBytes(prng(1), "U8", [300]));
    await assertInputError(() => openNpz(p("notzip.npz")), p("notzip.npz"), "not a zip archive");
    await Deno.writeFile(p("empty.npz"), new Uint8Array(0));
    await assertInputError(() => openNpz(p("empty.npz")), "not a zip archive");

    await writeNpz(p("good.npz"), [
      tensorOf("w", "F32", [100], randomBytes(prng(2), "F32", [100])),
    ]);
    const good = await Deno.readFile(p("good.npz"));
    await Deno.writeFile(p("trunc.npz"), good.subarray(0, good.length - 150));
    await assertInputError(() => openNpz(p("trunc.npz")), p("trunc.npz"), "truncated zip archive");

    const f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
    await rawNpz(p("size.npz"), "w.npy", npyWith(f4, 12));
    await assertInputError(() => openNpz(p("size.npz")), p("size.npz"), '"w.npy"', "needs 16");

    const cases: [string, string, string][] = [
      [
        "bigendian",
        "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
        "unsupported .npy descr",
      ],
      [
        "object",
        "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
        "unsupported .npy descr",
      ],
      [
        "protokey",
        "{'descr': 'constructor', 'fortran_order': False, 'shape': (1,), }",
        "unsupported .npy descr",
      ],
      ["fortran", "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", "Fortran order"],
      ["garbled", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,", "not a Python literal"],
    ];
    for (const [name, dict, why] of cases) {
      await rawNpz(p(`${name}.npz`), `params/${name}.npy`, npyWith(dict, 4));
      await assertInputError(
        () => openNpz(p(`${name}.npz`)),
        p(`${name}.npz`),
        `"params/${name}.npy"`,
        why,
      );
    }
  });
});

Deno.test("npz: CRC-32 is checked on full reads of stored members", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "crc.npz");
    const bytes = randomBytes(prng(4), "F32", [64]);
    await writeNpz(path, [tensorOf("w", "F32", [64], bytes)]);
    const raw = await Deno.readFile(path);
    const at = 30 + "w.npy".length + 20 + 128 + 100; // a data byte of the member
    raw[at] ^= 0xff;
    await Deno.writeFile(path, raw);
    const store = await openNpz(path);
    try {
      await assertInputError(() => store.get("w")!.read(), path, '"w.npy"', "CRC-32 mismatch");
      // Partial reads are not checked (no CRC for a range); the untouched bytes come back.
      assert.deepEqual(await store.get("w")!.read(0, 64), bytes.subarray(0, 64));
    } finally {
      store.close();
    }
  });
});

Deno.test("npz: corrupt deflated data is an InputError", async () => {
  await withTempDir(async (dir) => {
    const member = new Uint8Array([
      ...encodeNpyHeader("U8", [5000]),
      ...new Uint8Array(5000).fill(3),
    ]);
    const zipped = zipSync({ "x.npy": [member, { level: 6 }] });
    const path = join(dir, "bad.npz");
    const start = 30 + "x.npy".length;
    zipped.fill(0xff, start + 20, start + 30);
    await Deno.writeFile(path, zipped);
    await assertInputError(
      async () => {
        const store = await openNpz(path);
        try {
          await store.get("x")!.read();
        } finally {
          store.close();
        }
      },
      path,
      '"x.npy"',
    );
  });
});

Deno.test("npz: read of a file truncated after opening is an InputError", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "t.npz");
    await writeNpz(path, [tensorOf("params/w", "F32", [256], new Uint8Array(1024))]);
    const store = await openNpz(path);
    try {
      await Deno.truncate(path, 600);
      await assertInputError(
        () => store.get("params/w")!.read(),
        path,
        "params/w.npy",
        "truncated",
      );
    } finally {
      store.close();
    }
  });
});

Deno.test("crc32: check value, native and table versions agree, continuation", () => {
  const digits = new TextEncoder().encode("123456789");
  assert.equal(crc32(digits), 0xcbf43926);
  assert.equal(crc32Table(digits), 0xcbf43926);
  const data = randomBytes(prng(8), "U8", [100_003]);
  const whole = crc32Table(data);
  assert.equal(crc32(data), whole);
  assert.equal(crc32(data.subarray(777), crc32(data.subarray(0, 777))), whole);
  assert.equal(crc32Table(data.subarray(13), crc32Table(data.subarray(0, 13))), whole);
});
