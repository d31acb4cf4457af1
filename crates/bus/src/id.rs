use std::fmt;
use std::str::FromStr;

use crate::BusError;

/// A stream message id, `<milliseconds>-<sequence>` as Redis writes it.
///
/// Both bus implementations mint ids the same way (wall-clock milliseconds, never going
/// backwards, sequence within a millisecond), so ids from either order the same way and can
/// be stored by consumers as a resume position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MessageId {
    /// Milliseconds since the Unix epoch when the message was added.
    pub ms: u64,
    /// Order within the millisecond.
    pub seq: u64,
}

impl MessageId {
    /// Before every real id: a resume position meaning "from the start".
    pub const ZERO: MessageId = MessageId { ms: 0, seq: 0 };

    /// An id from its two parts; no check, any pair is a valid id.
    pub const fn new(ms: u64, seq: u64) -> Self {
        MessageId { ms, seq }
    }

    /// The next id after `self` for a clock reading of `now_ms`: ids never go backwards even
    /// when the clock does.
    pub(crate) fn next(self, now_ms: u64) -> Option<Self> {
        if now_ms > self.ms {
            Some(MessageId { ms: now_ms, seq: 0 })
        } else if let Some(seq) = self.seq.checked_add(1) {
            Some(MessageId { ms: self.ms, seq })
        } else {
            self.ms.checked_add(1).map(|ms| MessageId { ms, seq: 0 })
        }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

fn parse_part(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl FromStr for MessageId {
    type Err = BusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s
            .split_once('-')
            .ok_or_else(|| BusError::InvalidId(s.to_owned()))?;
        match (parse_part(ms), parse_part(seq)) {
            (Some(ms), Some(seq)) => Ok(MessageId { ms, seq }),
            _ => Err(BusError::InvalidId(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders() {
        let a: MessageId = "1700000000000-3".parse().unwrap();
        assert_eq!(a, MessageId::new(1_700_000_000_000, 3));
        assert_eq!(a.to_string(), "1700000000000-3");
        assert!(MessageId::new(1, 9) < MessageId::new(2, 0));
        for bad in ["", "1", "1-", "-1", "a-1", "1-+2", "1-2-3", " 1-2"] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn next_never_goes_backwards() {
        let last = MessageId::new(100, 5);
        assert_eq!(last.next(50), Some(MessageId::new(100, 6)));
        assert_eq!(last.next(100), Some(MessageId::new(100, 6)));
        assert_eq!(last.next(101), Some(MessageId::new(101, 0)));
        assert_eq!(
            MessageId::new(7, u64::MAX).next(7),
            Some(MessageId::new(8, 0))
        );
    }
}
