//! Generational, typed 64-bit handles.
//!
//! Layout: bits 56..64 the kind, bits 32..56 the generation of the slot,
//! bits 0..32 the slot index. A slot's generation grows each time it is
//! freed, so a stale handle never finds the object that reused its slot, and
//! the kind byte makes a handle of one table invalid in every other. Zero is
//! never a valid handle: kinds start at 1.
//!
//! Generations never wrap: a slot whose generation reaches the largest one
//! is retired for good (never reused) instead, so no handle ever freed can
//! become valid again, however many cycles run. A retired slot costs a few
//! bytes once per 16,777,215 frees of that slot.

use std::sync::Arc;

use parking_lot::RwLock;

const GENERATION_BITS: u32 = 24;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

/// What a handle refers to; the top byte of every handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HandleKind {
    Runtime = 1,
    Service = 2,
    Subscription = 3,
    Method = 4,
}

impl HandleKind {
    pub fn name(self) -> &'static str {
        match self {
            HandleKind::Runtime => "runtime",
            HandleKind::Service => "service",
            HandleKind::Subscription => "subscription",
            HandleKind::Method => "method",
        }
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<Arc<T>>,
}

struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    retired: usize,
}

/// A table of live objects of one kind, addressed by handle.
pub struct HandleTable<T> {
    kind: HandleKind,
    /// The generation after which a slot is retired (lowered by tests).
    last_generation: u32,
    inner: RwLock<Slots<T>>,
}

impl<T> HandleTable<T> {
    pub const fn new(kind: HandleKind) -> Self {
        HandleTable {
            kind,
            last_generation: GENERATION_MASK as u32,
            inner: RwLock::new(Slots {
                slots: Vec::new(),
                free: Vec::new(),
                retired: 0,
            }),
        }
    }

    pub fn kind(&self) -> HandleKind {
        self.kind
    }

    pub fn insert(&self, value: Arc<T>) -> u64 {
        let mut inner = self.inner.write();
        let index = match inner.free.pop() {
            Some(index) => index,
            None => {
                inner.slots.push(Slot {
                    generation: 1,
                    value: None,
                });
                u32::try_from(inner.slots.len() - 1).expect("more than 2^32 live handles")
            }
        };
        let slot = &mut inner.slots[index as usize];
        slot.value = Some(value);
        self.encode(index, slot.generation)
    }

    /// The live object of `handle`, or `None` for zero, unknown, stale and
    /// wrong-kind handles.
    pub fn get(&self, handle: u64) -> Option<Arc<T>> {
        let (index, generation) = self.decode(handle)?;
        let inner = self.inner.read();
        let slot = inner.slots.get(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        slot.value.clone()
    }

    /// Removes the object of `handle`; `None` when it was not live.
    pub fn remove(&self, handle: u64) -> Option<Arc<T>> {
        let (index, generation) = self.decode(handle)?;
        let mut inner = self.inner.write();
        let slot = inner.slots.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        let value = slot.value.take()?;
        if slot.generation < self.last_generation {
            slot.generation += 1;
            inner.free.push(index);
        } else {
            inner.retired += 1;
        }
        Some(value)
    }

    #[cfg(test)]
    fn with_last_generation(kind: HandleKind, last_generation: u32) -> Self {
        HandleTable {
            last_generation,
            ..Self::new(kind)
        }
    }

    pub fn len(&self) -> usize {
        let inner = self.inner.read();
        inner.slots.len() - inner.free.len() - inner.retired
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn encode(&self, index: u32, generation: u32) -> u64 {
        ((self.kind as u64) << 56) | ((generation as u64 & GENERATION_MASK) << 32) | index as u64
    }

    fn decode(&self, handle: u64) -> Option<(u32, u32)> {
        if (handle >> 56) as u8 != self.kind as u8 {
            return None;
        }
        let generation = ((handle >> 32) & GENERATION_MASK) as u32;
        Some((handle as u32, generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_double_freed_zero_and_foreign_handles_are_refused() {
        let runtimes = HandleTable::new(HandleKind::Runtime);
        let services: HandleTable<u8> = HandleTable::new(HandleKind::Service);
        let first = runtimes.insert(Arc::new(1u8));
        assert_eq!(runtimes.get(first).as_deref(), Some(&1));
        assert!(runtimes.get(0).is_none());
        assert!(services.get(first).is_none(), "wrong kind");
        assert!(runtimes.remove(first).is_some());
        assert!(runtimes.remove(first).is_none(), "double free");
        let second = runtimes.insert(Arc::new(2u8));
        assert_ne!(first, second, "slot reuse gets a new generation");
        assert!(runtimes.get(first).is_none(), "stale");
        assert_eq!(runtimes.get(second).as_deref(), Some(&2));
        assert!(runtimes.get(second ^ 0x10).is_none(), "made up");
    }

    #[test]
    fn a_slot_at_its_last_generation_is_retired_never_reused() {
        let table = HandleTable::with_last_generation(HandleKind::Method, 3);
        let mut freed = Vec::new();
        for round in 0..3u8 {
            let handle = table.insert(Arc::new(round));
            assert_eq!(
                handle as u32, 0,
                "slot 0 is reused until its last generation"
            );
            assert!(table.remove(handle).is_some());
            freed.push(handle);
        }
        let next = table.insert(Arc::new(9u8));
        assert_eq!(next as u32, 1, "slot 0 is retired, a new slot serves");
        for handle in freed {
            assert!(
                table.get(handle).is_none(),
                "a freed handle never answers again"
            );
            assert!(table.remove(handle).is_none());
        }
        assert_eq!(table.get(next).as_deref(), Some(&9));
        assert_eq!(table.len(), 1);
    }
}
