//! Stack use, measured by painting: the stack below the caller is filled with a pattern, the
//! measured code runs, and the lowest word no longer holding the pattern is how deep it went.
//! The figures are printed and go into the footprint table of `adapters/embassy/README.md`;
//! only their validity is checked (the painting reached deeper than the code did).
//!
//! An async call is measured with its future pinned in the caller's frame, above the painted
//! region, so the figure is the polls' depth alone: what it adds to the stack of an embassy
//! executor, whose task futures live in static memory.
#![allow(
    unsafe_code,
    reason = "painting and reading the free stack below the stack pointer needs raw pointers"
)]

use core::future::Future;
use core::pin::Pin;

use cortex_m_semihosting::hprintln;

/// The stack of the NUCLEO-F429ZI example: its 64 KiB of CCM RAM (the example's
/// `.cargo/config.toml`). Its TLS and API calls' polls must fit in it, with
/// [`BOARD_MARGIN`] to spare for what runs above them there (executor, task, `NetApi`'s
/// connection set-up, interrupts). These tests build at the example's opt-level for that.
pub const BOARD_STACK: usize = 64 * 1024;
/// See [`BOARD_STACK`].
pub const BOARD_MARGIN: usize = 2 * 1024;

/// Whether `used` (a measurement) fits the board's stack with its margin.
pub fn fits_board(used: Option<usize>) -> bool {
    used.is_some_and(|n| n + BOARD_MARGIN <= BOARD_STACK)
}

/// The pattern painted.
const PAINT: u32 = 0x5AC3_A53C;
/// How far below the stack pointer painting reaches.
const SPAN: usize = 96 * 1024;

unsafe extern "C" {
    /// The lowest address the stack may use (cortex-m-rt's linker script).
    static _stack_end: u32;
}

/// Runs `f`, returns its result and the bytes of stack it used below this call's frame, or
/// `None` when that cannot be measured (painting would leave the stack, or `f` went deeper
/// than the painting).
#[inline(never)]
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Option<usize>) {
    let sp = cortex_m::register::msp::read() as usize & !3;
    let limit = (&raw const _stack_end) as usize;
    let bottom = sp.saturating_sub(SPAN);
    if bottom <= limit {
        return (f(), None);
    }
    for a in (bottom..sp).step_by(4) {
        // SAFETY: [bottom, sp) is free stack: below the stack pointer, above `_stack_end`, word
        // aligned; nothing runs in it until `f` is called (no interrupts are enabled here).
        unsafe { core::ptr::write_volatile(a as *mut u32, PAINT) };
    }
    let r = f();
    let lowest = (bottom..sp)
        .step_by(4)
        // SAFETY: as above; `f` has returned, so these words are free again.
        .find(|&a| unsafe { core::ptr::read_volatile(a as *const u32) } != PAINT)
        .unwrap_or(sp);
    let used = (lowest > bottom).then_some(sp - lowest);
    (r, used)
}

/// Polls `fut` to its end (never sleeping: nothing here waits on time) and measures the stack
/// of those polls alone; prints `stack: {what} N bytes (future M bytes)`.
pub fn measure_polls<F: Future>(what: &str, mut fut: Pin<&mut F>) -> (F::Output, Option<usize>) {
    let future = core::mem::size_of_val(&*fut);
    let (r, used) = measure(|| embassy_futures::block_on(fut.as_mut()));
    report(what, used);
    hprintln!(
        "       (its future: {} bytes, in the task's static memory on a board)",
        future
    );
    (r, used)
}

/// Prints one figure.
pub fn report(what: &str, used: Option<usize>) {
    match used {
        Some(n) => hprintln!("stack: {} {} bytes", what, n),
        None => hprintln!("stack: {} not measurable", what),
    }
}
