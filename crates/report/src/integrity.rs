//! The report's account of an integrity check of the audit log (`curfew_audit::IntegrityCheck`):
//! the files, what was checked, and the problems found outside the chain's own hashes.

use curfew_audit::IntegrityCheck;

use crate::{ChainProblem, Integrity};

impl Integrity {
    /// The report's account of what was checked beyond the chain's own hashes.
    pub fn from_check(checked: &IntegrityCheck) -> Integrity {
        let chain = &checked.chain;
        let mut problems: Vec<ChainProblem> = checked
            .problems()
            .into_iter()
            .skip(chain.verification.problems.len())
            .map(|p| ChainProblem {
                line: p.line,
                seq: p.seq,
                kind: p.kind.as_str().to_owned(),
                message: p.message,
            })
            .collect();
        problems.sort_by_key(|p| p.seq.unwrap_or(u64::MAX));
        Integrity {
            files: chain
                .files
                .iter()
                .map(|f| f.path.display().to_string())
                .collect(),
            chain_id: chain.chain.clone(),
            seqs: chain.first_seq.zip(chain.last_seq),
            checked: checked.lines(),
            anchored_up_to: checked.anchored_up_to(),
            contradicted: !problems.is_empty(),
            problems,
        }
    }
}
