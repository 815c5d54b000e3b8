//! Interactive behaviour in a real terminal: tmux runs `ssm-session demo`, the test types with
//! `send-keys` and reads the screen with `capture-pane`.
//!
//! Needs tmux (`apt-get install -y tmux`). Without it the test fails under CI (`CI` set) and is
//! skipped with a message elsewhere.

#![allow(
    clippy::std_instead_of_core,
    reason = "std test code; the lint is for the no_std core"
)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{TempDir, BIN};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// The whole pane, scrollback included.
    fn screen(&self) -> String {
        let o = self.cmd(&["capture-pane", "-p", "-J", "-S", "-", "-t", "t"]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn wait_for(&self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if s.contains(needle) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not on screen after {secs}s:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn count_after(&self, needle: &str, at_least: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if s.matches(needle).count() >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not {at_least}x on screen after {secs}s:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    fn literal(&self, text: &str) {
        assert!(self
            .cmd(&["send-keys", "-t", "t", "-l", text])
            .status
            .success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn tmux_missing() -> bool {
    Command::new("tmux").arg("-V").output().is_err()
}

#[test]
fn interactive_shell_in_a_terminal() {
    if tmux_missing() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is required under CI: apt-get install -y tmux"
        );
        eprintln!("SKIPPED interactive_shell_in_a_terminal: tmux is not installed");
        return;
    }
    let dir = TempDir::new("tmux");
    let d = dir.0.display().to_string();
    let script = dir.0.join("run.sh");
    // Four sessions: left with `~.`, killed with SIGTERM, ended with `exit`, a panic in raw mode;
    // then the terminal settings are compared with those from before.
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
stty -a > '{d}/stty.before'
'{BIN}' demo; echo "first-exit=$?"
sh -c 'echo $$ > "$0/pid"; exec "$1" demo' '{d}' '{BIN}'; echo "second-exit=$?"
'{BIN}' demo; echo "third-exit=$?"
SSM_SESSION_TEST_PANIC_IN_RAW_MODE=1 '{BIN}' demo; echo "fourth-exit=$?"
stty -a > '{d}/stty.after'
echo all-done
sleep 600
"#
        ),
    )
    .unwrap();
    let tmux = Tmux {
        socket: format!("ssm-session-test-{}", std::process::id()),
    };
    let started = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        "sh",
        &script.display().to_string(),
    ]);
    assert!(started.status.success(), "{started:?}");

    // 1. Typing reaches the remote shell; the answer is computed there.
    tmux.wait_for("Starting session with SessionId", 30);
    tmux.literal("echo hi-$((6*7))");
    tmux.keys(&["Enter"]);
    tmux.wait_for("hi-42", 20);

    // 2. A resize of the terminal reaches the remote PTY (SIGWINCH → Size message).
    assert!(tmux
        .cmd(&["resize-window", "-t", "t", "-x", "120", "-y", "40"])
        .status
        .success());
    std::thread::sleep(Duration::from_millis(300));
    tmux.literal("stty size");
    tmux.keys(&["Enter"]);
    tmux.wait_for("40 120", 20);

    // 3. Ctrl-C goes to the remote: it interrupts a remote sleep, the session stays.
    tmux.literal("sleep 100");
    tmux.keys(&["Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    tmux.keys(&["C-c"]);
    tmux.literal("echo after-$((1+1))");
    tmux.keys(&["Enter"]);
    tmux.wait_for("after-2", 10);

    // 4. `~.` after Enter leaves the session (exit code 254).
    tmux.keys(&["Enter"]);
    tmux.literal("~.");
    tmux.wait_for("first-exit=254", 10);

    // 5. SIGTERM: the terminal is restored and the exit code is 128 + 15.
    tmux.count_after("Starting session with SessionId", 2, 30);
    tmux.literal("echo second-$((2*2))");
    tmux.keys(&["Enter"]);
    tmux.wait_for("second-4", 20);
    let pid = std::fs::read_to_string(dir.0.join("pid")).unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    tmux.wait_for("second-exit=143", 10);

    // 6. `exit` ends the shell and the session normally.
    tmux.count_after("Starting session with SessionId", 3, 30);
    tmux.literal("echo third-$((3*3))");
    tmux.keys(&["Enter"]);
    tmux.wait_for("third-9", 20);
    tmux.literal("exit");
    tmux.keys(&["Enter"]);
    tmux.wait_for("third-exit=0", 20);

    // 7. A panic in raw mode: one line, exit code 255, terminal restored (checked below).
    tmux.wait_for("fourth-exit=255", 30);
    assert!(tmux
        .screen()
        .contains("ssm-session: internal error: SSM_SESSION_TEST_PANIC_IN_RAW_MODE is set"));
    tmux.wait_for("all-done", 10);

    // Raw mode was undone every time: the settings are exactly the ones from before (but the
    // first line, which holds the size).
    let settings = |f: &str| {
        let text = std::fs::read_to_string(dir.0.join(f)).unwrap();
        text.lines().skip(1).collect::<Vec<_>>().join("\n")
    };
    let (before, after) = (settings("stty.before"), settings("stty.after"));
    assert_eq!(before, after, "terminal settings changed");
    assert!(
        before.contains(" icanon") && before.contains(" echo"),
        "{before}"
    );
}
