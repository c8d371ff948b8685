//! Where a command's responses go: a buffer flushed to the driver's
//! socket, in one write per command unless a long response streams.

use std::future::Future;
use std::pin::Pin;

use proto_imap::{Code, Data, Encoder, Response, Status, Tag};

use super::error::ImapError;

/// Where responses go: the driver's socket.
pub trait Sink: Send {
    /// Writes and flushes; false when the client is gone.
    fn send<'a>(&'a mut self, bytes: &'a [u8]) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

/// Bytes buffered before a long response is flushed mid-command.
pub const OUT_FLUSH_AT: usize = 256 * 1024;

/// Buffered responses of one command.
pub struct Out<'s> {
    pub buf: Vec<u8>,
    pub enc: Encoder,
    sink: &'s mut dyn Sink,
}

impl<'s> Out<'s> {
    pub fn new(sink: &'s mut dyn Sink, enc: Encoder) -> Self {
        Out {
            buf: Vec::new(),
            enc,
            sink,
        }
    }

    pub fn push(&mut self, r: &Response) {
        r.write(&self.enc, &mut self.buf);
    }

    pub fn data(&mut self, d: Data) {
        self.push(&Response::Data(d));
    }

    pub fn untagged(&mut self, status: Status, code: Option<Code>, text: &str) {
        self.push(&Response::Untagged {
            status,
            code,
            text: text.into(),
        });
    }

    /// Sends what is buffered.
    pub async fn flush(&mut self) -> Result<(), ImapError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let ok = self.sink.send(&self.buf).await;
        self.buf.clear();
        if ok { Ok(()) } else { Err(ImapError::Gone) }
    }

    /// Sends when enough is buffered (long FETCH responses stream out).
    pub async fn flush_if_big(&mut self) -> Result<(), ImapError> {
        if self.buf.len() >= OUT_FLUSH_AT {
            self.flush().await
        } else {
            Ok(())
        }
    }
}

/// Writes a tagged status response.
pub fn tagged(out: &mut Out<'_>, tag: &Tag, status: Status, code: Option<Code>, text: &str) {
    out.push(&Response::Tagged {
        tag: tag.clone(),
        status,
        code,
        text: text.into(),
    });
}
