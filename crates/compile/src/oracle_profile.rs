//! Oracle profiles and the groups of rules they combine: the data that the profile statements
//! (`oracle`) and the user assignments (`oracle_users`) are both written from.

use crate::scope::Selector;

/// The rules that share one role selector: one scope, with its strictest limits.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// The roles it covers.
    pub(crate) selector: Selector,
    /// Per resource (in [`crate::oracle::Resource::ALL`] order): the smallest amount, the rule it came from and
    /// what was rounded to get it.
    pub(crate) limits: [Option<Limit3>; 3],
}

/// One resource limit of a group: amount, rule name, rounding note.
pub(crate) type Limit3 = (u64, String, Option<String>);

/// A profile for one combination of groups (by index, ascending).
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    /// The groups it combines.
    pub(crate) groups: Vec<usize>,
    /// Per resource: the smallest amount over its groups.
    pub(crate) limits: [Option<u64>; 3],
}

impl Profile {
    /// `CURFEW_1`, `CURFEW_1_2`: 1-based group numbers.
    pub(crate) fn name(&self) -> String {
        let numbers: Vec<String> = self.groups.iter().map(|g| (g + 1).to_string()).collect();
        format!("CURFEW_{}", numbers.join("_"))
    }
}
