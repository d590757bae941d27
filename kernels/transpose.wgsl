// transpose: Out[n, k] = In[k, n] for a [K, N] matrix, to turn the [in, out] weights of ONNX
// MatMul initializers into the [out, in] rows the GEMV / GEMM kernels read, once at load.
// Element formats by override: IN_F16 / OUT_F16 = 1 for IEEE halves packed two per u32 (the
// even element in the low half; the flat element index decides the word), 0 for f32 bits.
// f32 → f16 rounds to nearest even (pack2x16float). With OUT_F16, K must be even.
// Bindings: 0 In (read, u32) · 1 Out (read_write, u32) · 2 params (uniform).
// One thread per output word (one f32, or two halves of one output row); dispatch (x, y, 1)
// with x*y*256 >= output words, x <= 65535.

override IN_F16: u32 = 0u;
override OUT_F16: u32 = 0u;

struct Params {
  K: u32,
  N: u32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> In: array<u32>;
@group(0) @binding(1) var<storage, read_write> Out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

fn load(k: u32, n: u32) -> f32 {
  let e = k * p.N + n;
  if (IN_F16 != 0u) {
    return unpack2x16float(In[e / 2u])[e % 2u];
  }
  return bitcast<f32>(In[e]);
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let w = (wg.x + wg.y * nwg.x) * 256u + li;
  if (OUT_F16 != 0u) {
    let half_k = p.K / 2u;
    if (w >= p.N * half_k) {
      return;
    }
    let n = w / half_k;
    let k = 2u * (w % half_k);
    Out[w] = pack2x16float(vec2<f32>(load(k, n), load(k + 1u, n)));
  } else {
    if (w >= p.N * p.K) {
      return;
    }
    let n = w / p.K;
    let k = w % p.K;
    Out[w] = bitcast<u32>(load(k, n));
  }
}
