"""Interop fixtures for the checkpoint readers (test oracle only; never product code).

Writes tests/fixtures/formats/:
  np_savez.npz               np.savez (stored, zip64 local extras), every dtype, bf16 as |V2 and <V2
  np_savez_compressed.npz    np.savez_compressed of the same arrays plus a longer member
  npy_versions.npz           members written with .npy format versions 1.0, 2.0 and 3.0
  np_fortran.npz             a Fortran-ordered array (must be refused)
  np_complex.npz             a complex64 array (unsupported descr, must be refused)
  st_torch.safetensors       safetensors.torch.save_file, every dtype, with metadata
  st_sharded/                two shards + model.safetensors.index.json in the HF layout
  expected.json              every array above as {dtype, shape, b64 of little-endian bytes}
  dtype_cases.json           float32 -> float16 (numpy) and -> bfloat16 (ml_dtypes) bit patterns,
                             and float16 -> float32 (numpy)

Run: /root/.cache/pg/venv/bin/python tests/reference/make_format_fixtures.py
"""
import base64
import io
import json
import os
import shutil
import struct
import time
import zipfile

os.environ["TZ"] = "UTC"
time.tzset()
_real_time = time.time
time.time = lambda: 946684800.0  # zip entry timestamps: reproducible bytes

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# PG_FIXTURES_DIR redirects the output, as for the other generators (see common.py).
OUT = os.path.join(os.environ.get("PG_FIXTURES_DIR") or os.path.join(os.path.dirname(HERE), "fixtures"),
                   "formats")

ST_NAMES = {
    np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
    np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16",
    np.dtype("int8"): "I8", np.dtype("uint8"): "U8", np.dtype("uint16"): "U16",
    np.dtype("uint32"): "U32", np.dtype("uint64"): "U64", np.dtype("bool"): "BOOL",
}


def dtype_name(a):
    if a.dtype == ml_dtypes.bfloat16 or a.dtype.kind == "V":
        return "BF16"
    return ST_NAMES[a.dtype]


def expect(a):
    a = np.asarray(a)  # (ascontiguousarray would turn a 0-d array into 1-d)
    return {"dtype": dtype_name(a), "shape": list(a.shape),
            "b64": base64.b64encode(a.tobytes()).decode()}


def arrays(rng):
    bf = rng.standard_normal((4, 3)).astype(np.float32).astype(ml_dtypes.bfloat16)
    return {
        "params/img/embedding/kernel": rng.standard_normal((2, 3, 5)).astype(np.float32),
        "f16": (rng.standard_normal(7) * 100).astype(np.float16),
        "f64": rng.standard_normal((3, 2)),
        "bf16_void": bf.view("V2"),  # descr |V2
        "bf16_ml": bf.T.copy(),  # descr <V2
        "i64": rng.integers(-2**62, 2**62, (2, 2), dtype=np.int64),
        "i32": rng.integers(-2**31, 2**31, 5, dtype=np.int32),
        "i16": rng.integers(-2**15, 2**15, 3, dtype=np.int16),
        "i8": rng.integers(-128, 128, (3, 1), dtype=np.int8),
        "u8": rng.integers(0, 256, 9, dtype=np.uint8),
        "u16": rng.integers(0, 2**16, 2, dtype=np.uint16),
        "u32": rng.integers(0, 2**32, 2, dtype=np.uint32),
        "u64": rng.integers(0, 2**64 - 1, 2, dtype=np.uint64),
        "bool": rng.random((2, 3)) > 0.5,
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "stacked": rng.standard_normal((3, 2, 4)).astype(np.float32),
    }


def save_st(tensors, path, metadata):
    """safetensors.torch.save_file, then `__metadata__` rewritten with its keys sorted.

    The writer serialises the metadata from a Rust HashMap, so its key order changes from run to
    run; sorting gives reproducible bytes. Only the order changes: the header keeps its length.
    """
    save_file(tensors, path, metadata=metadata)
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        raw = f.read(n)
        header = json.loads(raw, object_pairs_hook=dict)
        meta = header.get("__metadata__")
        if not meta:
            return
        header["__metadata__"] = dict(sorted(meta.items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        body = raw.rstrip(b" ")
        assert json.loads(body) == json.loads(text) and len(text) == len(body), "header rewrite"
        f.seek(8)
        f.write(text + raw[len(body):])


def npy_bytes(a, version):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    rng = np.random.default_rng(1234)
    expected = {}

    arrs = arrays(rng)
    np.savez(os.path.join(OUT, "np_savez.npz"), **arrs)
    expected["np_savez.npz"] = {k: expect(v) for k, v in arrs.items()}

    comp = dict(arrs)
    # 6 KB of low-entropy data: a member that actually compresses
    comp["long"] = (rng.integers(0, 4, 6000) * 17).astype(np.uint8)
    np.savez_compressed(os.path.join(OUT, "np_savez_compressed.npz"), **comp)
    expected["np_savez_compressed.npz"] = {k: expect(v) for k, v in comp.items()}

    vers = {
        "v1": rng.standard_normal((2, 3)).astype(np.float32),
        "v2": rng.integers(-9, 9, (4,), dtype=np.int16),
        "v3": rng.standard_normal((1, 2, 2)).astype(np.float16),
    }
    with zipfile.ZipFile(os.path.join(OUT, "npy_versions.npz"), "w") as z:
        for (k, a), ver in zip(vers.items(), [(1, 0), (2, 0), (3, 0)]):
            z.writestr(k + ".npy", npy_bytes(a, ver))
    expected["npy_versions.npz"] = {k: expect(v) for k, v in vers.items()}

    np.savez(os.path.join(OUT, "np_fortran.npz"),
             fortran=np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    np.savez(os.path.join(OUT, "np_complex.npz"), cplx=np.zeros(2, dtype=np.complex64))

    st = {k: v for k, v in arrs.items() if k not in ("bf16_void",)}
    tensors = {}
    for k, v in st.items():
        if v.dtype == ml_dtypes.bfloat16:
            tensors[k] = torch.from_numpy(v.view(np.int16).copy()).view(torch.bfloat16)
        elif v.dtype in (np.uint16, np.uint32, np.uint64):
            signed = {2: np.int16, 4: np.int32, 8: np.int64}[v.dtype.itemsize]
            tdt = {2: torch.uint16, 4: torch.uint32, 8: torch.uint64}[v.dtype.itemsize]
            tensors[k] = torch.from_numpy(v.view(signed).copy()).view(tdt)
        else:
            tensors[k] = torch.from_numpy(np.array(v, order="C", copy=True))
    save_st(tensors, os.path.join(OUT, "st_torch.safetensors"), {"format": "pt", "note": "fixture"})
    expected["st_torch.safetensors"] = {k: expect(v) for k, v in st.items()}

    shard_dir = os.path.join(OUT, "st_sharded")
    os.makedirs(shard_dir)
    parts = [["params/img/embedding/kernel", "f16", "bf16_ml"], ["i32", "stacked", "scalar"]]
    weight_map = {}
    for i, names in enumerate(parts):
        fname = f"model-{i + 1:05d}-of-{len(parts):05d}.safetensors"
        save_st({n: tensors[n] for n in names}, os.path.join(shard_dir, fname), {"format": "pt"})
        weight_map.update({n: fname for n in names})
    total = sum(tensors[n].numel() * tensors[n].element_size() for p in parts for n in p)
    with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": int(total)}, "weight_map": dict(sorted(weight_map.items()))},
                  f, indent=2)
    expected["st_sharded"] = {n: expect(st[n]) for p in parts for n in p}

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")

    # dtype conversion cases
    edge = np.array([
        0.0, -0.0, 1.0, -1.0, 65504.0, 65519.996, 65520.0, -65520.0, 1e10, np.inf, -np.inf,
        2.0**-24, 2.0**-25, 1.5 * 2.0**-25, 2.0**-26, 2.0**-14, 2.0**-14 - 2.0**-25,
        3 * 2.0**-25, 5 * 2.0**-26, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8, 1 + 3 * 2.0**-8,
        1e-45, 1.17549435e-38, 3.4028235e38, -3.4028235e38, np.nan,
    ], dtype=np.float32)
    bits = rng.integers(0, 2**32, 300, dtype=np.uint64).astype(np.uint32)
    exp = rng.integers(95, 150, 300).astype(np.uint32)  # mostly within/near half range
    bits[:200] = (bits[:200] & np.uint32(0x807FFFFF)) | (exp[:200] << np.uint32(23))
    rand = bits.view(np.float32)
    rand = rand[~np.isnan(rand)]
    f32 = np.concatenate([edge, rand]).astype(np.float32)
    with np.errstate(over="ignore"):
        f16 = f32.astype(np.float16)
    bf16 = f32.astype(ml_dtypes.bfloat16)
    h = np.concatenate([
        np.arange(0, 0x0400, 7), np.array([0x3C00, 0x7BFF, 0x7C00, 0xFC00, 0x8001, 0x83FF]),
        rng.integers(0, 2**16, 200),
    ]).astype(np.uint16)
    h = h[~np.isnan(h.view(np.float16))]
    cases = {
        "f32": base64.b64encode(f32.tobytes()).decode(),
        "f16_bits": base64.b64encode(f16.view(np.uint16).tobytes()).decode(),
        "bf16_bits": base64.b64encode(bf16.view(np.uint16).tobytes()).decode(),
        "half_in": base64.b64encode(h.tobytes()).decode(),
        "half_as_f32": base64.b64encode(h.view(np.float16).astype(np.float32).tobytes()).decode(),
    }
    with open(os.path.join(OUT, "dtype_cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
