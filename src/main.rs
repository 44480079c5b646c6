//! xcr0-sandbox: run an unmodified Linux x86-64 program with the XCR0 of
//! your choosing, on a KVM vCPU, without a kernel patch.

// The process starts at `main` below, not through Rust's runtime start
// (the unit tests keep the test harness's).
#![cfg_attr(not(test), no_main)]

mod check_trace;
mod cli;
// Also in the unit tests' binary, which the entry's link argument reaches.
mod entry;
mod exit;
mod report;
mod tasks;

use std::ffi::OsString;
use std::sync::Arc;

use vmm::{Hypervisor, Xcr0, check, kvm};

use cli::{Args, Command};

/// The entry from libc's start code, in place of Rust's runtime start,
/// which would ignore SIGPIPE, handle SIGSEGV and SIGBUS on an alternate
/// stack (and give every later thread one), open /dev/null on closed
/// standard descriptors, and read /proc/self/maps for the main thread's
/// stack guard: none of it for the program to inherit, and all of it a
/// cost of every start and every thread (thread create+join: 400 -> 360
/// µs on PVM). std still gets the arguments and environment from libc.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    use std::io::Write;
    // A panic reports itself and gives 101, as under Rust's runtime.
    let code = std::panic::catch_unwind(run_main).unwrap_or(101);
    let _ = std::io::stdout().flush();
    code.into()
}

#[cfg_attr(test, allow(dead_code))]
fn run_main() -> u8 {
    let args = match cli::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Command::Exec { carried, .. } = &args.command {
        report::adopt(carried.report_fd);
    }
    report::init_logging(args.verbose);
    if let Command::Run { .. } = args.command {
        // Before anything an image executed now would have to be handed
        // (RLIMIT_CORE's view, below).
        syscall_proxy::loader::room::adopt_at_start();
        syscall_proxy::loader::room::start_in_room();
    }
    syscall_proxy::limits::init();
    if let Command::Exec { carried, .. } = &args.command {
        if let Some((cur, max)) = carried.core {
            syscall_proxy::limits::carry_core_view(cur, max);
        }
        if let Some(room) = carried.room {
            syscall_proxy::loader::room::adopt(room);
        }
    }
    match args.command {
        Command::Check => run_check(),
        Command::CheckTrace(dir) => check_trace::run(&dir, replay_host),
        Command::Run { .. } | Command::Exec { .. } => run(args),
    }
}

fn fail(msg: impl std::fmt::Display, code: u8) -> u8 {
    report::line(msg);
    code
}

/// /dev/kvm: the one an executing sandbox left open, else opened now.
fn open_kvm(inherited: Option<std::os::fd::RawFd>) -> Result<Arc<Hypervisor>, kvm::KvmError> {
    inherited
        .map_or_else(Hypervisor::open, Hypervisor::adopt)
        .map(Arc::new)
}

/// A program's CPUID policy (`--cpuid`), host by default.
fn choose_cpuid(requested: Option<&str>) -> Result<syscall_proxy::cpuid::Policy, String> {
    requested.map_or(Ok(syscall_proxy::cpuid::Policy::Host), |p| {
        syscall_proxy::cpuid::Policy::parse(p)
    })
}

/// A program's XCR0, whether it was asked for, and its CPUID policy.
#[derive(Clone)]
struct Chosen {
    xcr0: Xcr0,
    asked: bool,
    cpuid: syscall_proxy::cpuid::Policy,
}

/// The XCR0 to use: the request, checked against what this KVM supports, or
/// the host's own less what this KVM cannot give (`check::default_xcr0`).
fn choose_xcr0(hv: &Hypervisor, requested: Option<&str>) -> Result<Chosen, String> {
    let supported = hv.supported_xcr0();
    let supported_text = Xcr0::new(supported & vmm::xcr0::USER_BITS)
        .map(|x| format!("{x} ({})", x.names()))
        .unwrap_or_else(|_| format!("{supported:#x}"));
    let Some(text) = requested else {
        return check::default_xcr0(kvm::host_xcr0(), supported)
            .map(|xcr0| Chosen {
                xcr0,
                asked: false,
                cpuid: Default::default(),
            })
            .map_err(|e| format!("the host's XCR0 is not usable: {e}"));
    };
    let x = Xcr0::parse(text)
        .map_err(|e| format!("invalid --xcr0 '{text}': {e}; this KVM supports {supported_text}"))?;
    let missing = x.unsupported(supported);
    if missing != 0 {
        return Err(format!(
            "invalid --xcr0 '{text}': bits {missing:#x} are not supported by this KVM; it supports {supported_text}"
        ));
    }
    Ok(Chosen {
        xcr0: x,
        asked: true,
        cpuid: Default::default(),
    })
}

fn run(args: Args) -> u8 {
    let inherited = match &args.command {
        Command::Exec { carried, .. } => carried.kvm_fd,
        _ => None,
    };
    let hv = match open_kvm(inherited) {
        Ok(hv) => hv,
        Err(e) => return fail(e, 125),
    };
    // After the descriptor table grew for the parked descriptors: grown
    // while another thread shares it, it waits for an RCU grace period.
    syscall_proxy::signals::arrival::reclaim_glibc_signals();
    let programs = match &args.command {
        Command::Exec {
            path,
            argv0,
            args: a,
            carried,
        } => {
            let chosen = choose_xcr0(&hv, args.xcr0.as_deref()).and_then(|x| {
                Ok(Chosen {
                    cpuid: choose_cpuid(args.cpuid.as_deref())?,
                    ..x
                })
            });
            let chosen = match chosen {
                Ok(c) => c,
                Err(e) => return fail(e, 2),
            };
            let code = run_one(
                &args,
                hv,
                chosen,
                path.clone(),
                a.clone(),
                Some(argv0.clone()),
                Some(*carried),
            );
            return code;
        }
        Command::Run { programs } => programs,
        Command::Check | Command::CheckTrace(_) => unreachable!(),
    };
    // Every XCR0 and CPUID policy is checked before anything starts.
    let mut masks = Vec::new();
    for (i, p) in programs.iter().enumerate() {
        let chosen = choose_xcr0(&hv, p.xcr0.as_deref().or(args.xcr0.as_deref())).and_then(|x| {
            Ok(Chosen {
                cpuid: choose_cpuid(p.cpuid.as_deref().or(args.cpuid.as_deref()))?,
                ..x
            })
        });
        match chosen {
            Ok(c) => masks.push(c),
            Err(e) if programs.len() == 1 => return fail(e, 2),
            Err(e) => return fail(format_args!("program {}: {e}", i + 1), 2),
        }
    }
    if let [p] = programs.as_slice() {
        let code = run_one(
            &args,
            hv,
            masks[0].clone(),
            p.program.clone(),
            p.args.clone(),
            None,
            None,
        );
        return code;
    }
    let ended = tasks::start_all(
        programs.len(),
        |i| programs[i].piped_in,
        |i| {
            report::set_label(format!("program {}", i + 1));
            let p = &programs[i];
            run_one(
                &args,
                hv.clone(),
                masks[i].clone(),
                p.program.clone(),
                p.args.clone(),
                None,
                None,
            )
        },
    );
    let ended = match ended {
        Ok(e) => e,
        Err(e) => return fail(format_args!("starting the programs: {e}"), 125),
    };
    for (i, e) in ended.iter().enumerate() {
        let line = format!(
            "program {} ({}, xcr0 {}): {}",
            i + 1,
            programs[i].program.to_string_lossy(),
            masks[i].xcr0,
            e.describe()
        );
        if args.stats || args.verbose > 0 {
            report::line(line);
        }
    }
    let status = ended
        .iter()
        .map(tasks::Ended::shell_status)
        .find(|&s| s != 0)
        .unwrap_or(0);
    status as u8
}

/// Runs one program to its end (the process ends with it); returns only
/// when it could not start, with the sandbox's exit status.
fn run_one(
    args: &Args,
    hv: Arc<Hypervisor>,
    chosen: Chosen,
    program: OsString,
    prog_args: Vec<OsString>,
    exec_argv0: Option<OsString>,
    carried: Option<syscall_proxy::exec::Carried>,
) -> u8 {
    let request = syscall_proxy::Request {
        program,
        args: prog_args,
        env: std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                kv
            })
            .collect(),
        xcr0: chosen.xcr0,
        asked: chosen.asked,
        allow_unenforced: args.allow_unenforced,
        exec_argv0,
        options: syscall_proxy::Options {
            verbose: args.verbose,
            explain: args.explain,
            stats: carried.map_or(args.stats, |c| c.stats),
            report_fd: report::fd(),
            default_xcr0: carried.map_or(chosen.xcr0.bits(), |c| c.default_xcr0),
            arch_prctl_compat: carried.map_or(args.arch_prctl_compat, |c| c.arch_prctl_compat),
            cpuid: chosen.cpuid,
        },
        finish: exit::finish,
    };
    // Before the program starts: its processes share the ledger.
    match carried {
        Some(c) => syscall_proxy::perf::ledger::join(c.ledger_fd),
        None => syscall_proxy::perf::ledger::start(),
    }
    let mut task = match syscall_proxy::launch(hv, request) {
        Ok(t) => t,
        Err(e) => {
            if let Some(sig) = e.fatal_signal() {
                report::line(format_args!("{e} (Linux kills the process: signal {sig})"));
                exit::mirror(syscall_proxy::Outcome::Signaled(sig));
            }
            report::line(&e);
            return e.exit_status() as u8;
        }
    };
    if let Some(t) = carried.and_then(|c| c.trace) {
        task.exec_traced(t);
    }
    if let Some(fd) = carried.and_then(|c| c.seccomp_fd) {
        match syscall_proxy::seccomp::adopt(fd) {
            Ok(s) => task.thread.seccomp = s,
            Err(e) => {
                // The program must not run without its filters.
                report::line(&e);
                exit::mirror(syscall_proxy::Outcome::Signaled(libc::SIGKILL));
            }
        }
    }
    if let Some(c) = carried {
        if c.faults_counted {
            task.thread.process.count_faults();
        }
        syscall_proxy::perf::rusage::adopt(&mut task.thread, c.faults_taken);
    }
    if carried.is_some_and(|c| c.tsc_trapping)
        && let Err(e) = task.thread.vcpu.set_tsc_trapping(true)
    {
        log::error!("rdtsc trapping after exec: {e}");
    }
    // The leader's run ends the process; it does not return.
    task.run();
    unreachable!("the leader's task ends the process")
}

/// What this host offers a replay (check-trace).
fn replay_host() -> Result<check_trace::Host, String> {
    let hv = open_kvm(None).map_err(|e| e.to_string())?;
    let supported = hv.supported_xcr0();
    let values = check::check_values(supported);
    let enforced = values
        .iter()
        .all(|&x| check::probe(&hv, x).is_ok_and(|r| r.enforced()));
    let sandbox_cpuid_faulting = values
        .first()
        .is_some_and(|&x| check::cpuid_faulting(&hv, x).unwrap_or(false));
    // ARCH_SET_CPUID with 1 leaves CPUID as it is, and fails with ENODEV
    // without CPUID faulting.
    let set_cpuid = syscall_proxy::syscalls::ARCH_SET_CPUID;
    // SAFETY: integer arguments; enabling CPUID changes nothing.
    let native_cpuid_faulting = unsafe { libc::syscall(libc::SYS_arch_prctl, set_cpuid, 1) } == 0;
    Ok(check_trace::Host {
        xcr0: kvm::host_xcr0(),
        supported,
        enforced,
        sandbox_cpuid_faulting,
        native_cpuid_faulting,
    })
}

fn run_check() -> u8 {
    let hv = match open_kvm(None) {
        Ok(hv) => hv,
        Err(e) => return fail(e, 1),
    };
    let supported = hv.supported_xcr0();
    println!("kvm: {}", hv.flavour.describe());
    println!(
        "supported xcr0: {supported:#x} ({})",
        Xcr0::new(supported & vmm::xcr0::USER_BITS)
            .map(|x| x.names())
            .unwrap_or_default()
    );
    println!("host xcr0: {:#x}", kvm::host_xcr0());
    let mut enforced = true;
    let mut tsc = None;
    for x in check::check_values(supported) {
        match check::probe(&hv, x) {
            Ok(r) => {
                tsc.get_or_insert(r.seen.tsc);
                println!(
                    "probe: requested {} -> xgetbv {:#x}, cpuid(0xd,0).ebx {}: {}",
                    x,
                    r.seen.xgetbv,
                    r.seen.xsave_size,
                    if r.enforced() {
                        "applied"
                    } else {
                        "NOT applied"
                    }
                );
                enforced &= r.enforced();
            }
            Err(e) => {
                println!("probe: requested {x} -> failed: {e}");
                enforced = false;
            }
        }
    }
    if let Some(t) = tsc {
        println!(
            "vdso: {}",
            if !t.is_host() {
                "not offered (the guest's TSC is not the host's: the clock is forwarded)"
            } else if vmm::vdso::host().is_none() {
                "not offered (the host gave the sandbox none: the clock is forwarded)"
            } else {
                "lent to programs (the guest's TSC is the host's)"
            }
        );
    }
    if let Some(&x) = check::check_values(supported).first() {
        println!(
            "cpuid: {}",
            match check::cpuid_faulting(&hv, x) {
                Ok(true) =>
                    "CPUID at CPL3 faults: --cpuid=xcr0 and --cpuid=FILE answer the program's",
                Ok(false) => "CPUID at CPL3 cannot fault: --cpuid=host only",
                Err(_) => "CPUID faulting could not be probed: --cpuid=host only",
            }
        );
    }
    for (name, value) in hv.capabilities() {
        println!("capability: {name} = {value}");
    }
    println!(
        "xcr0: {}",
        if enforced { "enforced" } else { "not enforced" }
    );
    if enforced { 0 } else { 1 }
}
