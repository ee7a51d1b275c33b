//! Latency histograms with fixed log-linear buckets: exact below 16 ms, then
//! 16 buckets per power of two (each at most 6.25 % wide). Fixed buckets make
//! histograms of different servers and windows merge exactly, by addition.

/// Enough buckets for 2^40 ms; larger values share the last one.
pub const BUCKETS: usize = 37 * 16 + 16;

pub fn bucket_of(ms: u64) -> usize {
    if ms < 16 {
        return ms as usize;
    }
    let exp = 63 - ms.leading_zeros() as usize; // ≥ 4
    let sub = ((ms >> (exp - 4)) & 15) as usize;
    ((exp - 3) * 16 + sub).min(BUCKETS - 1)
}

/// The smallest and largest value a bucket holds.
pub fn bucket_range(b: usize) -> (u64, u64) {
    if b < 16 {
        return (b as u64, b as u64);
    }
    let exp = b / 16 + 3;
    let low = (16 + (b % 16) as u64) << (exp - 4);
    (low, low + (1u64 << (exp - 4)) - 1)
}

/// Buckets stay a sorted list up to this many, then become a dense array:
/// most windows of one server see a handful of distinct latencies, and a
/// dense array per window cost page faults and a 600-bucket encode.
const SPARSE_MAX: usize = 24;

#[derive(Debug, Clone)]
enum Repr {
    /// (bucket, count), sorted by bucket, counts > 0.
    Sparse(Vec<(u16, u64)>),
    /// Counts of buckets `lo..lo + counts.len()`: only the span seen, since one
    /// server's latencies cover a few powers of two, not all 38 (a full array
    /// is 4.8 KB, and a daemon holds two per open window).
    Dense { lo: usize, counts: Vec<u64> },
}

#[derive(Debug, Clone)]
pub struct Histogram {
    repr: Repr,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            repr: Repr::Sparse(Vec::new()),
        }
    }
}

/// As [`Histogram::encode`]'s bytes: the form the store keeps.
impl serde::Serialize for Histogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.encode())
    }
}

impl<'de> serde::Deserialize<'de> for Histogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = serde::Deserialize::deserialize(d)?;
        Histogram::decode(&bytes).ok_or_else(|| serde::de::Error::custom("not a histogram"))
    }
}

impl PartialEq for Histogram {
    fn eq(&self, other: &Self) -> bool {
        self.buckets().eq(other.buckets())
    }
}

impl Eq for Histogram {}

impl Histogram {
    pub fn record(&mut self, ms: u64) {
        self.add(bucket_of(ms), 1);
    }

    fn add(&mut self, bucket: usize, n: u64) {
        match &mut self.repr {
            Repr::Dense { lo, counts } => {
                if bucket < *lo {
                    counts.splice(0..0, std::iter::repeat_n(0, *lo - bucket));
                    *lo = bucket;
                } else if bucket >= *lo + counts.len() {
                    counts.resize(bucket - *lo + 1, 0);
                }
                counts[bucket - *lo] += n;
            }
            Repr::Sparse(pairs) => match pairs.binary_search_by_key(&(bucket as u16), |p| p.0) {
                Ok(i) => pairs[i].1 += n,
                Err(i) if pairs.len() < SPARSE_MAX => pairs.insert(i, (bucket as u16, n)),
                Err(_) => {
                    // Sorted and non-empty: the span is from the first to the last.
                    let first = usize::from(pairs[0].0).min(bucket);
                    let last = usize::from(pairs[pairs.len() - 1].0).max(bucket);
                    let mut counts = vec![0u64; last - first + 1];
                    for (b, c) in pairs.iter() {
                        counts[usize::from(*b) - first] = *c;
                    }
                    counts[bucket - first] += n;
                    self.repr = Repr::Dense { lo: first, counts };
                }
            },
        }
    }

    /// The non-empty buckets in order, as (bucket, count).
    pub fn buckets(&self) -> Box<dyn Iterator<Item = (usize, u64)> + '_> {
        match &self.repr {
            Repr::Sparse(pairs) => Box::new(pairs.iter().map(|(b, n)| (usize::from(*b), *n))),
            Repr::Dense { lo, counts } => Box::new(
                counts
                    .iter()
                    .copied()
                    .enumerate()
                    .filter(|(_, n)| *n > 0)
                    .map(move |(i, n)| (lo + i, n)),
            ),
        }
    }

    pub fn total(&self) -> u64 {
        self.buckets().map(|(_, n)| n).sum()
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in other.buckets() {
            self.add(b, n);
        }
    }

    /// The value at quantile `q` (0..=1): the midpoint of the bucket that holds it.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, n) in self.buckets() {
            seen += n;
            if seen >= rank {
                let (lo, hi) = bucket_range(b);
                return Some(lo + (hi - lo) / 2);
            }
        }
        None
    }

    /// Compact storage: (bucket gap, count) pairs of the non-empty buckets, as LEB128 varints.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = 0usize;
        for (b, n) in self.buckets() {
            put_varint(&mut out, (b - prev) as u64);
            put_varint(&mut out, n);
            prev = b;
        }
        out
    }

    /// Reads [`encode`](Self::encode)'s output; `None` if the bytes are not a histogram.
    pub fn decode(bytes: &[u8]) -> Option<Histogram> {
        let mut h = Histogram::default();
        h.merge_encoded(bytes).then_some(h)
    }

    /// Adds an encoded histogram without decoding it into one first; false
    /// (and nothing added past the fault) if the bytes are not a histogram.
    pub fn merge_encoded(&mut self, mut bytes: &[u8]) -> bool {
        let mut b = 0usize;
        while !bytes.is_empty() {
            let (Some(gap), Some(n)) = (get_varint(&mut bytes), get_varint(&mut bytes)) else {
                return false;
            };
            b = b.saturating_add(usize::try_from(gap).unwrap_or(usize::MAX));
            if b >= BUCKETS {
                return false;
            }
            if n > 0 {
                self.add(b, n);
            }
        }
        true
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_tile_the_number_line() {
        let mut next = 0;
        for b in 0..BUCKETS - 1 {
            let (lo, hi) = bucket_range(b);
            assert_eq!(lo, next, "bucket {b}");
            assert_eq!(bucket_of(lo), b);
            assert_eq!(bucket_of(hi), b);
            assert!(hi - lo <= lo / 16, "bucket {b} is wider than 6.25 %");
            next = hi + 1;
        }
    }

    #[test]
    fn quantiles_of_small_values_are_exact() {
        let mut h = Histogram::default();
        for v in 1..=10 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), Some(5));
        assert_eq!(h.quantile(0.99), Some(10));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    proptest! {
        #[test]
        fn buckets_count_what_was_recorded_in_any_order(values in proptest::collection::vec(0u64..100_000_000, 0..300)) {
            let mut h = Histogram::default();
            let mut want = std::collections::BTreeMap::new();
            for v in &values {
                h.record(*v);
                *want.entry(bucket_of(*v)).or_insert(0u64) += 1;
            }
            prop_assert_eq!(h.buckets().collect::<Vec<_>>(), want.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn merging_equals_recording_everything(a in proptest::collection::vec(0u64..10_000_000, 0..200),
                                               b in proptest::collection::vec(0u64..10_000_000, 0..200)) {
            let (mut ha, mut hb, mut all) = (Histogram::default(), Histogram::default(), Histogram::default());
            a.iter().for_each(|v| { ha.record(*v); all.record(*v) });
            b.iter().for_each(|v| { hb.record(*v); all.record(*v) });
            let mut merged = Histogram::decode(&ha.encode()).unwrap();
            merged.merge(&Histogram::decode(&hb.encode()).unwrap());
            prop_assert_eq!(merged.encode(), all.encode());
            if let Some(p) = all.quantile(0.95) {
                let mut sorted: Vec<u64> = a.iter().chain(&b).copied().collect();
                sorted.sort_unstable();
                let exact = sorted[((0.95 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
                prop_assert!(p.abs_diff(exact) <= exact / 16 + 1, "p95 {} vs exact {}", p, exact);
            }
        }
    }
}
