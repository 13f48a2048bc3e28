// The model's weights on the GPU, uploaded once (gpu/src/weights.rs): matrices in their GGUF
// encoding, split by rows into pieces no larger than one binding may be (Gemma 3's 262k×640
// embedding is 178 MB), and every vector (norms, biases, RoPE factors) in one f32 buffer.

import { GgufError, TYPES } from "./gguf.js";

export class GpuMatrix {
  /** Rows `rows` of the tensor `info` (a parsed GGUF tensor: a matrix with `dims` [cols, rows]) from `file`, optionally only rows from..to. */
  static upload(gpu, file, info, [from, to] = [0, info.dims[1] ?? 1], name = info.name) {
    const type = TYPES[info.type];
    if (!type) throw new GgufError("unsupported-tensor-type", `${name}: GGML type ${info.type}`);
    const cols = info.dims[0];
    if (cols % type.block !== 0 || cols % 32 !== 0) {
      throw new GgufError("unsupported-architecture", `${name}: rows of ${cols} values (the GPU kernels take whole blocks of 32)`);
    }
    const rowBytes = (cols / type.block) * type.bytes;
    if (rowBytes > gpu.maxBinding()) throw new GgufError("io", `${name}: one row is larger than the GPU binds (${gpu.maxBinding()} bytes)`);
    const perPiece = Math.floor(gpu.maxBinding() / rowBytes);
    const m = new GpuMatrix();
    Object.assign(m, { type: info.type, rows: to - from, cols, rowBytes, pieces: [] });
    for (let row0 = 0; row0 < m.rows; row0 += perPiece) {
      const n = Math.min(perPiece, m.rows - row0);
      const start = info.offset + (from + row0) * rowBytes;
      const buffer = gpu.upload(name, n * rowBytes, (view) => file.copyInto(start, view));
      m.pieces.push({ buffer, row0, rows: n });
    }
    return m;
  }

  /** Which piece holds `row`, and the row's index within it. */
  locate(row) {
    let i = 0;
    while (this.pieces[i].row0 + this.pieces[i].rows <= row) i++;
    return [i, row - this.pieces[i].row0];
  }

  /** (row within its piece, slot) pairs for `rows` grouped by piece, and each piece's [pairs, offset] in that list. */
  pairs(rows) {
    const byPiece = this.pieces.map(() => []);
    rows.forEach((row, slot) => {
      const [piece, local] = this.locate(row);
      byPiece[piece].push(local, slot);
    });
    const pairs = new Uint32Array(2 * rows.length);
    let filled = 0;
    const perPiece = byPiece.map((p) => {
      const at = [p.length / 2, filled];
      pairs.set(p, filled);
      filled += p.length;
      return at;
    });
    return [pairs, perPiece];
  }
}

function f16(h) {
  const e = (h >> 10) & 0x1f, m = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A vector tensor (F32, F16 or BF16) as f32 values; `len` checked. */
export function readVector(file, info, len) {
  if (info.elements !== len) throw new GgufError("corrupt-file", `tensor '${info.name}' has ${info.elements} elements, expected ${len}`);
  const bytes = file.read(info.offset, info.size);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // bf16 is the top half of an f32: widened through a scratch word.
  const word = new DataView(new ArrayBuffer(4));
  const bf16 = (h) => (word.setUint32(0, h << 16), word.getFloat32(0));
  const decode = {
    F32: (i) => view.getFloat32(4 * i, true),
    F16: (i) => f16(view.getUint16(2 * i, true)),
    BF16: (i) => bf16(view.getUint16(2 * i, true)),
  }[TYPES[info.type]?.name];
  if (!decode) throw new GgufError("unsupported-tensor-type", `vector '${info.name}' of type ${TYPES[info.type]?.name ?? info.type}`);
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) out[i] = decode(i);
  return out;
}

/** Every f32 vector of the model, gathered into one buffer at known offsets. */
export class Vectors {
  data = [];
  length = 0;

  /** Add `v`; returns its offset (in floats). */
  add(v) {
    const at = this.length;
    this.data.push(v);
    this.length += v.length;
    return at;
  }

  addOpt(v) {
    return v ? this.add(v) : undefined;
  }

  upload(gpu) {
    return gpu.upload("vectors", 4 * this.length, (view) => {
      const all = new Float32Array(view.buffer, view.byteOffset, this.length);
      let at = 0;
      for (const v of this.data) {
        all.set(v, at);
        at += v.length;
      }
    });
  }
}
