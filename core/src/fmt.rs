//! Logging shim: routes to `defmt`, `log`, or nothing, so the rest of the crate logs one way.
//!
//! Never pass a token or any other secret to these macros.
#![allow(unused_macros)]

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::trace!($($arg)*);
        #[cfg(feature = "log")]
        ::log::trace!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        { let _ = ($( & $arg ),*); }
    }};
}

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)*);
        #[cfg(feature = "log")]
        ::log::debug!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        { let _ = ($( & $arg ),*); }
    }};
}

macro_rules! warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)*);
        #[cfg(feature = "log")]
        ::log::warn!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        { let _ = ($( & $arg ),*); }
    }};
}
