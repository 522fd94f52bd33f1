//! Writing a new file straight to the disk, past the page cache.
//!
//! Guarantees: a `DirectFile` writes every byte given to it, in order. Whole 1 MiB
//! buffers (4 KiB-aligned memory, 4 KiB-aligned offsets) go out with `O_DIRECT` on an
//! I/O thread of its own, so the caller keeps computing while the disk writes, and
//! neither a copy into the page cache nor a late writeback of dirty pages is paid
//! for; what is left at the end (less than one buffer) is written on the caller's
//! thread, its aligned part still direct and the last partial block through the page
//! cache. `finish` returns the file only after every byte has been written (not yet
//! fsynced: the caller decides when), or the first error the I/O met. Where the file
//! system refuses `O_DIRECT` (tmpfs, some network file systems), at open or at the
//! first write, the same code writes through the page cache instead. At most three
//! buffers exist at once, whatever the file's size. Dropping a `DirectFile` stops its
//! thread; removing a half-written file is the caller's job.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// The alignment `O_DIRECT` asks of memory, offsets and lengths on every common
/// Linux file system and disk.
const BLOCK: usize = 4096;
/// One buffer: 256 blocks.
const PAGES: usize = 256;
const BUFFER: usize = BLOCK * PAGES;
/// Buffers in existence at most: one filling, two with the I/O thread.
const BUFFERS: usize = 3;

/// One aligned block of memory; a `Vec` of them is an aligned buffer.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone)]
#[repr(C, align(4096))]
struct Page([u8; BLOCK]);

fn buffer() -> Vec<Page> {
    vec![Page::new_zeroed(); PAGES]
}

/// Turns `O_DIRECT` off for the rest of the file.
fn buffered(file: &File) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    fcntl(file, FcntlArg::F_SETFL(flags - OFlag::O_DIRECT))?;
    Ok(())
}

/// Writes `bytes` at the file's position; when the file system turns `O_DIRECT`
/// down (at once, or after a short write left the position unaligned), writes the
/// rest, from where it stands, through the page cache.
fn write_all(file: &mut File, direct: &mut bool, bytes: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        match file.write(&bytes[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if *direct && e.raw_os_error() == Some(nix::libc::EINVAL) => {
                // A refused write writes nothing: go on buffered from `done`.
                *direct = false;
                buffered(file)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

struct Io {
    full: SyncSender<Vec<Page>>,
    empty: Receiver<Vec<Page>>,
    thread: JoinHandle<io::Result<(File, bool)>>,
}

enum State {
    /// No buffer has filled up yet: the file is still here.
    Idle(File),
    Writing(Io),
    Done,
}

pub struct DirectFile {
    state: State,
    direct: bool,
    buf: Vec<Page>,
    len: usize,
    allocated: usize,
}

impl DirectFile {
    /// Creates a new file at `path` with `mode` (it must not exist yet).
    pub fn create_new(path: &Path, mode: u32) -> io::Result<Self> {
        Self::create(path, mode, true)
    }

    fn create(path: &Path, mode: u32, try_direct: bool) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        // Turned on once the file exists, so that a file system that refuses it
        // cannot leave a created file behind a failed open.
        let direct = try_direct
            && fcntl(&file, FcntlArg::F_GETFL)
                .map(|bits| OFlag::from_bits_truncate(bits) | OFlag::O_DIRECT)
                .and_then(|flags| fcntl(&file, FcntlArg::F_SETFL(flags)))
                .is_ok();
        Ok(Self {
            state: State::Idle(file),
            direct,
            buf: buffer(),
            len: 0,
            allocated: 1,
        })
    }

    /// Hands the full buffer to the I/O thread (starting it the first time) and
    /// takes an empty one.
    fn hand_over(&mut self) -> io::Result<()> {
        if let State::Idle(_) = self.state {
            let State::Idle(file) = std::mem::replace(&mut self.state, State::Done) else {
                return Err(io::Error::other("direct file state"));
            };
            let (full, full_rx) = sync_channel::<Vec<Page>>(BUFFERS - 1);
            let (empty_tx, empty) = sync_channel::<Vec<Page>>(BUFFERS);
            let mut direct = self.direct;
            let thread = std::thread::Builder::new()
                .name("file-writer".into())
                .spawn(move || {
                    let mut file = file;
                    for buf in full_rx {
                        write_all(&mut file, &mut direct, buf.as_bytes())?;
                        // The writer may have stopped waiting; then nobody needs it.
                        let _ = empty_tx.try_send(buf);
                    }
                    Ok((file, direct))
                })?;
            self.state = State::Writing(Io {
                full,
                empty,
                thread,
            });
        }
        let State::Writing(io) = &self.state else {
            return Err(io::Error::other("the file is already finished"));
        };
        let next = match io.empty.try_recv() {
            Ok(buf) => Some(buf),
            Err(_) if self.allocated < BUFFERS => {
                self.allocated += 1;
                Some(buffer())
            }
            Err(_) => io.empty.recv().ok(),
        };
        let sent = match next {
            Some(next) => io.full.send(std::mem::replace(&mut self.buf, next)).is_ok(),
            None => false,
        };
        if !sent {
            // The I/O thread stopped: its error says why.
            return Err(self
                .stop()
                .err()
                .unwrap_or_else(|| io::Error::other("the file writer stopped")));
        }
        self.len = 0;
        Ok(())
    }

    /// Waits for the I/O thread; the file and whether it is still direct.
    fn stop(&mut self) -> io::Result<(File, bool)> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Idle(file) => Ok((file, self.direct)),
            State::Writing(io) => {
                drop(io.full);
                io.thread
                    .join()
                    .map_err(|_| io::Error::other("the file writer failed"))?
            }
            State::Done => Err(io::Error::other("the file is already finished")),
        }
    }

    /// Writes what is left and returns the file, every byte written (not fsynced).
    pub fn finish(mut self) -> io::Result<File> {
        let (mut file, mut direct) = self.stop()?;
        let bytes = &self.buf.as_bytes()[..self.len];
        let aligned = self.len - self.len % BLOCK;
        if aligned > 0 {
            write_all(&mut file, &mut direct, &bytes[..aligned])?;
        }
        if aligned < self.len {
            if direct {
                buffered(&file)?;
            }
            write_all(&mut file, &mut false, &bytes[aligned..])?;
        }
        Ok(file)
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.len == BUFFER {
            self.hand_over()?;
        }
        let n = data.len().min(BUFFER - self.len);
        self.buf.as_mut_bytes()[self.len..self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        Ok(n)
    }

    /// Buffers stay until they are full or the file is finished: a direct write
    /// must be whole blocks.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 4093) as u8).collect()
    }

    fn round_trip(dir: &Path, len: usize, piece: usize, try_direct: bool) {
        let path = dir.join(format!("f{len}-{piece}-{try_direct}"));
        let data = pattern(len);
        let mut f = DirectFile::create(&path, 0o600, try_direct).expect("create");
        for chunk in data.chunks(piece.max(1)) {
            f.write_all(chunk).expect("write");
        }
        f.finish().expect("finish").sync_all().expect("sync");
        let mut got = Vec::new();
        File::open(&path)
            .expect("open")
            .read_to_end(&mut got)
            .expect("read");
        assert_eq!(got.len(), len, "length of {len} in pieces of {piece}");
        assert!(got == data, "content of {len} in pieces of {piece}");
    }

    #[test]
    fn every_size_comes_back_byte_for_byte_direct_or_buffered() {
        // The build's own directory is on a real disk far more often than /tmp.
        let on_disk = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target"))
            .or_else(|_| tempfile::tempdir())
            .expect("tmp");
        let mut dirs = vec![on_disk];
        // tmpfs refuses O_DIRECT on older kernels.
        if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
            dirs.push(shm);
        }
        for dir in &dirs {
            for len in [
                0,
                1,
                4095,
                4096,
                4097,
                BUFFER - 1,
                BUFFER,
                BUFFER + 1,
                5 * BUFFER + 12345,
            ] {
                for piece in [65_552, 1 << 20, 3 << 20] {
                    // Where O_DIRECT is refused the same code writes buffered.
                    round_trip(dir.path(), len, piece, true);
                    round_trip(dir.path(), len, piece, false);
                }
            }
        }
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("taken");
        std::fs::write(&path, b"keep").expect("write");
        assert!(DirectFile::create_new(&path, 0o600).is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"keep");
    }
}
