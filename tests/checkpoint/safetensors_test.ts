import assert from "node:assert/strict";
import { join } from "node:path";
import {
  openSafetensors,
  writeSafetensors,
  writeSafetensorsSharded,
} from "../../lib/checkpoint/safetensors.ts";
import { type DType, readIndex, type WritableTensor } from "../../lib/checkpoint/tensor.ts";
import {
  ALL_DTYPES,
  assertInputError,
  prng,
  randomBytes,
  tensorOf,
  withTempDir,
} from "./format_helpers.ts";

const SHAPES: number[][] = [[3, 5, 7], [], [0, 4], [1], [2, 1, 3]];

/** One tensor per dtype × shape with seeded random bytes. */
function randomTensors(seed: number): { t: WritableTensor; bytes: Uint8Array }[] {
  const next = prng(seed);
  const out: { t: WritableTensor; bytes: Uint8Array }[] = [];
  for (const dtype of ALL_DTYPES) {
    for (const [k, shape] of SHAPES.entries()) {
      const bytes = randomBytes(next, dtype, shape);
      const name = `model/${dtype.toLowerCase()}_${k}`;
      out.push({ t: tensorOf(name, dtype, shape, bytes, k % 2 ? 5 : undefined), bytes });
    }
  }
  return out;
}

/** Builds a raw safetensors file from a header object and data bytes. */
function rawFile(header: unknown, data: Uint8Array, headerLen?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("safetensors round trip is bit-exact for every dtype and odd, scalar, empty shapes", async () => {
  await withTempDir(async (dir) => {
    const items = randomTensors(1);
    const path = join(dir, "a.safetensors");
    await writeSafetensors(path, items.map((i) => i.t), { format: "pt", k: "v" });
    const raw = await Deno.readFile(path);
    const headerLen = Number(new DataView(raw.buffer).getBigUint64(0, true));
    assert.equal(headerLen % 8, 0);
    const store = await openSafetensors(path);
    try {
      assert.deepEqual(store.metadata, { format: "pt", k: "v" });
      assert.deepEqual(store.names(), items.map((i) => i.t.name));
      for (const { t, bytes } of items) {
        const ref = store.get(t.name)!;
        assert.equal(ref.dtype, t.dtype);
        assert.deepEqual(ref.shape, t.shape);
        assert.equal(ref.byteLength, bytes.length);
        assert.deepEqual(await ref.read(), bytes, t.name);
        if (bytes.length > 3) assert.deepEqual(await ref.read(1, 2), bytes.subarray(1, 3));
      }
      assert.equal(store.get("missing"), undefined);
    } finally {
      store.close();
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.safetensors"]);
  });
});

Deno.test("writer calls data() once per tensor, in order, after the previous tensor is written", async () => {
  await withTempDir(async (dir) => {
    const log: string[] = [];
    const tensors: WritableTensor[] = ["a", "b", "c"].map((name) => ({
      name,
      dtype: "F32" as DType,
      shape: [2],
      data: () => {
        log.push(`data ${name}`);
        return (async function* () {
          yield new Uint8Array(4);
          log.push(`half ${name}`);
          yield new Uint8Array(4);
        })();
      },
    }));
    await writeSafetensors(join(dir, "o.safetensors"), tensors);
    assert.deepEqual(log, ["data a", "half a", "data b", "half b", "data c", "half c"]);
  });
});

Deno.test("writer refuses data of the wrong size and leaves no file behind", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bad.safetensors");
    await assertInputError(
      () => writeSafetensors(path, [tensorOf("w", "F32", [3], new Uint8Array(8))]),
      path,
      '"w"',
      "expected 12",
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("sharded safetensors round trip (HF layout) via folder and index file", async () => {
  await withTempDir(async (dir) => {
    const items = randomTensors(2);
    await writeSafetensorsSharded(dir, items.map((i) => i.t), 300);
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    const n = files.length - 1;
    assert.ok(n >= 3, `expected several shards, got ${files}`);
    assert.equal(files[n], "model.safetensors.index.json");
    assert.equal(files[0], `model-00001-of-${String(n).padStart(5, "0")}.safetensors`);
    const index = JSON.parse(await Deno.readTextFile(join(dir, files[n])));
    const total = items.reduce((s, i) => s + i.bytes.length, 0);
    assert.equal(index.metadata.total_size, total);
    assert.equal(Object.keys(index.weight_map).length, items.length);
    for (const path of [dir, join(dir, "model.safetensors.index.json")]) {
      const store = await openSafetensors(path);
      try {
        assert.deepEqual(store.names(), items.map((i) => i.t.name));
        for (const { t, bytes } of items) assert.deepEqual(await store.get(t.name)!.read(), bytes);
      } finally {
        store.close();
      }
    }
  });
});

Deno.test("readIndex reads one layer of a stacked safetensors tensor", async () => {
  await withTempDir(async (dir) => {
    const bytes = randomBytes(prng(3), "BF16", [5, 3, 7]);
    const path = join(dir, "model.safetensors");
    await writeSafetensors(path, [
      tensorOf("pad", "U8", [3], new Uint8Array(3)),
      tensorOf("stack", "BF16", [5, 3, 7], bytes),
    ]);
    const store = await openSafetensors(dir);
    try {
      const ref = store.get("stack")!;
      for (const i of [0, 2, 4]) {
        assert.deepEqual(await readIndex(ref, i), bytes.subarray(i * 42, (i + 1) * 42));
      }
      assert.throws(() => readIndex(ref, 5), RangeError);
    } finally {
      store.close();
    }
  });
});

Deno.test("safetensors bad input: each is a one-line InputError naming file and tensor", async () => {
  await withTempDir(async (dir) => {
    const ok = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
    const cases: [string, Uint8Array, ...string[]][] = [
      ["truncated", rawFile(ok, new Uint8Array(5)), '"a"', "truncated"],
      ["absurd", rawFile(ok, new Uint8Array(8), 200_000_000n), "absurd"],
      ["beyond", rawFile(ok, new Uint8Array(8), 5000n), "beyond the file size"],
      ["json", rawFile(ok, new Uint8Array(8)).map((b, i) => i === 8 ? 0x5b : b), "not valid JSON"],
      ["short", new Uint8Array(5), "too short"],
      [
        "dtype",
        rawFile({ a: { dtype: "F8_E4M3", shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)),
        '"a"',
        "unknown dtype",
      ],
      [
        "size",
        rawFile({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
        '"a"',
        "needs 12",
      ],
      [
        "order",
        rawFile({ a: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8)),
        '"a"',
        "end before",
      ],
      [
        "overlap",
        rawFile({
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
        }, new Uint8Array(8)),
        '"b"',
        "overlap",
      ],
      [
        "gap",
        rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
        '"a"',
        "gap",
      ],
    ];
    for (const [name, bytes, ...parts] of cases) {
      const path = join(dir, `${name}.safetensors`);
      await Deno.writeFile(path, bytes);
      await assertInputError(() => openSafetensors(path), path, ...parts);
    }
    await assertInputError(() => openSafetensors(join(dir, "nope.safetensors")), "nope");
    await assertInputError(() => openSafetensors(dir), "neither");
  });
});

Deno.test("safetensors: a shard named in the index but missing is an InputError", async () => {
  await withTempDir(async (dir) => {
    await writeSafetensorsSharded(dir, [
      tensorOf("a", "F32", [4], new Uint8Array(16)),
      tensorOf("b", "F32", [4], new Uint8Array(16)),
    ], 16);
    await Deno.remove(join(dir, "model-00002-of-00002.safetensors"));
    await assertInputError(
      () => openSafetensors(dir),
      "model.safetensors.index.json",
      "model-00002-of-00002.safetensors",
      "missing",
    );
  });
});

Deno.test("safetensors: read of a file truncated after opening is an InputError", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "t.safetensors");
    await writeSafetensors(path, [tensorOf("w", "F32", [64], new Uint8Array(256))]);
    const store = await openSafetensors(path);
    try {
      await Deno.truncate(path, (await Deno.stat(path)).size - 10);
      await assertInputError(() => store.get("w")!.read(), path, '"w"', "truncated");
      assert.equal((await store.get("w")!.read(0, 16)).length, 16);
    } finally {
      store.close();
    }
  });
});
