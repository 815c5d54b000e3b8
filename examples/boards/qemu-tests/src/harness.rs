//! A tiny test harness for a target with no `std`: each test returns `Result<(), Failure>`, the
//! runner prints failures over semihosting and a final `N passed, N failed` line.

/// Where and why a check failed.
pub struct Failure {
    /// Source line of the failed check.
    pub line: u32,
    /// The checked expression, as written.
    pub expr: &'static str,
    /// Which input it was (a vector name, or "").
    pub ctx: &'static str,
}

/// A test's outcome.
pub type TestResult = Result<(), Failure>;

/// A named test.
pub struct Test {
    /// Name printed on failure.
    pub name: &'static str,
    /// The test.
    pub run: fn() -> TestResult,
}

/// Fails the test with the expression's text unless it holds.
#[macro_export]
macro_rules! check {
    ($cond:expr) => {
        $crate::check!($cond, "")
    };
    ($cond:expr, $ctx:expr) => {
        if !$cond {
            return Err($crate::harness::Failure {
                line: line!(),
                expr: stringify!($cond),
                ctx: $ctx,
            });
        }
    };
}
