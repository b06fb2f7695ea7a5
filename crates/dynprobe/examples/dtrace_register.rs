//! Registers a dynprobe provider with DTrace's helper device and fires it,
//! for the DTrace VM test (test/dtrace-registration.test.js):
//!
//!     dtrace_register CONTROL_DIR
//!
//! Loads the seed's `nodeapp` provider (probe1(int, int), probe2(char *)),
//! registers its DOF with `DTRACEHIOC_ADDDOF`, then every 200 ms fires
//! probe1(1, 2) and probe2("hello, dtrace") whether or not they are traced,
//! and prints each probe's semaphore and the first byte of its site whenever
//! they change (a uprobe replaces the site's NOP). It removes the
//! registration once CONTROL_DIR/remove exists, and exits once
//! CONTROL_DIR/exit does.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dynprobe::dtrace_helper::Registration;
use dynprobe::{build_image, native_target, Arg, ArgType, ProbeDef, Provider, ProviderDef};
use dynprobe_format::dof::{build_image_dof, DofFlavor};

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
    let provider = Provider::load(&def).expect("load the provider");
    // The loader maps this very image (same definition, same target).
    let image = build_image(&def, native_target()).unwrap();
    assert_eq!(image.build_id, provider.build_id());
    let probe1 = provider.probe("probe1").unwrap();
    let probe2 = provider.probe("probe2").unwrap();
    let base = probe1.semaphore() as u64 - image.probes[0].semaphore;
    let dof = build_image_dof(&def, &image, DofFlavor::OracleLinux).unwrap();
    say(&format!(
        "pid {} loaded {} at {base:#x}; DOF {} bytes",
        std::process::id(),
        provider.path().display(),
        dof.len()
    ));
    let mut registration = match Registration::register(provider.module(), base, &dof) {
        Ok(Some(r)) => {
            say(&format!("registered, generation {}", r.generation().0));
            Some(r)
        }
        Ok(None) => {
            say("no DTrace helper device: not registered");
            None
        }
        Err(e) => {
            say(&format!("warning: not registered with DTrace: {e}"));
            None
        }
    };

    let sites: Vec<*const u8> = image
        .probes
        .iter()
        .map(|p| (base + p.stub) as *const u8)
        .collect();
    let state = || {
        [probe1, probe2]
            .iter()
            .zip(&sites)
            .map(|(p, &site)| {
                // SAFETY: both stay mapped while `provider` lives.
                let (sem, byte) = unsafe {
                    (
                        std::ptr::read_volatile(p.semaphore()),
                        std::ptr::read_volatile(site),
                    )
                };
                format!("{} semaphore={sem} site={byte:02x}", p.name())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut last = String::new();
    let mut fires = 0u64;
    let mut next_fire = Instant::now();
    let hello = c"hello, dtrace";
    loop {
        let now = state();
        if now != last {
            say(&format!("state: {now}"));
            last = now;
        }
        if Instant::now() >= next_fire {
            probe1.fire_unchecked(&[Arg::from(1i64), Arg::from(2i64)]);
            probe2.fire_unchecked(&[Arg::from(hello)]);
            fires += 1;
            next_fire += Duration::from_millis(200);
        }
        if registration.is_some() && control.join("remove").exists() {
            match registration.take().unwrap().remove() {
                Ok(()) => say(&format!("removed after {fires} fires")),
                Err(e) => say(&format!("remove failed: {e}")),
            }
        }
        if control.join("exit").exists() {
            say(&format!("exiting after {fires} fires"));
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
