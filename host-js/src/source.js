// Model sources, with progress: a path (Node), a URL, a Blob/File, an ArrayBuffer/Uint8Array,
// or a fetch Response — as pieces for the component's model-loader where the size is known,
// else as one buffer.

import { ModelLoadError } from "./errors.js";

const isNode = typeof process !== "undefined" && !!process.versions?.node;

/** Bytes already in memory, as a Uint8Array view (no copy). */
function asBytes(source) {
  if (source instanceof Uint8Array) return source;
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  return new Uint8Array(source);
}

function done(bytes, report) {
  report(bytes.byteLength, bytes.byteLength);
  return bytes;
}

async function readResponse(response, report) {
  const length = Number(response.headers.get("content-length"));
  const total = Number.isFinite(length) && length > 0 ? length : undefined;
  if (!response.body) return done(new Uint8Array(await response.arrayBuffer()), report);
  return readStream(response.body, total, report);
}

/** Read a stream into one buffer (pre-sized when the length is known). */
async function readStream(stream, total, report) {
  const reader = stream.getReader();
  let buffer = new Uint8Array(total ?? 1 << 20);
  let loaded = 0;
  report(0, total);
  for (;;) {
    const { done: end, value } = await reader.read();
    if (end) break;
    if (loaded + value.byteLength > buffer.byteLength) {
      const grown = new Uint8Array(Math.max(buffer.byteLength * 2, loaded + value.byteLength));
      grown.set(buffer.subarray(0, loaded));
      buffer = grown;
    }
    buffer.set(value, loaded);
    loaded += value.byteLength;
    report(loaded, total);
  }
  return loaded === buffer.byteLength ? buffer : buffer.subarray(0, loaded);
}

/**
 * A model source as pieces for the component's model-loader, so the whole file is never held
 * twice: `{size, chunks}` (an async iterable of Uint8Array, each valid until the next is
 * requested) where the size is known up front, else `{bytes}` (bytes already in memory, or
 * a download of unknown length).
 */
export async function openSource(source, onProgress) {
  const report = (loaded, total) => onProgress?.({ loaded, total });
  // Already in pieces (e.g. chunks read back from IndexedDB).
  if (source && typeof source === "object" && Number.isFinite(source.size) && source.chunks?.[Symbol.asyncIterator]) {
    return { size: source.size, chunks: source.chunks };
  }
  if (source instanceof Uint8Array || ArrayBuffer.isView(source) || source instanceof ArrayBuffer) {
    return { bytes: done(asBytes(source), report) };
  }
  if (typeof Blob !== "undefined" && source instanceof Blob) {
    return { size: source.size, chunks: batched(source.stream(), source.size, report) };
  }
  let response = typeof Response !== "undefined" && source instanceof Response ? source : null;
  const text = source instanceof URL ? source.href : source;
  if (!response && typeof text === "string" && (/^(https?|blob|data):/i.test(text) || (!isNode && !/^file:/i.test(text)))) {
    response = await fetch(text);
    if (!response.ok) throw new Error(`cannot fetch ${text}: HTTP ${response.status}`);
  }
  if (response) {
    const size = Number(response.headers.get("content-length"));
    if (!response.body || !(size > 0) || response.headers.get("content-encoding")) {
      return { bytes: await readResponse(response, report) };
    }
    return { size, chunks: batched(response.body, size, report) };
  }
  if (typeof text !== "string") throw new TypeError("model source must be a path, URL, Blob, ArrayBuffer, Uint8Array or Response");
  return fileChunks(text, report);
}

const PIECE = 8 << 20;

/** A byte stream regrouped into pieces of up to 8 MiB in one reused buffer. */
async function* batched(stream, total, report) {
  const reader = stream.getReader();
  const piece = new Uint8Array(PIECE);
  let fill = 0, loaded = 0;
  report(0, total);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    for (let at = 0; at < value.byteLength; ) {
      const n = Math.min(PIECE - fill, value.byteLength - at);
      piece.set(value.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill === PIECE) {
        loaded += fill;
        report(loaded, total);
        yield piece;
        fill = 0;
      }
    }
  }
  if (fill > 0) {
    loaded += fill;
    report(loaded, total);
    yield piece.subarray(0, fill);
  }
}

/** A file read in 8 MiB pieces into one reused buffer. */
async function fileChunks(path, report) {
  const { open } = await import("node:fs/promises");
  const { fileURLToPath } = await import("node:url");
  const file = await open(/^file:/i.test(path) ? fileURLToPath(path) : path, "r").catch((e) => {
    if (e.code === "ENOENT") throw Object.assign(new Error(`file not found: ${path}`), { code: "file-not-found" });
    throw e;
  });
  const { size } = await file.stat();
  async function* chunks() {
    const piece = new Uint8Array(PIECE);
    try {
      report(0, size);
      for (let at = 0; at < size; ) {
        const { bytesRead } = await file.read(piece, 0, Math.min(PIECE, size - at), at);
        if (bytesRead === 0) throw new Error(`${path}: file shrank while reading`);
        at += bytesRead;
        report(at, size);
        yield piece.subarray(0, bytesRead);
      }
    } finally {
      await file.close();
    }
  }
  return { size, chunks: chunks() };
}

/** `openSource` reporting the "read" phase, with a missing file as a ModelLoadError. */
export async function openModelSource(source, onProgress) {
  try {
    return await openSource(source, (p) => onProgress?.({ phase: "read", ...p }));
  } catch (e) {
    if (e.code === "file-not-found") throw new ModelLoadError("file-not-found", e.message, String(source));
    throw e;
  }
}
