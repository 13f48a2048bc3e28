//! GGUF v2/v3 reader: header, metadata, tensor infos, data offsets.
//!
//! The file is untrusted. Every count, length, offset and size is checked against the
//! bytes actually present before anything is allocated or indexed, so a truncated file
//! or a header claiming a billion tensors is a typed error, not a panic or an OOM.

use std::collections::HashMap;

use crate::error::{corrupt, Error, Result};
use crate::quant::GgmlType;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_DIMS: u32 = 4;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) if v >= 0 => Some(v as u64),
            Value::I16(v) if v >= 0 => Some(v as u64),
            Value::I32(v) if v >= 0 => Some(v as u64),
            Value::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: dims[0] is the contiguous (row) dimension.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    pub size: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

#[derive(Debug)]
pub struct Gguf {
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: usize,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return corrupt(format!(
                "truncated while reading {what}: needs {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self, w: &str) -> Result<u8> {
        Ok(self.take(1, w)?[0])
    }
    fn u16(&mut self, w: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, w)?.try_into().unwrap()))
    }
    fn u32(&mut self, w: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, w)?.try_into().unwrap()))
    }
    fn u64(&mut self, w: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, w)?.try_into().unwrap()))
    }
    /// A length-prefixed string. v2 and v3 both use u64 lengths.
    fn string(&mut self, w: &str) -> Result<String> {
        let n = self.u64(w)?;
        if n > self.remaining() as u64 {
            return corrupt(format!("{w}: string length {n} exceeds the {} bytes left", self.remaining()));
        }
        let bytes = self.take(n as usize, w)?;
        // llama.cpp keeps invalid UTF-8 as-is; we replace it rather than fail the whole file.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.u8(key)?),
            1 => Value::I8(self.u8(key)? as i8),
            2 => Value::U16(self.u16(key)?),
            3 => Value::I16(self.u16(key)? as i16),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(self.u32(key)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(key)?)),
            7 => match self.u8(key)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return corrupt(format!("metadata '{key}': bool byte {b}")),
            },
            8 => Value::String(self.string(key)?),
            9 => {
                if depth > 0 {
                    return corrupt(format!("metadata '{key}': nested arrays are not supported"));
                }
                let elem_ty = self.u32(key)?;
                let n = self.u64(key)?;
                let min_size = match elem_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4 | 5 | 6 => 4,
                    8 | 10 | 11 | 12 => 8,
                    9 => 12,
                    t => return corrupt(format!("metadata '{key}': unknown array element type {t}")),
                };
                if n.checked_mul(min_size).map_or(true, |b| b > self.remaining() as u64) {
                    return corrupt(format!(
                        "metadata '{key}': array of {n} elements cannot fit in the {} bytes left",
                        self.remaining()
                    ));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem_ty, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(self.u64(key)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(key)?)),
            t => return corrupt(format!("metadata '{key}': unknown value type {t}")),
        })
    }
}

impl Gguf {
    /// Parse the header of a complete GGUF file held in `buf`.
    pub fn parse(buf: &[u8]) -> Result<Gguf> {
        Gguf::parse_header(buf, buf.len() as u64)
    }

    /// Parse a GGUF header from `buf`, which holds at least the file's first bytes up to its
    /// tensor data (see [`Gguf::data_offset`]); `file_len` is the whole file's size, against
    /// which the tensors' extents are checked. Guests of a remote forward pass hold only this.
    pub fn parse_header(buf: &[u8], file_len: u64) -> Result<Gguf> {
        if buf.len() < 4 || &buf[..4] != MAGIC {
            let what = if buf.is_empty() {
                "the file is empty".to_string()
            } else {
                "missing the 'GGUF' magic bytes".to_string()
            };
            return Err(Error::NotGguf(what));
        }
        let mut c = Cursor { buf, pos: 4 };
        let version = c.u32("version")?;
        if version != 2 && version != 3 {
            return Err(Error::NotGguf(format!("unsupported GGUF version {version} (2 and 3 are supported)")));
        }
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata count")?;
        // Smallest possible encodings: a kv is 8 (key len) + 4 (type) + 1; a tensor info 8 + 4 + 4 + 8 + 8.
        if n_kv.saturating_mul(13) > c.remaining() as u64 {
            return corrupt(format!("header claims {n_kv} metadata entries, more than the file can hold"));
        }
        if n_tensors.saturating_mul(32) > c.remaining() as u64 {
            return corrupt(format!("header claims {n_tensors} tensors, more than the file can hold"));
        }

        let mut metadata = HashMap::with_capacity(n_kv as usize);
        for _ in 0..n_kv {
            let key = c.string("metadata key")?;
            let ty = c.u32(&key)?;
            let v = c.value(ty, &key, 0)?;
            metadata.insert(key, v);
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
                _ => return corrupt(format!("general.alignment {v:?} is not a power of two")),
            },
        };

        struct Raw {
            name: String,
            dims: Vec<u64>,
            ty: u32,
            rel_offset: u64,
        }
        let mut raws = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = c.string("tensor name")?;
            let n_dims = c.u32(&name)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return corrupt(format!("tensor '{name}': {n_dims} dimensions (1..=4 allowed)"));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64(&name)?);
            }
            let ty = c.u32(&name)?;
            let rel_offset = c.u64(&name)?;
            raws.push(Raw { name, dims, ty, rel_offset });
        }

        // A vocabulary-only file (no tensors) may end with its metadata, before the padding.
        let data_offset = align_up(c.pos as u64, alignment)
            .map(|o| if raws.is_empty() { o.min(file_len) } else { o })
            .filter(|&o| o <= file_len)
            .ok_or_else(|| Error::Corrupt("tensor data section starts past the end of the file".into()))?;

        let mut tensors = Vec::with_capacity(raws.len());
        for r in raws {
            let ggml_type = GgmlType::from_u32(r.ty)
                .ok_or_else(|| Error::UnsupportedTensorType { tensor: r.name.clone(), ggml_type: r.ty })?;
            let mut n_elements: u64 = 1;
            for &d in &r.dims {
                n_elements = n_elements
                    .checked_mul(d)
                    .filter(|&n| n < (1u64 << 48))
                    .ok_or_else(|| Error::Corrupt(format!("tensor '{}': dimensions {:?} overflow", r.name, r.dims)))?;
            }
            let block = ggml_type.block_size() as u64;
            if r.dims[0] % block != 0 {
                return corrupt(format!(
                    "tensor '{}': row length {} is not a multiple of the {} block size {block}",
                    r.name,
                    r.dims[0],
                    ggml_type.name()
                ));
            }
            let size = n_elements / block * ggml_type.block_bytes() as u64;
            if r.rel_offset % alignment != 0 {
                return corrupt(format!("tensor '{}': data offset {} is not aligned to {alignment}", r.name, r.rel_offset));
            }
            let end = data_offset
                .checked_add(r.rel_offset)
                .and_then(|o| o.checked_add(size))
                .filter(|&e| e <= file_len)
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "tensor '{}' ({} bytes at data offset {}) extends past the end of the file ({file_len} bytes)",
                        r.name, size, r.rel_offset
                    ))
                })?;
            tensors.push(TensorInfo {
                name: r.name,
                dims: r.dims,
                ggml_type,
                offset: (end - size) as usize,
                size: size as usize,
            });
        }
        Ok(Gguf { version, metadata, tensors, alignment, data_offset: data_offset as usize })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }
    pub fn require_u64(&self, key: &str) -> Result<u64> {
        self.get_u64(key).ok_or_else(|| Error::Corrupt(format!("missing or non-integer metadata '{key}'")))
    }
    pub fn require_str(&self, key: &str) -> Result<&str> {
        self.get_str(key).ok_or_else(|| Error::Corrupt(format!("missing or non-string metadata '{key}'")))
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// The length of the header (metadata and tensor table) if it ends within `buf`, the file's
/// first bytes: `None` when `buf` is too short, or the header is malformed (`parse_header`
/// on more bytes then says what is wrong). Walks the layout without building anything, so a
/// reader can fetch exactly the header before parsing it.
pub fn header_len(buf: &[u8]) -> Option<usize> {
    fn skip_value(c: &mut Cursor, ty: u32, depth: u32) -> Option<()> {
        let fixed = |t: u32| match t {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match ty {
            8 => {
                let n = c.u64("").ok()?;
                c.take(usize::try_from(n).ok()?, "").ok()?;
            }
            9 if depth == 0 => {
                let elem = c.u32("").ok()?;
                let n = usize::try_from(c.u64("").ok()?).ok()?;
                match fixed(elem) {
                    Some(size) => {
                        c.take(n.checked_mul(size)?, "").ok()?;
                    }
                    None => {
                        for _ in 0..n {
                            skip_value(c, elem, depth + 1)?;
                        }
                    }
                }
            }
            t => {
                c.take(fixed(t)?, "").ok()?;
            }
        }
        Some(())
    }
    let mut c = Cursor { buf, pos: 0 };
    if c.take(4, "").ok()? != MAGIC {
        return None;
    }
    c.u32("").ok()?;
    let (n_tensors, n_kv) = (c.u64("").ok()?, c.u64("").ok()?);
    for _ in 0..n_kv {
        let key_len = c.u64("").ok()?;
        c.take(usize::try_from(key_len).ok()?, "").ok()?;
        let ty = c.u32("").ok()?;
        skip_value(&mut c, ty, 0)?;
    }
    for _ in 0..n_tensors {
        let name_len = c.u64("").ok()?;
        c.take(usize::try_from(name_len).ok()?, "").ok()?;
        let n_dims = c.u32("").ok()?;
        // dims, then the type (u32) and the data offset (u64)
        c.take((n_dims as usize).checked_mul(8)?.checked_add(12)?, "").ok()?;
    }
    Some(c.pos)
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v / a * a)
}
