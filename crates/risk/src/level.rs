//! Permission levels (L0 halted to L5 expert) and the execution modes they allow: the
//! vocabulary both the configuration and the permission tracker speak, kept apart from
//! both so that neither has to import the other.

use std::fmt;

use serde::{Deserialize, Serialize};

/// L0 (halted) to L5 (expert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PermissionLevel {
    /// Halted: every proposal is refused with `permission_level`.
    L0,
    /// A new strategy's starting level (builds its track record).
    L1,
    /// Second level; mode ceiling and trade size come from the permission config.
    L2,
    /// Third level; mode ceiling and trade size come from the permission config.
    L3,
    /// Fourth level; mode ceiling and trade size come from the permission config.
    L4,
    /// Expert, the highest level.
    L5,
}

impl PermissionLevel {
    /// Every level, lowest first; `ALL[n].as_u8() == n`.
    pub const ALL: [PermissionLevel; 6] = [
        PermissionLevel::L0,
        PermissionLevel::L1,
        PermissionLevel::L2,
        PermissionLevel::L3,
        PermissionLevel::L4,
        PermissionLevel::L5,
    ];

    /// The number, 0 for L0 to 5 for L5.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Inverse of [`Self::as_u8`]; `None` above 5.
    pub const fn from_u8(n: u8) -> Option<PermissionLevel> {
        match n {
            0 => Some(PermissionLevel::L0),
            1 => Some(PermissionLevel::L1),
            2 => Some(PermissionLevel::L2),
            3 => Some(PermissionLevel::L3),
            4 => Some(PermissionLevel::L4),
            5 => Some(PermissionLevel::L5),
            _ => None,
        }
    }

    /// "L0".."L5", for logs, the audit trail and the `strategies` table.
    pub const fn as_str(self) -> &'static str {
        match self {
            PermissionLevel::L0 => "L0",
            PermissionLevel::L1 => "L1",
            PermissionLevel::L2 => "L2",
            PermissionLevel::L3 => "L3",
            PermissionLevel::L4 => "L4",
            PermissionLevel::L5 => "L5",
        }
    }

    /// Lower-case key used in configuration paths.
    pub(crate) const fn key(self) -> &'static str {
        match self {
            PermissionLevel::L0 => "l0",
            PermissionLevel::L1 => "l1",
            PermissionLevel::L2 => "l2",
            PermissionLevel::L3 => "l3",
            PermissionLevel::L4 => "l4",
            PermissionLevel::L5 => "l5",
        }
    }

    pub(crate) const fn key_up(self) -> &'static str {
        match self.up() {
            Some(l) => l.key(),
            None => self.key(),
        }
    }

    /// The next level up (none above L5; L0 goes up only by a human restore).
    pub const fn up(self) -> Option<PermissionLevel> {
        match self {
            PermissionLevel::L0 | PermissionLevel::L5 => None,
            PermissionLevel::L1 => Some(PermissionLevel::L2),
            PermissionLevel::L2 => Some(PermissionLevel::L3),
            PermissionLevel::L3 => Some(PermissionLevel::L4),
            PermissionLevel::L4 => Some(PermissionLevel::L5),
        }
    }

    /// The next level down by demotion (none below L1: L0 is reached only by a breach).
    pub const fn down(self) -> Option<PermissionLevel> {
        match self {
            PermissionLevel::L0 | PermissionLevel::L1 => None,
            PermissionLevel::L2 => Some(PermissionLevel::L1),
            PermissionLevel::L3 => Some(PermissionLevel::L2),
            PermissionLevel::L4 => Some(PermissionLevel::L3),
            PermissionLevel::L5 => Some(PermissionLevel::L4),
        }
    }
}

impl fmt::Display for PermissionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the engine carries a trade: `shadow` stops at simulation and books virtual PnL,
/// `staged` asks a human over the threshold, `live` signs automatically under it.
/// Ordered by how far a trade goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// Simulate only and book virtual PnL; nothing is signed.
    Shadow,
    /// Over the approval threshold a human must approve before signing.
    Staged,
    /// Signed automatically while under the threshold.
    Live,
}

impl ExecutionMode {
    /// The lowercase name, as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::Shadow => "shadow",
            ExecutionMode::Staged => "staged",
            ExecutionMode::Live => "live",
        }
    }
}

impl fmt::Display for ExecutionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The furthest mode a level allows; `halted` allows nothing, not even shadow trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeCeiling {
    /// No trading at all, not even shadow.
    Halted,
    /// At most shadow.
    Shadow,
    /// At most staged.
    Staged,
    /// Any mode, live included.
    Live,
}

impl ModeCeiling {
    /// The mode a trade runs in when the engine asks for `requested`: the lower of the two.
    /// A live engine therefore still runs a new (L1) strategy in shadow, which is how it
    /// builds the track record that promotes it. `None` means the level may not trade.
    pub fn cap(self, requested: ExecutionMode) -> Option<ExecutionMode> {
        let ceiling = match self {
            ModeCeiling::Halted => return None,
            ModeCeiling::Shadow => ExecutionMode::Shadow,
            ModeCeiling::Staged => ExecutionMode::Staged,
            ModeCeiling::Live => ExecutionMode::Live,
        };
        Some(requested.min(ceiling))
    }
}
