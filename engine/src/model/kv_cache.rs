//! Per-layer key/value cache. Sliding-window layers keep a ring of `window + RING_SLACK` slots
//! (a query never looks further back than the window); global layers grow with the sequence.
//! Values are stored rounded to f16 precision, as llama.cpp's default f16 cache holds them.

use crate::quant::f16::round_f16;

#[derive(Debug, Clone)]
pub struct LayerCache {
    stride: usize,
    ring: Option<usize>,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl LayerCache {
    pub fn new(stride: usize, ring: Option<usize>) -> Self {
        LayerCache { stride, ring, k: Vec::new(), v: Vec::new() }
    }

    fn slot(&self, pos: usize) -> usize {
        match self.ring {
            Some(n) => pos % n,
            None => pos,
        }
    }

    pub fn store(&mut self, pos: usize, k: &[f32], v: &[f32]) {
        let at = self.slot(pos) * self.stride;
        if self.k.len() < at + self.stride {
            self.k.resize(at + self.stride, 0.0);
            self.v.resize(at + self.stride, 0.0);
        }
        for (d, &s) in self.k[at..at + self.stride].iter_mut().zip(k) {
            *d = round_f16(s);
        }
        for (d, &s) in self.v[at..at + self.stride].iter_mut().zip(v) {
            *d = round_f16(s);
        }
    }

    /// Room for positions `0..positions`, so storing them allocates nothing (a ring never
    /// needs more than its slots).
    pub fn reserve(&mut self, positions: usize) {
        let slots = self.ring.map_or(positions, |n| n.min(positions));
        let len = slots * self.stride;
        self.k.reserve(len.saturating_sub(self.k.len()));
        self.v.reserve(len.saturating_sub(self.v.len()));
    }

    /// Key and value of KV head `h` at `pos` (`head_dim` values each).
    pub fn get(&self, pos: usize, h: usize, head_dim: usize) -> (&[f32], &[f32]) {
        let at = self.slot(pos) * self.stride + h * head_dim;
        (&self.k[at..at + head_dim], &self.v[at..at + head_dim])
    }
}
