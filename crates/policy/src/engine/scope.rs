//! Which rules apply to a session, computed once per distinct role, database, application and
//! address within one evaluation. Sessions share these far more often than not (a few hundred
//! roles for a hundred thousand sessions), so glob and CIDR matching leave the per-session path.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use crate::model::{Condition, ExemptBy, Policy};
use crate::session::{ClientAddr, Session};

/// A set of rule indexes. The first 64 rules sit inline: dereferencing a separate allocation
/// per lookup was the largest single cost at 100k sessions. `rest` is empty (and allocates
/// nothing) unless the policy has more than 64 rules.
#[derive(Debug, Clone)]
pub(super) struct Bits {
    first: u64,
    rest: Box<[u64]>,
}

impl Bits {
    fn word(&self, w: usize) -> u64 {
        if w == 0 { self.first } else { self.rest[w - 1] }
    }

    /// The set of indexes `0..count` for which `admits` holds.
    fn of(count: usize, admits: impl Fn(usize) -> bool) -> Bits {
        let mut words = vec![0u64; count.div_ceil(64).max(1)];
        for i in (0..count).filter(|i| admits(*i)) {
            words[i / 64] |= 1 << (i % 64);
        }
        Bits {
            first: words[0],
            rest: words[1..].into(),
        }
    }

    /// The lowest index in all three sets.
    fn first_common(a: &Bits, b: &Bits, c: &Bits) -> Option<usize> {
        let word = |w: usize| a.word(w) & b.word(w) & c.word(w);
        (0..=a.rest.len())
            .map(|w| (w, word(w)))
            .find(|(_, bits)| *bits != 0)
            .map(|(w, bits)| w * 64 + bits.trailing_zeros() as usize)
    }
}

/// What one attribute (a role, a database and application, an address) contributes: the
/// exemptions whose keys on that attribute it satisfies (an exemption without such keys counts
/// as satisfied), and the rules it admits. A session is exempt when one exemption is satisfied
/// on all three.
type Entry = (Bits, Bits);

/// The rules that apply to a session, and its role's number.
pub(super) struct Applicable<'a> {
    pub(super) rules: &'a [u64],
    pub(super) role_id: u32,
}

/// A small, fast, non-cryptographic hasher (multiply-rotate) for the per-evaluation caches:
/// keys come from the database, the maps live for one evaluation, so flooding is not a concern.
#[derive(Default)]
pub(super) struct QuickHasher(u64);

impl QuickHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for QuickHasher {
    /// A final mix (from MurmurHash3's fmix64) so that every input bit reaches the low bits,
    /// which pick the bucket.
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.add(u64::from_le_bytes(word) ^ (tail.len() as u64) << 59);
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

type QuickMap<K, V> = HashMap<K, V, BuildHasherDefault<QuickHasher>>;

/// Entries stored once, found two ways: by the address of a shared name (no string is read: the
/// fast path when the snapshot interns names) or by the name itself (when a name arrives in an
/// allocation not seen before). Correctness never depends on interning.
struct Table<P, K> {
    entries: Vec<Entry>,
    by_address: QuickMap<P, u32>,
    by_name: QuickMap<K, u32>,
}

impl<P: Hash + Eq + Copy, K: Hash + Eq + Copy> Table<P, K> {
    fn new() -> Self {
        Self {
            entries: Vec::new(),
            by_address: QuickMap::default(),
            by_name: QuickMap::default(),
        }
    }

    /// The entry's index, building the entry on first sight of the name.
    #[inline]
    fn index(&mut self, address: P, name: K, build: impl FnOnce() -> Entry) -> u32 {
        if let Some(i) = self.by_address.get(&address) {
            return *i;
        }
        let entries = &mut self.entries;
        let i = *self.by_name.entry(name).or_insert_with(|| {
            entries.push(build());
            u32::try_from(entries.len() - 1).unwrap_or(u32::MAX)
        });
        self.by_address.insert(address, i);
        i
    }
}

fn address_of(name: &Arc<str>) -> *const u8 {
    Arc::as_ptr(name).cast()
}

/// Per-evaluation index from session attributes to applicable rules.
pub(super) struct ScopeIndex<'p, 's> {
    policy: &'p Policy,
    words: usize,
    /// The entry index doubles as the role's number for ranking.
    roles: Table<*const u8, &'s str>,
    /// Keyed by the pair: a server sees few distinct (database, application) pairs, so one
    /// lookup serves both.
    connections: Table<(*const u8, *const u8), (&'s str, &'s str)>,
    /// Keyed by what matching reads of an address: every unresolved client (a host name, no
    /// address) matches alike, so they share one entry whatever their names.
    addresses: QuickMap<AddressKey, Entry>,
    scratch: Vec<u64>,
}

/// A client address as the address part of a scope reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddressKey {
    Socket,
    Ip(IpAddr),
    Unresolved,
}

impl AddressKey {
    fn of(address: &ClientAddr) -> Self {
        match address {
            ClientAddr::Socket => AddressKey::Socket,
            ClientAddr::Ip(a) => AddressKey::Ip(*a),
            ClientAddr::Unresolved(_) => AddressKey::Unresolved,
        }
    }
}

/// Whether a rule takes part in session evaluation here (violations are the gateway's).
pub(super) fn evaluated(condition: &Condition) -> bool {
    !matches!(condition, Condition::Violations(_))
}

impl<'p, 's> ScopeIndex<'p, 's> {
    pub(super) fn new(policy: &'p Policy) -> Self {
        let words = policy.rules.len().div_ceil(64).max(1);
        Self {
            policy,
            words,
            roles: Table::new(),
            connections: Table::new(),
            addresses: QuickMap::default(),
            scratch: vec![0; words],
        }
    }

    /// The rules that apply to the session, as a bit set over rule indexes, or why it is exempt.
    pub(super) fn classify(&mut self, s: &'s Session) -> Result<Applicable<'_>, ExemptBy> {
        let (policy, words) = (self.policy, self.words);
        let role_id = self.roles.index(address_of(&s.role), &s.role, || {
            build(policy, words, |scope| {
                scope.admits_role(&s.role, &s.member_of)
            })
        });
        let connection_id = self.connections.index(
            (address_of(&s.database), address_of(&s.application)),
            (&s.database, &s.application),
            || {
                build(policy, words, |scope| {
                    scope.admits_database(&s.database) && scope.admits_application(&s.application)
                })
            },
        );
        let address = self
            .addresses
            .entry(AddressKey::of(&s.client_addr))
            .or_insert_with(|| {
                build_apart(
                    policy,
                    words,
                    |scope| scope.exemption_admits_address(&s.client_addr),
                    |scope| scope.rule_admits_address(&s.client_addr),
                )
            });
        let role = &self.roles.entries[role_id as usize];
        let connection = &self.connections.entries[connection_id as usize];
        if let Some(e) = Bits::first_common(&role.0, &connection.0, &address.0) {
            return Err(policy.exempt.entries[e].by);
        }
        self.scratch[0] = role.1.first & connection.1.first & address.1.first;
        for w in 1..self.words {
            self.scratch[w] = role.1.word(w) & connection.1.word(w) & address.1.word(w);
        }
        Ok(Applicable {
            rules: &self.scratch,
            role_id,
        })
    }
}

/// One attribute's entry: `admits` is the part of a scope (a rule's or an exemption's) that
/// tests this attribute, true when the scope does not restrict it.
fn build(policy: &Policy, words: usize, admits: impl Fn(&crate::model::Scope) -> bool) -> Entry {
    build_apart(policy, words, &admits, &admits)
}

/// [`build`] for an attribute that exemptions and rules read differently (the client address:
/// an unresolved one meets no exemption but every rule).
fn build_apart(
    policy: &Policy,
    words: usize,
    exemption_admits: impl Fn(&crate::model::Scope) -> bool,
    rule_admits: impl Fn(&crate::model::Scope) -> bool,
) -> Entry {
    let exempt = &policy.exempt.entries;
    let exemptions = Bits::of(exempt.len(), |i| exemption_admits(&exempt[i].scope));
    let rules = Bits::of(words * 64, |i| {
        policy
            .rules
            .get(i)
            .is_some_and(|rule| evaluated(&rule.condition) && rule_admits(&rule.scope))
    });
    (exemptions, rules)
}
