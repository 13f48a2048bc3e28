//! Where the model's bytes live: memory-mapped natively; in wasm (or when given bytes) owned,
//! and when read from a file only from the tensor data on (the header is parsed and dropped).

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gguf::{self, Gguf};

/// The most one piece of a model's tensor data holds. wasm32 allocations stop below 2 GiB
/// (`isize::MAX`), so a larger model (Phi-3.5-mini's 2.4 GB) is held in several pieces, each
/// of whole tensors.
pub const MAX_PIECE: usize = 1 << 30;

pub enum Storage {
    /// The whole file.
    Owned(Vec<u8>),
    #[cfg(not(target_family = "wasm"))]
    Mapped(memmap2::Mmap),
    /// The file from its tensor data on: a wasm instance never gives memory back, so it keeps
    /// the tensor data only, not the header it parsed (6 MB of vocabulary for Gemma 3), in
    /// pieces of at most [`MAX_PIECE`] bytes that end at tensor boundaries.
    Tail { pieces: Vec<Piece>, end: usize },
}

/// Bytes of the file from offset `start` on.
pub struct Piece {
    start: usize,
    bytes: Vec<u8>,
}

impl Storage {
    /// The whole file, when it is held whole.
    pub fn whole(&self) -> Option<&[u8]> {
        match self {
            Storage::Owned(v) => Some(v),
            #[cfg(not(target_family = "wasm"))]
            Storage::Mapped(m) => Some(m),
            Storage::Tail { .. } => None,
        }
    }

    /// The file offset of the first byte held (the tensor data's start for a tail).
    pub fn base(&self) -> usize {
        match self {
            Storage::Tail { pieces, end } => pieces.first().map_or(*end, |p| p.start),
            _ => 0,
        }
    }

    /// The bytes held, in file order: one slice, or a tail's pieces.
    pub fn held(&self) -> Vec<&[u8]> {
        match self {
            Storage::Tail { pieces, .. } => pieces.iter().map(|p| &p.bytes[..]).collect(),
            _ => vec![self.whole().unwrap_or_default()],
        }
    }

    /// The file's length.
    pub fn file_len(&self) -> usize {
        match self {
            Storage::Tail { end, .. } => *end,
            _ => self.whole().map_or(0, <[u8]>::len),
        }
    }

    /// The bytes at file offsets `range`, which must lie in what is held, within one piece
    /// (tensor extents are checked against the file when the header is parsed, and pieces
    /// end at tensor boundaries).
    pub fn at(&self, range: Range<usize>) -> &[u8] {
        match self {
            Storage::Tail { pieces, .. } => {
                let i = pieces.partition_point(|p| p.start <= range.start) - 1;
                let p = &pieces[i];
                &p.bytes[range.start - p.start..range.end - p.start]
            }
            _ => &self.whole().unwrap_or_default()[range],
        }
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
        Storage::read_gguf_in_pieces(path, MAX_PIECE)
    }

    /// [`Storage::read_gguf`] with pieces of at most `max_piece` bytes (tests use small ones).
    pub fn read_gguf_in_pieces(path: &str, max_piece: usize) -> Result<(Gguf, Storage)> {
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
        let mut pieces = Vec::new();
        for r in piece_ranges(g.data_offset, g.tensors.iter().map(|t| (t.offset, t.offset + t.size)), len, max_piece) {
            pieces.push(Piece { start: r.start, bytes: read_exact_alloc(&mut file, r.len(), path)? });
        }
        Ok((g, Storage::Tail { pieces, end: len }))
    }
}

/// The pieces the tensor data of a `file_len`-byte file is held in: consecutive file ranges
/// from the data's start (`data_offset`) to the end, each at most `max_piece` bytes unless
/// one tensor is larger, each ending where a tensor starts (or at the end). `tensors`: each
/// tensor's file range (start, end).
fn piece_ranges(data_offset: usize, tensors: impl Iterator<Item = (usize, usize)>, file_len: usize, max_piece: usize) -> Vec<Range<usize>> {
    let mut tensors: Vec<(usize, usize)> = tensors.collect();
    tensors.sort_unstable();
    let mut ranges = Vec::new();
    let (mut start, mut covered) = (data_offset, data_offset);
    for (offset, end) in tensors {
        // Close the piece before this tensor if it would pass the bound, unless an earlier
        // tensor (in a file whose tensors overlap) reaches past this one's start.
        if end - start > max_piece && offset > start && covered <= offset {
            ranges.push(start..offset);
            start = offset;
        }
        covered = covered.max(end);
    }
    ranges.push(start..file_len.max(start));
    ranges
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
    max_piece: usize,
    received: usize,
    state: Receiving,
}

enum Receiving {
    /// Every byte so far; the header is looked for again once `head` reaches `scan_at`
    /// (doubling, so the scans cost at most twice the header's length in all).
    Header { head: Vec<u8>, scan_at: usize },
    /// Every byte: the header did not parse against the announced size.
    Whole(Vec<u8>),
    /// The parsed header, and the tensor data so far in its pieces (all reserved when the
    /// header was parsed), with the file range each piece will hold.
    Data { gguf: Gguf, pieces: Vec<Piece>, ranges: Vec<Range<usize>> },
}

/// Append the file's bytes from offset `at` on to the pieces that hold them (in order; bytes
/// before the first piece, the padding after the header, are dropped).
fn append(pieces: &mut [Piece], ranges: &[Range<usize>], mut at: usize, mut bytes: &[u8]) {
    let skip = ranges[0].start.saturating_sub(at).min(bytes.len());
    (at, bytes) = (at + skip, &bytes[skip..]);
    while !bytes.is_empty() {
        let i = ranges.partition_point(|r| r.end <= at);
        let n = (ranges[i].end - at).min(bytes.len());
        pieces[i].bytes.extend_from_slice(&bytes[..n]);
        (at, bytes) = (at + n, &bytes[n..]);
    }
}

impl Receiver {
    pub fn new(size: usize) -> Receiver {
        Receiver::in_pieces(size, MAX_PIECE)
    }

    /// A receiver holding the tensor data in pieces of at most `max_piece` bytes (tests use
    /// small ones).
    pub fn in_pieces(size: usize, max_piece: usize) -> Receiver {
        Receiver { size, max_piece, received: 0, state: Receiving::Header { head: Vec::new(), scan_at: 64 << 10 } }
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
                        let tensors = g.tensors.iter().map(|t| (t.offset, t.offset + t.size));
                        let ranges = piece_ranges(g.data_offset, tensors, self.size, self.max_piece);
                        let mut pieces = Vec::new();
                        for r in &ranges {
                            let mut bytes = Vec::new();
                            bytes.try_reserve_exact(r.len()).map_err(|_| cannot_hold(self.size - g.data_offset))?;
                            pieces.push(Piece { start: r.start, bytes });
                        }
                        append(&mut pieces, &ranges, 0, &head);
                        self.state = Receiving::Data { gguf: g, pieces, ranges };
                    }
                    Err(_) => {
                        let len = self.size - head.len();
                        head.try_reserve_exact(len).map_err(|_| cannot_hold(self.size))?;
                        self.state = Receiving::Whole(head);
                    }
                }
            }
            Receiving::Whole(head) => head.extend_from_slice(piece),
            Receiving::Data { pieces, ranges, .. } => append(pieces, ranges, at, piece),
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
            Receiving::Data { gguf, pieces, .. } => Ok((gguf, Storage::Tail { pieces, end: self.size })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::piece_ranges;

    #[test]
    fn pieces_end_at_tensor_starts() {
        let t = [(100, 200), (200, 700), (700, 900)];
        assert_eq!(piece_ranges(100, t.into_iter(), 1000, 500), [100..200, 200..700, 700..1000]);
        assert_eq!(piece_ranges(100, t.into_iter(), 1000, 2000), [100..1000]);
        // A tensor larger than the bound is a piece of its own.
        assert_eq!(piece_ranges(100, [(100, 150), (150, 900)].into_iter(), 900, 100), [100..150, 150..900]);
        // Overlapping tensors are never cut apart.
        assert_eq!(piece_ranges(100, [(100, 400), (300, 900)].into_iter(), 1000, 500), [100..1000]);
        // A vocabulary-only file: one (empty) piece.
        assert_eq!(piece_ranges(64, std::iter::empty(), 64, 500), [64..64]);
    }
}
