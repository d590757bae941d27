// gemm: C[m, n] = act(inv_m · Σ_k A'[m, k] · W[n, k] + bias[n]) + R[m, n], all f32 arithmetic,
//   W [N, K] in the [out, in] order of HF Linear weights, stored as f32, f16 or q8 / q4 blocks
//   with the same layouts and FMT / ZP / BS overrides as gemv_q.wgsl (here W is read as u32).
//   A'[m, k] = A[m, k] · (G[k] + gain_add) and inv_m = rsqrt(mean_k A[m, :]² + eps) with NORM 1
//   (a fused Gemma RMSNorm of A), else A' = A and inv_m = 1. act: ACT 0 identity, 1 gelu_tanh.
// Bindings: 0 A (read, [M, K]) · 1 W (read, u32) · 2 S (read, scales) · 3 Z (read, zero
//   points) · 4 bias (read, [N]) · 5 R (read, [M, N]) · 6 G (read, [K]) · 7 C (read_write,
//   [M, N]) · 8 params (uniform). Unused inputs take any 1-element buffer.
// Tiling: TX × TY threads compute a (4·TY) × (4·TX) tile of C, each thread a 4×4 register
//   block; K is walked TK at a time through two workgroup arrays of TK · TY and TK · TX vec4
//   (4 consecutive rows of A / of W per vec4). Edges are bounds-checked: any M, N, K.
// Dispatch: (ceil(N / (4·TX)), ceil(M / (4·TY)), 1).

override FMT: u32 = 0u;
override ZP: u32 = 0u;
override BS: u32 = 32u;
override NORM: u32 = 0u;
override ACT: u32 = 0u;
override TX: u32 = 8u;
override TY: u32 = 8u;
override TK: u32 = 8u;

struct Params {
  M: u32,
  N: u32,
  K: u32,
  row_words: u32,
  blocks: u32,
  zs: u32,
  has_bias: u32,
  has_res: u32,
  eps: f32,
  gain_add: f32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read> Z: array<u32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> R: array<f32>;
@group(0) @binding(6) var<storage, read> G: array<f32>;
@group(0) @binding(7) var<storage, read_write> C: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

var<workgroup> As: array<vec4<f32>, TK * TY>;
var<workgroup> Ws: array<vec4<f32>, TK * TX>;
var<workgroup> inv: array<f32, 4u * TY>;

//! include quant_zero_points

//! include gemm_weight

fn gelu_tanh(x: f32) -> f32 {
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1.0 + tanh(clamp(u, -15.0, 15.0)));
}

fn store_row(r: u32, c0: u32, v: vec4<f32>) {
  if (r >= p.M) {
    return;
  }
  var s = 1.0;
  if (NORM != 0u) {
    s = inv[r % (4u * TY)];
  }
  for (var j = 0u; j < 4u; j++) {
    let c = c0 + j;
    if (c < p.N) {
      var x = v[j] * s;
      if (p.has_bias != 0u) {
        x += bias[c];
      }
      if (ACT == 1u) {
        x = gelu_tanh(x);
      }
      if (p.has_res != 0u) {
        x += R[r * p.N + c];
      }
      C[r * p.N + c] = x;
    }
  }
}

@compute @workgroup_size(TX, TY, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let TM = 4u * TY;
  let TN = 4u * TX;
  let NT = TX * TY;
  let row0 = wg.y * TM;
  let col0 = wg.x * TN;
  if (NORM != 0u) {
    // rsqrt(mean square) of the tile's rows: NT / TM threads per row.
    let per = max(1u, NT / TM);
    var ss = 0.0;
    let r = li / per;
    if (r < TM && row0 + r < p.M) {
      for (var k = li % per; k < p.K; k += per) {
        let a = A[(row0 + r) * p.K + k];
        ss = fma(a, a, ss);
      }
    }
    // Reduce through As (its first NT / 4 vec4 hold one partial per thread).
    As[li / 4u][li % 4u] = ss;
    workgroupBarrier();
    if (li < TM) {
      var t = 0.0;
      for (var i = 0u; i < per; i++) {
        let e = li * per + i;
        t += As[e / 4u][e % 4u];
      }
      inv[li] = inverseSqrt(t / f32(p.K) + p.eps);
    }
    workgroupBarrier();
  }
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // Consecutive threads read along K.
    for (var e = li; e < TM * TK; e += NT) {
      let r = e / TK;
      let kk = e % TK;
      let gk = k0 + kk;
      var a = 0.0;
      if (row0 + r < p.M && gk < p.K) {
        a = A[(row0 + r) * p.K + gk];
        if (NORM != 0u) {
          a *= G[gk] + p.gain_add;
        }
      }
      As[kk * TY + r / 4u][r % 4u] = a;
    }
    for (var e = li; e < TN * TK; e += NT) {
      let c = e / TK;
      let kk = e % TK;
      let gk = k0 + kk;
      var w = 0.0;
      if (col0 + c < p.N && gk < p.K) {
        w = wval(col0 + c, gk);
      }
      Ws[kk * TX + c / 4u][c % 4u] = w;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      let a = As[kk * TY + lid.y];
      let b = Ws[kk * TX + lid.x];
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
