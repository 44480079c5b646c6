//! rr trace headers as input: `check-trace DIR` and `--rr-trace=DIR`.
//! The headers are written here with Debian's capnproto (`capnp encode
//! --packed` with the sandbox's schema of rr's header), from this CPU's
//! own CPUID as rr records it (tests/guests/cpuid-view.c `table`); every
//! expected verdict is computed from `--check`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("syscall-proxy/schema/rr_header.capnp")
}

fn capnp() -> bool {
    installed("capnproto", "/usr/bin/capnp")
}

/// This CPU's CPUID as rr records it (leaf 1's AVX bit cleared).
fn host_records() -> Vec<[u32; 6]> {
    let out = run_limited(command(
        false,
        &[
            guest("cpuid-view", &["-pthread"]).as_os_str(),
            "table".as_ref(),
        ],
    ));
    let rows: Vec<Vec<u64>> = stdout(&out)
        .trim()
        .trim_start_matches("[[")
        .trim_end_matches("]]")
        .split("],[")
        .map(|r| r.split(',').map(|n| n.parse().unwrap()).collect())
        .collect();
    rows.iter()
        .map(|r| std::array::from_fn(|i| r[i] as u32))
        .collect()
}

fn set(records: &mut [[u32; 6]], leaf: u32, sub: u32, answer: [u32; 4]) {
    let row = records
        .iter_mut()
        .find(|r| r[0] == leaf && r[1] == sub)
        .expect("the record");
    row[2..].copy_from_slice(&answer);
}

fn get(records: &[[u32; 6]], leaf: u32, sub: u32) -> [u32; 4] {
    let r = records
        .iter()
        .find(|r| r[0] == leaf && (r[1] == sub || r[1] == u32::MAX))
        .expect("the record");
    [r[2], r[3], r[4], r[5]]
}

/// A trace directory whose `version` is `version_line`, then the packed
/// header of `xcr0` and `records`.
fn trace(
    name: &str,
    version_line: &str,
    xcr0: u64,
    records: &[[u32; 6]],
    faulting: bool,
) -> PathBuf {
    let dir = scratch().join(format!("rr-trace-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hex: String = records
        .iter()
        .flat_map(|r| r.iter().flat_map(|w| w.to_le_bytes()))
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = format!(
        "(uuid = 0x\"000102030405060708090a0b0c0d0e0f\", bindToCpu = -1, \
         x86 = (hasCpuidFaulting = {faulting}, cpuidRecords = 0x\"{hex}\", xcr0 = {xcr0}))"
    );
    let mut child = Command::new("capnp")
        .arg("encode")
        .arg("--packed")
        .arg(schema())
        .arg("Header")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("capnp");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "capnp encode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bytes = version_line.as_bytes().to_vec();
    bytes.extend_from_slice(&out.stdout);
    std::fs::write(dir.join("version"), bytes).unwrap();
    dir
}

fn check_trace(dir: &Path) -> std::process::Output {
    let mut c = Command::new(SANDBOX);
    c.arg("check-trace").arg(dir);
    run_limited(c)
}

/// The verdict line, and the status, for a trace with `xcr0` other than
/// the host's and this CPU's layout: replayable with the options where the
/// KVM applies XCR0, not replayable here where it does not.
fn assert_needs_the_sandbox(o: &std::process::Output, dir: &Path, xcr0: u64) {
    let out = stdout(o);
    if enforced() {
        assert_exit(o, 0);
        let cmd = format!(
            "replayable here with: xcr0-sandbox --xcr0={xcr0:#x} --cpuid={} -- rr replay {}",
            dir.display(),
            dir.display()
        );
        assert!(out.contains(&cmd), "{out}");
    } else {
        assert_exit(o, 1);
        assert!(
            out.contains("not replayable on this host: the trace needs XCR0"),
            "{out}"
        );
        assert!(out.contains("does not apply a guest's XCR0"), "{out}");
    }
}

#[test]
fn a_trace_of_this_host_replays_as_is() {
    if !kvm() || !capnp() {
        return;
    }
    let host = check_mask("host xcr0");
    let dir = trace("own", "85\n", host, &host_records(), false);
    let o = check_trace(&dir);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("trace xcr0: {host:#x}")),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains(&format!(
            "replayable here as is: rr replay {}",
            dir.display()
        )),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_smaller_xcr0_needs_the_sandbox() {
    if !kvm() || !capnp() {
        return;
    }
    let dir = trace("smaller", "85\n", 0x7, &host_records(), false);
    assert_needs_the_sandbox(&check_trace(&dir), &dir, 0x7);
}

/// XCR0 0 is unknown: rr takes CPUID 0xD.0's EDX:EAX.
#[test]
fn a_zero_xcr0_is_leaf_0xd_s() {
    if !kvm() || !capnp() {
        return;
    }
    let mut records = host_records();
    let [_, size, max, _] = get(&records, 0xd, 0);
    set(&mut records, 0xd, 0, [0x7, size, max, 0]);
    let dir = trace("zero", "85\n", 0, &records, false);
    let o = check_trace(&dir);
    assert!(
        stdout(&o).contains("trace xcr0: 0x7 (x87,sse,avx) (recorded as 0"),
        "{}",
        stdout(&o)
    );
    assert_needs_the_sandbox(&o, &dir, 0x7);
}

/// AVX-512 laid out by another vendor (its components 256 bytes further
/// on, as Intel's are from AMD's, which leave out MPX's): not replayable,
/// naming the first component that differs, or that this host lacks.
#[test]
fn an_avx512_layout_of_another_vendor_is_not_replayable() {
    if !kvm() || !capnp() {
        return;
    }
    let mut records = host_records();
    let host_has_it = get(&records, 0xd, 5)[0] != 0;
    for (bit, size, amd_offset) in [(5, 64, 832), (6, 512, 896), (7, 1024, 1408)] {
        let [_, off, ..] = get(&records, 0xd, bit);
        let other = if off != 0 { off + 256 } else { amd_offset };
        set(&mut records, 0xd, bit, [size, other, 0, 0]);
    }
    // The other vendor's name in leaf 0 (EBX, EDX, ECX).
    let [max, ebx, ..] = get(&records, 0, 0);
    let other: [u32; 3] = if ebx == u32::from_le_bytes(*b"Auth") {
        [
            u32::from_le_bytes(*b"Genu"),
            u32::from_le_bytes(*b"ineI"),
            u32::from_le_bytes(*b"ntel"),
        ]
    } else {
        [
            u32::from_le_bytes(*b"Auth"),
            u32::from_le_bytes(*b"enti"),
            u32::from_le_bytes(*b"cAMD"),
        ]
    };
    let row = records.iter_mut().find(|r| r[0] == 0).expect("leaf 0");
    row[2..].copy_from_slice(&[max, other[0], other[2], other[1]]);
    let xcr0 = check_mask("host xcr0") | 0xe7;
    let dir = trace("avx512", "85\n", xcr0, &records, false);
    let o = check_trace(&dir);
    assert_exit(&o, 1);
    let out = stdout(&o);
    assert!(out.contains("not replayable on this host: "), "{out}");
    assert!(out.contains("component 5 (opmask)"), "{out}");
    if host_has_it {
        assert!(out.contains("recorded on another vendor's CPU"), "{out}");
    } else {
        assert!(out.contains("which this host's CPU does not have"), "{out}");
    }
}

#[test]
fn unreadable_traces_give_one_line_and_status_2() {
    if !kvm() || !capnp() {
        return;
    }
    let good = trace("good", "85\n", 0x7, &host_records(), false);
    let whole = std::fs::read(good.join("version")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "truncated",
            whole[..whole.len() / 2].to_vec(),
            "not a packed Cap'n Proto message",
        ),
        (
            "version",
            [b"84".as_slice(), &whole[2..]].concat(),
            "trace version 84, where this reader knows 85",
        ),
        (
            "garbage",
            b"85\n\xff\xff\xff".to_vec(),
            "not a packed Cap'n Proto message",
        ),
        ("no-line", b"eighty-five".to_vec(), "no version line"),
    ];
    for (name, bytes, expect) in cases {
        let dir = scratch().join(format!("rr-trace-bad-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("version"), bytes).unwrap();
        let o = check_trace(&dir);
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(expect), "{name}: {err}");
    }
    let o = check_trace(Path::new("/nonexistent-trace"));
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("/nonexistent-trace/version: No such file"),
        "{}",
        stderr(&o)
    );
    let mut c = Command::new(SANDBOX);
    c.arg("check-trace").arg(&good).arg("x");
    let o = run_limited(c);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("usage: xcr0-sandbox check-trace DIR"),
        "{}",
        stderr(&o)
    );
}

/// `--rr-trace=DIR` runs a program with the trace's CPUID table (whose
/// leaf 1 has no AVX here) and XCR0 (the host's own).
#[test]
fn a_program_runs_with_the_trace_s_cpuid_and_xcr0() {
    if !kvm() || !capnp() {
        return;
    }
    let host = check_mask("host xcr0") & check_mask("supported xcr0");
    let dir = trace("run", "85\n", host, &host_records(), false);
    let view = guest("cpuid-view", &["-pthread"]);
    let mut c = sandbox_cmd();
    c.arg(format!("--rr-trace={}", dir.display()))
        .arg("--")
        .arg(&view);
    let o = run_limited(c);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("main: leaf 1: fma 1 avx 0"),
        "{out}\n{}",
        stderr(&o)
    );
    if enforced() {
        assert!(out.contains(&format!("main: xgetbv {host:#x}")), "{out}");
    }
    // Natively the CPU has AVX.
    let n = run_limited(command(false, &[view.as_os_str()]));
    assert!(stdout(&n).contains("avx 1"), "{}", stdout(&n));
    let o = run_limited(command(
        true,
        &["--rr-trace=/nonexistent-trace", "--", "/bin/true"],
    ));
    assert_exit(&o, 2);
    assert!(
        stderr(&o).starts_with("xcr0-sandbox: --rr-trace: /nonexistent-trace/version"),
        "{}",
        stderr(&o)
    );
}
