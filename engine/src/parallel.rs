//! Native multi-threading of the matrix products: a process-wide pool sized by
//! `set_threads`. Every output element is computed by the same kernel whatever the thread
//! count, so results are bit-identical with 1 or N threads. wasm32 (the component) has no
//! threads: there everything runs on the calling thread.

#[cfg(not(target_family = "wasm"))]
mod pool {
    use std::sync::{Arc, RwLock};

    static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

    pub fn set_threads(n: usize) -> Result<(), String> {
        let pool = if n <= 1 {
            None
        } else {
            let p = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("edgeslm-{i}"))
                .build()
                .map_err(|e| format!("cannot start {n} threads: {e}"))?;
            Some(Arc::new(p))
        };
        *POOL.write().unwrap_or_else(|e| e.into_inner()) = pool;
        Ok(())
    }

    pub fn threads() -> usize {
        POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(1, |p| p.current_num_threads())
    }

    pub fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
        let pool = POOL.read().unwrap_or_else(|e| e.into_inner()).clone();
        match pool {
            Some(pool) if parts > 1 => pool.scope(|s| {
                for i in 1..parts {
                    s.spawn(move |_| f(i));
                }
                f(0);
            }),
            _ => (0..parts).for_each(f),
        }
    }
}

#[cfg(target_family = "wasm")]
mod pool {
    pub fn set_threads(n: usize) -> Result<(), String> {
        if n > 1 {
            return Err("threads are not available in wasm".into());
        }
        Ok(())
    }
    pub fn threads() -> usize {
        1
    }
    pub fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
        (0..parts).for_each(f)
    }
}

/// Use `n` threads for the matrix products from now on (1: the calling thread only).
pub fn set_threads(n: usize) -> Result<(), String> {
    pool::set_threads(n)
}

/// The number of threads the matrix products use.
pub fn threads() -> usize {
    pool::threads()
}

/// Split `0..len` into one contiguous range per thread (multiples of `align`) and run
/// `f(range)` for each, in parallel where there are threads. Small jobs stay on one thread.
pub fn for_ranges(len: usize, align: usize, min_per_thread: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    let n = threads().min(len / min_per_thread.max(1)).max(1);
    if n == 1 {
        return f(0..len);
    }
    let step = len.div_ceil(n).div_ceil(align) * align;
    pool::run(n, &|i| {
        let (start, end) = ((i * step).min(len), ((i + 1) * step).min(len));
        if start < end {
            f(start..end)
        }
    });
}

/// A raw pointer for threads that write disjoint elements of one output slice.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub *mut f32);
// SAFETY: users write disjoint indices only, and the slice outlives the parallel section.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Write element `i`.
    ///
    /// SAFETY: `i` is in bounds and no other thread writes it.
    #[inline(always)]
    pub(crate) unsafe fn write(self, i: usize, v: f32) {
        *self.0.add(i) = v;
    }
}
