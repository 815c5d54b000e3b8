//! # ssm-embassy
//!
//! AWS Systems Manager Session Manager sessions from a microcontroller, on embassy.
//!
//! Work in progress: today this crate has the TLS layer ([`tls`], embedded-tls with server
//! certificate verification) and [`duplex`] (one cloneable stream from a read half and a write
//! half, so reads are never cancelled).
//!
//! ## Features
//! - `tls`: TLS 1.3 via embedded-tls, verifying ECDSA P-256 chains.
//! - `tls-rsa`: RSA chains too (needs a global allocator on the device).
//! - `defmt` / `log`: logging (never the token); exclusive.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` are mutually exclusive");

#[macro_use]
mod fmt;

pub mod duplex;
#[cfg(feature = "tls")]
pub mod tls;
