// A GGUF file held in memory as one or more pieces, and its header: metadata and tensor
// table (the engine's `gguf.rs`, read-only and header-only). The WebGPU host needs it to
// size the model and find each tensor's bytes; the component parses the same header again
// for its tokenizer and config.

/** The GGML types the kernels decode: [block size in values, bytes per block]. */
export const TYPES = {
  0: { name: "F32", block: 1, bytes: 4 },
  1: { name: "F16", block: 1, bytes: 2 },
  2: { name: "Q4_0", block: 32, bytes: 18 },
  3: { name: "Q4_1", block: 32, bytes: 20 },
  6: { name: "Q5_0", block: 32, bytes: 22 },
  7: { name: "Q5_1", block: 32, bytes: 24 },
  8: { name: "Q8_0", block: 32, bytes: 34 },
  12: { name: "Q4_K", block: 256, bytes: 144 },
  13: { name: "Q5_K", block: 256, bytes: 176 },
  14: { name: "Q6_K", block: 256, bytes: 210 },
  30: { name: "BF16", block: 1, bytes: 2 },
};

export class GgufError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** A file's bytes as a list of pieces (a download's chunks are never joined into one buffer). */
export class FileBytes {
  constructor(pieces) {
    this.pieces = pieces.map((p) => (p instanceof Uint8Array ? p : new Uint8Array(p)));
    this.starts = [];
    let at = 0;
    for (const p of this.pieces) {
      this.starts.push(at);
      at += p.byteLength;
    }
    this.size = at;
  }

  /** Bytes offset..offset+length: a view when they lie in one piece, else a copy. */
  read(offset, length) {
    if (offset + length > this.size) throw new GgufError("corrupt-file", `the file ends at ${this.size} bytes, before ${offset + length}`);
    let i = this.#piece(offset);
    const local = offset - this.starts[i];
    if (local + length <= this.pieces[i].byteLength) return this.pieces[i].subarray(local, local + length);
    const out = new Uint8Array(length);
    this.copyInto(offset, out);
    return out;
  }

  /** Copy bytes offset..offset+dst.length into dst. */
  copyInto(offset, dst) {
    let i = this.#piece(offset);
    let done = 0;
    while (done < dst.byteLength) {
      const p = this.pieces[i];
      const local = offset + done - this.starts[i];
      const n = Math.min(p.byteLength - local, dst.byteLength - done);
      dst.set(p.subarray(local, local + n), done);
      done += n;
      i++;
    }
  }

  #piece(offset) {
    let lo = 0, hi = this.pieces.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

class Cursor {
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }
  take(n) {
    const b = this.bytes.read(this.pos, n);
    this.pos += n;
    return b;
  }
  view(n) {
    const b = this.take(n);
    return new DataView(b.buffer, b.byteOffset, n);
  }
  u32() { return this.view(4).getUint32(0, true); }
  u64() {
    const v = this.view(8).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError("corrupt-file", `a size of ${v} in the GGUF header`);
    return Number(v);
  }
  string() {
    const n = this.u64();
    return new TextDecoder().decode(this.take(n));
  }
  skipString() {
    const n = this.u64(); // read before `pos` is: `pos += u64()` would drop the length's 8 bytes
    this.pos += n;
  }
}

const SCALAR = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

function value(c, type, keep) {
  const v = (n, get) => get(c.view(n));
  switch (type) {
    case 0: return v(1, (d) => d.getUint8(0));
    case 1: return v(1, (d) => d.getInt8(0));
    case 2: return v(2, (d) => d.getUint16(0, true));
    case 3: return v(2, (d) => d.getInt16(0, true));
    case 4: return v(4, (d) => d.getUint32(0, true));
    case 5: return v(4, (d) => d.getInt32(0, true));
    case 6: return v(4, (d) => d.getFloat32(0, true));
    case 7: return v(1, (d) => d.getUint8(0) !== 0);
    case 8: return c.string();
    case 9: {
      const inner = c.u32();
      const n = c.u64();
      // Arrays of strings (the vocabulary: 262k of them) and large ones are skipped, keeping
      // their length; only small numeric ones are read.
      if (inner === 8) {
        for (let i = 0; i < n; i++) c.skipString();
        return { skipped: n };
      }
      if (!(inner in SCALAR)) throw new GgufError("corrupt-file", `array of GGUF value type ${inner}`);
      if (!keep || n > 4096) {
        c.pos += SCALAR[inner] * n;
        return { skipped: n };
      }
      return Array.from({ length: n }, () => value(c, inner, keep));
    }
    case 10: return v(8, (d) => Number(d.getBigUint64(0, true)));
    case 11: return v(8, (d) => Number(d.getBigInt64(0, true)));
    case 12: return v(8, (d) => d.getFloat64(0, true));
    default: throw new GgufError("corrupt-file", `GGUF value type ${type}`);
  }
}

/**
 * The header of a GGUF file: `metadata` (key → value; string arrays and large arrays are
 * `{skipped: length}`), `tensors`
 * (name → {name, dims, type, offset (absolute), size}), and `dataOffset`, where the tensor
 * data starts (the header the wasi:nn protocol hands the guest is the bytes before it).
 */
export function parseGguf(bytes) {
  if (bytes.size < 24) throw new GgufError("not-gguf", `${bytes.size} bytes is too short for a GGUF file`);
  const c = new Cursor(bytes);
  const magic = new TextDecoder().decode(c.take(4));
  if (magic !== "GGUF") throw new GgufError("not-gguf", "the file does not start with GGUF");
  const version = c.u32();
  if (version < 2 || version > 3) throw new GgufError("not-gguf", `GGUF version ${version}`);
  const nTensors = c.u64();
  const nKv = c.u64();
  const metadata = new Map();
  for (let i = 0; i < nKv; i++) {
    const key = c.string();
    metadata.set(key, value(c, c.u32(), true));
  }
  const infos = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.string();
    const nDims = c.u32();
    if (nDims === 0 || nDims > 4) throw new GgufError("corrupt-file", `tensor '${name}': ${nDims} dimensions (1..=4 allowed)`);
    const dims = Array.from({ length: nDims }, () => c.u64());
    const type = c.u32();
    const offset = c.u64();
    infos.push({ name, dims, type, offset });
  }
  const alignment = metadata.get("general.alignment") ?? 32;
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new GgufError("corrupt-file", `general.alignment ${alignment} is not a power of two`);
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors = new Map();
  for (const t of infos) {
    const ty = TYPES[t.type];
    if (!ty) throw new GgufError("unsupported-tensor-type", `unsupported tensor type (ggml type ${t.type}) in tensor '${t.name}'`);
    const elements = t.dims.reduce((a, b) => a * b, 1);
    if (t.dims[0] % ty.block !== 0) throw new GgufError("corrupt-file", `tensor '${t.name}': rows of ${t.dims[0]} values are not whole ${ty.name} blocks`);
    if (t.offset % alignment !== 0) throw new GgufError("corrupt-file", `tensor '${t.name}': data offset ${t.offset} is not aligned to ${alignment}`);
    const size = (elements / ty.block) * ty.bytes;
    const info = { ...t, offset: dataOffset + t.offset, size, elements };
    if (info.offset + size > bytes.size) throw new GgufError("corrupt-file", `tensor '${t.name}' extends past the end of the file`);
    tensors.set(t.name, info);
  }
  return { metadata, tensors, dataOffset, size: bytes.size };
}
