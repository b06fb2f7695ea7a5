//! External tools the tests cross-check with (binutils).

use std::io::Write;
use std::process::Command;

/// Whether `tool` can be run. A missing tool fails the test under `CI=true`,
/// and otherwise is reported loudly and the check skipped.
pub fn tool_available(tool: &str, test: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: {tool} is not installed, and CI=true requires it"
        );
        // Straight to the process's stderr: the test harness captures
        // `eprintln!`. scripts/test.js counts the test as skipped by this
        // line (`*** SKIP <test function>`), as for crates/dynprobe's tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIP {test}: {tool} is not installed ***\n"
        );
    }
    found
}
