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
    const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) throw new NoGpuError("WebGPU found no adapter");
    const want = (name) => adapter.limits[name];
    const device = await adapter.requestDevice({
      requiredLimits: { maxStorageBufferBindingSize: want("maxStorageBufferBindingSize"), maxBufferSize: want("maxBufferSize") },
    });
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
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    let result, thrown;
    try {
      result = await f();
    } catch (e) {
      thrown = e;
    }
    const errors = [await this.device.popErrorScope(), await this.device.popErrorScope()].filter(Boolean);
    if (thrown) throw thrown;
    if (errors.length) throw new GpuError(`GPU error while ${doing}: ${errors.map((e) => e.message).join("; ")}`);
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
    try {
      await this.staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      throw new GpuError(`GPU: reading results back: ${this.lost ?? e.message}`);
    }
    const out = new Uint8Array(this.staging.getMappedRange(0, size).slice(0, bytes));
    this.staging.unmap();
    return out;
  }
}
