//! The cache directory against another local user, and against writers
//! killed mid-write. The attacker is a real second user (`nobody`, a child
//! process of this binary run with setuid), so most tests need root; without
//! it they skip loudly, and on CI they fail.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use dynprobe::{build_image, native_target, Error, Provider, ProviderDef, Storage};

const NOBODY: u32 = 65534;

fn victim_def() -> ProviderDef {
    simple_def("victim", "victim", 3)
}

fn build_id_hex(def: &ProviderDef) -> String {
    build_image(def, native_target()).unwrap().build_id_hex()
}

/// A directory owned by `nobody`, mode `mode`.
fn nobodys_dir(path: &Path, mode: u32) {
    fs::create_dir(path).unwrap();
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// In a child: a load that must be refused because of `path`.
fn expect_refused(def: &ProviderDef) {
    let expected = PathBuf::from(std::env::var_os("EXPECT_REFUSED").unwrap());
    match Provider::load(def) {
        Err(Error::UnsafeDirectory { path, reason }) => {
            assert_eq!(path, expected, "{reason}");
            report("reason", reason);
        }
        other => panic!("expected {} refused, got {other:?}", expected.display()),
    }
}

#[test]
fn an_ancestor_owned_by_another_user_is_refused() {
    const TEST: &str = "an_ancestor_owned_by_another_user_is_refused";
    match role().as_deref() {
        Some("refused") => return expect_refused(&victim_def()),
        Some("default") => {
            // An inherited XDG_RUNTIME_DIR of another user is skipped.
            let provider = Provider::load(&victim_def()).unwrap();
            report("storage", format!("{:?}", provider.storage()));
            return;
        }
        _ => {}
    }
    if !is_root() {
        return skip(
            TEST,
            "making a directory of another user needs root (chown)",
        );
    }
    let dir = TempDir::new("ancestor");
    let theirs = dir.join("theirs");
    nobodys_dir(&theirs, 0o755);
    let cache = theirs.join("cache");
    let reason = run_child_env(TEST, "refused", &cache, &[("EXPECT_REFUSED", &theirs)]);
    assert!(
        reason.get("reason").contains("owned by uid 65534"),
        "{reason:?}"
    );
    assert!(entries(&theirs).is_empty(), "wrote {:?}", entries(&theirs));

    // Deeper: the other user's directory is a grandparent.
    let sub = theirs.join("sub");
    fs::create_dir(&sub).unwrap();
    run_child_env(
        TEST,
        "refused",
        &sub.join("cache"),
        &[("EXPECT_REFUSED", &theirs)],
    );
    assert!(entries(&sub).is_empty(), "wrote {:?}", entries(&sub));

    // A symbolic link the other user made, in a sticky directory anyone can
    // write to, is not followed.
    let sticky = dir.join("sticky");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let mine = dir.join("mine");
    fs::create_dir(&mine).unwrap();
    let link = sticky.join("link");
    std::os::unix::fs::symlink(&mine, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    run_child_env(
        TEST,
        "refused",
        &link.join("cache"),
        &[("EXPECT_REFUSED", &link)],
    );
    assert!(entries(&mine).is_empty(), "wrote {:?}", entries(&mine));

    // Not chosen but inherited: skipped for the next candidate.
    let mut cmd = child_command(TEST, "default", &cache);
    cmd.env_remove("DYNPROBE_DIR")
        .env("XDG_RUNTIME_DIR", &theirs);
    let report = finish_output(cmd.output().unwrap());
    let storage = report.get("storage");
    assert!(!storage.contains(theirs.to_str().unwrap()), "{storage}");
    eprintln!("with another user's XDG_RUNTIME_DIR: {storage}");
    assert!(entries(&theirs).contains(&"sub".to_string()) && !theirs.join("dynprobe").exists());
}

#[test]
fn a_build_id_directory_of_another_user_is_refused() {
    const TEST: &str = "a_build_id_directory_of_another_user_is_refused";
    if role().is_some() {
        return expect_refused(&victim_def());
    }
    if !is_root() {
        return skip(
            TEST,
            "making a directory of another user needs root (chown)",
        );
    }
    let dir = TempDir::new("theirbuild");
    let cache = dir.join("cache");
    fs::create_dir(&cache).unwrap();
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o700)).unwrap();
    let build_dir = cache.join(build_id_hex(&victim_def()));
    nobodys_dir(&build_dir, 0o777);
    run_child_env(TEST, "refused", &cache, &[("EXPECT_REFUSED", &build_dir)]);
    assert!(
        entries(&build_dir).is_empty(),
        "wrote {:?}",
        entries(&build_dir)
    );
}

#[test]
fn a_symlinked_build_id_directory_is_refused() {
    const TEST: &str = "a_symlinked_build_id_directory_is_refused";
    if role().is_some() {
        return expect_refused(&victim_def());
    }
    let dir = TempDir::new("linkedbuild");
    let cache = dir.join("cache");
    fs::create_dir(&cache).unwrap();
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o700)).unwrap();
    let elsewhere = dir.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let build_dir = cache.join(build_id_hex(&victim_def()));
    std::os::unix::fs::symlink(&elsewhere, &build_dir).unwrap();
    let reason = run_child_env(TEST, "refused", &cache, &[("EXPECT_REFUSED", &build_dir)]);
    assert!(reason.get("reason").contains("symbolic link"), "{reason:?}");
    assert!(entries(&elsewhere).is_empty(), "wrote through the link");
}

#[test]
fn a_tmp_directory_taken_by_another_user_falls_back_to_memfd() {
    const TEST: &str = "a_tmp_directory_taken_by_another_user_falls_back_to_memfd";
    if role().is_some() {
        let provider = Provider::load(&victim_def()).unwrap();
        let Storage::Memfd(path) = provider.storage() else {
            panic!("expected a memfd, got {:?}", provider.storage());
        };
        report("path", path.display());
        for probe in provider.probes() {
            assert!(!probe.is_enabled());
            probe.fire_unchecked(&[1i64.into()]);
        }
        return;
    }
    if !is_root() {
        return skip(TEST, "running as a second user and a victim needs root");
    }
    // The victim: a uid with no directory in /tmp yet (root's own
    // /tmp/dynprobe-0 is in use by everything else on this machine).
    // Taken by creating it (another run of this test may be choosing too).
    let victim = (60_000..60_500)
        .find(|uid| match fs::create_dir(format!("/tmp/dynprobe-{uid}")) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => panic!("/tmp/dynprobe-{uid}: {e}"),
        })
        .expect("a free uid");
    let taken = PathBuf::from(format!("/tmp/dynprobe-{victim}"));
    let _cleanup = RemoveOnDrop(taken.clone());
    std::os::unix::fs::chown(&taken, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&taken, fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = child_command(TEST, "victim", Path::new("/unused"));
    cmd.env_remove("DYNPROBE_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        .uid(victim)
        .gid(victim);
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = finish_output(output);
    eprintln!("victim {victim}: {}", report.get("path"));
    // The one-time warning says which directory was refused, and why.
    assert!(
        stderr.contains(&format!("refusing to use {}", taken.display()))
            && stderr.contains("owned by uid 65534"),
        "{stderr}"
    );
    assert!(entries(&taken).is_empty(), "wrote {:?}", entries(&taken));
}

/// Removes a directory tree when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// How long the attacker and the victim race.
const RACE: Duration = Duration::from_secs(4);

#[test]
fn another_users_library_is_never_mapped_whatever_they_swap() {
    const TEST: &str = "another_users_library_is_never_mapped_whatever_they_swap";
    match role().as_deref() {
        Some("attacker") => return attack(),
        Some("victim") => return load_while_attacked(),
        _ => {}
    }
    if !is_root() {
        return skip(TEST, "a second user attacking root's cache needs root");
    }
    let dir = TempDir::new("race");
    // mkdtemp makes it 0700: the attacker must reach its own directory in it.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // The cache below a directory the attacker owns (an inherited
    // XDG_RUNTIME_DIR, a DYNPROBE_DIR in their home): refused. Below a
    // sticky directory anyone can write to, as /tmp: used, and safe.
    let theirs = dir.join("theirs");
    nobodys_dir(&theirs, 0o755);
    let sticky = dir.join("sticky");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    for parent in [theirs, sticky] {
        let cache = parent.join("cache");
        // The victim loads once undisturbed (the old code checked its
        // directory then, and only then), and races when the attacker says go.
        let mut victim = child_command(TEST, "victim", &cache);
        victim.env("RACE_DIR", &parent);
        let mut victim = LiveChild::spawn(victim);
        let first = victim.expect("first");
        let mut attacker = child_command(TEST, "attacker", &cache);
        attacker
            .env("RACE_DIR", &parent)
            .env("RACE_BUILD_ID", build_id_hex(&victim_def()))
            .uid(NOBODY)
            .gid(NOBODY);
        let attacker = LiveChild::spawn(attacker);
        let report = victim.finish();
        let swaps = attacker.finish().get("swaps").to_string();
        eprintln!(
            "{}: first load: {first}; {swaps} swaps by the attacker; victim: {} loads, {} refused, {} other errors",
            parent.display(),
            report.get("loaded"),
            report.get("refused"),
            report.get("failed")
        );
        assert_eq!(
            report.get("evil_mapped"),
            "0",
            "the attacker's library was mapped"
        );
        if parent.ends_with("sticky") {
            assert_eq!(first, "Ok(())");
            let loaded: u64 = report.parse("loaded");
            assert!(loaded > 0 && report.get("refused") == "0" && report.get("failed") == "0");
        }
    }
}

/// In the attacker (`nobody`): keeps a directory of its own with its own
/// library at the victim's path, and swaps it with the victim's cache
/// directory as fast as it can; whenever the victim repairs the library in
/// it, puts its own back.
fn attack() {
    let theirs = PathBuf::from(std::env::var_os("RACE_DIR").unwrap());
    let build_id = std::env::var("RACE_BUILD_ID").unwrap();
    let evil_def = simple_def("attacker", "victim", 3);
    let master = theirs.join("evil-master");
    fs::write(
        &master,
        build_image(&evil_def, native_target()).unwrap().bytes,
    )
    .unwrap();
    fs::set_permissions(&master, fs::Permissions::from_mode(0o755)).unwrap();
    let evil_inode = fs::metadata(&master).unwrap().ino();
    let plant = |dir: &Path| {
        let build_dir = dir.join(&build_id);
        let _ = fs::create_dir(&build_dir);
        let _ = fs::set_permissions(&build_dir, fs::Permissions::from_mode(0o777));
        let target = build_dir.join("victim");
        if fs::symlink_metadata(&target).map(|m| m.ino()).ok() != Some(evil_inode) {
            let staged = build_dir.join("staged");
            let _ = fs::remove_file(&staged);
            if fs::hard_link(&master, &staged).is_ok() {
                let _ = fs::rename(&staged, &target);
            }
        }
    };
    let evil = theirs.join("evil");
    fs::create_dir(&evil).unwrap();
    plant(&evil);
    let cache = theirs.join("cache");
    // Published whole (written, then renamed in): the victim reads it as soon
    // as it exists, and a slow machine showed it empty.
    fs::write(theirs.join("go.tmp"), evil_inode.to_string()).unwrap();
    fs::rename(theirs.join("go.tmp"), theirs.join("go")).unwrap();
    let start = Instant::now();
    let mut swaps = 0u64;
    while start.elapsed() < RACE + Duration::from_secs(1) {
        if !cache.exists() {
            // The victim's directory is not there (anymore): offer ours.
            if fs::rename(&evil, &cache).is_ok() {
                let _ = fs::create_dir(&evil);
            }
        }
        for d in [&cache, &evil] {
            if fs::symlink_metadata(d).is_ok_and(|m| m.uid() == NOBODY) {
                plant(d);
            }
        }
        if exchange(&cache, &evil) {
            swaps += 1;
        }
    }
    report("swaps", swaps);
}

/// Swaps two directory entries in one step (renameat2 RENAME_EXCHANGE).
fn exchange(a: &Path, b: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let a = CString::new(a.as_os_str().as_bytes()).unwrap();
    let b = CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: both paths are NUL-terminated.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    rc == 0
}

/// In the victim (root): loads and unloads for the length of the race,
/// looking for the attacker's inode among its mappings after each load.
fn load_while_attacked() {
    let def = victim_def();
    let first = Provider::load(&def).map(drop);
    report("first", format!("{first:?}"));
    let go = PathBuf::from(std::env::var_os("RACE_DIR").unwrap()).join("go");
    assert!(wait_until(Duration::from_secs(30), || go.exists()), "no go");
    let evil_inode: u64 = fs::read_to_string(&go).unwrap().parse().unwrap();
    let (mut loaded, mut refused, mut failed, mut evil_mapped) = (0, 0, 0, 0);
    let start = Instant::now();
    while start.elapsed() < RACE {
        match Provider::load(&def) {
            Ok(provider) => {
                loaded += 1;
                if mappings().iter().any(|m| m.inode == evil_inode) {
                    evil_mapped += 1;
                }
                drop(provider);
            }
            Err(Error::UnsafeDirectory { .. }) => refused += 1,
            Err(_) => failed += 1,
        }
    }
    report("loaded", loaded);
    report("refused", refused);
    report("failed", failed);
    report("evil_mapped", evil_mapped);
}

/// Kills a child mid-load this many times.
const KILLS: usize = 40;

#[test]
fn a_killed_writer_leaves_no_temporary_file() {
    const TEST: &str = "a_killed_writer_leaves_no_temporary_file";
    let def = simple_def("bigprov", "bigprov", 5000);
    match role().as_deref() {
        Some("writer") => {
            let provider = Provider::load(&def).unwrap();
            report("loaded", provider.path().display());
            return;
        }
        Some("rewriter") => {
            // Writes the library again and again until killed, so that a
            // kill at any moment is likely to land in a write.
            let path = Provider::load(&def).unwrap().path().to_path_buf();
            report("ready", 1);
            loop {
                fs::remove_file(&path).unwrap();
                Provider::load(&def).unwrap();
            }
        }
        _ => {}
    }
    let dir = TempDir::new("killed");
    let cache = dir.join("cache");
    let first = LiveChild::spawn(child_command(TEST, "writer", &cache));
    let path = PathBuf::from(finish_live(first, "loaded"));
    let build_dir = path.parent().unwrap().to_path_buf();
    let module = path.file_name().unwrap().to_str().unwrap().to_string();

    // What an older version, killed while writing, left: one long ago, and
    // one just now (its writer may still be alive, and is left alone).
    let old_leftover = build_dir.join(".tmp-99999-0");
    let fresh_leftover = build_dir.join(".tmp-99998-0");
    for leftover in [&old_leftover, &fresh_leftover] {
        let mut f = fs::File::create(leftover).unwrap();
        f.write_all(b"\x7fELF half a library").unwrap();
        if leftover == &old_leftover {
            // Before the mode below takes write access away (from anyone but root).
            f.set_modified(SystemTime::now() - Duration::from_secs(3600))
                .unwrap();
        }
        fs::set_permissions(leftover, fs::Permissions::from_mode(0o500)).unwrap();
    }

    let mut litter = Vec::new();
    for i in 0..KILLS {
        let mut child = LiveChild::spawn(child_command(TEST, "rewriter", &cache));
        child.expect("ready");
        // Kill at moments spread over a few rewrites.
        std::thread::sleep(Duration::from_millis(i as u64));
        // SAFETY: kill has no memory effects; the pid is our child's.
        unsafe { libc::kill(child.pid() as i32, libc::SIGKILL) };
        child.wait();
        litter.extend(
            entries(&build_dir)
                .into_iter()
                .filter(|n| n != &module && !n.starts_with(".tmp-9999")),
        );
    }
    assert!(litter.is_empty(), "killed writers left {litter:?}");

    // This version's named temporary files (used only where O_TMPFILE is
    // missing, or to replace a wrong file) are locked while their writer
    // lives: one unlocked is a dead writer's, one locked is not.
    let dead = build_dir.join(".dynprobe-tmp-99997-0");
    let live = build_dir.join(".dynprobe-tmp-99996-0");
    fs::write(&dead, b"\x7fELF half").unwrap();
    fs::write(&live, b"\x7fELF half").unwrap();
    let writer = fs::File::open(&live).unwrap();
    // SAFETY: flock has no memory effects; the descriptor is open.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&writer), libc::LOCK_EX) },
        0
    );

    // The fresh leftover must still be fresh when the later load looks at
    // it, however long the kill loop took (over a minute in an emulated
    // machine, where a rewriter rightly removed it once it had aged): plant
    // it again now.
    let _ = fs::remove_file(&fresh_leftover);
    fs::write(&fresh_leftover, b"\x7fELF half a library").unwrap();

    // A later load cleans up what dead writers left.
    finish_live(
        LiveChild::spawn(child_command(TEST, "writer", &cache)),
        "loaded",
    );
    assert_eq!(
        entries(&build_dir),
        [".dynprobe-tmp-99996-0", ".tmp-99998-0", &module],
        "leftovers after a later load"
    );
    drop(writer);
}

/// Lets a live child finish and returns what it reported under `key`.
fn finish_live(child: LiveChild, key: &str) -> String {
    child.finish().get(key).to_string()
}

/// Runs `test` in `role` with `dir` as its cache and extra variables.
fn run_child_env(test: &str, role: &str, dir: &Path, vars: &[(&str, &Path)]) -> Report {
    let mut cmd = child_command(test, role, dir);
    for (key, value) in vars {
        cmd.env(key, value);
    }
    finish_output(cmd.output().unwrap())
}

#[test]
fn memfd_create_is_not_imported() {
    // glibc before 2.27 has no memfd_create: the system call is made directly.
    use object::{Object, ObjectSymbol};
    let binary = fs::read(std::env::current_exe().unwrap()).unwrap();
    let file = object::File::parse(&*binary).unwrap();
    let imported: Vec<String> = file
        .dynamic_symbols()
        .filter(|s| s.is_undefined())
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect();
    assert!(!imported.is_empty(), "no dynamic imports found");
    assert!(
        !imported.iter().any(|s| s.contains("memfd")),
        "imports {:?}",
        imported
            .iter()
            .filter(|s| s.contains("memfd"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_link_of_this_user_on_the_way_is_resolved() {
    const TEST: &str = "a_link_of_this_user_on_the_way_is_resolved";
    if role().is_some() {
        let provider = Provider::load(&victim_def()).unwrap();
        let path = provider.path();
        // Tracers see the path with links resolved, as the kernel shows it.
        assert!(
            !mappings_of(path).is_empty(),
            "{} is not mapped",
            path.display()
        );
        report("path", path.display());
        return;
    }
    let dir = TempDir::new("linked");
    let real = dir.join("real");
    fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink("real/../real", dir.join("link")).unwrap();
    let path = run_child(TEST, "loader", &dir.join("link").join("cache")).path("path");
    let expected = real.join("cache").join(build_id_hex(&victim_def()));
    assert_eq!(path, expected.join("victim"));
}
