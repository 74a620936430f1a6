//! Conversions between protobuf timestamps and chrono.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

/// A protobuf `Timestamp` of `at`.
pub fn to_timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}
