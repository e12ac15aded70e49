//! Which rules apply to a session, computed once per distinct role, database, application and
//! address within one evaluation. Sessions share these far more often than not (a few hundred
//! roles for a hundred thousand sessions), so glob and CIDR matching leave the per-session path.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use crate::model::{Condition, ExemptBy, Policy};
use crate::session::Session;

/// A set of rule indexes.
type Bits = Box<[u64]>;

/// What one key (a role, a database...) contributes: an exemption, or the rules it admits.
type Entry = (Option<ExemptBy>, Bits);

/// A small, fast, non-cryptographic hasher (multiply-rotate) for the per-evaluation caches:
/// keys come from the database, the maps live for one evaluation, so flooding is not a concern.
#[derive(Default)]
pub(super) struct QuickHasher(u64);

impl Hasher for QuickHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(K);
        }
    }
}

type QuickMap<K, V> = HashMap<K, V, BuildHasherDefault<QuickHasher>>;

/// Per-evaluation index from session attributes to applicable rules.
pub(super) struct ScopeIndex<'p, 's> {
    policy: &'p Policy,
    words: usize,
    roles: QuickMap<&'s str, Entry>,
    databases: QuickMap<&'s str, Entry>,
    applications: QuickMap<&'s str, Entry>,
    addresses: QuickMap<Option<IpAddr>, Entry>,
    scratch: Vec<u64>,
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
            roles: QuickMap::default(),
            databases: QuickMap::default(),
            applications: QuickMap::default(),
            addresses: QuickMap::default(),
            scratch: vec![0; words],
        }
    }

    /// The rules that apply to the session, as a bit set over rule indexes, or why it is exempt.
    pub(super) fn classify(&mut self, s: &'s Session) -> Result<&[u64], ExemptBy> {
        let (policy, words) = (self.policy, self.words);
        let role = self.roles.entry(s.role.as_str()).or_insert_with(|| {
            build(
                policy,
                words,
                policy.exempt.by_role(&s.role, &s.member_of),
                |scope| scope.admits_role(&s.role, &s.member_of),
            )
        });
        if let Some(why) = role.0 {
            return Err(why);
        }
        let database = self
            .databases
            .entry(s.database.as_str())
            .or_insert_with(|| {
                build(
                    policy,
                    words,
                    policy.exempt.by_database(&s.database),
                    |scope| scope.admits_database(&s.database),
                )
            });
        if let Some(why) = database.0 {
            return Err(why);
        }
        let application = self
            .applications
            .entry(s.application.as_str())
            .or_insert_with(|| {
                build(
                    policy,
                    words,
                    policy.exempt.by_application(&s.application),
                    |scope| scope.admits_application(&s.application),
                )
            });
        if let Some(why) = application.0 {
            return Err(why);
        }
        let address = self.addresses.entry(s.client_addr).or_insert_with(|| {
            build(
                policy,
                words,
                policy.exempt.by_address(s.client_addr),
                |scope| scope.admits_address(s.client_addr),
            )
        });
        if let Some(why) = address.0 {
            return Err(why);
        }
        for (w, out) in self.scratch.iter_mut().enumerate() {
            *out = role.1[w] & database.1[w] & application.1[w] & address.1[w];
        }
        Ok(&self.scratch)
    }
}

fn build(
    policy: &Policy,
    words: usize,
    exempt: Option<ExemptBy>,
    admits: impl Fn(&crate::model::Scope) -> bool,
) -> Entry {
    let mut bits = vec![0u64; words].into_boxed_slice();
    if exempt.is_none() {
        for (i, rule) in policy.rules.iter().enumerate() {
            if evaluated(&rule.condition) && admits(&rule.scope) {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
    }
    (exempt, bits)
}

/// The indexes of the set bits, in ascending order.
pub(super) fn rule_indexes(bits: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().flat_map(|(w, word)| {
        let mut word = *word;
        std::iter::from_fn(move || {
            (word != 0).then(|| {
                let bit = word.trailing_zeros() as usize;
                word &= word - 1;
                w * 64 + bit
            })
        })
    })
}
