//! Where the memory goes besides the weights: heap bytes live after each phase (load, a
//! 512-token prompt, the constraint engine, a constrained call) and the peak within it,
//! counted by a wrapping global allocator. Natively, so the model file is mapped, not on the
//! heap (as wasm, WASI's read buffers are allocated and freed on different sides of the
//! counter, which then misreads them):
//!   cargo run --release -p edgeslm-engine --example mem_profile -- MODEL
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use edgeslm_engine::prompt_cache::PromptCache;
use edgeslm_engine::{Constrainer, Constraint, GenerateOptions, Model};

/// The system allocator, counting the bytes live and their high-water mark.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(n: usize) {
    PEAK.fetch_max(LIVE.fetch_add(n, Relaxed) + n, Relaxed);
}

// SAFETY: every call is passed straight to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grow(l.size());
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // While a block moves, old and new are both held: count the new one first.
        grow(n);
        let q = System.realloc(p, l, n);
        LIVE.fetch_sub(l.size(), Relaxed);
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mib(n: usize) -> f64 {
    n as f64 / (1 << 20) as f64
}

/// Print the live bytes now and the peak since the last phase, then start a new phase.
fn phase(name: &str) {
    let live = LIVE.load(Relaxed);
    println!("{name:<42} live {:7.1} MiB   peak within {:7.1} MiB", mib(live), mib(PEAK.load(Relaxed)));
    PEAK.store(live, Relaxed);
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: mem_profile MODEL.gguf");
    phase("start");
    let model = Model::open(&path).unwrap_or_else(|e| panic!("{e}"));
    phase("model loaded");
    let long = "The history of the city is long. ".repeat(64);
    let g = model.generate(&long, &GenerateOptions { max_tokens: 1, ..Default::default() }).unwrap();
    phase(&format!("generate after {} prompt tokens (freed)", g.prompt_tokens));
    let constrainer = Constrainer::new(&model).unwrap();
    phase("constraint engine built");
    let schema = r#"{"type":"object","properties":{"category":{"enum":["incident","billing","inquiry"]},"urgency":{"type":"integer","minimum":1,"maximum":5}},"required":["category","urgency"],"additionalProperties":false}"#;
    let mut cache = PromptCache::default();
    let prompt = "Classify the support ticket as JSON.\nMessage: my card was charged twice\nTicket:";
    let opts = GenerateOptions { max_tokens: 48, ..Default::default() };
    let out = model.generate_constrained(&constrainer, &mut cache, prompt, &Constraint::JsonSchema(schema.into()), &opts).unwrap();
    phase(&format!("constrained call ({})", out.text));
    drop(cache);
    drop(constrainer);
    phase("constraint engine and prompt cache dropped");
}
