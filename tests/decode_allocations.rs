//! A decode step allocates nothing: the forward pass works in buffers kept from the step
//! before, the KV cache has room reserved for the whole generation, and sampling reuses its
//! own. Counted with a global allocator that tallies the allocations of the test's thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use edgeslm_engine::quant::GgmlType;
use edgeslm_engine::sampler::{argmax, Sampler, SamplerConfig};
use edgeslm_engine::Model;
use edgeslm_tests::*;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

/// Allocations made by `steps` decode steps after the prompt and one warm-up step, greedy
/// and with a seeded top-k/top-p sampler.
fn decode_allocations(model: &Model, prompt: &[u32], steps: usize) -> u64 {
    let mut session = model.new_session();
    session.reserve(prompt.len() + steps + 1);
    let mut sampler = Sampler::new(SamplerConfig::with(Some(0.8), Some(40), Some(0.95), Some(7))).unwrap();
    let mut logits = Vec::new();
    model.forward_into(&mut session, prompt, &mut logits).unwrap();
    let mut next = sampler.sample(&logits);
    model.forward_into(&mut session, &[next], &mut logits).unwrap();
    let before = allocations();
    for step in 0..steps {
        next = if step % 2 == 0 { argmax(&logits) } else { sampler.sample(&logits) };
        model.forward_into(&mut session, &[next], &mut logits).unwrap();
    }
    assert!(logits.iter().all(|v| v.is_finite()));
    allocations() - before
}

#[test]
fn tiny_models_decode_without_allocating() {
    for arch in tiny::ARCHS {
        for ty in [GgmlType::Q8_0, GgmlType::Q4K, GgmlType::F16] {
            let model = Model::from_bytes(tiny::model(arch, ty)).unwrap();
            // Past the sliding window, so the ring wraps while counting.
            let prompt: Vec<u32> = (0..20u32).map(|t| 4 + (t * 37) % 256).collect();
            let n = decode_allocations(&model, &prompt, 24);
            assert_eq!(n, 0, "{arch} {}: {n} allocations in 24 decode steps", ty.name());
        }
    }
}

#[test]
fn gemma_decodes_without_allocating() {
    let model = Model::open(model_path(GEMMA).to_str().unwrap()).unwrap();
    let prompt = model.tokenizer.encode("The capital of France is", true, false);
    let n = decode_allocations(&model, &prompt, 16);
    assert_eq!(n, 0, "{n} allocations in 16 decode steps");
}

/// The counter sees what it should: a step without reserved KV room grows the cache.
#[test]
fn the_counter_sees_cache_growth() {
    let model = Model::from_bytes(tiny::model("llama", GgmlType::Q8_0)).unwrap();
    let mut session = model.new_session();
    let mut logits = Vec::new();
    model.forward_into(&mut session, &[4, 5, 6], &mut logits).unwrap();
    let before = allocations();
    for t in 0..64 {
        model.forward_into(&mut session, &[7 + t], &mut logits).unwrap();
    }
    assert!(allocations() > before);
}
