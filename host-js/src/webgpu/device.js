// The WebGPU device: the adapter's own binding limits (weights are split to fit them), typed
// errors through error scopes, and the buffers the forward pass uses (gpu/src/device.rs).

export class GpuError extends Error {
  constructor(message) {
    super(message);
    this.code = "runtime-error";
  }
}

export class NoGpuError extends Error {
  constructor(message) {
    super(message);
    this.code = "no-gpu";
  }
}

const Usage = () => globalThis.GPUBufferUsage;

export class Gpu {
  /** The first WebGPU adapter, or NoGpuError saying why there is none. */
  static async open() {
    const gpu = globalThis.navigator?.gpu;
    if (!gpu) throw new NoGpuError("this JavaScript environment has no WebGPU (navigator.gpu is missing; browsers expose it in secure contexts)");
    let adapter, device;
    try {
      adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
      if (!adapter) throw new NoGpuError("WebGPU found no adapter");
      const want = (name) => adapter.limits[name];
      device = await adapter.requestDevice({
        requiredLimits: { maxStorageBufferBindingSize: want("maxStorageBufferBindingSize"), maxBufferSize: want("maxBufferSize") },
      });
    } catch (e) {
      throw e instanceof NoGpuError ? e : new NoGpuError(`the WebGPU adapter refused a device (${e.message})`);
    }
    const info = adapter.info ?? {};
    const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ") || "WebGPU adapter";
    return new Gpu(device, name);
  }

  constructor(device, name) {
    this.device = device;
    this.queue = device.queue;
    this.name = name;
    this.lost = null;
    device.lost.then((info) => { this.lost = info.message || info.reason || "device lost"; });
    // Errors outside an error scope (a buffer created between steps), reported at the next step.
    this.uncaptured = [];
    device.addEventListener("uncapturederror", (e) => this.uncaptured.push(e.error.message));
    this.staging = null;
  }

  /** The largest buffer one binding may hold (a multiple of 4). */
  maxBinding() {
    const l = this.device.limits;
    return Math.floor(Math.min(l.maxStorageBufferBindingSize, l.maxBufferSize) / 4) * 4;
  }

  /** Run `f` (which records and submits work) and turn any validation or memory error into a GpuError. */
  async guarded(doing, f) {
    if (this.lost) throw new GpuError(`the GPU device was lost: ${this.lost}`);
    const scopes = ["internal", "out-of-memory", "validation"];
    for (const scope of scopes) this.device.pushErrorScope(scope);
    let result, thrown;
    try {
      result = await f();
    } catch (e) {
      thrown = e;
    }
    const errors = [];
    for (const _ of scopes) errors.push(await this.device.popErrorScope());
    const messages = [...this.uncaptured.splice(0), ...errors.filter(Boolean).map((e) => e.message)];
    if (thrown) throw thrown;
    if (messages.length) throw new GpuError(`GPU error while ${doing}: ${messages.join("; ")}`);
    return result;
  }

  /** A storage buffer of `bytes` (rounded up to 4), zeroed. */
  buffer(label, bytes, extra = 0) {
    const U = Usage();
    return this.device.createBuffer({ label, size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: U.STORAGE | U.COPY_DST | U.COPY_SRC | extra });
  }

  /** A storage buffer holding `length` bytes that `fill(view)` writes (padded to 4 bytes). */
  upload(label, length, fill) {
    const U = Usage();
    const buffer = this.device.createBuffer({ label, size: Math.max(4, Math.ceil(length / 4) * 4), usage: U.STORAGE | U.COPY_DST | U.COPY_SRC, mappedAtCreation: true });
    fill(new Uint8Array(buffer.getMappedRange(), 0, length));
    buffer.unmap();
    return buffer;
  }

  /** Copy `bytes` from the start of `src` back (after everything submitted so far). */
  async read(src, bytes) {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    // One staging buffer, grown when needed, reused by every read.
    if (!this.staging || this.staging.size < size) {
      this.staging?.destroy();
      const U = Usage();
      this.staging = this.device.createBuffer({ label: "readback", size: Math.max(size, 1 << 16), usage: U.MAP_READ | U.COPY_DST });
    }
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(src, 0, this.staging, 0, size);
    this.queue.submit([encoder.finish()]);
    const staging = this.staging;
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
      const out = new Uint8Array(staging.getMappedRange(0, size).slice(0, bytes));
      staging.unmap();
      return out;
    } catch (e) {
      // Not reused: a failed read may leave it mapped.
      this.staging = null;
      staging.destroy();
      throw new GpuError(`GPU: reading results back: ${this.lost ?? e.message}`);
    }
  }
}
