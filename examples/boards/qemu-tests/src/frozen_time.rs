//! `embassy_time`'s driver for these tests: a clock frozen at boot. The replayed StartSession
//! needs its request signed at the recorded second on every run, and nothing here sleeps.
#![allow(
    unsafe_code,
    reason = "time_driver_impl! exports the driver's functions with #[unsafe(no_mangle)]"
)]

/// Always boot; a wake is immediate.
struct Frozen;

impl embassy_time_driver::Driver for Frozen {
    fn now(&self) -> u64 {
        0
    }

    fn schedule_wake(&self, _at: u64, waker: &core::task::Waker) {
        waker.wake_by_ref();
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: Frozen = Frozen);
