//! The operating system's processes, as tenantry handles them: signals, a child that dies
//! with its parent, a process that seals itself, and whether a pid still runs. All of the
//! crate's `unsafe` is here, each call with why it is sound.
#![allow(unsafe_code)]

use std::io;

/// Sends `signal` to process `pid`.
pub(crate) fn signal(pid: i64, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("not a pid"))?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours; the caller has
    // checked that the pid is the process it means (its own child, or a published server
    // whose `argv[0]` names its tenant).
    match unsafe { libc::kill(pid, signal) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Makes this process undumpable: processes of the same user can no longer read its memory,
/// environment or open files through `/proc`, nor trace it (only a process with
/// `CAP_SYS_PTRACE` can). A serving process calls it first, before it holds any secret.
pub fn seal_process() -> io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_DUMPABLE takes integers and touches no memory of ours.
    match unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Makes the child `command` starts receive SIGKILL when this process dies, however it
/// dies. (Set after the child has taken its own uid, which would clear it.)
pub(crate) fn die_with_parent(command: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called: prctl(2), getppid(2) and _exit(2) are, and
    // it allocates nothing (the error is built from errno alone).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before the signal was set up: do not outlive it.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Restores the default disposition of SIGPIPE, which Rust's runtime ignores: a command
/// whose output goes to a reader that stops early (`| head`) then ends quietly, as Unix
/// tools do. Only for commands that do not serve: a serving process must outlive any client
/// that hangs up mid-response. Call it before any other thread exists.
pub fn restore_default_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL installs no handler of ours; the caller calls it while
    // the process has a single thread, so no thread races with the change.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Whether this process runs as root.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid(2) only reads this process's credentials and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether process `pid` runs: not a zombie (dead, not yet reaped), and not a killed
/// process whose threads are still exiting (its sockets may still accept connections then).
pub fn runs(pid: i64) -> bool {
    // A killed thread group's leader is a zombie before its other threads have exited and
    // its sockets are closed: it runs while any of its threads does.
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.flatten().any(|thread| {
        std::fs::read_to_string(thread.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
                Some(!matches!(state, 'Z' | 'X'))
            })
            .unwrap_or(false)
    })
}

/// The first element of process `pid`'s command line (its `argv[0]`), which any process
/// may read, even of a process that sealed itself.
pub(crate) fn argv0(pid: i64) -> Option<Vec<u8>> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    cmdline.split(|&b| b == 0).next().map(<[u8]>::to_vec)
}
