//! A server WebSocket that closes itself after a while with `close 1000 "Bye"`, as the service
//! closes data channels about every hour (PROTOCOL.md §6a).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Wraps a WebSocket: after `after`, the next poll of its stream sends the close frame; the
/// peer's answer then ends the stream as any close does.
pub(crate) struct ByeAfter<W> {
    inner: W,
    timer: Pin<Box<tokio::time::Sleep>>,
    sent: bool,
}

impl<W> ByeAfter<W> {
    pub(crate) fn new(inner: W, after: Duration) -> Self {
        ByeAfter {
            inner,
            timer: Box::pin(tokio::time::sleep(after)),
            sent: false,
        }
    }
}

impl<W> Stream for ByeAfter<W>
where
    W: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    type Item = Result<Message, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if !this.sent && this.timer.as_mut().poll(cx).is_ready() {
            match Pin::new(&mut this.inner).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let bye = Message::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "Bye".into(),
                    }));
                    if let Err(e) = Pin::new(&mut this.inner).start_send(bye) {
                        return Poll::Ready(Some(Err(e)));
                    }
                    this.sent = true;
                    tracing::debug!("closing the data channel (1000 Bye)");
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        if this.sent {
            // Pending or done, the close frame goes out; the stream's answer follows.
            let _ = Pin::new(&mut this.inner).poll_flush(cx);
        }
        Pin::new(&mut this.inner).poll_next(cx)
    }
}

impl<W> Sink<Message> for ByeAfter<W>
where
    W: Sink<Message, Error = WsError> + Unpin,
{
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        Pin::new(&mut self.inner).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
