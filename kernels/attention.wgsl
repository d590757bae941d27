// attention: O[b, h, t, :] = softmax_j(s_j) · V[b, kvh, j, :] with
//   s_j = cap(q · K[b, kvh, j, :] * scale) + mask[b, j],  cap(s) = tanh(s / c) * c when c > 0,
//   kvh = h / (Hq / Hkv) (GQA / MQA), keys j in [0, S) of the cache, S = P + T (P past + T new).
// Key j is skipped when causal = 1 and j > P + t, or window > 0 and P + t - j >= window. With
// causal = 0 this is the prefix-LM prefill: full attention among the T new tokens and to the
// whole past. mask is additive (0 / -1e30 or -inf for key padding), one row of mask_stride
// values per batch row; with has_mask = 0 any 1-element buffer is bound.
// Layouts by element strides: q[b,h,t,d] = Q[b*q_sb + h*q_sh + t*q_st + d] (same for O with
// o_*); k[b,kvh,j,d] = K[b*k_sb + kvh*k_sh + j*k_ss + d] (same strides for V).
// Bindings: 0 Q (read) · 1 K (read) · 2 V (read) · 3 mask (read) · 4 O (read_write) ·
//           5 params (uniform).
// Workgroup: 64 threads per (b, h, t) query row; keys are taken 64 at a time (one score per
// thread), with an online (running max) softmax; each thread accumulates D/64 output dims.
// D <= 256. Dispatch: (x, y, 1) with x*y >= B*Hq*T, x <= 65535.

struct Params {
  B: u32,
  Hq: u32,
  Hkv: u32,
  T: u32,
  D: u32,
  P: u32,
  causal: u32,
  window: u32,
  has_mask: u32,
  mask_stride: u32,
  q_sb: u32,
  q_sh: u32,
  q_st: u32,
  k_sb: u32,
  k_sh: u32,
  k_ss: u32,
  o_sb: u32,
  o_sh: u32,
  o_st: u32,
  scale: f32,
  softcap: f32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG = 64u;
const DPT = 4u; // output dims per thread: 256 / 64
const NEG = -3.0e38; // "no key" sentinel, below any finite score
const NEG_HALF = -1.5e38;

var<workgroup> qs: array<vec4<f32>, 64>; // q, 4 dims per element
var<workgroup> ss: array<f32, 64>;
var<workgroup> ps: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let g = wg.x + wg.y * nwg.x;
  if (g >= p.B * p.Hq * p.T) {
    return;
  }
  let tid = lid.x;
  let t = g % p.T;
  let h = (g / p.T) % p.Hq;
  let b = g / (p.T * p.Hq);
  let kvh = h / (p.Hq / p.Hkv);
  let qpos = p.P + t;
  var kend = p.P + p.T;
  if (p.causal != 0u) {
    kend = qpos + 1u;
  }
  var kstart = 0u;
  if (p.window > 0u && qpos + 1u > p.window) {
    kstart = qpos + 1u - p.window;
  }
  let qb = b * p.q_sb + h * p.q_sh + t * p.q_st;
  for (var d = tid; d < p.D; d += WG) {
    qs[d / 4u][d % 4u] = Q[qb + d];
  }
  workgroupBarrier();

  let kb = b * p.k_sb + kvh * p.k_sh;
  var m = NEG;
  var l = 0.0;
  var acc: array<f32, 4>;
  for (var i = 0u; i < DPT; i++) {
    acc[i] = 0.0;
  }
  for (var c0 = kstart; c0 < kend; c0 += WG) {
    let j = c0 + tid;
    var s = NEG;
    if (j < kend) {
      let kr = kb + j * p.k_ss;
      var dotv = 0.0;
      for (var d = 0u; d < p.D; d++) {
        dotv = fma(qs[d / 4u][d % 4u], K[kr + d], dotv);
      }
      s = dotv * p.scale;
      if (p.softcap > 0.0) {
        s = tanh(clamp(s / p.softcap, -10.0, 10.0)) * p.softcap;
      }
      if (p.has_mask != 0u) {
        s += mask[b * p.mask_stride + j];
      }
      s = max(s, NEG); // -inf from the mask becomes the sentinel
    }
    ss[tid] = s;
    workgroupBarrier();
    var cmax = NEG;
    for (var jj = 0u; jj < WG; jj++) {
      cmax = max(cmax, ss[jj]);
    }
    let mnew = max(m, cmax);
    var pj = 0.0;
    if (s > NEG_HALF) {
      pj = exp(s - mnew);
    }
    ps[tid] = pj;
    workgroupBarrier();
    let corr = exp(m - mnew);
    l *= corr;
    for (var i = 0u; i < DPT; i++) {
      acc[i] *= corr;
    }
    let n = min(WG, kend - c0);
    for (var jj = 0u; jj < n; jj++) {
      let pv = ps[jj];
      l += pv;
      let vr = kb + (c0 + jj) * p.k_ss;
      for (var i = 0u; i < DPT; i++) {
        let d = tid + i * WG;
        if (d < p.D) {
          acc[i] = fma(pv, V[vr + d], acc[i]);
        }
      }
    }
    m = mnew;
    workgroupBarrier();
  }
  let ob = b * p.o_sb + h * p.o_sh + t * p.o_st;
  var inv = 0.0;
  if (l > 0.0) {
    inv = 1.0 / l;
  }
  for (var i = 0u; i < DPT; i++) {
    let d = tid + i * WG;
    if (d < p.D) {
      O[ob + d] = acc[i] * inv;
    }
  }
}
