//! Static memory a device reserves for one session, kept within budget (the README's footprint
//! table quotes these numbers; run with `--nocapture` to see them).

use ssm_embassy::{Engine, Resources};

#[test]
fn session_memory_fits_the_budget() {
    let engine = core::mem::size_of::<Engine>();
    let resources = core::mem::size_of::<Resources>();
    println!("engine {engine} bytes, resources (engine + websocket + buffers) {resources} bytes");
    #[cfg(feature = "net")]
    println!(
        "net resources (tcp + tls buffers and state) {} bytes",
        core::mem::size_of::<ssm_embassy::NetResources<'static>>()
    );
    // 64 KiB: a quarter of an STM32F429's 256 KiB RAM for the session itself (host sizes;
    // 32-bit targets are a little smaller).
    assert!(resources < 64 * 1024, "Resources grew to {resources} bytes");
    assert!(engine < resources);
}
