// kv_append: copies T new key (or value) vectors per batch row and head into a cache at
// positions P .. P+T-1:  cache[b, h, P + t, d] = src[b, t, h, d].
// Layouts by element strides: src[b, t, h, d] = S[b*s_sb + t*s_st + h*s_sh + d];
//                            cache[b, h, s, d] = Cc[b*c_sb + h*c_sh + s*c_ss + d].
// Bindings: 0 S (read) · 1 Cc (read_write) · 2 params (uniform).
// Workgroup: 256 threads, one element each.
// Dispatch: (x, y, 1) with x*y*256 >= B*T*H*D, x <= 65535.

struct Params {
  B: u32,
  T: u32,
  H: u32,
  D: u32,
  P: u32,
  s_sb: u32,
  s_st: u32,
  s_sh: u32,
  c_sb: u32,
  c_sh: u32,
  c_ss: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read_write> Cc: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let g = (wg.x + wg.y * nwg.x) * 256u + lid.x;
  if (g >= p.B * p.T * p.H * p.D) {
    return;
  }
  let d = g % p.D;
  let h = (g / p.D) % p.H;
  let t = (g / (p.D * p.H)) % p.T;
  let b = g / (p.D * p.H * p.T);
  Cc[b * p.c_sb + h * p.c_sh + (p.P + t) * p.c_ss + d] = S[b * p.s_sb + t * p.s_st + h * p.s_sh + d];
}
