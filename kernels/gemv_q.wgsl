// gemv_q: Y[m, n] = Σ_k X'[m, k] · W[n, k] (+ bias[n]) (+ R[m, n]) for a few activation rows m
// (decode), with W stored as f32, f16 or the MatMulNBits block layouts of converted folders:
//   FMT 0 f32:  W[n, k] f32, row-major [N, K].
//   FMT 1 f16:  W[n, k] IEEE half, row-major [N, K], two per u32 (even k in the low half).
//   FMT 2 q8 / FMT 3 q4: codes [N, blocks, BS * bits / 8] bytes (4-bit: even k in the low
//       nibble), scales S[n * blocks + b] f32, w = (code - zero) * scale with zero from Z:
//       ZP 0: implicit 2^(bits-1); ZP 4: nibbles, row stride zs bytes, even block in the low
//       nibble (MatMulNBits zero_points); ZP 8: one byte per block, row stride zs bytes.
// Optional fused Gemma RMSNorm of X (NORM 1): X'[m, k] = X[m, k] · rsqrt(mean_k X[m, :]² + eps)
//   · (G[k] + gain_add), so the normalised activations are never written.
// Bindings: 0 W (read, vec4<u32>: each row a whole number of 16-byte units, rw4 units) ·
//   1 S (read, f32) · 2 Z (read, u32 bytes) · 3 X (read, vec4<f32>, [M, K], K % 4 == 0) ·
//   4 bias (read, [N]) · 5 R (read, [M, N]) · 6 G (read, [K]) · 7 Y (read_write, [M, N]) ·
//   8 params (uniform). Unused inputs take any 1-element buffer.
// GLU 1 (a fused gate|up weight of 2·I rows, N = 2·I): Y[m, o] = gelu_tanh(g) · u (+ R[m, o])
//   for o < I, with g, u the (biased) outputs of rows o and I + o; Y and R are [M, I]. The two
//   rows share a workgroup (slots s and s + rows / 2), so the gate and up never reach memory.
// Workgroup: WG threads = WG / TPR output rows × TPR threads; each thread walks 16-byte units
//   u = t, t + TPR, ... of its row (coalesced across threads), keeps MR = 4 activation rows'
//   partial sums in one vec4, and a workgroup-memory tree reduction (no subgroups) ends it.
// Dispatch: (x, y, ceil(M / 4)) with x*y >= ceil(N / (WG / TPR)), x <= 65535.

override FMT: u32 = 0u;
override ZP: u32 = 0u;
override BS: u32 = 32u;
override WG: u32 = 256u;
override TPR: u32 = 32u;
override NORM: u32 = 0u;
override GLU: u32 = 0u;
const MR = 4u;

struct Params {
  M: u32,
  N: u32,
  K4: u32,
  rw4: u32,
  blocks: u32,
  zs: u32,
  has_bias: u32,
  has_res: u32,
  eps: f32,
  gain_add: f32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> W: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> Z: array<u32>;
@group(0) @binding(3) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> R: array<f32>;
@group(0) @binding(6) var<storage, read> G: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> Y: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

var<workgroup> red: array<vec4<f32>, WG>;
var<workgroup> inv_rms: vec4<f32>;

var<private> m0: u32;

// Activations of the MR rows at vec4 index i of a row (zero past K or past M), as columns.
fn xs(i: u32) -> mat4x4<f32> {
  var r = mat4x4<f32>();
  if (i < p.K4) {
    var g = vec4<f32>(1.0);
    if (NORM != 0u) {
      g = G[i] + p.gain_add;
    }
    for (var j = 0u; j < MR; j++) {
      if (m0 + j < p.M) {
        r[j] = X[(m0 + j) * p.K4 + i] * g;
      }
    }
  }
  return r;
}

// dot of four weights with the four rows' activations at vec4 index i: one sum per row.
fn dot4(w: vec4<f32>, i: u32) -> vec4<f32> {
  return w * xs(i);
}

//! include quant_zero_points

fn unit_sum(n: u32, u: u32) -> vec4<f32> {
  let w = W[n * p.rw4 + u];
  if (FMT == 0u) {
    return dot4(bitcast<vec4<f32>>(w), u);
  }
  if (FMT == 1u) {
    let a = vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
    let b = vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w));
    return dot4(a, 2u * u) + dot4(b, 2u * u + 1u);
  }
  var s = vec4<f32>(0.0);
  if (FMT == 2u) {
    // 16 codes, all in block 16u / BS.
    let b = (16u * u) / BS;
    let sc = S[n * p.blocks + b];
    let z = zero_point(n, b, 128.0);
    for (var j = 0u; j < 4u; j++) {
      let c = (vec4<u32>(w[j]) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(255u);
      s += dot4((vec4<f32>(c) - z) * sc, 4u * u + j);
    }
    return s;
  }
  // FMT 3: 32 codes, 8 per word; a word never straddles a block (BS >= 16).
  for (var j = 0u; j < 4u; j++) {
    let b = (8u * (4u * u + j)) / BS;
    let sc = S[n * p.blocks + b];
    let z = zero_point(n, b, 8.0);
    let lo = (vec4<u32>(w[j]) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u);
    let hi = (vec4<u32>(w[j]) >> vec4<u32>(16u, 20u, 24u, 28u)) & vec4<u32>(15u);
    s += dot4((vec4<f32>(lo) - z) * sc, 2u * (4u * u + j));
    s += dot4((vec4<f32>(hi) - z) * sc, 2u * (4u * u + j) + 1u);
  }
  return s;
}

fn gelu_tanh(x: f32) -> f32 {
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1.0 + tanh(clamp(u, -15.0, 15.0)));
}

@compute @workgroup_size(WG, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let rows = WG / TPR;
  let slot = lid.x / TPR;
  let t = lid.x % TPR;
  var n = (wg.x + wg.y * nwg.x) * rows + slot;
  let half_rows = rows / 2u;
  let I = p.N / 2u;
  let o = (wg.x + wg.y * nwg.x) * half_rows + slot % half_rows; // GLU output column
  if (GLU != 0u) {
    n = select(o, o + I, slot >= half_rows);
    if (o >= I) {
      n = p.N; // past the end: no row
    }
  }
  m0 = wg.z * MR;
  if (NORM != 0u) {
    // Sum of squares of each activation row, shared by every output row of the group.
    var ss = vec4<f32>(0.0);
    for (var i = lid.x; i < p.K4; i += WG) {
      for (var j = 0u; j < MR; j++) {
        if (m0 + j < p.M) {
          let v = X[(m0 + j) * p.K4 + i];
          ss[j] += dot(v, v);
        }
      }
    }
    red[lid.x] = ss;
    workgroupBarrier();
    for (var off = WG / 2u; off > 0u; off >>= 1u) {
      if (lid.x < off) {
        red[lid.x] += red[lid.x + off];
      }
      workgroupBarrier();
    }
    if (lid.x == 0u) {
      inv_rms = inverseSqrt(red[0] / f32(4u * p.K4) + p.eps);
    }
    workgroupBarrier();
  }
  var acc = vec4<f32>(0.0);
  if (n < p.N) {
    for (var u = t; u < p.rw4; u += TPR) {
      acc += unit_sum(n, u);
    }
  }
  red[lid.x] = acc;
  workgroupBarrier();
  for (var off = TPR / 2u; off > 0u; off >>= 1u) {
    if (t < off) {
      red[lid.x] += red[lid.x + off];
    }
    workgroupBarrier();
  }
  if (GLU != 0u) {
    if (t == 0u && slot < half_rows && o < I) {
      var g = red[lid.x];
      var u = red[lid.x + half_rows * TPR];
      if (NORM != 0u) {
        g *= inv_rms;
        u *= inv_rms;
      }
      for (var j = 0u; j < MR; j++) {
        let m = m0 + j;
        if (m < p.M) {
          var gj = g[j];
          var uj = u[j];
          if (p.has_bias != 0u) {
            gj += bias[o];
            uj += bias[o + I];
          }
          var y = gelu_tanh(gj) * uj;
          if (p.has_res != 0u) {
            y += R[m * I + o];
          }
          Y[m * I + o] = y;
        }
      }
    }
    return;
  }
  if (t == 0u && n < p.N) {
    var v = red[lid.x];
    if (NORM != 0u) {
      v *= inv_rms;
    }
    for (var j = 0u; j < MR; j++) {
      let m = m0 + j;
      if (m < p.M) {
        var y = v[j];
        if (p.has_bias != 0u) {
          y += bias[n];
        }
        if (p.has_res != 0u) {
          y += R[m * p.N + n];
        }
        Y[m * p.N + n] = y;
      }
    }
  }
}
