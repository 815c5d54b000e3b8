//! Builds the Go smux peer (`peer.go` beside this file) against Debian's
//! golang-github-xtaci-smux-dev. Shared by ssm-proto's and ssm-tokio's interop tests.

use std::path::{Path, PathBuf};
use std::process::Command;

const GOPATH: &str = "/usr/share/gocode";

/// Builds `peer.go` (found in `src_dir`) into `out_dir`; `None` when go or the smux package is
/// missing, unless `SSM_REQUIRE_GO_SMUX` is set (CI), which turns that into a failure.
pub fn build(src_dir: &Path, out_dir: &Path) -> Option<PathBuf> {
    let have_go = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    let have_smux = Path::new(GOPATH).join("src/github.com/xtaci/smux").is_dir();
    if !(have_go && have_smux) {
        assert!(
            std::env::var_os("SSM_REQUIRE_GO_SMUX").is_none(),
            "SSM_REQUIRE_GO_SMUX is set but go or golang-github-xtaci-smux-dev is missing"
        );
        eprintln!("skipping: go or golang-github-xtaci-smux-dev not installed");
        return None;
    }
    let dir = out_dir.join("smux_go");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join(format!("peer-{}", std::process::id()));
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(src_dir.join("peer.go"))
        .env("GOPATH", GOPATH)
        .env("GO111MODULE", "off")
        .env("GOCACHE", dir.join("cache"))
        .env("GOFLAGS", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(bin)
}
