//! Token selection: greedy at temperature 0, otherwise temperature → top-k → top-p and a
//! draw from a seeded xoshiro256** generator (same seed, same draws, on every host).

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    pub temperature: f32,
    /// 0 = no limit.
    pub top_k: u32,
    /// 1.0 = no limit.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig { temperature: 0.0, top_k: 40, top_p: 0.95, seed: 0 }
    }
}

impl SamplerConfig {
    /// The defaults, with the settings a caller gave (hosts pass their optional fields).
    pub fn with(temperature: Option<f32>, top_k: Option<u32>, top_p: Option<f32>, seed: Option<u64>) -> SamplerConfig {
        let d = SamplerConfig::default();
        SamplerConfig {
            temperature: temperature.unwrap_or(d.temperature),
            top_k: top_k.unwrap_or(d.top_k),
            top_p: top_p.unwrap_or(d.top_p),
            seed: seed.unwrap_or(d.seed),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(Error::InvalidOption(format!("temperature must be finite and >= 0, got {}", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::InvalidOption(format!("top-p must be in (0, 1], got {}", self.top_p)));
        }
        Ok(())
    }
}

pub struct Sampler {
    cfg: SamplerConfig,
    rng: Xoshiro256,
    candidates: Vec<(u32, f32)>,
    /// The candidates' probabilities (kept, like `candidates`, so a step allocates nothing).
    probs: Vec<f64>,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Result<Sampler> {
        cfg.validate()?;
        let rng = Xoshiro256::seeded(cfg.seed);
        Ok(Sampler { cfg, rng, candidates: Vec::new(), probs: Vec::new() })
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.cfg.temperature == 0.0 {
            return argmax(logits);
        }
        let c = &mut self.candidates;
        c.clear();
        c.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        // Highest logit first; ties by id so the order never depends on the sort.
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let k = self.cfg.top_k as usize;
        if k > 0 && k < c.len() {
            c.select_nth_unstable_by(k - 1, by_logit);
            c.truncate(k);
        }
        c.sort_unstable_by(by_logit);
        let max = c[0].1;
        let probs = &mut self.probs;
        probs.clear();
        probs.extend(c.iter().map(|&(_, l)| libm::exp(((l - max) / self.cfg.temperature) as f64)));
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        let mut keep = probs.len();
        if self.cfg.top_p < 1.0 {
            let mut cum = 0.0;
            for (i, p) in probs.iter().enumerate() {
                cum += p;
                if cum >= self.cfg.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
        }
        let kept: f64 = probs[..keep].iter().sum();
        let mut r = self.rng.next_f64() * kept;
        for i in 0..keep {
            r -= probs[i];
            if r <= 0.0 {
                return c[i].0;
            }
        }
        c[keep - 1].0
    }
}

/// Index of the largest logit: the first one on ties, as llama.cpp's greedy sampler (NaNs
/// are never chosen, unless all are NaN: 0).
pub fn argmax(logits: &[f32]) -> u32 {
    // Two passes that vectorise, the largest value in eight running maxima and then where
    // it first occurs, instead of one loop carrying the best index (3% of a Gemma token
    // in wasm over its 262k logits).
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = logits.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = lanes.iter().chain(rest).fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    logits.iter().position(|&v| v == max).unwrap_or(0) as u32
}

/// xoshiro256** seeded through splitmix64.
struct Xoshiro256([u64; 4]);

impl Xoshiro256 {
    fn seeded(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Xoshiro256([next(), next(), next(), next()])
    }
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}


/// log p(id) under softmax(logits); -inf entries (masked tokens) contribute nothing. With
/// `ids` (the allowed ids, ascending: exactly the finite entries) only those are read; the
/// sums run in the same order, so the result is the same either way.
pub(crate) fn log_softmax_at(logits: &[f32], id: u32, ids: Option<&[u32]>) -> f32 {
    let finite = || -> Box<dyn Iterator<Item = f32> + '_> {
        match ids {
            Some(ids) => Box::new(ids.iter().map(|&i| logits[i as usize])),
            None => Box::new(logits.iter().copied().filter(|v| v.is_finite())),
        }
    };
    let max = finite().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = finite().map(|v| ((v - max) as f64).exp()).sum();
    (logits[id as usize] - max) - sum.ln() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn greedy_and_seeded() {
        let logits = vec![0.1, 3.0, 3.0, -1.0];
        assert_eq!(argmax(&logits), 1);
        // The first of equal maxima, wherever the eight lanes put them; NaNs never win.
        let mut many = vec![-1.0f32; 1003];
        many[5] = f32::NAN;
        many[700] = 2.5;
        many[9] = 2.5;
        assert_eq!(argmax(&many), 9);
        many[1001] = 3.0;
        assert_eq!(argmax(&many), 1001);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 20]), 0);
        assert_eq!(argmax(&[f32::NAN, 1.0, f32::NAN]), 1);
        let cfg = SamplerConfig { temperature: 1.0, top_k: 0, top_p: 1.0, seed: 42 };
        let a: Vec<u32> = { let mut s = Sampler::new(cfg.clone()).unwrap(); (0..50).map(|_| s.sample(&logits)).collect() };
        let b: Vec<u32> = { let mut s = Sampler::new(cfg).unwrap(); (0..50).map(|_| s.sample(&logits)).collect() };
        assert_eq!(a, b);
        assert!(a.iter().all(|&t| t != 3 || true));
        let topk1 = SamplerConfig { temperature: 5.0, top_k: 1, top_p: 1.0, seed: 1 };
        let mut s = Sampler::new(topk1).unwrap();
        assert!((0..20).all(|_| s.sample(&logits) == 1));
    }
    #[test]
    fn rejects_bad_options() {
        assert!(Sampler::new(SamplerConfig { temperature: -1.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplerConfig { top_p: 0.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplerConfig { temperature: f32::NAN, ..Default::default() }).is_err());
    }
}
