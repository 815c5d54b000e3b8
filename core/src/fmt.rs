//! Logging shim: routes to `defmt`, `log`, or nothing, so the rest of the crate logs one way.
//!
//! Format strings and arguments must suit both back ends: `{}` placeholders with integers,
//! `bool` or `&str` arguments (defmt's `{=u8}`-style hints and `Display`-only types do not
//! build with `log`, and the reverse). With no logging feature the macros still type-check
//! their arguments (so a build without features catches a broken log line) but never evaluate
//! them: the arguments sit in an `if false` block that the compiler removes.
//!
//! Never pass a token or any other secret to these macros.
#![allow(unused_macros)]

/// The no-logging expansion shared by the three macros: type-checks, never runs.
macro_rules! log_nothing {
    ($($arg:tt)*) => {{
        if false {
            let _ = ::core::format_args!($($arg)*);
        }
    }};
}

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::trace!($($arg)*);
        #[cfg(feature = "log")]
        ::log::trace!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        log_nothing!($($arg)*);
    }};
}

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)*);
        #[cfg(feature = "log")]
        ::log::debug!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        log_nothing!($($arg)*);
    }};
}

macro_rules! warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)*);
        #[cfg(feature = "log")]
        ::log::warn!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        log_nothing!($($arg)*);
    }};
}

#[cfg(test)]
mod tests {
    /// Format arguments build with whatever back end the tests run with; without one they are
    /// never evaluated.
    #[test]
    fn format_arguments_build_and_are_not_evaluated_without_a_back_end() {
        let mut calls = 0u32;
        let mut bump = || {
            calls += 1;
            calls
        };
        let seq: i64 = 7;
        trace!("seq {} of {}", seq, bump());
        debug!("seq {}", seq);
        warn!("seq {} expected {}", seq, bump());
        debug!("no arguments");
        // `log` evaluates them only at an enabled level; without a back end, never.
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        assert_eq!(calls, 0);
        #[cfg(feature = "log")]
        assert!(calls <= 2);
    }
}
