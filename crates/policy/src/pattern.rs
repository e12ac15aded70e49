//! Name patterns (`analyst_*`, `batch-?`) and address blocks (`10.20.0.0/16`, `local`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::session::ClientAddr;

/// A glob over a name: `*` matches any run of characters, `?` exactly one. Case-sensitive,
/// because PostgreSQL role, database and application names are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    shape: Shape,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// No wildcard: plain equality.
    Exact,
    /// `prefix*` — the common case, checked without the general matcher.
    Prefix(String),
    /// Anything else.
    General(Vec<char>),
}

impl Glob {
    /// Compile a pattern. Every string is a valid pattern.
    pub fn new(text: &str) -> Self {
        let wildcards = text.chars().filter(|c| *c == '*' || *c == '?').count();
        let shape = if wildcards == 0 {
            Shape::Exact
        } else if wildcards == 1 && text.ends_with('*') {
            Shape::Prefix(text[..text.len() - 1].to_owned())
        } else {
            Shape::General(text.chars().collect())
        };
        Self {
            text: text.to_owned(),
            shape,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern contains a wildcard.
    pub fn is_literal(&self) -> bool {
        self.shape == Shape::Exact
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        match &self.shape {
            Shape::Exact => self.text == name,
            Shape::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Shape::General(pattern) => {
                let name: Vec<char> = name.chars().collect();
                wildcard_match(pattern, &name)
            }
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Iterative wildcard matching with single-star backtracking: linear in practice, no recursion.
fn wildcard_match(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Where a session connects from: an address block, or `local` for Unix-socket sessions (which
/// have no client address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressBlock {
    /// Sessions over a Unix-domain socket.
    Local,
    /// An IPv4 or IPv6 network in CIDR notation; a bare address is a single host.
    Net {
        /// The network address (host bits zero).
        network: IpAddr,
        /// Prefix length in bits.
        prefix: u8,
    },
}

/// Why an address block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not an address, or a prefix that is not a number.
    #[error(
        "\"{0}\" is not an address block; expected CIDR notation like \"10.20.0.0/16\" or \"2001:db8::/32\", a single address, or \"local\""
    )]
    Malformed(String),
    /// A prefix longer than the address.
    #[error("\"{text}\" has prefix /{prefix}, but an {family} address has only {max} bits")]
    PrefixTooLong {
        /// As written.
        text: String,
        /// The prefix given.
        prefix: u32,
        /// IPv4 or IPv6.
        family: &'static str,
        /// 32 or 128.
        max: u8,
    },
    /// Bits set after the prefix: probably a typo in the network or the prefix.
    #[error("\"{text}\" has host bits set; did you mean \"{suggestion}\"?")]
    HostBits {
        /// As written.
        text: String,
        /// The network with host bits cleared.
        suggestion: String,
    },
}

impl FromStr for AddressBlock {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("local") {
            return Ok(AddressBlock::Local);
        }
        let malformed = || AddressError::Malformed(text.to_owned());
        let (addr, prefix) = match trimmed.split_once('/') {
            Some((addr, prefix)) => {
                let prefix: u32 = prefix.parse().map_err(|_| malformed())?;
                (
                    addr.parse::<IpAddr>().map_err(|_| malformed())?,
                    Some(prefix),
                )
            }
            None => (trimmed.parse::<IpAddr>().map_err(|_| malformed())?, None),
        };
        let (max, family) = match addr {
            IpAddr::V4(_) => (32u8, "IPv4"),
            IpAddr::V6(_) => (128u8, "IPv6"),
        };
        let prefix = prefix.unwrap_or(u32::from(max));
        if prefix > u32::from(max) {
            return Err(AddressError::PrefixTooLong {
                text: text.to_owned(),
                prefix,
                family,
                max,
            });
        }
        // prefix <= 128 here.
        let prefix = prefix as u8;
        let network = mask(addr, prefix);
        if network != addr {
            return Err(AddressError::HostBits {
                text: text.to_owned(),
                suggestion: format!("{network}/{prefix}"),
            });
        }
        Ok(AddressBlock::Net { network, prefix })
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & keep).into())
        }
    }
}

impl AddressBlock {
    /// Whether a session's client address is known to be in this block: a socket is in `local`
    /// only, an address in the blocks that contain it, and an unresolved client (a host name,
    /// no address) in none. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are compared as IPv4.
    pub fn contains(&self, client: &ClientAddr) -> bool {
        match (self, client) {
            (AddressBlock::Local, ClientAddr::Socket) => true,
            (_, ClientAddr::Unresolved(_))
            | (AddressBlock::Local, ClientAddr::Ip(_))
            | (AddressBlock::Net { .. }, ClientAddr::Socket) => false,
            (AddressBlock::Net { network, prefix }, ClientAddr::Ip(addr)) => {
                let addr = match *addr {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*addr, IpAddr::V4),
                    v4 => v4,
                };
                match (network, addr) {
                    (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                        mask(addr, *prefix) == *network
                    }
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for AddressBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressBlock::Local => f.write_str("local"),
            AddressBlock::Net { network, prefix } => write!(f, "{network}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(Glob::new("analyst_*").matches("analyst_kim"));
        assert!(Glob::new("analyst_*").matches("analyst_"));
        assert!(!Glob::new("analyst_*").matches("senior_analyst_kim"));
        assert!(Glob::new("batch-?").matches("batch-1"));
        assert!(!Glob::new("batch-?").matches("batch-12"));
        assert!(Glob::new("*dump*").matches("pg_dumpall"));
        assert!(Glob::new("a*b*c").matches("axxbyyc"));
        assert!(!Glob::new("a*b*c").matches("axxbyy"));
        assert!(Glob::new("Ünï?ode").matches("Ünïcode"));
        assert!(!Glob::new("Postgres").matches("postgres"));
        assert!(Glob::new("*").matches(""));
    }

    #[test]
    fn address_blocks() {
        let ip = |a: &str| ClientAddr::Ip(a.parse().unwrap());
        let net: AddressBlock = "10.20.0.0/16".parse().unwrap();
        assert!(net.contains(&ip("10.20.3.4")));
        assert!(net.contains(&ip("::ffff:10.20.3.4")));
        assert!(!net.contains(&ip("10.21.0.1")));
        assert!(!net.contains(&ClientAddr::Socket));
        let local: AddressBlock = "local".parse().unwrap();
        assert!(local.contains(&ClientAddr::Socket));
        assert!(!local.contains(&ip("127.0.0.1")));
        let host: AddressBlock = "192.0.2.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        let v6: AddressBlock = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(&ip("2001:db8::1")));
        let all: AddressBlock = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(&ip("203.0.113.9")));
        // A host name in place of an address is in no block, `local` included.
        let name = ClientAddr::Unresolved("localhost".into());
        assert!(!local.contains(&name));
        assert!(!all.contains(&name));
    }

    #[test]
    fn address_block_errors() {
        assert_eq!(
            "10.20.1.0/16".parse::<AddressBlock>(),
            Err(AddressError::HostBits {
                text: "10.20.1.0/16".into(),
                suggestion: "10.20.0.0/16".into()
            })
        );
        assert!(matches!(
            "10.0.0.0/33".parse::<AddressBlock>(),
            Err(AddressError::PrefixTooLong { prefix: 33, .. })
        ));
        for bad in ["10.0.0/8", "10.0.0.0/x", "example.com", "", "10.0.0.0/-1"] {
            assert!(
                matches!(bad.parse::<AddressBlock>(), Err(AddressError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
