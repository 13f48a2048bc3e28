//! The GPU itself: an adapter, its device and queue, and what went wrong on it.
//!
//! wgpu reports most failures (validation, out of memory, a lost device) asynchronously, and
//! by default panics on any it was not asked to catch. A panic in a host serving wasi:nn
//! would take every instance down, so errors are collected here instead and turned into the
//! engine's typed errors at the end of each step.

use std::sync::{Arc, Mutex};

use edgeslm_engine::remote::codec;
use edgeslm_engine::{Error, Result};

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub limits: wgpu::Limits,
    /// "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)", say.
    pub name: String,
    errors: Arc<Mutex<Vec<String>>>,
    /// The readback buffer, grown when needed and reused by every `read`.
    staging: Mutex<Option<wgpu::Buffer>>,
}

/// Why no GPU could be opened (the caller falls back to the CPU and says so).
#[derive(Debug)]
pub struct NoGpu(pub String);

impl std::fmt::Display for NoGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Gpu {
    /// The first adapter wgpu finds (a discrete GPU before an integrated one before a
    /// software one such as lavapipe), with the adapter's own limits: weights are split to
    /// fit `max_storage_buffer_binding_size`, whatever it is.
    pub fn open() -> std::result::Result<Gpu, NoGpu> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        let instance = wgpu::Instance::new(desc);
        let options = wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() };
        let adapter = pollster::block_on(instance.request_adapter(&options))
            .map_err(|e| NoGpu(format!("no GPU adapter found ({e})")))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("edgeslm"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&descriptor))
            .map_err(|e| NoGpu(format!("the GPU adapter {} refused a device ({e})", info.name)))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| sink.lock().unwrap().push(e.to_string())));
        let name = format!("{} ({:?})", info.name, info.backend);
        Ok(Gpu { device, queue, limits, name, errors, staging: Mutex::new(None) })
    }

    /// The largest buffer one binding may see (weights are split into pieces of at most this).
    pub fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size) & !3
    }

    /// The errors wgpu reported since the last check, as one engine error.
    pub fn check(&self, doing: &str) -> Result<()> {
        let mut errors = self.errors.lock().unwrap();
        if errors.is_empty() {
            return Ok(());
        }
        let all = errors.drain(..).collect::<Vec<_>>().join("; ");
        Err(Error::Io(format!("GPU error while {doing}: {all}")))
    }

    /// Wait for everything submitted so far.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: None, timeout: None })
            .map(|_| ())
            .map_err(|e| Error::Io(format!("GPU: {e}")))
    }

    /// A storage buffer of `bytes` (rounded up to 4), zeroed.
    pub fn buffer(&self, label: &str, bytes: u64, extra: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC | extra,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer holding `data` (padded to 4 bytes).
    pub fn upload(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        let buffer = self.buffer(label, data.len() as u64, wgpu::BufferUsages::empty());
        let whole = data.len() & !3;
        self.queue.write_buffer(&buffer, 0, &data[..whole]);
        if whole < data.len() {
            let mut tail = [0u8; 4];
            tail[..data.len() - whole].copy_from_slice(&data[whole..]);
            self.queue.write_buffer(&buffer, whole as u64, &tail);
        }
        buffer
    }

    /// Copy `bytes` from the start of `src` back to the CPU (waits for the GPU).
    pub fn read(&self, src: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let size = bytes.max(4).next_multiple_of(4);
        let mut staging = self.staging.lock().map_err(|_| Error::Io("GPU readback buffer poisoned".into()))?;
        let buffer = match staging.take() {
            Some(b) if b.size() >= size => b,
            _ => self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: size.max(1 << 16),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        };
        let mut data = self.read_through(&buffer, src, size)?;
        data.truncate(bytes as usize);
        buffer.unmap();
        // Kept only after a clean read: a buffer left mapped by a failure is dropped.
        *staging = Some(buffer);
        Ok(data)
    }

    /// `count` f32 values from the start of `src` (waits for the GPU).
    pub fn read_f32s(&self, src: &wgpu::Buffer, count: usize) -> Result<Vec<f32>> {
        codec::f32s_from_bytes(&self.read(src, 4 * count as u64)?)
    }

    fn read_through(&self, staging: &wgpu::Buffer, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(src, 0, staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, ..size, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        self.check("reading results back")?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Io(format!("GPU: reading results back: {e}"))),
            Err(_) => return Err(Error::Io("GPU: the readback never completed".into())),
        }
        let view = staging.get_mapped_range(..size).map_err(|e| Error::Io(format!("GPU: reading results back: {e}")))?;
        Ok(view.to_vec())
    }
}
