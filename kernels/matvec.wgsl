// matvec: C[m, n] = A[m, :] · W[n, :] (+ bias[n]) for a few rows m (the decode case, M small).
// Same layout as matmul.wgsl (W is [N, K], HF Linear [out, in]) but K must be a multiple of 4:
// A and W are read as vec4 so each weight byte is loaded once, coalesced, by one workgroup.
// Bindings: 0 A (read, M*K as vec4) · 1 W (read, N*K as vec4) · 2 bias (read, N; any
//           1-element buffer when has_bias = 0) · 3 C (read_write, M*N) · 4 params (uniform).
// Workgroup: 256 threads = 4 output rows × 64 threads; each group of 64 strides over K/4 and
//            reduces in workgroup memory.
// Dispatch: (x, y, M) with x*y >= ceil(N/4) and x <= 65535; workgroup (x, y) covers rows
//           4*(x + y*x_count) .. +3.

struct Params {
  M: u32,
  N: u32,
  K4: u32,
  has_bias: u32,
}

@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> W: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const ROWS = 4u;
const TPR = 64u;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let n = (wg.x + wg.y * nwg.x) * ROWS + lid.x / TPR;
  let m = wg.z;
  let t = lid.x % TPR;
  var s = 0.0;
  if (n < p.N) {
    let wb = n * p.K4;
    let ab = m * p.K4;
    for (var k = t; k < p.K4; k += TPR) {
      s += dot(W[wb + k], A[ab + k]);
    }
  }
  red[lid.x] = s;
  workgroupBarrier();
  for (var off = TPR / 2u; off > 0u; off >>= 1u) {
    if (t < off) {
      red[lid.x] += red[lid.x + off];
    }
    workgroupBarrier();
  }
  if (t == 0u && n < p.N) {
    var v = red[lid.x];
    if (p.has_bias != 0u) {
      v += bias[n];
    }
    C[m * p.N + n] = v;
  }
}
