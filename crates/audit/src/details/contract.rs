//! The contract every typed detail keeps: which events carry it, how it is written into a
//! record, and how it is read back from one.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::event::Event;
use crate::record::{Entry, Record};

/// The detail of one or more kinds of record.
pub trait Detail: Serialize + DeserializeOwned {
    /// The events whose records carry this detail.
    const EVENTS: &'static [Event];

    /// The JSON value written in the record's `detail`.
    fn to_value(&self) -> serde_json::Value {
        // Cannot fail: every detail is a struct with string keys and no custom serializer
        // that errs (the round-trip tests serialize each one).
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Why a record's detail could not be read as the type asked for.
#[derive(Debug, thiserror::Error)]
pub enum DetailError {
    /// The record is of another event than the detail type is for.
    #[error("a {found} record does not carry this detail (it is for {expected})")]
    OtherEvent {
        /// The record's event.
        found: String,
        /// The events the detail type is for.
        expected: String,
    },
    /// The record has no detail.
    #[error("the {event} record (seq {seq}) has no detail")]
    Missing {
        /// The record's event.
        event: String,
        /// The record's seq.
        seq: u64,
    },
    /// The detail is not of the expected shape.
    #[error("the detail of the {event} record (seq {seq}) cannot be read: {source}")]
    Malformed {
        /// The record's event.
        event: String,
        /// The record's seq.
        seq: u64,
        /// What the JSON decoder said.
        #[source]
        source: serde_json::Error,
    },
}

impl Entry {
    /// The record's detail as `D`, if the record is of one of `D`'s events and its detail
    /// has `D`'s shape (fields that are missing or of another type read as absent).
    pub fn details<D: Detail>(&self) -> Result<D, DetailError> {
        if !D::EVENTS.iter().any(|e| e.as_str() == self.event) {
            return Err(DetailError::OtherEvent {
                found: self.event.clone(),
                expected: D::EVENTS
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let detail = self.detail.as_ref().ok_or_else(|| DetailError::Missing {
            event: self.event.clone(),
            seq: self.seq,
        })?;
        D::deserialize(detail).map_err(|source| DetailError::Malformed {
            event: self.event.clone(),
            seq: self.seq,
            source,
        })
    }
}

impl Record {
    /// Sets the detail from its typed form.
    #[must_use]
    pub fn with_details<D: Detail>(mut self, detail: &D) -> Self {
        self.detail = Some(detail.to_value());
        self
    }
}
