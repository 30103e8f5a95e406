//! Where `split_writes` cuts a message: a few random byte positions per write, each
//! piece then its own TLS record (host-input.md §2: a client must never assume one read
//! returns one message). A small xorshift generator, seeded per connection and logged,
//! so a failing run can be replayed with the same cuts.

/// The cut positions of one connection.
#[derive(Clone, Debug)]
pub(crate) struct Splitter {
    state: u64,
}

impl Splitter {
    /// A generator for `seed` (any value; 0 is replaced, xorshift needs a non-zero state).
    pub(crate) fn new(seed: u64) -> Splitter {
        Splitter {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64* (Vigna).
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Cuts `bytes` into one to four pieces; anything of two bytes or more is cut at
    /// least once, so no message ever arrives whole in one record.
    pub(crate) fn pieces<'a>(&mut self, bytes: &'a [u8]) -> Vec<&'a [u8]> {
        if bytes.len() < 2 {
            return vec![bytes];
        }
        let cuts = 1 + self.next() % 3;
        let room = bytes.len() as u64 - 1;
        let mut at: Vec<usize> = (0..cuts)
            .map(|_| 1 + (self.next() % room) as usize)
            .collect();
        at.sort_unstable();
        at.dedup();
        let mut pieces = Vec::with_capacity(at.len() + 1);
        let mut start = 0;
        for cut in at {
            pieces.push(&bytes[start..cut]);
            start = cut;
        }
        pieces.push(&bytes[start..]);
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_message_and_cut_it() {
        let mut splitter = Splitter::new(7);
        for len in [0usize, 1, 2, 8, 27, 4096] {
            let message: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for _ in 0..50 {
                let pieces = splitter.pieces(&message);
                assert_eq!(pieces.concat(), message, "{len}");
                assert!(pieces.iter().all(|p| !p.is_empty() || len == 0));
                if len >= 2 {
                    assert!((2..=4).contains(&pieces.len()), "{len}: {pieces:?}");
                }
            }
        }
        // The same seed, the same cuts.
        let a: Vec<usize> = Splitter::new(3)
            .pieces(&[0; 100])
            .iter()
            .map(|p| p.len())
            .collect();
        let b: Vec<usize> = Splitter::new(3)
            .pieces(&[0; 100])
            .iter()
            .map(|p| p.len())
            .collect();
        assert_eq!(a, b);
    }
}
