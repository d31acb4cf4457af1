//! Copying a guest's answer out of its memory without letting the guest decide how much
//! the host allocates.
//!
//! A list or string in the canonical ABI is a (pointer, length) pair into guest memory,
//! and a plain `Vec<T>`/`String` lift allocates whatever length the guest wrote. Guest
//! memory bounds the bytes, but not the host's cost: a million empty proposals are a few
//! dozen MiB in the guest and several hundred MiB as Rust values, and a hand-written guest
//! can point every string at the same 16 MiB buffer. [`BoundedList`] and [`BoundedString`]
//! read the length first and refuse before allocating; [`BoundedString`] also charges a
//! per-call byte budget across all strings.
//!
//! The bounds live in a thread-local because the lift traits have no place for
//! configuration; a synchronous call lifts its results on the calling thread, between
//! [`LiftBounds::install`] and the guard's drop. Post-return (the guest freeing its answer)
//! runs right after lifting, so lazy `WasmList`/`WasmStr` views cannot be kept instead.

use std::cell::Cell;
use wasmtime::ValRaw;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift};

/// How much of a guest's answer the host will copy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LiftBounds {
    pub max_list: usize,
    pub max_string: usize,
    pub max_total_bytes: usize,
    /// Longest `Err(String)` from the guest.
    pub max_error: usize,
}

thread_local! {
    static BOUNDS: Cell<Option<LiftBounds>> = const { Cell::new(None) };
    static SPENT: Cell<usize> = const { Cell::new(0) };
}

/// Restores the previous bounds on drop, so nested or panicking calls leave no stale ones.
pub(crate) struct BoundsGuard {
    previous: Option<LiftBounds>,
    previous_spent: usize,
}

impl LiftBounds {
    pub(crate) fn install(self) -> BoundsGuard {
        let previous = BOUNDS.with(|b| b.replace(Some(self)));
        let previous_spent = SPENT.with(|s| s.replace(0));
        BoundsGuard {
            previous,
            previous_spent,
        }
    }

    /// Without installed bounds nothing is lifted at all: failing closed beats an
    /// unbounded copy if some future call path forgets to install them.
    fn current() -> LiftBounds {
        BOUNDS.with(|b| b.get()).unwrap_or(LiftBounds {
            max_list: 0,
            max_string: 0,
            max_total_bytes: 0,
            max_error: 0,
        })
    }
}

impl Drop for BoundsGuard {
    fn drop(&mut self) {
        BOUNDS.with(|b| b.set(self.previous));
        SPENT.with(|s| s.set(self.previous_spent));
    }
}

/// The error a lift fails with; the instance layer turns it into `BadOutput`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct OutputTooLarge(pub String);

/// A `list<T>` that refuses more than the installed `max_list` elements.
#[derive(Debug)]
pub(crate) struct BoundedList<T>(pub Vec<T>);

// SAFETY: same layout, ABI and type check as `Vec<T>`, to which all lifting is delegated.
unsafe impl<T: ComponentType> ComponentType for BoundedList<T> {
    type Lower = <Vec<T> as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <Vec<T> as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<T> as ComponentType>::typecheck(ty, types)
    }
}

fn check_list_len(len: u32) -> wasmtime::Result<()> {
    let max = LiftBounds::current().max_list;
    if len as usize > max {
        return Err(wasmtime::Error::new(OutputTooLarge(format!(
            "{len} proposals, over the limit of {max}"
        ))));
    }
    Ok(())
}

// SAFETY: reads only the length word of the (pointer, length) pair, then delegates.
unsafe impl<T: Lift> Lift for BoundedList<T> {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        check_list_len(flat_len(src))?;
        <Vec<T> as Lift>::linear_lift_from_flat(cx, ty, src).map(BoundedList)
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        check_list_len(memory_len(bytes)?)?;
        <Vec<T> as Lift>::linear_lift_from_memory(cx, ty, bytes).map(BoundedList)
    }
}

/// A `string` that refuses more than `max_string` bytes, and charges the call's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoundedString(pub String);

// SAFETY: same layout, ABI and type check as `String`, to which all lifting is delegated.
unsafe impl ComponentType for BoundedString {
    type Lower = <String as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <String as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <String as ComponentType>::typecheck(ty, types)
    }
}

fn check_string_len(len: u32) -> wasmtime::Result<()> {
    let bounds = LiftBounds::current();
    let len = len as usize;
    if len > bounds.max_string {
        return Err(wasmtime::Error::new(OutputTooLarge(format!(
            "a string of {len} bytes, over the limit of {}",
            bounds.max_string
        ))));
    }
    let spent = SPENT.with(|s| {
        let total = s.get().saturating_add(len);
        s.set(total);
        total
    });
    if spent > bounds.max_total_bytes {
        return Err(wasmtime::Error::new(OutputTooLarge(format!(
            "strings totalling over {} bytes",
            bounds.max_total_bytes
        ))));
    }
    Ok(())
}

// SAFETY: reads only the length word of the (pointer, length) pair, then delegates.
unsafe impl Lift for BoundedString {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        check_string_len(flat_len(src))?;
        <String as Lift>::linear_lift_from_flat(cx, ty, src).map(BoundedString)
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        check_string_len(memory_len(bytes)?)?;
        <String as Lift>::linear_lift_from_memory(cx, ty, bytes).map(BoundedString)
    }
}

/// A guest's `Err(String)`, bounded by `max_error` rather than the proposal string limit:
/// error messages are for humans and may be longer than an address or an amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorString(pub String);

// SAFETY: same layout, ABI and type check as `String`, to which all lifting is delegated.
unsafe impl ComponentType for ErrorString {
    type Lower = <String as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <String as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <String as ComponentType>::typecheck(ty, types)
    }
}

fn check_error_len(len: u32) -> wasmtime::Result<()> {
    let max = LiftBounds::current().max_error;
    if len as usize > max {
        return Err(wasmtime::Error::new(OutputTooLarge(format!(
            "an error message of {len} bytes, over the limit of {max}"
        ))));
    }
    Ok(())
}

// SAFETY: reads only the length word of the (pointer, length) pair, then delegates.
unsafe impl Lift for ErrorString {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        check_error_len(flat_len(src))?;
        <String as Lift>::linear_lift_from_flat(cx, ty, src).map(ErrorString)
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        check_error_len(memory_len(bytes)?)?;
        <String as Lift>::linear_lift_from_memory(cx, ty, bytes).map(ErrorString)
    }
}

/// Length word of a flat (pointer, length) pair. For UTF-16 strings the word counts code
/// units (with a tag bit for compact UTF-16), which only makes the bound stricter.
fn flat_len(src: &[ValRaw; 2]) -> u32 {
    src[1].get_u32()
}

fn memory_len(bytes: &[u8]) -> wasmtime::Result<u32> {
    let word = bytes
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .ok_or_else(|| wasmtime::format_err!("list header out of bounds"))?;
    Ok(u32::from_le_bytes(word))
}

// The stratbox result types, mirrored with bounded strings and lists. Field and case names
// are checked against the component's types when the export is looked up.

#[derive(ComponentType, Lift, Debug)]
#[component(record)]
pub(crate) struct RawProposal {
    pub action: RawAction,
    #[component(name = "expected-amount0")]
    pub expected_amount0: BoundedString,
    #[component(name = "expected-amount1")]
    pub expected_amount1: BoundedString,
    #[component(name = "max-slippage-bps")]
    pub max_slippage_bps: u32,
    pub reason: BoundedString,
}

#[derive(ComponentType, Lift, Debug)]
#[component(variant)]
pub(crate) enum RawAction {
    #[component(name = "swap")]
    Swap(RawSwap),
    #[component(name = "add-liquidity")]
    AddLiquidity(RawRange),
    #[component(name = "remove-liquidity")]
    RemoveLiquidity(RawRange),
}

#[derive(ComponentType, Lift, Debug)]
#[component(record)]
pub(crate) struct RawSwap {
    pub pool: BoundedString,
    #[component(name = "zero-for-one")]
    pub zero_for_one: bool,
    #[component(name = "amount-in")]
    pub amount_in: BoundedString,
    #[component(name = "sqrt-price-limit-x96")]
    pub sqrt_price_limit_x96: Option<BoundedString>,
}

#[derive(ComponentType, Lift, Debug)]
#[component(record)]
pub(crate) struct RawRange {
    pub pool: BoundedString,
    #[component(name = "tick-lower")]
    pub tick_lower: i32,
    #[component(name = "tick-upper")]
    pub tick_upper: i32,
    pub liquidity: BoundedString,
}

/// A `host.log` message as the host takes it: its length, read before anything is copied,
/// and at most its first [`LogText::MAX_BYTES`] bytes. A guest may point a log call at
/// every byte of its memory; the host copies one line's worth and decides about the rest
/// from the length alone (see `sandbox.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogText {
    /// The message's length in the guest's encoding (bytes for UTF-8 and Latin-1, code
    /// units for UTF-16).
    pub len: usize,
    /// Its beginning, decoded; what is forwarded when the message is within budget.
    pub head: String,
}

impl LogText {
    /// The most of one message the host copies.
    pub const MAX_BYTES: usize = 1024;

    fn lift(cx: &mut LiftContext<'_>, ptr: u32, len: u32) -> wasmtime::Result<Self> {
        use wasmtime::component::__internal::wasmtime_environ::component::StringEncoding;
        const UTF16_TAG: u32 = 1 << 31;
        let encoding = cx.options().string_encoding;
        let (units, unit_bytes, latin1) = match encoding {
            StringEncoding::Utf8 => (len, 1, false),
            StringEncoding::Utf16 => (len, 2, false),
            StringEncoding::CompactUtf16 if len & UTF16_TAG == 0 => (len, 1, true),
            StringEncoding::CompactUtf16 => (len ^ UTF16_TAG, 2, false),
        };
        let memory = cx.memory();
        let ptr = ptr as usize;
        let byte_len = (units as usize)
            .checked_mul(unit_bytes)
            .ok_or_else(|| wasmtime::format_err!("string length overflows"))?;
        match ptr.checked_add(byte_len) {
            Some(end) if end <= memory.len() => {}
            _ => wasmtime::bail!("string pointer/length out of bounds of memory"),
        }
        let take = byte_len.min(Self::MAX_BYTES) / unit_bytes * unit_bytes;
        let bytes = &memory[ptr..ptr + take];
        let head = if latin1 {
            bytes.iter().map(|b| char::from(*b)).collect()
        } else if unit_bytes == 2 {
            let units = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        } else {
            match std::str::from_utf8(bytes) {
                Ok(s) => s.to_owned(),
                // Cut inside the last character: keep the whole ones before it.
                Err(e) if e.error_len().is_none() && take < byte_len => {
                    String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
                }
                Err(e) => wasmtime::bail!("invalid utf-8 in a log message: {e}"),
            }
        };
        Ok(LogText {
            len: units as usize,
            head,
        })
    }
}

// SAFETY: same layout, ABI and type check as `String`; lifting reads the (pointer, length)
// pair and at most `MAX_BYTES` of memory, bounds-checked like wasmtime's own string lift.
unsafe impl ComponentType for LogText {
    type Lower = <String as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <String as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <String as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: see the `ComponentType` impl.
unsafe impl Lift for LogText {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        Self::lift(cx, src[0].get_u32(), flat_len(src))
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let ptr = bytes
            .get(0..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| wasmtime::format_err!("string header out of bounds"))?;
        Self::lift(cx, ptr, memory_len(bytes)?)
    }
}
