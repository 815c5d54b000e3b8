//! The JSON request bodies of StartSession, ResumeSession and TerminateSession, written into a
//! caller buffer with JSON escapes, no allocation.

use crate::payload::json::{emit_with, Writer};

use super::Error;

/// A StartSession request: `{"Target":…,"DocumentName":…,"Parameters":{…},"Reason":…}`.
///
/// `Parameters` maps each name to a list of strings, as the SSM API defines it
/// (`{"command":["uptime"]}`); absent when empty. Every string is escaped as JSON needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartSessionRequest<'a> {
    /// The instance or managed node id (`i-…`, `mi-…`).
    pub target: &'a str,
    /// The Session document; `None` for the default shell (`SSM-SessionManagerRunShell`).
    pub document_name: Option<&'a str>,
    /// The document's parameters: name → values.
    pub parameters: &'a [(&'a str, &'a [&'a str])],
    /// A reason recorded with the session (CloudTrail).
    pub reason: Option<&'a str>,
}

fn string(w: &mut Writer<'_>, s: &str) {
    w.raw(b"\"");
    w.escaped(s);
    w.raw(b"\"");
}

/// `"key":"value"`; the keys here are constants that need no escaping.
fn member(w: &mut Writer<'_>, first: bool, key: &str, value: &str) {
    w.key(first, key);
    string(w, value);
}

impl StartSessionRequest<'_> {
    /// Writes the JSON body into `buf`; returns its length. On error nothing is written.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`]; [`Error::BadRequest`] for an empty `target`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.target.is_empty() {
            return Err(Error::BadRequest);
        }
        emit(buf, |w| {
            w.raw(b"{");
            member(w, true, "Target", self.target);
            if let Some(d) = self.document_name {
                member(w, false, "DocumentName", d);
            }
            if !self.parameters.is_empty() {
                w.key(false, "Parameters");
                w.raw(b"{");
                for (i, (name, values)) in self.parameters.iter().enumerate() {
                    if i > 0 {
                        w.raw(b",");
                    }
                    string(w, name);
                    w.raw(b":[");
                    for (j, v) in values.iter().enumerate() {
                        if j > 0 {
                            w.raw(b",");
                        }
                        string(w, v);
                    }
                    w.raw(b"]");
                }
                w.raw(b"}");
            }
            if let Some(r) = self.reason {
                member(w, false, "Reason", r);
            }
            w.raw(b"}");
        })
    }
}

/// Writes `{"SessionId":"…"}`, the body of ResumeSession and TerminateSession.
///
/// # Errors
/// [`Error::BufferTooSmall`]; [`Error::BadRequest`] for an invalid session id (see
/// [`crate::model::validate_session_id`]).
pub fn session_id_body(session_id: &str, buf: &mut [u8]) -> Result<usize, Error> {
    crate::model::validate_session_id(session_id).map_err(|_| Error::BadRequest)?;
    emit(buf, |w| {
        w.raw(b"{");
        member(w, true, "SessionId", session_id);
        w.raw(b"}");
    })
}

fn emit(buf: &mut [u8], f: impl Fn(&mut Writer<'_>)) -> Result<usize, Error> {
    emit_with(buf, f).map_err(|e| match e {
        crate::payload::Error::BufferTooSmall { required } => Error::BufferTooSmall { required },
        _ => Error::BadRequest,
    })
}
