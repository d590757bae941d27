// Shared by gemm.wgsl and gemm_h.wgsl (included with `//! include gemm_weight`, after
// quant_zero_points): W[n, k] as f32 (n < N, k < K) for weight format FMT (0 f32, 1 f16 halves two
// per word, 2 q8, 3 q4 in blocks of BS with per-block scales S). Needs the includer's W, S,
// p.row_words and p.blocks.

// W[n, k] as f32 (n < N, k < K).
fn wval(n: u32, k: u32) -> f32 {
  let base = n * p.row_words;
  if (FMT == 0u) {
    return bitcast<f32>(W[base + k]);
  }
  if (FMT == 1u) {
    return unpack2x16float(W[base + k / 2u])[k % 2u];
  }
  let b = k / BS;
  let sc = S[n * p.blocks + b];
  if (FMT == 2u) {
    let c = (W[base + k / 4u] >> ((k % 4u) * 8u)) & 255u;
    return (f32(c) - zero_point(n, b, 128.0)) * sc;
  }
  let c = (W[base + k / 8u] >> ((k % 8u) * 4u)) & 15u;
  return (f32(c) - zero_point(n, b, 8.0)) * sc;
}
