// attn_combine: merges the split-KV partial results of flash_attention.wgsl:
//   O[b, h, t, d] = Σ_z e^(m_z - M) · Part[z, row, d] / Σ_z e^(m_z - M) · l_z,  M = max_z m_z,
//   row = (b·Hq + h)·T + t, (m_z, l_z) = ML[z, row]; splits without visible keys have l_z = 0.
// Output strides as in flash_attention.wgsl (o_sb, o_sh, o_st).
// Bindings: 0 Part (read) · 1 ML (read) · 2 O (read_write) · 3 params (uniform).
// One thread per output element; dispatch (x, y, 1) with x*y*256 >= B·Hq·T·D, x <= 65535.

struct Params {
  B: u32,
  Hq: u32,
  T: u32,
  D: u32,
  nsplit: u32,
  o_sb: u32,
  o_sh: u32,
  o_st: u32,
}

@group(0) @binding(0) var<storage, read> Part: array<f32>;
@group(0) @binding(1) var<storage, read> ML: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let i = (wg.x + wg.y * nwg.x) * 256u + li;
  let nrows = p.B * p.Hq * p.T;
  if (i >= nrows * p.D) {
    return;
  }
  let row = i / p.D;
  let d = i % p.D;
  var mx = -3.0e38;
  for (var z = 0u; z < p.nsplit; z++) {
    if (ML[2u * (z * nrows + row) + 1u] > 0.0) {
      mx = max(mx, ML[2u * (z * nrows + row)]);
    }
  }
  var num = 0.0;
  var den = 0.0;
  for (var z = 0u; z < p.nsplit; z++) {
    let l = ML[2u * (z * nrows + row) + 1u];
    if (l > 0.0) {
      let f = exp(ML[2u * (z * nrows + row)] - mx);
      num = fma(f, Part[(z * nrows + row) * p.D + d], num);
      den = fma(f, l, den);
    }
  }
  let t = row % p.T;
  let h = (row / p.T) % p.Hq;
  let b = row / (p.T * p.Hq);
  var o = 0.0;
  if (den > 0.0) {
    o = num / den;
  }
  O[b * p.o_sb + h * p.o_sh + t * p.o_st + d] = o;
}
