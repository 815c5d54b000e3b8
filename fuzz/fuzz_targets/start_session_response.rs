//! StartSessionResponse JSON: no panic; what parses re-emits and parses back equal; the token
//! never shows in `Debug` or in an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_proto::model::{Endpoints, StartSessionResponse};

fn check(r: &StartSessionResponse<'_>) {
    let mut out = vec![0u8; r.json_len()];
    let n = r.emit(&mut out).expect("json_len is enough");
    let back = StartSessionResponse::parse_with(&out[..n], None, Endpoints::DangerousAnyHost)
        .expect("emitted response parses");
    assert_eq!(back.session_id(), r.session_id());
    let token = r.token().expose_secret();
    assert_eq!(back.token().expose_secret(), token);
    // `Debug` must not depend on the token's text: the same response with another token of the
    // same length prints the same. (A plain "does the token occur in the output" check is
    // fooled by tokens that are also field names, ids or URL pieces, e.g. "StreamUrl".)
    let other: String = token
        .bytes()
        .map(|b| if b == b'x' { 'y' } else { 'x' })
        .collect();
    let twin = StartSessionResponse::new(
        r.session_id(),
        r.stream_url().as_str(),
        &other,
        Endpoints::DangerousAnyHost,
    )
    .expect("same id and URL, a plain token");
    assert_eq!(
        format!("{r:?}"),
        format!("{twin:?}"),
        "token text in Debug output"
    );
}

fuzz_target!(|data: &[u8]| {
    for endpoints in [Endpoints::Aws, Endpoints::DangerousAnyHost] {
        match StartSessionResponse::parse_with(data, None, endpoints) {
            Ok(r) => check(&r),
            Err(e) => {
                let _ = format!("{e} {e:?}");
            }
        }
        let mut scratch = vec![0u8; data.len()];
        if let Ok(r) = StartSessionResponse::parse_with(data, Some(&mut scratch), endpoints) {
            check(&r);
        }
    }
});
