//! PostgreSQL WAL positions (`pg_lsn`): a byte offset in the write-ahead log, written
//! `X/Y` (two hexadecimal halves), as `pg_current_wal_lsn()` prints it.

use std::fmt;
use std::str::FromStr;

/// A WAL position. `Lsn(0)` is the start of the log: every replica has replayed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Why a text is not a WAL position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLsn;

impl fmt::Display for BadLsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a WAL position (X/Y, hexadecimal)")
    }
}

impl FromStr for Lsn {
    type Err = BadLsn;

    fn from_str(text: &str) -> Result<Self, BadLsn> {
        let (high, low) = text.trim().split_once('/').ok_or(BadLsn)?;
        let half = |part: &str| {
            if part.is_empty() || part.len() > 8 {
                return Err(BadLsn);
            }
            u32::from_str_radix(part, 16).map_err(|_| BadLsn)
        };
        Ok(Lsn((u64::from(half(high)?) << 32) | u64::from(half(low)?)))
    }
}

impl Lsn {
    /// Sixteen hexadecimal digits: fixed width, so Redis compares positions as strings.
    pub(crate) fn sortable(self) -> String {
        format!("{:016X}", self.0)
    }

    /// The inverse of [`Lsn::sortable`].
    pub(crate) fn from_sortable(text: &str) -> Option<Self> {
        u64::from_str_radix(text, 16).ok().map(Lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_postgres_form() {
        let lsn = Lsn(0x0000_0001_6B37_4D48);
        assert_eq!(lsn.to_string(), "1/6B374D48");
        assert_eq!("1/6B374D48".parse::<Lsn>(), Ok(lsn));
        assert_eq!("0/0".parse::<Lsn>(), Ok(Lsn(0)));
        assert_eq!("16/b374d48".parse::<Lsn>(), Ok(Lsn(0x16_0B37_4D48)));
    }

    #[test]
    fn refuses_what_is_not_a_position() {
        for text in [
            "",
            "/",
            "1/",
            "/1",
            "1",
            "x/1",
            "1/123456789",
            "-1/0",
            "1/2/3",
        ] {
            assert_eq!(text.parse::<Lsn>(), Err(BadLsn), "{text:?}");
        }
    }

    #[test]
    fn sortable_form_orders_as_positions_do() {
        let (low, high) = (Lsn(0xFF), Lsn(0x1_0000_0000));
        assert!(low.sortable() < high.sortable());
        assert_eq!(Lsn::from_sortable(&high.sortable()), Some(high));
    }
}
