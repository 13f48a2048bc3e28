//! Where the model's bytes live: memory-mapped natively; in wasm (or when given bytes) owned,
//! and when read from a file only from the tensor data on (the header is parsed and dropped).

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gguf::{self, Gguf};

pub enum Storage {
    /// The whole file.
    Owned(Vec<u8>),
    #[cfg(not(target_family = "wasm"))]
    Mapped(memmap2::Mmap),
    /// The file from offset `base` on: a wasm instance never gives memory back, so it keeps
    /// the tensor data only, not the header it parsed (6 MB of vocabulary for Gemma 3).
    Tail { bytes: Vec<u8>, base: usize },
}

impl Storage {
    /// The bytes held: the whole file, or from `base()` on.
    pub fn held(&self) -> &[u8] {
        match self {
            Storage::Owned(v) | Storage::Tail { bytes: v, .. } => v,
            #[cfg(not(target_family = "wasm"))]
            Storage::Mapped(m) => m,
        }
    }

    /// The file offset of the first byte held.
    pub fn base(&self) -> usize {
        match self {
            Storage::Tail { base, .. } => *base,
            _ => 0,
        }
    }

    /// The bytes at file offsets `range`, which must lie in what is held (tensor extents
    /// are checked against the file when the header is parsed).
    pub fn at(&self, range: Range<usize>) -> &[u8] {
        let base = self.base();
        &self.held()[range.start - base..range.end - base]
    }

    /// Open a model file: mapped where the platform can, read whole otherwise.
    pub fn open(path: &str) -> Result<Storage> {
        let (file, len) = open_file(path)?;
        #[cfg(not(target_family = "wasm"))]
        {
            if len == 0 {
                return Ok(Storage::Owned(Vec::new()));
            }
            // SAFETY: the mapping is read-only; edgeslm treats model files as immutable assets.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::Io(format!("{path}: {e}")))?;
            Ok(Storage::Mapped(map))
        }
        #[cfg(target_family = "wasm")]
        {
            let mut file = file;
            read_exact_alloc(&mut file, len, path).map(Storage::Owned)
        }
    }

    /// Read a GGUF file into memory as its parsed header and its tensor data: the header's
    /// bytes are read first (as many as `gguf::header_len` finds), parsed, and dropped.
    pub fn read_gguf(path: &str) -> Result<(Gguf, Storage)> {
        use std::io::{Read, Seek, SeekFrom};
        let (mut file, len) = open_file(path)?;
        let io = |e: std::io::Error| Error::Io(format!("{path}: {e}"));
        // Read the first 1 MiB, then twice as much each time, until the header is all there.
        let mut head = Vec::new();
        let mut want = len.min(1 << 20);
        loop {
            (&mut file).take((want - head.len()) as u64).read_to_end(&mut head).map_err(io)?;
            if head.len() < want {
                return Err(Error::Io(format!("{path}: the file shrank while it was read")));
            }
            if gguf::header_len(&head).is_some() || head.len() == len {
                break;
            }
            want = (want * 2).min(len);
        }
        if head.len() == len {
            // The header did not end before the file did: a tiny or a corrupt file, whose
            // whole bytes let the parser say precisely what is wrong.
            let g = Gguf::parse(&head)?;
            return Ok((g, Storage::Owned(head)));
        }
        let g = Gguf::parse_header(&head, len as u64)?;
        drop(head);
        file.seek(SeekFrom::Start(g.data_offset as u64)).map_err(io)?;
        let bytes = read_exact_alloc(&mut file, len - g.data_offset, path)?;
        let base = g.data_offset;
        Ok((g, Storage::Tail { bytes, base }))
    }
}

fn open_file(path: &str) -> Result<(std::fs::File, usize)> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::FileNotFound(path.to_string()),
        _ => Error::Io(format!("{path}: {e}")),
    })?;
    let meta = file.metadata().map_err(|e| Error::Io(format!("{path}: {e}")))?;
    if meta.is_dir() {
        return Err(Error::Io(format!("{path} is a directory")));
    }
    let len = usize::try_from(meta.len()).map_err(|_| Error::Io(format!("{path}: {} bytes do not fit in memory", meta.len())))?;
    Ok((file, len))
}

/// Read exactly `len` more bytes into a buffer of exactly that capacity (no doubling).
fn read_exact_alloc(file: &mut std::fs::File, len: usize, path: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| Error::Io(format!("{path}: cannot allocate {len} bytes")))?;
    file.take(len as u64).read_to_end(&mut buf).map_err(|e| Error::Io(format!("{path}: {e}")))?;
    if buf.len() != len {
        return Err(Error::Io(format!("{path}: the file shrank while it was read")));
    }
    Ok(buf)
}

/// A GGUF file arriving in order, in pieces of any size (a stream from the host): the header
/// is gathered and parsed as soon as it is complete, and from then on only the tensor data is
/// kept, in a buffer of exactly its size. A header that does not parse keeps every byte, so
/// that `finish` reports the whole file's error, as `Model::from_bytes` would.
pub struct Receiver {
    size: usize,
    received: usize,
    state: Receiving,
}

enum Receiving {
    /// Every byte so far; the header is looked for again once `head` reaches `scan_at`
    /// (doubling, so the scans cost at most twice the header's length in all).
    Header { head: Vec<u8>, scan_at: usize },
    /// Every byte: the header did not parse against the announced size.
    Whole(Vec<u8>),
    /// The parsed header, and the tensor data so far.
    Data { gguf: Gguf, bytes: Vec<u8> },
}

impl Receiver {
    pub fn new(size: usize) -> Receiver {
        Receiver { size, received: 0, state: Receiving::Header { head: Vec::new(), scan_at: 64 << 10 } }
    }

    /// How many bytes were pushed.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Append the next piece of the file.
    pub fn push(&mut self, piece: &[u8]) -> Result<()> {
        if piece.len() > self.size - self.received {
            return Err(Error::InvalidOption(format!("more than the announced {} bytes were received", self.size)));
        }
        let at = self.received;
        self.received += piece.len();
        let cannot_hold = |n: usize| Error::Io(format!("cannot allocate {n} bytes for the model"));
        match &mut self.state {
            Receiving::Header { head, scan_at } => {
                head.extend_from_slice(piece);
                if head.len() < *scan_at && self.received < self.size {
                    return Ok(());
                }
                let Some(n) = gguf::header_len(head) else {
                    *scan_at = head.len() * 2;
                    return Ok(());
                };
                let mut head = std::mem::take(head);
                match Gguf::parse_header(&head[..n], self.size as u64) {
                    Ok(g) => {
                        let mut bytes = Vec::new();
                        let len = self.size - g.data_offset;
                        bytes.try_reserve_exact(len).map_err(|_| cannot_hold(len))?;
                        bytes.extend_from_slice(head.get(g.data_offset..).unwrap_or_default());
                        self.state = Receiving::Data { gguf: g, bytes };
                    }
                    Err(_) => {
                        let len = self.size - head.len();
                        head.try_reserve_exact(len).map_err(|_| cannot_hold(self.size))?;
                        self.state = Receiving::Whole(head);
                    }
                }
            }
            Receiving::Whole(head) => head.extend_from_slice(piece),
            Receiving::Data { gguf, bytes } => {
                // The padding between the header and the tensor data may arrive here.
                let skip = gguf.data_offset.saturating_sub(at).min(piece.len());
                bytes.extend_from_slice(&piece[skip..]);
            }
        }
        Ok(())
    }

    /// The parsed header and the storage holding the tensor data, once all `size` bytes
    /// have arrived.
    pub fn finish(self) -> Result<(Gguf, Storage)> {
        if self.received != self.size {
            return Err(Error::InvalidOption(format!("{} of the announced {} bytes were received", self.received, self.size)));
        }
        match self.state {
            Receiving::Header { head, .. } | Receiving::Whole(head) => Ok((Gguf::parse(&head)?, Storage::Owned(head))),
            Receiving::Data { gguf, bytes } => {
                let base = gguf.data_offset;
                Ok((gguf, Storage::Tail { bytes, base }))
            }
        }
    }
}
