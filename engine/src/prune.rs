//! Layer pruning: the plan for a copy of a GGUF model without some of its transformer
//! blocks. Classification often survives dropping a few late blocks (the last one is usually
//! kept: it shapes the output distribution), and each dropped block is that much less work
//! per token and weight memory. `edgeslm prune` writes the copy with [`crate::gguf_write`];
//! llama.cpp loads it too, as the model it describes: a smaller `block_count`, blocks
//! renumbered.
//!
//! What is rewritten: the `{arch}.block_count`, every `{arch}.*` array with one entry per
//! block (per-layer head counts or window flags, in the families that have them), the tensor
//! names `blk.N.*`, and `general.name` (which says what was dropped). Everything else is
//! copied as it is. Families that derive a layer's kind from its index (Gemma 3: every sixth
//! layer attends globally) see the kinds of the blocks after a dropped one shift, in
//! llama.cpp and here alike: the report measures the result, not the intent.

use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo, Value};

/// Which blocks to drop.
#[derive(Debug, Clone, PartialEq)]
pub enum Drop {
    /// `count` contiguous blocks ending just before the last `keep_last` blocks.
    Count { count: usize, keep_last: usize },
    /// These blocks (0-based, as in the tensor names).
    Layers(Vec<usize>),
}

/// The pruned file's contents: metadata in order, and each tensor's new name with the
/// source tensor whose bytes it takes.
#[derive(Debug)]
pub struct Plan<'a> {
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<(String, &'a TensorInfo)>,
    pub source_layers: usize,
    pub dropped: Vec<usize>,
}

pub fn plan<'a>(gguf: &'a Gguf, drop: &Drop) -> Result<Plan<'a>> {
    let arch = gguf.require_str("general.architecture")?.to_string();
    let count_key = format!("{arch}.block_count");
    let n = gguf.require_u64(&count_key)? as usize;
    let dropped = match drop {
        Drop::Count { count, keep_last } => {
            if count + keep_last >= n {
                return Err(Error::InvalidOption(format!(
                    "cannot drop {count} of {n} blocks and keep the last {keep_last}: at least one other block must remain"
                )));
            }
            (n - keep_last - count..n - keep_last).collect()
        }
        Drop::Layers(layers) => {
            let mut l = layers.clone();
            l.sort_unstable();
            l.dedup();
            if let Some(&bad) = l.iter().find(|&&i| i >= n) {
                return Err(Error::InvalidOption(format!("block {bad} does not exist: the model has blocks 0..{}", n - 1)));
            }
            if l.len() >= n {
                return Err(Error::InvalidOption(format!("cannot drop all {n} blocks")));
            }
            l
        }
    };
    // Old block index -> new one, for the blocks kept.
    let renumber: Vec<Option<usize>> = {
        let mut next = 0;
        (0..n)
            .map(|i| {
                (!dropped.contains(&i)).then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    };

    let mut metadata: Vec<(String, Value)> = gguf.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // The reader keeps no order; write the general keys first, then the rest by name.
    metadata.sort_by(|(a, _), (b, _)| (!a.starts_with("general."), a).cmp(&(!b.starts_with("general."), b)));
    let arch_prefix = format!("{arch}.");
    for (key, value) in &mut metadata {
        if *key == count_key {
            *value = same_int_type(value, (n - dropped.len()) as u64);
        } else if key.starts_with(&arch_prefix) {
            if let Value::Array(items) = value {
                if items.len() == n {
                    *items = items.iter().zip(&renumber).filter(|(_, r)| r.is_some()).map(|(v, _)| v.clone()).collect();
                }
            }
        } else if key == "general.name" && !dropped.is_empty() {
            if let Value::String(name) = value {
                *name = format!("{name} (pruned: blocks {} of {n} dropped)", ranges(&dropped));
            }
        }
    }

    let mut tensors = Vec::with_capacity(gguf.tensors.len());
    for t in &gguf.tensors {
        match block_of(&t.name) {
            Some((i, rest)) if i < n => {
                if let Some(new) = renumber[i] {
                    tensors.push((format!("blk.{new}.{rest}"), t));
                }
            }
            Some((i, _)) => {
                return Err(Error::Corrupt(format!("tensor '{}' belongs to block {i}, but {count_key} is {n}", t.name)))
            }
            None => tensors.push((t.name.clone(), t)),
        }
    }
    Ok(Plan { metadata, tensors, source_layers: n, dropped })
}

/// `blk.12.attn_q.weight` → (12, "attn_q.weight").
fn block_of(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (index, rest) = rest.split_once('.')?;
    Some((index.parse().ok()?, rest))
}

fn same_int_type(like: &Value, v: u64) -> Value {
    match like {
        Value::U64(_) => Value::U64(v),
        Value::I32(_) => Value::I32(v as i32),
        Value::I64(_) => Value::I64(v as i64),
        _ => Value::U32(v as u32),
    }
}

/// [3, 4, 5, 9] → "3-5, 9".
pub fn ranges(sorted: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        parts.push(if sorted[i] == start { start.to_string() } else { format!("{start}-{}", sorted[i]) });
        i += 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf_write::{write_gguf, TensorEntry};
    use crate::quant::GgmlType;

    /// A four-block "llama" header with a per-block array and one tensor per block.
    fn four_blocks() -> Vec<u8> {
        let metadata = vec![
            ("general.architecture".to_string(), Value::String("llama".into())),
            ("general.name".to_string(), Value::String("tiny".into())),
            ("llama.block_count".to_string(), Value::U32(4)),
            ("llama.attention.head_count_kv".to_string(), Value::Array((1..=4).map(Value::U32).collect())),
            ("llama.rope.dimension_sections".to_string(), Value::Array((1..=3).map(Value::U32).collect())),
        ];
        let dims = [32u64];
        let names = ["token_embd.weight", "blk.0.w", "blk.1.w", "blk.2.w", "blk.3.w", "output_norm.weight"];
        let tensors: Vec<TensorEntry> =
            names.iter().map(|name| TensorEntry { name, dims: &dims, ggml_type: GgmlType::F32 }).collect();
        let mut file = Vec::new();
        write_gguf(&mut file, &metadata, &tensors, 32, |i, out| out.write_all(&[i as u8; 128])).unwrap();
        file
    }
    use std::io::Write;

    #[test]
    fn drops_blocks_renumbers_the_rest_and_subsets_per_block_arrays() {
        let file = four_blocks();
        let g = Gguf::parse(&file).unwrap();
        let p = plan(&g, &Drop::Count { count: 2, keep_last: 1 }).unwrap();
        assert_eq!(p.dropped, vec![1, 2]);
        let names: Vec<(&str, u8)> =
            p.tensors.iter().map(|(n, t)| (n.as_str(), file[t.offset])).collect();
        assert_eq!(
            names,
            [("token_embd.weight", 0), ("blk.0.w", 1), ("blk.1.w", 4), ("output_norm.weight", 5)]
        );
        let get = |k: &str| p.metadata.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("llama.block_count"), Value::U32(2));
        assert_eq!(get("llama.attention.head_count_kv"), Value::Array(vec![Value::U32(1), Value::U32(4)]));
        // Three entries is not one per block: copied as it is.
        assert_eq!(get("llama.rope.dimension_sections").as_array().unwrap().len(), 3);
        assert_eq!(get("general.name"), Value::String("tiny (pruned: blocks 1-2 of 4 dropped)".into()));
        assert_eq!(p.metadata[0].0, "general.architecture");
    }

    #[test]
    fn refuses_what_cannot_be_dropped() {
        let file = four_blocks();
        let g = Gguf::parse(&file).unwrap();
        for bad in [
            Drop::Count { count: 3, keep_last: 1 },
            Drop::Count { count: 4, keep_last: 0 },
            Drop::Layers(vec![0, 1, 2, 3]),
            Drop::Layers(vec![4]),
        ] {
            let e = plan(&g, &bad).unwrap_err();
            assert!(matches!(e, Error::InvalidOption(_)), "{bad:?}: {e}");
        }
        let p = plan(&g, &Drop::Layers(vec![3, 0, 3])).unwrap();
        assert_eq!(p.dropped, vec![0, 3]);
        assert_eq!(ranges(&[0, 3, 4, 5, 7]), "0, 3-5, 7");
    }
}
