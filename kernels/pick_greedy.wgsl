// pick_greedy: the greedy token choice of one row of logits, on the device, so only ids (and
// optionally probabilities) are read back. For row r of X [rows, n]:
//   Out[r]        = the smallest index of the largest X[r, i] among allowed i (all i when has_mask = 0;
//              else i is allowed when bit i % 32 of Bits[r * words + i / 32] is set);
//   Out[rows + r] = the f32 bits of exp(X[r, id] - m) / sum_i exp(X[r, i] - m), m = max_i X[r, i], over ALL i (the
//              temperature-1 probability before the mask, as lib/backend/cpu_pick.ts defines it).
// NaNs are ignored. X is not modified. Ids and probabilities share one buffer so one read-back
// brings both.
// Bindings: 0 X (read) · 1 Bits (read, u32; any 1-element buffer when has_mask = 0) ·
//           2 Out (read_write, u32, 2 * rows) · 3 params (uniform).
// Workgroup: 256 threads per row; strided scans then tree reductions in workgroup memory.
// Dispatch: (x, y, 1) with x*y >= rows, x <= 65535.

struct Params {
  rows: u32,
  n: u32,
  has_mask: u32,
  words: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Bits: array<u32>;
@group(0) @binding(2) var<storage, read_write> Out: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG = 256u;
const NONE = 0xffffffffu;
const NEG = -3.0e38;
var<workgroup> rv: array<f32, 256>;
var<workgroup> ri: array<u32, 256>;

fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  if (i == NONE) {
    return false;
  }
  if (bi == NONE) {
    return true;
  }
  return v > bv || (v == bv && i < bi);
}

fn allowed(row: u32, i: u32) -> bool {
  if (p.has_mask == 0u) {
    return true;
  }
  return ((Bits[row * p.words + i / 32u] >> (i % 32u)) & 1u) != 0u;
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) {
    return;
  }
  let t = lid.x;
  let base = row * p.n;
  // Max over every logit, and the allowed argmax.
  var m = NEG;
  var best = 0.0;
  var bidx = NONE;
  for (var i = t; i < p.n; i += WG) {
    let v = X[base + i];
    if (v == v) {
      m = max(m, v);
      if (allowed(row, i) && better(v, i, best, bidx)) {
        best = v;
        bidx = i;
      }
    }
  }
  rv[t] = m;
  workgroupBarrier();
  for (var off = WG / 2u; off > 0u; off >>= 1u) {
    if (t < off) {
      rv[t] = max(rv[t], rv[t + off]);
    }
    workgroupBarrier();
  }
  let rmax = rv[0];
  workgroupBarrier();
  var s = 0.0;
  for (var i = t; i < p.n; i += WG) {
    let v = X[base + i];
    if (v == v) {
      s += exp(v - rmax);
    }
  }
  rv[t] = s;
  workgroupBarrier();
  for (var off = WG / 2u; off > 0u; off >>= 1u) {
    if (t < off) {
      rv[t] += rv[t + off];
    }
    workgroupBarrier();
  }
  let total = rv[0];
  workgroupBarrier();
  rv[t] = best;
  ri[t] = bidx;
  workgroupBarrier();
  for (var off = WG / 2u; off > 0u; off >>= 1u) {
    if (t < off && better(rv[t + off], ri[t + off], rv[t], ri[t])) {
      rv[t] = rv[t + off];
      ri[t] = ri[t + off];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    let id = select(ri[0], 0u, ri[0] == NONE);
    Out[row] = id;
    Out[p.rows + row] = bitcast<u32>(exp(X[base + id] - rmax) / total);
  }
}
