//! The 16-byte identifiers of the protocol: message ids, request ids, client ids.
//!
//! Bytes are kept in the usual RFC 9562 order (the order of the hyphenated text form). The frame
//! header stores a message id with its two 8-byte halves swapped; [`Uuid::from_wire`] and
//! [`Uuid::to_wire`] do that swap, nothing else does.

use core::fmt;
use core::str::FromStr;

/// A UUID in RFC 9562 byte order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

/// Length of the hyphenated text form, `8-4-4-4-12` hex digits.
pub const HYPHENATED_LEN: usize = 36;

/// A string is not a hyphenated UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ParseUuidError;

impl fmt::Display for ParseUuidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a hyphenated uuid (8-4-4-4-12 hex digits)")
    }
}

impl core::error::Error for ParseUuidError {}

impl Uuid {
    /// The all-zero id.
    pub const NIL: Uuid = Uuid([0; 16]);

    /// A version-4 (random) UUID from 16 random bytes: sets the version and variant bits.
    pub const fn from_random_bytes(mut bytes: [u8; 16]) -> Self {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid(bytes)
    }

    /// Decodes the frame header's form, whose 8-byte halves are swapped
    /// (`src/message/clientmessage.go` puts the least significant half first).
    pub fn from_wire(wire: &[u8; 16]) -> Self {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&wire[8..]);
        b[8..].copy_from_slice(&wire[..8]);
        Uuid(b)
    }

    /// Encodes into the frame header's swapped form.
    pub fn to_wire(&self) -> [u8; 16] {
        let mut w = [0u8; 16];
        w[..8].copy_from_slice(&self.0[8..]);
        w[8..].copy_from_slice(&self.0[..8]);
        w
    }

    /// The lowercase hyphenated text form, written into a fixed array (no allocation).
    pub fn to_hyphenated(&self) -> [u8; HYPHENATED_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; HYPHENATED_LEN];
        let mut o = 0;
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                o += 1;
            }
            out[o] = HEX[(byte >> 4) as usize];
            out[o + 1] = HEX[(byte & 0xf) as usize];
            o += 2;
        }
        out
    }

    /// Parses the hyphenated form, either case.
    ///
    /// # Errors
    /// [`ParseUuidError`] unless `s` is exactly 36 characters of `8-4-4-4-12` hex digits.
    pub fn parse_hyphenated(s: &[u8]) -> Result<Self, ParseUuidError> {
        if s.len() != HYPHENATED_LEN {
            return Err(ParseUuidError);
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < HYPHENATED_LEN {
            if matches!(i, 8 | 13 | 18 | 23) {
                if s[i] != b'-' {
                    return Err(ParseUuidError);
                }
                i += 1;
                continue;
            }
            let hi = hex_val(s[i]).ok_or(ParseUuidError)?;
            let lo = hex_val(s[i + 1]).ok_or(ParseUuidError)?;
            out[n] = (hi << 4) | lo;
            n += 1;
            i += 2;
        }
        Ok(Uuid(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for Uuid {
    type Err = ParseUuidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_hyphenated(s.as_bytes())
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.to_hyphenated();
        // The array holds only ASCII hex digits and hyphens.
        f.write_str(core::str::from_utf8(&h).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Uuid {
    fn format(&self, f: defmt::Formatter<'_>) {
        let h = self.to_hyphenated();
        defmt::write!(f, "{=[u8]:a}", &h[..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let s = "1e001679-39cb-4694-92c4-22acd208a007";
        let u: Uuid = s.parse().unwrap();
        assert_eq!(&u.to_hyphenated()[..], s.as_bytes());
        let upper: Uuid = "1E001679-39CB-4694-92C4-22ACD208A007".parse().unwrap();
        assert_eq!(u, upper);
    }

    #[test]
    fn wire_swaps_halves() {
        let u: Uuid = "1e001679-39cb-4694-92c4-22acd208a007".parse().unwrap();
        let w = u.to_wire();
        assert_eq!(w[..8], [0x92, 0xc4, 0x22, 0xac, 0xd2, 0x08, 0xa0, 0x07]);
        assert_eq!(Uuid::from_wire(&w), u);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "1e001679-39cb-4694-92c4-22acd208a00",
            "1e001679x39cb-4694-92c4-22acd208a007",
            "1e001679-39cb-4694-92c4-22acd208a00g",
            "1e00167939cb469492c422acd208a007xxxx",
        ] {
            assert_eq!(bad.parse::<Uuid>(), Err(ParseUuidError), "{bad}");
        }
    }

    #[test]
    fn random_sets_version_and_variant() {
        let u = Uuid::from_random_bytes([0xff; 16]);
        assert_eq!(u.0[6] >> 4, 4);
        assert_eq!(u.0[8] >> 6, 0b10);
    }
}
