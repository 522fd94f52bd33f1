//! An idle deadline on every connection, below TLS.
//!
//! Guarantees: a connection on which nothing moves either way for `idle` while the
//! server waits to read (headers, a form, an upload, or the next request), or for
//! `WRITE_PATIENCE` times `idle` while a write waits (a download the client stopped
//! reading), fails with `TimedOut`, so the server closes it and drops whatever the
//! request held: its transfer slot, its blocking thread, its temp file. Progress in
//! either direction restarts the one clock, so a client that keeps sending a long
//! upload, or keeps reading a long download while sending nothing, is not cut off.
//! A write only sees progress when the kernel's send buffer (megabytes, on a fast
//! link) has drained by a good part, hence the longer patience: with the default
//! 60 s, a reader slower than a few KiB/s may still be cut.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

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

/// How many idle periods a blocked write may wait before the connection is closed.
pub const WRITE_PATIENCE: u32 = 10;

/// One connection: when anything last moved, whether a write waits on the socket,
/// and a timer for each direction's wait (each wakes its own waiting task).
pub struct Deadline<IO> {
    io: IO,
    idle: Duration,
    moved: Instant,
    write_blocked: bool,
    reading: Option<Pin<Box<Sleep>>>,
    writing: Option<Pin<Box<Sleep>>>,
}

impl<IO> Deadline<IO> {
    pub fn new(io: IO, idle: Duration) -> Self {
        Self {
            io,
            idle,
            moved: Instant::now(),
            write_blocked: false,
            reading: None,
            writing: None,
        }
    }

    /// How long after the last progress a wait may last now.
    fn patience(&self) -> Duration {
        if self.write_blocked {
            self.idle * WRITE_PATIENCE
        } else {
            self.idle
        }
    }

    /// Passes a write's `poll` on through [`watch`], noting first whether the
    /// write is left waiting on the socket (which earns it the longer patience).
    fn watch_write<T>(
        &mut self,
        poll: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        self.write_blocked = poll.is_pending();
        let patience = self.patience();
        watch(poll, &mut self.writing, &mut self.moved, patience, cx)
    }
}

/// Passes `poll`'s result on, noting progress in `moved`. While it is pending,
/// `clock` runs until `patience` after the last progress either way (moved on when
/// the other direction progressed meanwhile), and the wait fails once it runs out.
fn watch<T>(
    poll: Poll<io::Result<T>>,
    clock: &mut Option<Pin<Box<Sleep>>>,
    moved: &mut Instant,
    patience: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    match poll {
        Poll::Ready(result) => {
            *moved = Instant::now();
            *clock = None;
            Poll::Ready(result)
        }
        Poll::Pending => {
            let deadline = *moved + patience;
            let sleep = clock.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
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
        let patience = this.patience();
        watch(poll, &mut this.reading, &mut this.moved, patience, cx)
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
        this.watch_write(poll, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch_write(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.watch_write(poll, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.watch_write(poll, cx)
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
    async fn a_long_download_to_a_silent_but_reading_peer_is_not_cut() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let conn = Deadline::new(ours, Duration::from_secs(10));
        let (mut rx, mut tx) = tokio::io::split(conn);
        // The server waits to read (as HTTP servers do) while it writes.
        let waiting = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            rx.read(&mut buf).await
        });
        // The peer reads 64 bytes every 5 s for a minute and sends nothing.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                theirs.read_exact(&mut buf).await.expect("read");
            }
            theirs
        });
        tx.write_all(&[0u8; 64 * 13])
            .await
            .expect("a steady reader is served");
        let theirs = reader.await.expect("reader");
        assert!(
            !waiting.is_finished(),
            "the read waits on while writes progress"
        );
        // Once nothing moves either way, the waiting read gives up.
        let err = waiting.await.expect("task").expect_err("idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(theirs);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_times_out_the_writer() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut conn = Deadline::new(ours, Duration::from_secs(10));
        // The pipe holds 64 bytes; the peer never reads them.
        let started = Instant::now();
        let err = conn.write_all(&[0u8; 1024]).await.expect_err("stalled");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10) * WRITE_PATIENCE);
    }
}
