// matmul: C[M,N] = A[M,K] · W[N,K]^T (+ bias[N]), all f32, row-major.
// W is in the [out, in] layout of HF Linear weights.
// Bindings: 0 A (read, M*K) · 1 W (read, N*K) · 2 bias (read, N; any 1-element buffer when
//           has_bias = 0) · 3 C (read_write, M*N) · 4 params (uniform).
// Tiling: a workgroup of 8×8 threads computes a 32×32 tile of C, each thread a 4×4 block
//         (rows 4*ty.., columns 4*tx..) held in 4 vec4 registers; K is walked 8 at a time
//         through workgroup memory (2 × 1 KiB, stored as vec4 of 4 consecutive rows/columns).
//         The tile is kept small on purpose: llvmpipe's compile time grows steeply with the
//         number of workgroup-array elements (zero-initialisation), 64×64 tiles took ~40 s.
// Dispatch: (ceil(N/32), ceil(M/32), 1). Any M, N, K (edges are bounds-checked).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  has_bias: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const TILE = 32u;
const TK = 8u;

// As[kk * 8 + q][c] = A[row0 + 4q + c, k0 + kk]; Ws likewise for rows of W (columns of C).
var<workgroup> As: array<vec4<f32>, 64>;
var<workgroup> Ws: array<vec4<f32>, 64>;

fn store_row(r: u32, c0: u32, v: vec4<f32>) {
  if (r >= p.M) {
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    let c = c0 + j;
    if (c < p.N) {
      var x = v[j];
      if (p.has_bias != 0u) {
        x += bias[c];
      }
      C[r * p.N + c] = x;
    }
  }
}

@compute @workgroup_size(8, 8, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // 64 threads load 32×8 values of A and of W, 4 each; consecutive threads read along K.
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 64u;
      let r = e / TK;
      let kk = e % TK;
      let gk = k0 + kk;
      var a = 0.0;
      if (row0 + r < p.M && gk < p.K) {
        a = A[(row0 + r) * p.K + gk];
      }
      As[kk * 8u + r / 4u][r % 4u] = a;
      var w = 0.0;
      if (col0 + r < p.N && gk < p.K) {
        w = W[(col0 + r) * p.K + gk];
      }
      Ws[kk * 8u + r / 4u][r % 4u] = w;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      let a = As[kk * 8u + lid.y];
      let b = Ws[kk * 8u + lid.x];
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
  }
  let r0 = row0 + lid.y * 4u;
  let c0 = col0 + lid.x * 4u;
  store_row(r0, c0, acc0);
  store_row(r0 + 1u, c0, acc1);
  store_row(r0 + 2u, c0, acc2);
  store_row(r0 + 3u, c0, acc3);
}
