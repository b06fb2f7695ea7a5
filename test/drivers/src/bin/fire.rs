//! A scriptable process that defines providers and fires probes, for tracer
//! tests. The script (argv[1]) is one command a line:
//!
//! ```text
//! provider NAME [MODULE]   start a definition
//! probe NAME [TYPE...]     add a probe to it (C type names, `char*` for strings)
//! load                     load the definition
//! ready                    print `READY <pid> <library paths>`, wait for `go` on stdin
//! wait-traced PROBE        poll until a tracer enables PROBE (10 s at most)
//! fire PROBE [VALUE...]    fire PROBE of the last loaded provider if enabled
//! fire-while-traced PROBE [VALUE...]
//!                          fire PROBE every 10 ms while a tracer enables it
//!                          (30 s at most): a tracer that enables a probe while
//!                          the program runs turns its semaphore on a moment
//!                          before its own program runs at the probe, so one
//!                          fire made at once can be lost
//! unload                   unload the last loaded provider
//! sleep MS
//! ```
//!
//! A provider `dptest` with a probe `done` is always loaded; it fires last so
//! that a tracer can exit on it.

use std::ffi::CString;
use std::io::BufRead;
use std::time::{Duration, Instant};

use dynprobe::{Arg, ArgType, ProbeDef, Provider, ProviderDef};

fn main() {
    let script = std::env::args().nth(1).unwrap_or_default();
    let mut sync = ProviderDef::new("dptest", "dptest");
    sync.add_probe(ProbeDef::new("done", Vec::new()))
        .expect("valid probe");
    let sync = Provider::load(&sync).unwrap_or_else(|e| fail(&e.to_string()));
    let mut loaded: Vec<Provider> = Vec::new();
    let mut def: Option<ProviderDef> = None;

    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["provider", name] => def = Some(ProviderDef::new(name, name)),
            ["provider", name, module] => def = Some(ProviderDef::new(name, module)),
            ["probe", name, ref types @ ..] => {
                let args = types
                    .iter()
                    .map(|t| ArgType::from_c_name(t))
                    .collect::<Result<Vec<_>, _>>();
                let probe = ProbeDef::new(name, args.unwrap_or_else(|e| fail(&e.to_string())));
                let def = def
                    .as_mut()
                    .unwrap_or_else(|| fail("probe before provider"));
                def.add_probe(probe)
                    .unwrap_or_else(|e| fail(&e.to_string()));
            }
            ["load"] => {
                let def = def.as_ref().unwrap_or_else(|| fail("load before provider"));
                loaded.push(Provider::load(def).unwrap_or_else(|e| fail(&e.to_string())));
            }
            ["ready"] => {
                let paths: Vec<String> = std::iter::once(&sync)
                    .chain(&loaded)
                    .map(|p| p.path().display().to_string())
                    .collect();
                println!("READY {} {}", std::process::id(), paths.join(" "));
                let mut go = String::new();
                std::io::stdin().lock().read_line(&mut go).expect("stdin");
            }
            ["wait-traced", probe] => {
                let provider = loaded.last().unwrap_or_else(|| fail("nothing loaded"));
                let probe = provider
                    .probe(probe)
                    .unwrap_or_else(|| fail("no such probe"));
                let start = Instant::now();
                while !probe.is_enabled() {
                    if start.elapsed() > Duration::from_secs(10) {
                        fail("probe was never traced");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            ["fire", probe, ref values @ ..] => {
                fire(loaded.last(), probe, values);
            }
            ["fire-while-traced", probe, ref values @ ..] => {
                let start = Instant::now();
                while fire(loaded.last(), probe, values) {
                    if start.elapsed() > Duration::from_secs(30) {
                        fail("probe was still traced after 30 s");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            ["unload"] => {
                let provider = loaded.pop().unwrap_or_else(|| fail("nothing loaded"));
                provider.unload().unwrap_or_else(|e| fail(&e.to_string()));
            }
            ["sleep", ms] => std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0))),
            _ => fail(&format!("bad script line: {line}")),
        }
    }
    sync.probe("done").expect("done probe").fire(&[]);
}

/// Fires `name` if a tracer enables it; says whether one did.
fn fire(provider: Option<&Provider>, name: &str, values: &[&str]) -> bool {
    let provider = provider.unwrap_or_else(|| fail("nothing loaded"));
    let probe = provider
        .probe(name)
        .unwrap_or_else(|| fail("no such probe"));
    // Strings must outlive the call; keep them here.
    let strings: Vec<CString> = values
        .iter()
        .map(|v| CString::new(*v).expect("no NUL"))
        .collect();
    let args: Vec<Arg> = probe
        .args()
        .iter()
        .zip(values.iter().zip(&strings))
        .map(|(ty, (text, cstr))| match ty {
            ArgType::Str => Arg::Str(cstr),
            _ => text
                .parse::<i64>()
                .map(Arg::Int)
                .or_else(|_| text.parse::<u64>().map(Arg::Uint))
                .unwrap_or_else(|_| fail(&format!("not an integer: {text}"))),
        })
        .collect();
    probe.fire(&args)
}

fn fail(message: &str) -> ! {
    eprintln!("fire: {message}");
    std::process::exit(2)
}
