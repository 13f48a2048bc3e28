// Model weights cached in the browser: downloaded once in chunks (HTTP Range requests,
// at most 512 MB each) into IndexedDB, resumable after an interrupted visit, checked
// against the storage quota first; a later visit reads them back with no network request.
// When the quota is short the weights are downloaded into memory for this visit only.

const DB = "edgeslm-weights";
const MAX_CHUNK = 512 * 1024 * 1024;

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function openDb(idb) {
  const r = idb.open(DB, 1);
  r.onupgradeneeded = () => {
    r.result.createObjectStore("meta");
    r.result.createObjectStore("chunks");
  };
  return request(r);
}

async function tx(db, store, mode, f) {
  const t = db.transaction(store, mode);
  const result = await f(t.objectStore(store));
  await new Promise((resolve, reject) => {
    t.oncomplete = resolve;
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error ?? new Error("transaction aborted"));
  });
  return result;
}

/** What is stored for `url`: {size, chunkBytes, validator, done: [chunk indices]} or undefined. */
export async function storedModel(url, { idb = globalThis.indexedDB } = {}) {
  const db = await openDb(idb);
  try {
    return await tx(db, "meta", "readonly", (s) => request(s.get(url)));
  } finally {
    db.close();
  }
}

/** Forget a stored model. */
export async function deleteStoredModel(url, { idb = globalThis.indexedDB } = {}) {
  const db = await openDb(idb);
  try {
    const meta = await tx(db, "meta", "readonly", (s) => request(s.get(url)));
    if (!meta) return;
    await tx(db, "chunks", "readwrite", (s) => Promise.all(meta.done.map((i) => request(s.delete(`${url}#${i}`)))));
    await tx(db, "meta", "readwrite", (s) => request(s.delete(url)));
  } finally {
    db.close();
  }
}

/**
 * The bytes of the model at `url`, from IndexedDB when stored, else downloaded (and stored).
 * onProgress({phase: "download" | "cache", loaded, total, storage: "indexeddb" | "memory", message?})
 * Resolves to {bytes, from: "cache" | "network" | "partial", storage}.
 */
export async function cachedModelBytes(url, opts = {}) {
  const r = await storeModel(url, opts);
  if (r.bytes) return r;
  const bytes = new Uint8Array(r.meta.size);
  for await (const [i, piece] of storedChunks(url, r.meta, opts)) bytes.set(piece, i * r.meta.chunkBytes);
  return { bytes, from: r.from, storage: r.storage };
}

/**
 * Like `cachedModelBytes`, but a stored model comes back as `source: {size, chunks}`, its
 * chunks read from IndexedDB one at a time as `loadModel` streams them into the component,
 * so the whole file is never in JS memory. The in-memory fallback gives `source: bytes`.
 */
export async function cachedModel(url, opts = {}) {
  const r = await storeModel(url, opts);
  if (r.bytes) return { source: r.bytes, from: r.from, storage: r.storage, message: r.message };
  const chunks = (async function* () {
    for await (const [, piece] of storedChunks(url, r.meta, opts)) yield piece;
  })();
  return { source: { size: r.meta.size, chunks }, from: r.from, storage: r.storage };
}

/** Download what is missing into IndexedDB: {meta, from, storage}, or {bytes, ...} in memory. */
async function storeModel(url, { onProgress, chunkBytes = 32 * 1024 * 1024, fetchImpl = fetch, idb = globalThis.indexedDB, storage = globalThis.navigator?.storage } = {}) {
  chunkBytes = Math.min(chunkBytes, MAX_CHUNK);
  if (!idb) return memoryDownload(url, fetchImpl, onProgress, "IndexedDB is not available");
  const db = await openDb(idb);
  try {
    let meta = await tx(db, "meta", "readonly", (s) => request(s.get(url)));
    if (meta && meta.done.length === Math.ceil(meta.size / meta.chunkBytes)) {
      // Complete: no network at all.
      return { meta, from: "cache", storage: "indexeddb" };
    }
    const head = await fetchImpl(url, { method: "HEAD" });
    if (!head.ok) throw new Error(`cannot fetch ${url}: HTTP ${head.status}`);
    const size = Number(head.headers.get("content-length"));
    const validator = head.headers.get("etag") ?? head.headers.get("last-modified") ?? "";
    if (!Number.isFinite(size) || size <= 0 || head.headers.get("accept-ranges") !== "bytes") {
      return memoryDownload(url, fetchImpl, onProgress, "the server does not support range requests");
    }
    if (!meta || meta.size !== size || meta.validator !== validator) {
      if (meta) await deleteStoredModel(url, { idb });
      meta = { size, chunkBytes, validator, done: [] };
    }
    const stored = meta.done.reduce((n, i) => n + chunkLength(meta, i), 0);
    // Quota first: a download that cannot be stored goes to memory, with a clear message.
    const estimate = await storage?.estimate?.();
    if (estimate && estimate.quota - estimate.usage < (size - stored) * 1.05) {
      const free = ((estimate.quota - estimate.usage) / 1e6).toFixed(0);
      return memoryDownload(url, fetchImpl, onProgress,
        `not enough storage for the model (${((size - stored) / 1e6).toFixed(0)} MB needed, ${free} MB free): it is kept in memory for this visit only`);
    }
    await storage?.persist?.().catch(() => false);
    await tx(db, "meta", "readwrite", (s) => request(s.put(meta, url)));
    const from = stored > 0 ? "partial" : "network";
    let loaded = stored;
    const chunks = Math.ceil(size / chunkBytes);
    for (let i = 0; i < chunks; i++) {
      if (meta.done.includes(i)) continue;
      const start = i * chunkBytes;
      const end = start + chunkLength(meta, i) - 1;
      const response = await fetchImpl(url, { headers: { range: `bytes=${start}-${end}` } });
      if (response.status !== 206) throw new Error(`range request for ${url} answered HTTP ${response.status}`);
      const blob = await readBody(response, (n) => {
        loaded += n;
        onProgress?.({ phase: "download", loaded, total: size, storage: "indexeddb" });
      });
      if (blob.size !== end - start + 1) throw new Error(`chunk ${i} of ${url}: ${blob.size} bytes, expected ${end - start + 1}`);
      await tx(db, "chunks", "readwrite", (s) => request(s.put(blob, `${url}#${i}`)));
      meta.done.push(i);
      await tx(db, "meta", "readwrite", (s) => request(s.put(meta, url)));
    }
    return { meta, from, storage: "indexeddb" };
  } finally {
    db.close();
  }
}

function chunkLength(meta, i) {
  return Math.min(meta.chunkBytes, meta.size - i * meta.chunkBytes);
}

/** The stored chunks of a complete model, in order: [index, bytes], one read at a time. */
async function* storedChunks(url, meta, { onProgress, idb = globalThis.indexedDB } = {}) {
  const db = await openDb(idb);
  try {
    const chunks = Math.ceil(meta.size / meta.chunkBytes);
    for (let i = 0; i < chunks; i++) {
      const blob = await tx(db, "chunks", "readonly", (s) => request(s.get(`${url}#${i}`)));
      if (!blob) throw new Error(`stored chunk ${i} of ${url} is missing`);
      yield [i, new Uint8Array(await blob.arrayBuffer())];
      onProgress?.({ phase: "cache", loaded: Math.min((i + 1) * meta.chunkBytes, meta.size), total: meta.size, storage: "indexeddb" });
    }
  } finally {
    db.close();
  }
}

async function memoryDownload(url, fetchImpl, onProgress, message) {
  onProgress?.({ phase: "download", loaded: 0, total: undefined, storage: "memory", message });
  const response = await fetchImpl(url);
  if (!response.ok) throw new Error(`cannot fetch ${url}: HTTP ${response.status}`);
  const total = Number(response.headers.get("content-length")) || undefined;
  let loaded = 0;
  const blob = await readBody(response, (n) => {
    loaded += n;
    onProgress?.({ phase: "download", loaded, total, storage: "memory", message });
  });
  return { bytes: new Uint8Array(await blob.arrayBuffer()), from: "network", storage: "memory", message };
}

/** A response body as a Blob, reporting each piece's size as it arrives. */
async function readBody(response, onBytes) {
  const parts = [];
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return new Blob(parts);
    parts.push(value);
    onBytes(value.byteLength);
  }
}
