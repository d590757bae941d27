/** Files written by numpy and the safetensors package (tests/reference/make_format_fixtures.py). */
import assert from "node:assert/strict";
import { encodeNpyHeader } from "../../lib/checkpoint/npy.ts";
import { openNpz } from "../../lib/checkpoint/npz.ts";
import { openSafetensors } from "../../lib/checkpoint/safetensors.ts";
import type { DType, TensorStore } from "../../lib/checkpoint/tensor.ts";
import { readIndex } from "../../lib/checkpoint/tensor.ts";
import { ZipArchive } from "../../lib/checkpoint/zip.ts";
import { assertInputError, fromB64 } from "./format_helpers.ts";

const FIX = new URL("../fixtures/formats/", import.meta.url).pathname;
type Expected = Record<string, { dtype: DType; shape: number[]; b64: string }>;
const EXPECTED: Record<string, Expected> = JSON.parse(
  await Deno.readTextFile(FIX + "expected.json"),
);

/** Checks every tensor of `store` against the arrays numpy saved, bit for bit. */
async function assertMatches(store: TensorStore, expected: Expected): Promise<void> {
  assert.deepEqual(store.names().slice().sort(), Object.keys(expected).sort());
  for (const [name, want] of Object.entries(expected)) {
    const ref = store.get(name)!;
    assert.equal(ref.dtype, want.dtype, name);
    assert.deepEqual(ref.shape, want.shape, name);
    assert.deepEqual(await ref.read(), fromB64(want.b64), name);
  }
}

for (const file of ["np_savez.npz", "np_savez_compressed.npz", "npy_versions.npz"]) {
  Deno.test(`interop: ${file} written by numpy reads bit-exact`, async () => {
    const store = await openNpz(FIX + file);
    try {
      await assertMatches(store, EXPECTED[file]);
    } finally {
      store.close();
    }
  });
}

for (const file of ["st_torch.safetensors", "st_sharded"]) {
  Deno.test(`interop: ${file} written by the safetensors package reads bit-exact`, async () => {
    const store = await openSafetensors(FIX + file);
    try {
      await assertMatches(store, EXPECTED[file]);
      if (file === "st_torch.safetensors") {
        assert.deepEqual(store.metadata, { format: "pt", note: "fixture" });
      }
    } finally {
      store.close();
    }
  });
}

Deno.test("interop: numpy's npz has bf16 as |V2 and <V2, zip64 local extras, deflate", async () => {
  for (const [file, method] of [["np_savez.npz", 0], ["np_savez_compressed.npz", 8]] as const) {
    const zip = await ZipArchive.open(FIX + file);
    try {
      const descr = async (member: string) => {
        const e = zip.entries.find((x) => x.name === member)!;
        assert.equal(e.method, method);
        return new TextDecoder().decode(await zip.read(e, 10, 20));
      };
      assert.match(await descr("bf16_void.npy"), /'\|V2'/);
      assert.match(await descr("bf16_ml.npy"), /'<V2'/);
      if (method === 0) {
        // np.savez forces ZIP64 extras into the local headers.
        const e = zip.entries[0];
        const start = await zip.dataStart(e);
        assert.equal(start - e.localHeaderOffset, 30 + e.name.length + 20);
      }
    } finally {
      zip.close();
    }
  }
});

Deno.test("interop: our .npy headers equal numpy's byte for byte", async () => {
  const zip = await ZipArchive.open(FIX + "np_savez.npz");
  try {
    for (const [name, want] of Object.entries(EXPECTED["np_savez.npz"])) {
      if (want.dtype === "BF16") continue; // numpy writes |V2 for a .view('V2'); we write <V2
      const e = zip.entries.find((x) => x.name === `${name}.npy`)!;
      const ours = encodeNpyHeader(want.dtype, want.shape);
      assert.deepEqual(await zip.read(e, 0, ours.length), ours, name);
    }
  } finally {
    zip.close();
  }
});

Deno.test("interop: npy format versions 1, 2 and 3 are all present and read", async () => {
  const zip = await ZipArchive.open(FIX + "npy_versions.npz");
  try {
    const versions = await Promise.all(zip.entries.map(async (e) => (await zip.read(e, 6, 1))[0]));
    assert.deepEqual(versions, [1, 2, 3]);
  } finally {
    zip.close();
  }
});

Deno.test("interop: readIndex on numpy's stacked member, stored and deflated", async () => {
  const want = fromB64(EXPECTED["np_savez.npz"].stacked.b64);
  for (const file of ["np_savez.npz", "np_savez_compressed.npz"]) {
    const store = await openNpz(FIX + file);
    try {
      const ref = store.get("stacked")!;
      for (const i of [2, 0, 1]) {
        assert.deepEqual(await readIndex(ref, i), want.subarray(i * 32, i * 32 + 32));
      }
    } finally {
      store.close();
    }
  }
});

Deno.test("interop: numpy's Fortran-order and complex members are refused", async () => {
  await assertInputError(
    () => openNpz(FIX + "np_fortran.npz"),
    "np_fortran.npz",
    '"fortran.npy"',
    "Fortran order",
  );
  await assertInputError(
    () => openNpz(FIX + "np_complex.npz"),
    "np_complex.npz",
    '"cplx.npy"',
    'unsupported .npy descr "<c8"',
  );
});
