//! The providers loaded in one Node environment, in numbered slots.
//!
//! JavaScript never holds a pointer into this addon: a provider object and a
//! probe handle carry an [`Id`] (a slot and that slot's generation), checked
//! here on every use. A handle that outlived its provider, or an External
//! made by some other addon, finds nothing and fires nothing; no value JS can
//! pass makes this addon read memory it does not own.
//!
//! Unloading releases everything at once (the library, its sites, the
//! references to its semaphore buffers): nothing waits for a finalizer that
//! Node runs only once the event loop turns.

use std::ptr;

use dynprobe::{Provider, SiteCall};
use napi::sys;

const SLOT_BITS: u32 = 20;
const PROBE_BITS: u32 = 20;
const GENERATION_BITS: u32 = 23;
/// Set in every id: a pointer that another addon put in an External (a user
/// space address) never has it, so it is never mistaken for one of ours.
const MARKER: u64 = 1 << 63;
const MAX_SLOTS: usize = 1 << SLOT_BITS;
/// Probes a handle can name.
pub(crate) const MAX_PROBES: usize = 1 << PROBE_BITS;

/// A slot and its generation, and for a probe handle the probe's index, in
/// the 64 bits that N-API stores for an External or a wrapped object.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Id {
    slot: u32,
    generation: u32,
    probe: u32,
}

impl Id {
    pub(crate) fn with_probe(self, probe: u32) -> Id {
        Id { probe, ..self }
    }

    pub(crate) fn encode(self) -> *mut std::ffi::c_void {
        let bits = MARKER
            | (u64::from(self.generation) << (SLOT_BITS + PROBE_BITS))
            | (u64::from(self.slot) << PROBE_BITS)
            | u64::from(self.probe);
        bits as usize as *mut std::ffi::c_void
    }

    /// The id in `data`, or None when `data` is not one of ours.
    #[inline(always)]
    pub(crate) fn decode(data: *mut std::ffi::c_void) -> Option<Id> {
        let bits = data as usize as u64;
        if bits & MARKER == 0 {
            return None;
        }
        let field = |shift: u32, width: u32| ((bits >> shift) & ((1 << width) - 1)) as u32;
        Some(Id {
            probe: field(0, PROBE_BITS),
            slot: field(PROBE_BITS, SLOT_BITS),
            generation: field(SLOT_BITS + PROBE_BITS, GENERATION_BITS),
        })
    }
}

/// A loaded provider and what this addon handed out for it.
pub(crate) struct Loaded {
    provider: Provider,
    /// One per probe, in definition order: what a traced fire calls.
    sites: Box<[SiteCall]>,
    /// Strong references to every semaphore buffer handed out: unloading
    /// detaches them all before the memory goes away, whatever JS kept.
    buffers: Vec<sys::napi_ref>,
}

struct Slot {
    generation: u32,
    loaded: Option<Loaded>,
}

#[derive(Default)]
pub(crate) struct Registry {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

/// Why a provider could not be used.
pub(crate) enum Missing {
    /// Unloaded (or never ours).
    Unloaded,
    /// No probe at that index.
    NoProbe,
}

impl Registry {
    /// Stores a loaded provider; None when every slot is taken.
    pub(crate) fn insert(&mut self, provider: Provider) -> Option<Id> {
        let sites = provider.probes().map(|p| p.site_call()).collect();
        let loaded = Loaded {
            provider,
            sites,
            buffers: Vec::new(),
        };
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(Slot {
                    generation: 0,
                    loaded: None,
                });
                (self.slots.len() - 1) as u32
            }
            None => return None,
        };
        let entry = &mut self.slots[slot as usize];
        entry.loaded = Some(loaded);
        Some(Id {
            slot,
            generation: entry.generation,
            probe: 0,
        })
    }

    fn loaded(&self, id: Id) -> Option<&Loaded> {
        let slot = self.slots.get(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.loaded.as_ref()
    }

    pub(crate) fn provider(&self, id: Id) -> Result<&Provider, Missing> {
        self.loaded(id)
            .map(|l| &l.provider)
            .ok_or(Missing::Unloaded)
    }

    /// The site a handle names, if its provider is still loaded.
    #[inline(always)]
    pub(crate) fn site(&self, id: Id) -> Result<&SiteCall, Missing> {
        let loaded = self.loaded(id).ok_or(Missing::Unloaded)?;
        loaded.sites.get(id.probe as usize).ok_or(Missing::NoProbe)
    }

    /// Remembers a semaphore buffer to detach at unload.
    pub(crate) fn keep_buffer(&mut self, id: Id, buffer: sys::napi_ref) -> Result<(), Missing> {
        let slot = self
            .slots
            .get_mut(id.slot as usize)
            .filter(|s| s.generation == id.generation)
            .ok_or(Missing::Unloaded)?;
        let loaded = slot.loaded.as_mut().ok_or(Missing::Unloaded)?;
        loaded.buffers.push(buffer);
        Ok(())
    }

    /// Every provider still loaded, taken out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Loaded> + '_ {
        self.slots.iter_mut().filter_map(|slot| slot.loaded.take())
    }

    /// Takes the provider out of its slot (which a later provider reuses,
    /// under a new generation): ids naming it find nothing from now on.
    pub(crate) fn remove(&mut self, id: Id) -> Option<Loaded> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let loaded = slot.loaded.take()?;
        slot.generation = (slot.generation + 1) & ((1 << GENERATION_BITS) - 1);
        self.free.push(id.slot);
        Some(loaded)
    }
}

impl Loaded {
    /// Detaches every buffer handed out (so that no view can read the memory
    /// once it is unmapped), drops the references, then unmaps the library.
    /// `env` is None when the environment is gone (its buffers with it).
    pub(crate) fn release(self, env: Option<sys::napi_env>) -> Result<(), dynprobe::Error> {
        if let Some(env) = env {
            for reference in self.buffers {
                let mut buffer = ptr::null_mut();
                // SAFETY: references this addon made in `env`, deleted once
                // here. A buffer that is already detached is refused
                // harmlessly; nothing else can fail for a live reference.
                unsafe {
                    if sys::napi_get_reference_value(env, reference, &mut buffer)
                        == sys::Status::napi_ok
                        && !buffer.is_null()
                    {
                        sys::napi_detach_arraybuffer(env, buffer);
                    }
                    sys::napi_delete_reference(env, reference);
                }
            }
        }
        self.provider.unload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_foreign_pointers_are_refused() {
        let id = Id {
            slot: (1 << SLOT_BITS) - 1,
            generation: (1 << GENERATION_BITS) - 1,
            probe: 12345,
        };
        assert_eq!(Id::decode(id.encode()), Some(id));
        let zero = Id {
            slot: 0,
            generation: 0,
            probe: 0,
        };
        assert_eq!(Id::decode(zero.encode()), Some(zero));
        let on_the_heap = Box::into_raw(Box::new(0u64));
        assert_eq!(Id::decode(on_the_heap.cast()), None);
        drop(unsafe { Box::from_raw(on_the_heap) });
        assert_eq!(Id::decode(ptr::null_mut()), None);
    }
}
