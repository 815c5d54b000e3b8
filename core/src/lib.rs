//! # ssm-proto
//!
//! The client (and agent) side of the AWS Systems Manager **Session Manager** data channel, as a
//! sans-IO library: no sockets, no clocks, no allocator. It fits a microcontroller as well as a
//! server.
//!
//! What it never does: perform IO, read a clock, allocate, or use `unsafe`. Time comes in as an
//! [`Instant`] from the caller; bytes come in and go out through caller buffers.
//!
//! ```text
//!  StartSessionResponse ──► model::StreamUrl ──► (adapter opens WebSocket)
//!                                                     │
//!   adapter ── handle_input / handle_timeout ──►  session::Session ── poll_transmit ──► WebSocket
//!           ◄── poll_event / read ─────────────        │ uses
//!                                               wire (frames) + payload (JSON control)
//! ```
//!
//! Modules:
//! - [`model`]: the `StartSessionResponse` (session id, validated `StreamUrl`, redacted token).
//! - [`api`]: the SSM API calls a device makes (StartSession, ResumeSession, TerminateSession):
//!   JSON bodies, signed HTTP/1.1 requests, response parsing into typed answers and errors.
//! - [`sigv4`]: SigV4 presigning of the data-channel URL (service `ssmmessages`) and header
//!   signing of API calls and the WebSocket upgrade.
//! - [`wire`]: the binary frame codec (typed view [`wire::Frame`] + [`wire::FrameRepr`]).
//! - [`time`]: integer-millisecond [`Instant`] and [`Duration`].
//! - [`uuid`]: the 16-byte ids the protocol uses (message ids, request ids).
//! - [`smux`]: smux v1 stream multiplexing (port forwarding), codec and state machine.
//! - [`ws`]: WebSocket (RFC 6455) handshake and framing, client and server, sans-IO.
//! - [`payload`]: the JSON (and small binary) control payloads: acknowledge, handshake, size,
//!   channel_closed, flag, exit code, OpenDataChannelInput.
//! - `kms` (feature `kms`): KMS session encryption (AES-256-GCM under a KMS data key) and its
//!   handshake, both roles, sans IO.
//! - [`session`]: the sans-IO session engine (handshake, reliable ordered delivery, flow control),
//!   client and agent roles.
//!
//! ## Features
//! - `std`: nothing beyond `std::error::Error` compatibility today (core errors already implement
//!   `core::error::Error`).
//! - `defmt`: `defmt::Format` for public types.
//! - `log`: logging through the `log` crate.
//! - `kms`: KMS session encryption (the `kms` module, `session::Encryption::Kms`). Off by
//!   default: about 15 KB of Cortex-M4 flash.
//!
//! `defmt` and `log` are exclusive.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "std", test))]
extern crate std;

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` are mutually exclusive");

#[macro_use]
mod fmt;
mod decimal;

pub mod api;
#[cfg(feature = "kms")]
pub mod kms;
pub mod model;
pub mod payload;
pub mod session;
pub mod sigv4;
pub mod smux;
pub mod time;
pub mod uuid;
pub mod wire;
pub mod ws;

pub use time::{Duration, Instant};
pub use uuid::Uuid;
