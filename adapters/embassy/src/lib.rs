//! # ssm-embassy
//!
//! AWS Systems Manager Session Manager sessions from a microcontroller, on embassy: the
//! [`ssm_proto`] engine driven by a [`Runner`] task, used through a small `Copy` [`Session`]
//! handle, over any `embedded-io-async` stream (TCP, or TLS with server certificate
//! verification).
//!
//! ```text
//!  ssm_embassy::new(transport, config, &mut RESOURCES, seed) -> (Session, Runner)
//!
//!  your task ── Session (Copy): read / write / resize / terminate / next_event
//!                   │ RefCell in Resources (caller-owned static memory)
//!  runner task ── Runner::run(): WebSocket upgrade ─► OpenDataChannelInput ─► loop {
//!                   read half ─► WebSocket ─► engine.handle_input      (never cancelled)
//!                   engine.poll_transmit ─► WebSocket ─► write half
//!                   Timer::at(engine.poll_timeout()) or a handle's command }
//! ```
//!
//! The crate decides nothing about the protocol (when to ack, retransmit, close): the engine
//! does. It moves bytes and time, and translates errors.
//!
//! ## Usage
//! 0. Without a StartSession answer from elsewhere, call the SSM API from the device: an
//!    [`Api`] (endpoint, your credentials in an [`OwnedCredentials`], a [`Clock`] set from an
//!    RTC or learned from the service's `Date`) over a TLS connection to
//!    `ssm.<region>.amazonaws.com` (feature `net`: `connect_api`): [`Api::start_session`],
//!    [`Api::resume_session`],
//!    [`Api::terminate_session`]. [`Api::sign_upgrade`] gives the SigV4 headers for
//!    [`Config::headers`].
//! 1. Get a connected transport as a read half and a write half. With embassy-net and TLS, the
//!    [`connect`] helper (feature `net`) does DNS, TCP, TLS and returns the pair already wired.
//!    By hand: `TcpSocket::split()`, then [`duplex::DuplexState`] + [`tls::connect`] +
//!    `TlsConnection::split()`.
//! 2. [`new`] with a [`Config`] (from the StartSessionResponse: [`Config::from_response`]) and a
//!    `&'static mut` [`Resources`], and a seed from a hardware RNG.
//! 3. Spawn [`Runner::run`]; use the [`Session`] handle: [`embedded_io_async::Read`] gives the
//!    remote output (stdout and stderr merged; [`Session::read_stream`] tells them apart),
//!    [`embedded_io_async::Write`] sends input (`flush` waits for the agent's acks). Every async
//!    call has a `try_*` twin.
//! 4. When the session closes, the runner sends the WebSocket close frame and returns; closing
//!    the transport is yours (drop or close it). The `connect` helper's `NetRunner` closes its
//!    TCP connection itself (FIN, or RST after 5 s).
//!
//! When the service closes the WebSocket (about every 60 minutes), [`Runner::run`] ends with
//! [`Error::TransportClosed`]; [`Runner::run_resuming`] instead calls ResumeSession through a
//! [`ResumeSource`] you provide (typically [`Api::resume_session`] plus a new TLS connection),
//! checks the answer like StartSession's, reconnects and carries on with the engine's state.
//! Over embassy-net, [`NetApi`] (feature `net`) is that source, and
//! [`NetRunner::run_resuming`] closes the first connection before the first resume.
//!
//! A device that calls the API itself does better with [`unconnected`]: the session starts
//! without a connection and its runner ([`Unconnected::run`]) gets every one, the first too,
//! from an [`OpenSource`] such as `NetApi`, so one `NetResources` serves the API calls and all
//! the data channels, one after the other (about 30 KB less static RAM than `connect_with`
//! plus a `NetApi`).
//!
//! ## Memory
//! [`Resources`] holds the engine with device-sized capacities ([`SEND`] 16 KiB window,
//! [`RECV`] 4 KiB receive, [`REORDER`] 8 out-of-order messages), the WebSocket reassembly buffer
//! and the IO buffers. TLS adds 16 KiB + 4 KiB of record buffers ([`NetResources`]).
//!
//! ## Features
//! - `tls`: TLS 1.3 via embedded-tls, verifying ECDSA P-256 chains ([`tls`] says exactly what is
//!   verified); `tls::Verification::DangerousNoVerification` is the only way to turn it off.
//! - `tls-rsa`: RSA chains too (what AWS endpoints present); needs a global allocator on the
//!   device (embedded-tls's RSA verifier allocates; its high-water mark for an RSA-2048 chain
//!   is about 12 KB). `examples/boards/nucleo-f429zi` sets one up without `unsafe`.
//! - `net`: the [`connect`] helper over an `embassy_net::tcp::TcpSocket`.
//! - `kms`: KMS session encryption (PROTOCOL.md §6). Set `Config::session.encryption` to
//!   `Encryption::Kms`; on [`Event::DataKeyNeeded`] read the `GenerateDataKey` request with
//!   `Session::data_key_request` (key id, 64 bytes, the exact encryption context), get the key
//!   by your own means (KMS over your HTTPS client, or a broker) and answer with
//!   `Session::set_data_key` or `Session::refuse_data_key`.
//! - `defmt` / `log`: logging (never the token); exclusive.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` are mutually exclusive");

#[macro_use]
mod fmt;

pub mod api;
pub mod clock;
#[cfg(feature = "net")]
mod connect;
pub mod duplex;
mod error;
pub mod resume;
mod session;
#[cfg(feature = "tls")]
pub mod tls;

pub use api::{Api, ApiBuffers, OwnedCredentials, SignedUpgrade, StreamUrls};
pub use clock::Clock;
#[cfg(feature = "net")]
pub use connect::{
    connect, connect_api, connect_api_to, connect_to, connect_with, ApiConnection, NetApi,
    NetResources, NetRunner, NetSocket,
};
pub use error::Error;
pub use resume::{unconnected, OpenSource, Opened, ResumeSource, Resumed, Split, Unconnected};
pub use session::{
    new, Config, Engine, Resources, Runner, Session, TryError, RECV, REORDER, SEND, TXQ, UNACKED,
};
pub use ssm_proto::session::{CloseReason, Event, Stream};
