//! The merge loop shared by both tokenizers: start from characters, repeatedly join the
//! best-ranked adjacent pair, until no pair ranks. SentencePiece ranks a pair by the score
//! of the joined piece, BPE by its merge rank; on equal rank the leftmost pair goes first.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A piece of the text being merged: a byte range, linked to its neighbours.
#[derive(Debug, Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

struct Pair<P> {
    priority: P,
    left: usize,
    right: usize,
    size: usize,
}

impl<P: Ord> PartialEq for Pair<P> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl<P: Ord> Eq for Pair<P> {}
impl<P: Ord> PartialOrd for Pair<P> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<P: Ord> Ord for Pair<P> {
    /// Greatest priority first; on ties the leftmost pair.
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority.cmp(&o.priority).then_with(|| Reverse(self.left).cmp(&Reverse(o.left)))
    }
}

/// Merge `text` and return its final pieces in order. `priority(left, right, joined)` ranks
/// a candidate pair (greater is merged first) or returns `None` when it cannot be merged.
pub fn merge<'t, P: Ord>(text: &'t str, priority: impl Fn(&str, &str, &str) -> Option<P>) -> Vec<&'t str> {
    let mut syms: Vec<Sym> = Vec::new();
    for (start, ch) in text.char_indices() {
        let i = syms.len() as isize;
        syms.push(Sym { start, len: ch.len_utf8(), prev: i - 1, next: i + 1 });
    }
    let Some(last) = syms.last_mut() else { return vec![] };
    last.next = -1;

    let piece = |s: &Sym| &text[s.start..s.start + s.len];
    let mut queue = BinaryHeap::new();
    let push = |l: isize, r: isize, syms: &[Sym], queue: &mut BinaryHeap<Pair<P>>| {
        if l < 0 || r < 0 {
            return;
        }
        let (l, r) = (l as usize, r as usize);
        let joined = &text[syms[l].start..syms[r].start + syms[r].len];
        if let Some(p) = priority(piece(&syms[l]), piece(&syms[r]), joined) {
            queue.push(Pair { priority: p, left: l, right: r, size: joined.len() });
        }
    };
    for i in 1..syms.len() {
        push(i as isize - 1, i as isize, &syms, &mut queue);
    }
    while let Some(p) = queue.pop() {
        let (l, r) = (p.left, p.right);
        // Stale entry: one side was merged away since this pair was queued.
        if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != p.size {
            continue;
        }
        syms[l].len += syms[r].len;
        syms[r].len = 0;
        syms[l].next = syms[r].next;
        if syms[r].next >= 0 {
            let n = syms[r].next as usize;
            syms[n].prev = l as isize;
        }
        let (prev, next) = (syms[l].prev, syms[l].next);
        push(prev, l as isize, &syms, &mut queue);
        push(l as isize, next, &syms, &mut queue);
    }
    let mut out = Vec::new();
    let mut i: isize = 0;
    while i != -1 {
        out.push(piece(&syms[i as usize]));
        i = syms[i as usize].next;
    }
    out
}
