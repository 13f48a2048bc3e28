// The WebAssembly features the package picks its build by.

const leb = (n) => (n < 0x80 ? [n] : [(n & 0x7f) | 0x80, ...leb(n >> 7)]);
const v128 = (bytes) => [0xfd, 0x0c, ...bytes, ...new Array(16 - bytes.length).fill(0)];

/** A module exporting functions f0, f1, ... of type () -> i32 with the given bodies. */
function moduleOf(bodies) {
  const section = (id, content) => [id, ...leb(content.length), ...content];
  const code = bodies.flatMap((b) => [...leb(b.length + 2), 0x00, ...b, 0x0b]);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x01, 0x60, 0x00, 0x01, 0x7f]),
    ...section(3, [bodies.length, ...bodies.map(() => 0)]),
    ...section(7, [bodies.length, ...bodies.flatMap((_, i) => [0x02, 0x66, 0x30 + i, 0x00, i])]),
    ...section(10, [bodies.length, ...code]),
  ]);
}

// relaxed-simd's 8-bit dot products on edgeslm's operands: signed activations within ±127
// against unsigned weight codes below 128, where the proposal leaves nothing to the engine.
// An engine that validates them but computes something else (Node 20's V8 11.3 behind
// --experimental-wasm-relaxed-simd: its i32x4 dot-add doubles the sum and drops the
// accumulator) must not run the relaxed-simd build.
const A = [-3 & 0xff, 2, 100, 0x81, 127, 127, 127, 127];
const B = [5, 7, 120, 127, 127, 127, 127, 127];
const C = [10, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]; // lanes 10 and -1
const I16_DOT = [0xfd, 0x92, 0x02]; // i16x8.relaxed_dot_i8x16_i7x16_s
const I32_DOT_ADD = [0xfd, 0x93, 0x02]; // i32x4.relaxed_dot_i8x16_i7x16_add_s
const PROBE = moduleOf([
  [...v128(A), ...v128(B), ...I16_DOT, 0xfd, 0x18, 1], // i16x8.extract_lane_s 1: 100·120 − 127·127
  [...v128(A), ...v128(B), ...v128(C), ...I32_DOT_ADD, 0xfd, 0x1b, 0], // i32x4.extract_lane 0
  [...v128(A), ...v128(B), ...v128(C), ...I32_DOT_ADD, 0xfd, 0x1b, 1],
]);
const EXPECTED = [100 * 120 - 127 * 127, -3 * 5 + 2 * 7 + 100 * 120 - 127 * 127 + 10, 4 * 127 * 127 - 1];

let relaxed;
/**
 * Whether this engine has relaxed-simd and computes its 8-bit dot products exactly on
 * edgeslm's operands (what `kernels: "auto"` picks the relaxed-simd build by).
 */
export function hasRelaxedSimd() {
  if (relaxed === undefined) {
    try {
      const { exports } = new WebAssembly.Instance(new WebAssembly.Module(PROBE));
      relaxed = EXPECTED.every((want, i) => exports[`f${i}`]() === want);
    } catch {
      relaxed = false; // does not validate: no relaxed-simd
    }
  }
  return relaxed;
}

/** Whether the engine accepts relaxed-simd instructions at all, exact or not. */
export function validatesRelaxedSimd() {
  return WebAssembly.validate(PROBE);
}

/**
 * The kernels to run: "relaxed-simd" (the build whose 8-bit products use relaxed-simd's dot
 * product: the same results, faster) where the engine computes it exactly, "simd128" otherwise.
 */
export function chooseKernels(wanted = "auto") {
  if (wanted === "auto") return hasRelaxedSimd() ? "relaxed-simd" : "simd128";
  if (wanted === "simd128") return wanted;
  if (wanted === "relaxed-simd") {
    if (!hasRelaxedSimd()) {
      throw new TypeError(`kernels: "relaxed-simd" was asked for, but this WebAssembly engine ${validatesRelaxedSimd() ? "computes relaxed-simd's dot products inexactly" : "has no relaxed-simd"}`);
    }
    return wanted;
  }
  throw new TypeError(`kernels must be "auto", "relaxed-simd" or "simd128" (got ${JSON.stringify(wanted)})`);
}
