// Shared by the kernels that read the converter's q8/q4 blocks (included with
// `//! include quant_zero_points`, see lib/webgpu/variants.ts): the zero point of row n's block b,
// from one byte per block (ZP == 8), MatMulNBits nibbles (ZP == 4) or implicit (`mid`). Needs the
// includer's Z (zero points as u32 words), p.zs (zero-point bytes per row) and override ZP.

fn byte_of(i: u32) -> u32 {
  return (Z[i / 4u] >> ((i % 4u) * 8u)) & 255u;
}

fn zero_point(n: u32, b: u32, mid: f32) -> f32 {
  if (ZP == 8u) {
    return f32(byte_of(n * p.zs + b));
  }
  if (ZP == 4u) {
    return f32((byte_of(n * p.zs + b / 2u) >> ((b % 2u) * 4u)) & 15u);
  }
  return mid;
}
