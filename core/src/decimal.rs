//! Decimal text of integers without `core::fmt` (which would cost a device about a kilobyte of
//! flash): JSON numbers, HTTP header values, SigV4 query parameters, channel_closed dates.

/// The decimal digits of a `u64`, held inline (20 digits fit `u64::MAX`).
#[derive(Clone, Copy)]
pub(crate) struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    pub(crate) fn new(mut v: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits are ever written.
        core::str::from_utf8(self.as_bytes()).unwrap_or("0")
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    #[test]
    fn matches_core_fmt() {
        for v in [0, 1, 9, 10, 99, 100, 65_535, 1_795_000_000_000, u64::MAX] {
            assert_eq!(Decimal::new(v).as_str(), std::format!("{v}"));
        }
    }
}
