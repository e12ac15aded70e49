//! Typed reads from one TOML table, reporting wrong types and unknown keys as diagnostics.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Collector, did_you_mean};

/// A string value and where it is in the file.
#[derive(Debug, Clone)]
pub(crate) struct Located<T> {
    pub(crate) value: T,
    pub(crate) span: Range<usize>,
}

/// Reads the keys of one table; keys it does not declare are reported as unknown.
pub(crate) struct TableReader<'t, 'i> {
    table: &'t DeTable<'i>,
    /// How the table is named in messages: `[agent]`, `rule "inactivity"`.
    pub(crate) context: String,
    known: &'static [&'static str],
}

/// An article and a type name for messages: "an integer", "a string".
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::Integer(_) => "an integer".into(),
        DeValue::Array(_) => "an array".into(),
        other => format!("a {}", other.type_str()),
    }
}

impl<'t, 'i> TableReader<'t, 'i> {
    pub(crate) fn new(
        table: &'t DeTable<'i>,
        context: impl Into<String>,
        known: &'static [&'static str],
    ) -> Self {
        Self {
            table,
            context: context.into(),
            known,
        }
    }

    /// The raw value of a known key.
    pub(crate) fn get(&self, key: &'static str) -> Option<&'t Spanned<DeValue<'i>>> {
        debug_assert!(self.known.contains(&key), "{key} is not declared");
        self.table.get(key)
    }

    /// The span of a key's name, for messages about the key itself.
    pub(crate) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(k, _)| k.span())
    }

    /// A string value; `expected` completes "must be ...".
    pub(crate) fn string(
        &self,
        c: &mut Collector<'_>,
        key: &'static str,
        expected: &str,
    ) -> Option<Located<String>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Located {
                value: s.to_string(),
                span: value.span(),
            }),
            other => {
                c.error(
                    value.span(),
                    format!(
                        "`{key}` in {} must be {expected}, not {}",
                        self.context,
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    /// A boolean value.
    pub(crate) fn boolean(
        &self,
        c: &mut Collector<'_>,
        key: &'static str,
    ) -> Option<Located<bool>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(Located {
                value: *b,
                span: value.span(),
            }),
            other => {
                c.error(
                    value.span(),
                    format!(
                        "`{key}` in {} must be true or false, not {}",
                        self.context,
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    /// An integer value (any sign: the caller checks the range).
    pub(crate) fn integer(
        &self,
        c: &mut Collector<'_>,
        key: &'static str,
        expected: &str,
    ) -> Option<Located<i64>> {
        let value = self.get(key)?;
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        match parsed {
            Some(n) => Some(Located {
                value: n,
                span: value.span(),
            }),
            None => {
                let what = match value.get_ref() {
                    DeValue::Integer(_) => "a number out of range".to_owned(),
                    other => describe(other),
                };
                c.error(
                    value.span(),
                    format!("`{key}` in {} must be {expected}, not {what}", self.context),
                );
                None
            }
        }
    }

    /// A list of strings; `expected` describes one element.
    pub(crate) fn string_list(
        &self,
        c: &mut Collector<'_>,
        key: &'static str,
        expected: &str,
    ) -> Option<Located<Vec<Located<String>>>> {
        let value = self.get(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            let example = match value.get_ref() {
                DeValue::String(s) => format!("; write {key} = [\"{s}\"]"),
                _ => String::new(),
            };
            c.error(
                value.span(),
                format!(
                    "`{key}` in {} must be a list of {expected}, not {}{example}",
                    self.context,
                    describe(value.get_ref())
                ),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Located {
                    value: s.to_string(),
                    span: item.span(),
                }),
                other => {
                    ok = false;
                    c.error(
                        item.span(),
                        format!(
                            "each entry of `{key}` in {} must be {expected}, not {}",
                            self.context,
                            describe(other)
                        ),
                    );
                }
            }
        }
        ok.then_some(Located {
            value: out,
            span: value.span(),
        })
    }

    /// A nested table.
    pub(crate) fn table(
        &self,
        c: &mut Collector<'_>,
        key: &'static str,
        expected: &str,
    ) -> Option<(&'t DeTable<'i>, Range<usize>)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some((t, value.span())),
            other => {
                c.error(
                    value.span(),
                    format!(
                        "`{key}` in {} must be {expected}, not {}",
                        self.context,
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    /// Report every key the table does not declare, with a suggestion when one is close.
    pub(crate) fn finish(self, c: &mut Collector<'_>) {
        for (key, _) in self.table.iter() {
            let name = key.get_ref().as_ref();
            if self.known.contains(&name) {
                continue;
            }
            let hint = match did_you_mean(name, self.known) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => format!("; expected one of: {}", self.known.join(", ")),
            };
            c.error(
                key.span(),
                format!("unknown key `{name}` in {}{hint}", self.context),
            );
        }
    }
}
