//! Writing a stream from a second thread.
//!
//! Copying output into the kernel costs about as much as producing it, so
//! `merge` hands full 1 MiB buffers to a writer thread and goes on filling
//! the next one while the previous is written: the two costs overlap
//! instead of adding up. An error of the writer thread (a closed pipe, a
//! full disk) comes back to the producer at its next write or flush.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

const BUFFER: usize = 1 << 20;
/// Buffers in use at once: one being filled, the others written or queued.
const POOL: usize = 3;

enum Msg {
    Data(Vec<u8>),
    Flush,
}

enum Reply {
    Buffer(Vec<u8>),
    Flushed,
}

/// A `Write` whose bytes a second thread writes to the destination.
pub struct ThreadedWriter {
    buf: Vec<u8>,
    spare: Vec<Vec<u8>>,
    to_writer: SyncSender<Msg>,
    from_writer: Receiver<Reply>,
    error: Arc<Mutex<Option<io::Error>>>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadedWriter {
    /// Starts a writer thread for this process's stdout, written straight
    /// to its file descriptor: no line buffering on the way.
    pub fn stdout() -> io::Result<ThreadedWriter> {
        let fd = std::os::fd::AsFd::as_fd(&io::stdout()).try_clone_to_owned()?;
        Ok(ThreadedWriter::new(std::fs::File::from(fd)))
    }

    /// Starts a writer thread for `dest`.
    pub fn new<W: Write + Send + 'static>(mut dest: W) -> ThreadedWriter {
        let (to_writer, inbox) = sync_channel::<Msg>(POOL);
        let (reply, from_writer) = sync_channel::<Reply>(POOL + 1);
        let error = Arc::new(Mutex::new(None));
        let thread_error = Arc::clone(&error);
        let thread = thread::spawn(move || {
            for msg in inbox {
                let result = match msg {
                    Msg::Data(mut buf) => dest.write_all(&buf).map(|()| {
                        buf.clear();
                        Reply::Buffer(buf)
                    }),
                    Msg::Flush => dest.flush().map(|()| Reply::Flushed),
                };
                match result {
                    Ok(r) => {
                        if reply.send(r).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        if let Ok(mut slot) = thread_error.lock() {
                            *slot = Some(e);
                        }
                        return;
                    }
                }
            }
        });
        ThreadedWriter {
            buf: Vec::with_capacity(BUFFER),
            spare: (1..POOL).map(|_| Vec::with_capacity(BUFFER)).collect(),
            to_writer,
            from_writer,
            error,
            thread: Some(thread),
        }
    }

    /// The error that stopped the writer thread.
    fn failure(&mut self) -> io::Error {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.error
            .lock()
            .ok()
            .and_then(|mut e| e.take())
            .unwrap_or_else(|| io::Error::other("the output thread stopped"))
    }

    fn receive(&mut self) -> io::Result<Reply> {
        self.from_writer.recv().map_err(|_| self.failure())
    }

    /// Queues the current buffer and takes an empty one.
    fn send(&mut self) -> io::Result<()> {
        let next = loop {
            if let Some(b) = self.spare.pop() {
                break b;
            }
            if let Reply::Buffer(b) = self.receive()? {
                break b;
            }
        };
        let full = std::mem::replace(&mut self.buf, next);
        self.to_writer
            .send(Msg::Data(full))
            .map_err(|_| self.failure())
    }
}

impl Write for ThreadedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > BUFFER && !self.buf.is_empty() {
            self.send()?;
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.write(data).map(|_| ())
    }

    /// Returns once everything written so far is written to the
    /// destination and the destination is flushed.
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.to_writer
            .send(Msg::Flush)
            .map_err(|_| self.failure())?;
        loop {
            match self.receive()? {
                Reply::Buffer(b) => self.spare.push(b),
                Reply::Flushed => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination that records what it got, and fails after `limit`
    /// bytes.
    struct Sink {
        got: Arc<Mutex<Vec<u8>>>,
        limit: usize,
    }

    impl Write for Sink {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let mut got = self.got.lock().map_err(|_| io::Error::other("poisoned"))?;
            if got.len() + data.len() > self.limit {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"));
            }
            got.extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_byte_arrives_in_order_by_flush() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut w = ThreadedWriter::new(Sink {
            got: Arc::clone(&got),
            limit: usize::MAX,
        });
        let mut expected = Vec::new();
        for i in 0..200_000u32 {
            let line = format!("line {i}\n");
            w.write_all(line.as_bytes()).expect("write");
            expected.extend_from_slice(line.as_bytes());
        }
        w.flush().expect("flush");
        assert_eq!(*got.lock().expect("lock"), expected);
    }

    #[test]
    fn a_failing_destination_comes_back_as_the_error() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut w = ThreadedWriter::new(Sink {
            got: Arc::clone(&got),
            limit: 10,
        });
        let mut result = Ok(());
        for _ in 0..10_000 {
            result = w.write_all(&[b'x'; 1000]);
            if result.is_err() {
                break;
            }
        }
        let err = result.and_then(|()| w.flush()).expect_err("fails");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
