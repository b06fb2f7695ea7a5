//! Loads a dynprobe provider where DTrace's helper device exists, which
//! registers it with DTrace, and fires it, for the DTrace VM test
//! (test/dtrace-registration.test.js):
//!
//!     dtrace_register CONTROL_DIR
//!
//! Loads the seed's `nodeapp` provider (probe1(int, int), probe2(char *)):
//! `Provider::load` registers its DOF with `DTRACEHIOC_ADDDOF`. Every 200 ms
//! it fires probe1(1, 2) and probe2("hello, dtrace") through the checked
//! `fire`, which calls the site only while `is_enabled()` says a tracer is
//! there, and prints each probe's semaphore, the site watcher's flag,
//! `is_enabled()` and the first byte of its site whenever they change (a
//! uprobe replaces the site's NOP). It unloads the provider (which removes
//! the registration) once CONTROL_DIR/remove exists, and exits once
//! CONTROL_DIR/exit does.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dynprobe::{Arg, ArgType, DtraceRegistration, ProbeDef, Provider, ProviderDef};

fn main() {
    let Some(control) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: dtrace_register CONTROL_DIR");
        std::process::exit(2);
    };
    let mut def = ProviderDef::new("nodeapp", "nodeapp");
    def.add_probe(ProbeDef::new("probe1", vec![ArgType::I64, ArgType::I64]))
        .unwrap();
    def.add_probe(ProbeDef::new("probe2", vec![ArgType::Str]))
        .unwrap();
    let mut provider = Some(Provider::load(&def).expect("load the provider"));
    let loaded = provider.as_ref().unwrap();
    say(&format!(
        "pid {} loaded {}",
        std::process::id(),
        loaded.path().display(),
    ));
    match loaded.dtrace_registration() {
        DtraceRegistration::Registered => say("registered"),
        DtraceRegistration::NoHelper => say("no DTrace helper device: not registered"),
        DtraceRegistration::Failed(e) => say(&format!("warning: not registered with DTrace: {e}")),
    }

    let state = |provider: &Provider| {
        provider
            .probes()
            .map(|p| {
                // SAFETY: all stay mapped while `provider` lives.
                let (sem, flag, byte) = unsafe {
                    (
                        std::ptr::read_volatile(p.semaphore()),
                        std::ptr::read_volatile(p.dtrace_flag()),
                        std::ptr::read_volatile(p.site_address() as *const u8),
                    )
                };
                format!(
                    "{} semaphore={sem} flag={flag} enabled={} site={byte:02x}",
                    p.name(),
                    p.is_enabled()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut last = String::new();
    let (mut fires, mut traced) = (0u64, 0u64);
    let mut next_fire = Instant::now();
    let hello = c"hello, dtrace";
    loop {
        if let Some(provider) = &provider {
            let now = state(provider);
            if now != last {
                say(&format!("state: {now}"));
                last = now;
            }
            if Instant::now() >= next_fire {
                let (probe1, probe2) =
                    (provider.probe_at(0).unwrap(), provider.probe_at(1).unwrap());
                traced += u64::from(probe1.fire(&[Arg::from(1i64), Arg::from(2i64)]));
                traced += u64::from(probe2.fire(&[Arg::from(hello)]));
                fires += 1;
                next_fire += Duration::from_millis(200);
            }
        }
        if provider.is_some() && control.join("remove").exists() {
            match provider.take().unwrap().unload() {
                Ok(()) => say(&format!(
                    "removed after {fires} rounds, {traced} traced fires"
                )),
                Err(e) => say(&format!("unload failed: {e}")),
            }
        }
        if control.join("exit").exists() {
            say(&format!(
                "exiting after {fires} rounds, {traced} traced fires"
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
