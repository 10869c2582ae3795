//! Compiled scripts kept for reuse, within a budget in bytes.
//!
//! An entry's size is what compiling it allocated (counted when the process runs on
//! [`CountingAllocator`](super::CountingAllocator)), or else an estimate from its length, plus
//! its text. Entries go oldest first; one larger than the whole budget is not kept.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rhai::AST;

/// What one byte of script text compiles to, at most, when allocations are not counted: the
/// worst measured with the optimiser off was 145 bytes (`x+x+…`), so 160.
pub(crate) const AST_BYTES_PER_SOURCE_BYTE: usize = 160;

pub(crate) struct Cache {
    compiled: HashMap<Arc<str>, (Arc<AST>, usize)>,
    order: VecDeque<Arc<str>>,
    bytes: usize,
    budget: usize,
}

impl Cache {
    pub(crate) fn new(budget: usize) -> Self {
        Cache {
            compiled: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    pub(crate) fn get(&self, script: &str) -> Option<Arc<AST>> {
        self.compiled.get(script).map(|(ast, _)| Arc::clone(ast))
    }

    /// Keeps `ast`, compiled from `script`, which cost `size` bytes to compile; makes room by
    /// forgetting the oldest entries.
    pub(crate) fn insert(&mut self, script: &str, ast: &Arc<AST>, size: usize) {
        let size = size.saturating_add(script.len());
        if size > self.budget || self.compiled.contains_key(script) {
            return;
        }
        while self.bytes + size > self.budget {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((_, freed)) = self.compiled.remove(&oldest) {
                self.bytes -= freed;
            }
        }
        let key: Arc<str> = Arc::from(script);
        self.compiled
            .insert(Arc::clone(&key), (Arc::clone(ast), size));
        self.order.push_back(key);
        self.bytes += size;
    }

    /// Bytes held, by the count above.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.compiled.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ast() -> Arc<AST> {
        Arc::new(AST::empty())
    }

    #[test]
    fn the_budget_is_in_bytes_and_the_oldest_go_first() {
        let mut cache = Cache::new(100);
        cache.insert("a", &ast(), 39);
        cache.insert("b", &ast(), 39);
        assert_eq!((cache.len(), cache.bytes()), (2, 80));
        cache.insert("c", &ast(), 39);
        assert_eq!((cache.len(), cache.bytes()), (2, 80));
        assert!(cache.get("a").is_none() && cache.get("c").is_some());
        // Larger than the whole budget: not kept, nothing forgotten.
        cache.insert("d", &ast(), 100);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("d").is_none());
        let mut none = Cache::new(0);
        none.insert("e", &ast(), 0);
        assert_eq!(none.len(), 0);
    }
}
