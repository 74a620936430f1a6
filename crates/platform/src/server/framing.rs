//! The boundaries of length-prefixed frames, across however a byte stream is chunked:
//! HTTP/2's frames (for write coalescing) and gRPC's messages (for the message limit).

/// Follows frames of a `HEADER`-byte header followed by a payload whose length the
/// header gives.
#[derive(Debug)]
pub(crate) struct Framing<const HEADER: usize> {
    /// Bytes of a preface, or of the current frame's payload, still to pass over.
    skip: usize,
    /// The next frame header, as far as it has arrived.
    header: [u8; HEADER],
    header_len: usize,
}

impl<const HEADER: usize> Framing<HEADER> {
    /// Frames start after `preface` bytes.
    pub(crate) fn after(preface: usize) -> Self {
        Self {
            skip: preface,
            header: [0; HEADER],
            header_len: 0,
        }
    }

    /// Calls `frame` with each header that ends within `bytes`, the stream's next bytes.
    /// It returns the length of the payload that follows, which is passed over, or an
    /// error, which ends the walk.
    pub(crate) fn walk<E>(
        &mut self,
        mut bytes: &[u8],
        mut frame: impl FnMut(&[u8; HEADER]) -> Result<usize, E>,
    ) -> Result<(), E> {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let passed = self.skip.min(bytes.len());
                self.skip -= passed;
                bytes = &bytes[passed..];
                continue;
            }
            let taken = (HEADER - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + taken].copy_from_slice(&bytes[..taken]);
            self.header_len += taken;
            bytes = &bytes[taken..];
            if self.header_len == HEADER {
                self.header_len = 0;
                self.skip = frame(&self.header)?;
            }
        }
        Ok(())
    }
}
