#!/usr/bin/env python3
"""report.py RAW OUTDIR: the benchmark table, from the raw figures bench.sh
collected in RAW, as OUTDIR/results.md (also printed) and OUTDIR/results.json,
and the short form the top-level README carries as OUTDIR/readme-table.md.

The one place that turns figures into medians, spreads, ratios, counters per
forwarded system call and target checks; bench.sh only measures. RAW holds
(tab-separated, see bench.sh): meta.tsv, workloads.tsv, samples.tsv,
hyperfine/KEY.ROUND.json, counters.tsv with the files it names, fullvm.tsv.
"""
import glob
import json
import os
import re
import statistics
import sys

# The targets on a ratio, by workload; target_of() has the others.
RATIO_TARGETS = {"spin": 1.02, "clock": 1.2}


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def summary(values):
    """Median and spread of a list of figures, or None for no figures."""
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "stddev": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "samples": values,
    }


def fmt(v):
    """A figure with the precision its size deserves."""
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return f"{v:,}"
    v = v + 0.0  # no "-0.00"
    if abs(v) < 0.005:
        v = 0.0
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_ratio(r):
    if r is None:
        return "n/a"
    if r < 2:
        return f"{r:.3f}"
    if r < 10:
        return f"{r:.2f}"
    if r < 100:
        return f"{r:.1f}"
    return f"{r:,.0f}"


def cell(s):
    """median (min–max) of a summary."""
    if s is None:
        return "—"
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def load_workloads(raw):
    samples = {}
    for key, side, value in read_tsv(os.path.join(raw, "samples.tsv")):
        samples.setdefault(key, {}).setdefault(side, []).append(float(value))
    rows = []
    for key, section, unit, name, reps in read_tsv(os.path.join(raw, "workloads.tsv")):
        sides = samples.get(key, {})
        if section == "whole":
            # one export per round; the commands are named native and sandbox
            for hf in sorted(glob.glob(os.path.join(raw, "hyperfine", key + ".*.json"))):
                with open(hf) as f:
                    for result in json.load(f)["results"]:
                        sides.setdefault(result["command"], []).extend(t * 1e3 for t in result["times"])
        native = summary(sides.get("native"))
        boxed = summary(sides.get("sandbox"))
        ratio = diff = None
        if native and boxed and native["median"] > 0:
            ratio = boxed["median"] / native["median"]
            diff = boxed["median"] - native["median"]
        rows.append({"key": key, "section": section, "name": name, "unit": unit,
                     "reps": int(reps), "native": native, "sandbox": boxed,
                     "kvm": summary(sides.get("kvm")), "ratio": ratio, "difference": diff})
    return rows


LIFECYCLE = ("kvm-vm", "kvm-vcpu", "kvm-first", "kvm-destroy")


def kvm_lifecycle_ms(workloads):
    """A VM's whole life as KVM alone costs it (create the VM and a vCPU,
    the first entry, the teardown), in ms: what any start in the sandbox
    pays before its own work; None if not measured."""
    by = {w["key"]: w["kvm"] for w in workloads if w["section"] == "kvm"}
    if not all(by.get(k) for k in LIFECYCLE):
        return None
    return sum(by[k]["median"] for k in LIFECYCLE) / 1e3


def target_of(row, meta):
    """(target text, met?) for a workload, met? None where this platform
    cannot tell; None where the issue sets no target."""
    key, ratio = row["key"], row["ratio"]
    if key in RATIO_TARGETS and ratio is not None:
        t = RATIO_TARGETS[key]
        return f"ratio ≤ {t}", ratio <= t
    if key == "true-dyn" and row["difference"] is not None:
        if not meta.get("kvm", "").startswith("PVM"):
            return "≤ +3 ms (on PVM)", None
        return "≤ +3 ms (PVM)", row["difference"] <= 3.0
    if key == "getppid" and row["sandbox"]:
        if meta.get("kvm", "").startswith("PVM"):
            return "≤ 1,500 ns on hardware KVM (not this PVM)", None
        return "≤ 1,500 ns (hardware KVM)", row["sandbox"]["median"] <= 1500
    return None


# ------------------------------------------------------------------ counters

def parse_stats(path):
    """The sandbox's --stats line: system calls, exits, ioctls, KVM_RUN."""
    if not path or not os.path.exists(path):
        return None
    lines = [l for l in open(path, errors="replace") if "stats:" in l]
    if not lines:
        return None
    line = lines[-1]
    out = {}
    for name, pat in (("syscalls", r"\bsyscalls\s+(\d+)"), ("exits", r"\bvm-exits\s+(\d+)"),
                      ("ioctls", r"\bkvm-ioctls\s+(\d+)"), ("kvm_run", r"\bKVM_RUN\s+(\d+)")):
        m = re.search(pat, line)
        out[name] = int(m.group(1)) if m else None
    return out


def parse_strace(path):
    """strace -c's table: total host system calls and the ioctl row."""
    if not os.path.exists(path):
        return None
    total = None
    by_name = {}
    for line in open(path, errors="replace"):
        tok = line.split()
        if len(tok) < 5 or not re.fullmatch(r"[\d.]+", tok[0]):
            continue
        if tok[-1] == "total":
            total = int(tok[3])
        else:
            by_name[tok[-1]] = int(tok[3])
    if total is None:
        return None
    return {"host_syscalls": total, "ioctl": by_name.get("ioctl"), "by_name": by_name}


def parse_trace(path):
    """The program's own system calls by name, from the sandbox's -v trace."""
    if not os.path.exists(path):
        return None
    calls = {}
    for m in re.finditer(r"trace: syscall (\w+) \(", open(path, errors="replace").read()):
        calls[m.group(1)] = calls.get(m.group(1), 0) + 1
    return calls


def extra_by_name(run):
    """Host system calls the sandbox made beyond the program's own, by name
    (ioctl less KVM_RUN); the largest first."""
    host = (run.get("strace") or {}).get("by_name")
    prog = run.get("program_calls")
    kvm_run = (run.get("strace_stats") or {}).get("kvm_run")
    if not host or prog is None or kvm_run is None:
        return None
    extra = {}
    for name, n in host.items():
        more = n - prog.get(name, 0) - (kvm_run if name == "ioctl" else 0)
        if more > 0:
            extra[name] = more
    return dict(sorted(extra.items(), key=lambda kv: -kv[1]))


def parse_callgrind(path):
    """Total instructions (Ir) callgrind collected, and that run's --stats."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None, None
    m = re.search(r"Collected\s*:\s*(\d+)", open(path, errors="replace").read())
    return (int(m.group(1)) if m else None), parse_stats(path)


def measure_run(run, label, n, stats_file, strace_file, callgrind_file):
    strace_stats = parse_stats(strace_file + "-stats")
    ir, cg_stats = parse_callgrind(callgrind_file)
    trace = stats_file[: -len(".stats")] + ".trace" if stats_file.endswith(".stats") else None
    return {"run": run, "label": label, "n": int(n), "stats": parse_stats(stats_file),
            "program_calls": parse_trace(trace) if trace else None,
            "strace": parse_strace(strace_file), "strace_stats": strace_stats,
            "instructions": ir, "callgrind_stats": cg_stats}


def per_syscall(a, b=None):
    """Counters per forwarded system call: of run a alone (startup included),
    or of the difference b - a (the marginal cost: startup cancels)."""
    def get(run, part, field):
        d = run.get(part) if run else None
        return d.get(field) if d else None

    def delta(part, field):
        x = get(a, part, field)
        if b is None:
            return x
        y = get(b, part, field)
        return None if x is None or y is None else y - x

    def div(x, y):
        return None if x is None or not y else x / y

    ir = a["instructions"]
    if b is not None:
        ir = None if ir is None or b["instructions"] is None else b["instructions"] - ir
    fwd = delta("stats", "syscalls")
    host = delta("strace", "host_syscalls")
    s_fwd, s_run = delta("strace_stats", "syscalls"), delta("strace_stats", "kvm_run")
    extra = None if None in (host, s_fwd, s_run) else host - s_fwd - s_run
    return {
        "vm_exits": delta("stats", "exits"),
        "kvm_ioctls": delta("stats", "ioctls"),
        "instructions": ir,
        "forwarded_syscalls": fwd,
        "vm_exits_per_syscall": div(delta("stats", "exits"), fwd),
        "kvm_ioctls_per_syscall": div(delta("stats", "ioctls"), fwd),
        "kvm_run_per_syscall": div(delta("stats", "kvm_run"), fwd),
        "host_syscalls": host,
        "extra_host_syscalls": extra,
        "extra_host_syscalls_per_syscall": div(extra, s_fwd),
        "instructions_per_syscall": div(ir, delta("callgrind_stats", "syscalls")),
    }


def load_counters(raw):
    """Rows per run: the marginal cost per call where a run was counted at
    N and 2N (the difference: startup cancels), else the whole run's."""
    runs = [measure_run(*r) for r in read_tsv(os.path.join(raw, "counters.tsv"))]
    by = {}
    for r in runs:
        by.setdefault(r["run"], []).append(r)
    rows = []
    for key, rs in by.items():
        rs.sort(key=lambda r: r["n"])
        if len(rs) >= 2 and rs[0]["n"] > 0:
            a, b = rs[0], rs[-1]
            row = {"key": key, "marginal": True,
                   "name": f"{a['label']} loop, marginal ({b['n']} − {a['n']} calls)", **per_syscall(a, b)}
        else:
            row = {"key": key, "marginal": False,
                   "name": f"{rs[0]['label']}, whole run (startup included)", **per_syscall(rs[0])}
        if not row["marginal"]:
            row["extra_host_syscalls_by_name"] = extra_by_name(rs[0])
        row["target"] = counter_target(row)
        rows.append(row)
    return rows, runs


def counter_target(row):
    """The issue's targets for a loop's marginal cost: 1 exit and 1 ioctl per
    call, no extra host system call for a call without pointers, under 2,000
    instructions."""
    if not row["marginal"]:
        return ""
    checks = []

    def check(what, v, ok):
        if v is not None:
            checks.append(what + (" met" if ok(v) else " **not met**"))

    check("1 exit:", row["vm_exits_per_syscall"], lambda v: round(v, 2) == 1)
    check("1 ioctl:", row["kvm_ioctls_per_syscall"], lambda v: round(v, 2) == 1)
    if row["key"] == "getppid":
        check("0 extra:", row["extra_host_syscalls_per_syscall"], lambda v: round(v, 2) == 0)
    check("< 2,000 insns:", row["instructions_per_syscall"], lambda v: v < 2000)
    return "; ".join(checks)


# ------------------------------------------------------------------- full VM

def load_full_vm(raw, workloads):
    by = {}
    accel = cpu = None
    for key, accel, cpu, ms in read_tsv(os.path.join(raw, "fullvm.tsv")):
        by.setdefault(key, []).append(float(ms) / 1e3)
    sandbox_ms = {w["key"]: w["sandbox"] for w in workloads}
    rows = []
    for key, what, box_key in (("true", "/bin/true", "true-dyn"), ("python", "python3 -c pass", "python")):
        vm = summary(by.get(key))
        if not vm:
            continue
        box = sandbox_ms.get(box_key)
        speedup = vm["median"] * 1e3 / box["median"] if box else None
        rows.append({"command": what, "full_vm_s": vm, "sandbox_ms": box, "sandbox_faster_by": speedup})
    return rows, accel, cpu


# ------------------------------------------------------------------ markdown

def markdown(meta, workloads, counters, vm_rows, vm_accel, vm_cpu):
    out = ["# xcr0-sandbox benchmarks", ""]
    enforced = meta.get("xcr0_enforced", "?")
    out += [
        f"- date: {meta.get('date', '?')}; run took {meta.get('duration_s', '?')} s",
        f"- machine: {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores, Linux {meta.get('kernel', '?')}",
        f"- KVM: {meta.get('kvm', '?')}; host XCR0 {meta.get('host_xcr0', '?')} (XCR0 {enforced})",
        f"- sandbox run as `xcr0-sandbox {meta.get('sandbox_flags', '')} -- CMD`".replace("  ", " "),
        f"- load average at start {meta.get('load_start', '?')}, at end {meta.get('load_end', '?')} "
        "(other work on the machine shows here)",
        "- figures: median (min–max); ratio = sandbox / native; difference = sandbox − native",
    ]
    if meta.get("kvm", "").startswith("PVM"):
        getppid = next((w for w in workloads if w["key"] == "getppid" and w["difference"] is not None), None)
        here = f" (here {fmt(getppid['difference'] / 1e3)} µs: a forwarded getppid less a native one)" \
            if getppid else ""
        out.append("- platform artefact: on PVM every exit to user space (each forwarded system call, "
                   f"each ARCH_SET_XCR0) costs tens of µs{here}; on hardware KVM about 1–3 µs. The "
                   "per-operation ratios below are mostly that cost, not the sandbox's own work "
                   "(see the counters)")
    out.append("")

    def table(rows, title, note):
        if not rows:
            return
        out.extend([f"## {title}", "", note, "",
                    "| workload | unit | native | sandbox | ratio | difference | reps | target |",
                    "| --- | --- | --- | --- | --- | --- | --- | --- |"])
        for r in rows:
            t = target_of(r, meta)
            tcell = "" if t is None else t[0] + ("" if t[1] is None else (": met" if t[1] else ": **not met**"))
            out.append(f"| {r['name']} | {r['unit']} | {cell(r['native'])} | {cell(r['sandbox'])} | "
                       f"{fmt_ratio(r['ratio'])} | {fmt(r['difference'])} | {r['reps']} | {tcell} |")
        out.append("")

    table([w for w in workloads if w["section"] == "whole"], "Whole commands",
          "Wall time per run, startup included (hyperfine -N, 2 warm-up runs; the runs are split "
          "into rounds that alternate which side goes first).")
    table([w for w in workloads if w["section"] == "op"], "Per operation",
          "Timed inside the program (CLOCK_MONOTONIC), startup excluded; native and sandbox runs "
          "alternate.")

    only = [w for w in workloads if w["section"] == "only"]
    getppid = next((w for w in workloads if w["key"] == "getppid"), None)
    if only:
        out += ["## Sandbox only", "",
                "No native counterpart; beside a forwarded getppid measured in the same run.", "",
                "| operation | unit | sandbox | × forwarded getppid | reps |", "| --- | --- | --- | --- | --- |"]
        for w in only:
            g = getppid["sandbox"]["median"] if getppid and getppid["sandbox"] else None
            x = w["sandbox"]["median"] / g if g and w["sandbox"] else None
            out.append(f"| {w['name']} | {w['unit']} | {cell(w['sandbox'])} | {fmt_ratio(x)} | {w['reps']} |")
        if getppid and getppid["sandbox"]:
            out.append(f"| getppid, forwarded | ns | {cell(getppid['sandbox'])} | 1 | {getppid['reps']} |")
        out.append("")

    alone = [w for w in workloads if w["section"] == "kvm" and w["kvm"]]
    if alone:
        out += ["## KVM alone on this host", "",
                "What this host's KVM costs by itself, measured by a program of its own with no sandbox "
                "(`kvm-costs.c`; each run the median of 20 rounds): the floor under the figures above. "
                "Every start in the sandbox pays a VM's whole life; every forwarded system call pays an "
                "exit and more (on PVM, its trap of the program's `syscall` and emulation of the entry "
                "stub too).", "",
                "| operation | unit | KVM alone | runs |", "| --- | --- | --- | --- |"]
        for w in alone:
            out.append(f"| {w['name']} | {w['unit']} | {cell(w['kvm'])} | {w['reps']} |")
        life = kvm_lifecycle_ms(workloads)
        if life is not None:
            out.append(f"| a VM's life: create the VM and a vCPU, first KVM_RUN, destroy (sum of medians) "
                       f"| ms | {fmt(life)} | |")
        if getppid and getppid["sandbox"]:
            out.append(f"| (for comparison) a forwarded getppid in the sandbox | µs | "
                       f"{fmt(getppid['sandbox']['median'] / 1e3)} | |")
        out.append("")

    if counters:
        insn_note = ("callgrind (`valgrind --tool=callgrind`): the sandbox's own user-space instructions; "
                     "the guest runs inside KVM_RUN and is not counted") if meta.get("callgrind") == "yes" else \
            "instructions: callgrind could not run the sandbox here (n/a)"
        if meta.get("perf_instructions"):
            insn_note += f" (`perf stat -e instructions:u`: {meta['perf_instructions']} here)"
        out += ["## Counters per forwarded system call", "",
                "Counts, not times: they do not move with the machine's load. VM exits, KVM ioctls and "
                "KVM_RUN from `--stats`; host system calls from `strace -f -c` (extra = all − the "
                "forwarded calls themselves − KVM_RUN); " + insn_note + ". "
                "Targets (issue): 1 exit and 1 ioctl per call, no extra host syscall for a call without "
                "pointers, under 2,000 instructions.", "",
                "Each cell is per forwarded call; in parentheses, the run's total.", "",
                "| run | forwarded syscalls | VM exits | KVM ioctls | KVM_RUN | extra host syscalls "
                "| sandbox instructions | target |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c in counters:
            def both(per, total):
                # a whole run's totals matter too (startup's cost)
                t = c[total]
                shown = "n/a" if t is None else f"{t:,}"
                return fmt(c[per]) + ("" if c["marginal"] and total != "extra_host_syscalls" else f" ({shown})")
            out.append(f"| {c['name']} | {fmt(c['forwarded_syscalls'])} | "
                       f"{both('vm_exits_per_syscall', 'vm_exits')} | {both('kvm_ioctls_per_syscall', 'kvm_ioctls')} | "
                       f"{fmt(c['kvm_run_per_syscall'])} | {both('extra_host_syscalls_per_syscall', 'extra_host_syscalls')} | "
                       f"{both('instructions_per_syscall', 'instructions')} | {counter_target(c)} |")
        out.append("")
        for c in counters:
            by = c.get("extra_host_syscalls_by_name")
            if by:
                top = ", ".join(f"{name} {n}" for name, n in list(by.items())[:8])
                out += [f"{c['name']}: the extra host system calls by name (strace's count less the "
                        f"program's own calls of that name from `-v`, ioctl less KVM_RUN): {top}.", ""]

    if vm_rows:
        out += [f"## Full VM comparison point: QEMU {vm_accel}, boot + command", "",
                f"A freshly booted VM (QEMU `-accel {vm_accel} -cpu {vm_cpu}`, Debian kernel, busybox "
                "initramfs, the host's root over 9p: the nested lane's machinery without KVM inside), "
                "timed from launching it to the command's end. Not the same kind of figure as the rows "
                "above: it is the alternative a user would otherwise take. Target (issue): the sandbox's "
                "/bin/true at least 100× faster."]
        if meta.get("vm_kvm_failure"):
            out[-1] += (f" QEMU on this host's /dev/kvm could not boot it ({meta['vm_kvm_failure'].strip()}), "
                        "so it ran on QEMU's software CPU (TCG); where QEMU can use KVM a VM boots faster.")
        if "vm_avx_flags" in meta:
            out[-1] += (f" The guest's CPU flags list {meta['vm_avx_flags']} AVX/FMA feature(s)"
                        + (" (the mask took)." if meta["vm_avx_flags"] == "0" else ": **the mask did not take**."))
        out += ["",
                f"| command | full VM (QEMU {vm_accel}, boot + command), s | sandbox, whole command, ms "
                "| sandbox faster by | boots | target |",
                "| --- | --- | --- | --- | --- | --- |"]
        for r in vm_rows:
            x = r["sandbox_faster_by"]
            target = "" if r["command"] != "/bin/true" or x is None else \
                "≥ 100×: " + ("met" if x >= 100 else "**not met**")
            out.append(f"| {r['command']} | {cell(r['full_vm_s'])} | {cell(r['sandbox_ms'])} | "
                       f"{fmt_ratio(x)}{'' if x is None else '×'} | {r['full_vm_s']['n']} | {target} |")
        out.append("")
    return "\n".join(out)


def readme_table(meta, workloads, counters, vm_rows, vm_accel):
    """The short table the top-level README carries: medians only, with the
    machine it came from."""
    out = [f"From {meta.get('date', '?')}: {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores, "
           f"Linux {meta.get('kernel', '?')}, KVM {meta.get('kvm', '?').split(' (')[0]}, "
           f"load average {meta.get('load_start', '?').split()[0]} at the start. Medians.", "",
           "| workload | native | sandbox | ratio |", "| --- | --- | --- | --- |"]
    for w in workloads:
        if w["section"] in ("only", "kvm"):
            continue
        n = "—" if not w["native"] else f"{fmt(w['native']['median'])} {w['unit']}"
        b = "—" if not w["sandbox"] else f"{fmt(w['sandbox']['median'])} {w['unit']}"
        out.append(f"| {w['name']} | {n} | {b} | {fmt_ratio(w['ratio'])} |")
    for w in workloads:
        if w["section"] == "only" and w["sandbox"]:
            out.append(f"| {w['name']} | (none) | {fmt(w['sandbox']['median'])} {w['unit']} | |")
    life = kvm_lifecycle_ms(workloads)
    if life is not None:
        out.append(f"| KVM alone, no sandbox: a VM's life (create the VM and a vCPU, first KVM_RUN, "
                   f"destroy) | | {fmt(life)} ms | |")
    for w in workloads:
        if w["key"] in ("kvm-memslot", "kvm-exit") and w["kvm"]:
            out.append(f"| KVM alone, no sandbox: {w['name']} | | {fmt(w['kvm']['median'])} {w['unit']} | |")
    for c in counters:
        if c["marginal"]:
            out.append(f"| {c['name']}: exits / ioctls / extra host syscalls / sandbox instructions per call "
                       f"| | {fmt(c['vm_exits_per_syscall'])} / {fmt(c['kvm_ioctls_per_syscall'])} / "
                       f"{fmt(c['extra_host_syscalls_per_syscall'])} / {fmt(c['instructions_per_syscall'])} | |")
    for r in vm_rows:
        out.append(f"| full VM (QEMU {vm_accel}, boot + command): {r['command']} "
                   f"| | {fmt(r['full_vm_s']['median'])} s | sandbox {fmt_ratio(r['sandbox_faster_by'])}× faster |")
    return "\n".join(out)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: report.py RAW OUTDIR")
    raw, outdir = sys.argv[1], sys.argv[2]
    meta = dict((r[0], r[1] if len(r) > 1 else "") for r in read_tsv(os.path.join(raw, "meta.tsv")))
    workloads = load_workloads(raw)
    counters, counter_runs = load_counters(raw)
    vm_rows, vm_accel, vm_cpu = load_full_vm(raw, workloads)
    md = markdown(meta, workloads, counters, vm_rows, vm_accel, vm_cpu)
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(outdir, "readme-table.md"), "w") as f:
        f.write(readme_table(meta, workloads, counters, vm_rows, vm_accel) + "\n")
    for w in workloads:
        t = target_of(w, meta)
        w["target"] = None if t is None else {"text": t[0], "met": t[1]}
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "workloads": workloads, "counters": counters,
                   "counter_runs": counter_runs,
                   "full_vm": {"accel": vm_accel, "cpu": vm_cpu, "rows": vm_rows}}, f, indent=2)
        f.write("\n")
    print(md)


if __name__ == "__main__":
    main()
