//! A fast hasher for the heap model's address keys (and the profile's stack ids): the default
//! SipHash costs more than the rest of a record's processing, and these keys need no
//! protection against collision attacks.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        // Fibonacci hashing, folded so that the low bits (the bucket index) mix the high ones.
        let h = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_isize(&mut self, v: isize) {
        self.write_u64(v as u64);
    }
}

pub type AddrMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<AddrHasher>>;

pub type AddrSet = std::collections::HashSet<u64, BuildHasherDefault<AddrHasher>>;
