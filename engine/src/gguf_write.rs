//! GGUF v3 writer: the header (metadata and tensor table) for tensors whose bytes the caller
//! streams after it, so a multi-gigabyte model is rewritten without being held in memory.
//! What `edgeslm prune` writes; the layout is the one [`crate::gguf::Gguf::parse`] reads.

use std::io::{self, Write};

use crate::gguf::Value;
use crate::quant::GgmlType;

/// One tensor of the file to write: its name, ggml-order dimensions and type. Its size
/// follows from them.
pub struct TensorEntry<'a> {
    pub name: &'a str,
    pub dims: &'a [u64],
    pub ggml_type: GgmlType,
}

impl TensorEntry<'_> {
    pub fn size(&self) -> usize {
        let n: u64 = self.dims.iter().product();
        (n as usize) / self.ggml_type.block_size() * self.ggml_type.block_bytes()
    }
}

/// Write a GGUF v3 file: the metadata in the order given, the tensor table, then each
/// tensor's bytes at the next multiple of `alignment`, written by `data(i, out)` for tensor
/// `i` (exactly [`TensorEntry::size`] bytes). `alignment` must match the metadata's
/// `general.alignment` when it has one (32 otherwise).
pub fn write_gguf<W: Write>(
    out: &mut W,
    metadata: &[(String, Value)],
    tensors: &[TensorEntry],
    alignment: u64,
    mut data: impl FnMut(usize, &mut W) -> io::Result<()>,
) -> io::Result<u64> {
    let align = |n: u64| n.next_multiple_of(alignment);
    let mut head = b"GGUF".to_vec();
    head.extend(3u32.to_le_bytes());
    head.extend((tensors.len() as u64).to_le_bytes());
    head.extend((metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        string(&mut head, key);
        head.extend(type_id(value).to_le_bytes());
        encode(&mut head, value);
    }
    let mut offset = 0u64;
    for t in tensors {
        string(&mut head, t.name);
        head.extend((t.dims.len() as u32).to_le_bytes());
        for d in t.dims {
            head.extend(d.to_le_bytes());
        }
        head.extend(t.ggml_type.id().to_le_bytes());
        head.extend(offset.to_le_bytes());
        offset = align(offset + t.size() as u64);
    }
    head.resize(align(head.len() as u64) as usize, 0);
    out.write_all(&head)?;
    let mut written = head.len() as u64;
    for (i, t) in tensors.iter().enumerate() {
        let start = align(written);
        out.write_all(&vec![0; (start - written) as usize])?;
        data(i, out)?;
        written = start + t.size() as u64;
    }
    Ok(written)
}

fn string(buf: &mut Vec<u8>, s: &str) {
    buf.extend((s.len() as u64).to_le_bytes());
    buf.extend(s.as_bytes());
}

/// GGUF's value type ids. An empty array is written as an array of u32: the reader keeps no
/// element type for it, and no reader looks at the type of an empty array.
fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn encode(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => buf.push(*x),
        Value::I8(x) => buf.push(*x as u8),
        Value::U16(x) => buf.extend(x.to_le_bytes()),
        Value::I16(x) => buf.extend(x.to_le_bytes()),
        Value::U32(x) => buf.extend(x.to_le_bytes()),
        Value::I32(x) => buf.extend(x.to_le_bytes()),
        Value::F32(x) => buf.extend(x.to_le_bytes()),
        Value::Bool(x) => buf.push(*x as u8),
        Value::String(s) => string(buf, s),
        Value::U64(x) => buf.extend(x.to_le_bytes()),
        Value::I64(x) => buf.extend(x.to_le_bytes()),
        Value::F64(x) => buf.extend(x.to_le_bytes()),
        Value::Array(items) => {
            buf.extend(items.first().map_or(4, type_id).to_le_bytes());
            buf.extend((items.len() as u64).to_le_bytes());
            for item in items {
                encode(buf, item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Gguf;

    #[test]
    fn what_is_written_reads_back() {
        let metadata = vec![
            ("general.architecture".to_string(), Value::String("llama".into())),
            ("llama.block_count".to_string(), Value::U32(2)),
            ("x.i8".to_string(), Value::I8(-3)),
            ("x.f64".to_string(), Value::F64(0.25)),
            ("x.flag".to_string(), Value::Bool(true)),
            ("x.list".to_string(), Value::Array(vec![Value::I32(-1), Value::I32(7)])),
            ("x.names".to_string(), Value::Array(vec![Value::String("a".into()), Value::String("bc".into())])),
            ("x.empty".to_string(), Value::Array(vec![])),
        ];
        let dims_a = [32u64, 3];
        let dims_b = [64u64];
        let tensors = [
            TensorEntry { name: "a", dims: &dims_a, ggml_type: GgmlType::Q8_0 },
            TensorEntry { name: "b", dims: &dims_b, ggml_type: GgmlType::F32 },
        ];
        let bytes_of = |i: usize| vec![i as u8 + 1; tensors[i].size()];
        let mut file = Vec::new();
        let n = write_gguf(&mut file, &metadata, &tensors, 32, |i, out| out.write_all(&bytes_of(i))).unwrap();
        assert_eq!(n as usize, file.len());
        let g = Gguf::parse(&file).unwrap();
        assert_eq!(g.metadata.len(), metadata.len());
        for (k, v) in &metadata {
            assert_eq!(g.get(k), Some(v), "{k}");
        }
        assert_eq!(g.tensors.len(), 2);
        for (i, t) in g.tensors.iter().enumerate() {
            assert_eq!(t.name, tensors[i].name);
            assert_eq!(t.dims, tensors[i].dims);
            assert_eq!(t.ggml_type, tensors[i].ggml_type);
            assert_eq!(t.offset % 32, 0);
            assert_eq!(&file[t.offset..t.offset + t.size], &bytes_of(i)[..]);
        }
    }
}
