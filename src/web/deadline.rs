//! An idle deadline on every connection, below TLS.
//!
//! Guarantees: a connection on which the client sends nothing for `idle` while the
//! server waits to read (headers, a form, an upload, or between requests), or takes
//! nothing for `idle` while the server waits to write (a download the client stopped
//! reading), fails with `TimedOut`, so the server closes it and drops whatever the
//! request held: its transfer slot, its blocking thread, its temp file. Any
//! progress restarts the clock, so a slow client that keeps going is never cut off.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Wraps every connection `A` accepts in a [`Deadline`].
pub struct IdleDeadline<A> {
    pub inner: A,
    pub idle: Duration,
}

impl<A: Acceptor> Acceptor for IdleDeadline<A> {
    type Io = Deadline<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((Deadline::new(io, self.idle), local, remote, scheme))
    }
}

/// One connection with an idle clock for each direction.
pub struct Deadline<IO> {
    io: IO,
    idle: Duration,
    reading: Option<Pin<Box<Sleep>>>,
    writing: Option<Pin<Box<Sleep>>>,
}

impl<IO> Deadline<IO> {
    pub fn new(io: IO, idle: Duration) -> Self {
        Self {
            io,
            idle,
            reading: None,
            writing: None,
        }
    }
}

/// Passes `poll`'s result on; while it is pending, runs `clock` (started on the
/// first wait) and fails once it has run out. Progress stops the clock.
fn watch<T>(
    poll: Poll<io::Result<T>>,
    clock: &mut Option<Pin<Box<Sleep>>>,
    idle: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    match poll {
        Poll::Ready(result) => {
            *clock = None;
            Poll::Ready(result)
        }
        Poll::Pending => {
            let sleep = clock.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection was idle too long",
                ))),
                Poll::Pending => Poll::Pending,
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Deadline<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        watch(poll, &mut this.reading, this.idle, cx)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Deadline<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        watch(poll, &mut this.writing, this.idle, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        watch(poll, &mut this.writing, this.idle, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        watch(poll, &mut this.writing, this.idle, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        watch(poll, &mut this.writing, this.idle, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out_and_a_slow_one_does_not() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut conn = Deadline::new(ours, Duration::from_secs(10));
        let mut buf = [0u8; 8];
        // A byte every 9 s keeps the connection alive, however long it takes.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(9)).await;
            theirs.write_all(b"x").await.expect("write");
            assert_eq!(conn.read(&mut buf).await.expect("read"), 1);
        }
        // Nothing for 10 s: the read fails.
        let err = conn.read(&mut buf).await.expect_err("idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_times_out_the_writer() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut conn = Deadline::new(ours, Duration::from_secs(10));
        // The pipe holds 64 bytes; the peer never reads them.
        let err = conn.write_all(&[0u8; 1024]).await.expect_err("stalled");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
