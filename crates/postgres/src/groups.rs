//! Each role's memberships, shared by the sessions of a snapshot: pure data kept by the
//! connection between snapshots.

use std::collections::HashMap;
use std::sync::Arc;

/// Each role's memberships, shared by its sessions and kept between snapshots while unchanged.
#[derive(Debug, Default)]
pub(crate) struct GroupCache {
    by_role: HashMap<Arc<str>, Arc<[String]>>,
}

impl GroupCache {
    /// The shared list for `role` with these memberships (the one kept, if unchanged).
    pub(crate) fn get(&mut self, role: &Arc<str>, mut groups: Vec<String>) -> Arc<[String]> {
        groups.sort_unstable();
        if let Some(known) = self.by_role.get(role)
            && known[..] == groups[..]
        {
            return known.clone();
        }
        let shared: Arc<[String]> = Arc::from(groups);
        self.by_role.insert(role.clone(), shared.clone());
        shared
    }
}
