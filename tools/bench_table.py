#!/usr/bin/env python3
"""Collects the rows of negcut-bench infer/train logs (scripts/gpu-check.sh
bench writes them under $OUT) into one markdown table, with ANCHORS.md's
target for the row's backend beside each row it has one for, and whether
the row meets it.

    tools/bench_table.py LOG...      (for example: tools/bench_table.py gpu-out/*.log)

A row reads "case | ours s (min-max) MiB | theirs s (min-max) MiB | speed | RSS";
rows whose other side did not run are listed without a ratio. On CUDA, the
workers' "per timed run: A cudaMalloc, W host waits" lines before a row (one
per round; the largest counts) fill its "per run" column (empty without them).
"""
import re
import sys

ROW = re.compile(r"^(?P<case>(infer|train)[^|]*?)\s*\|\s*(?P<ours>[0-9.]+) s \((?P<omin>[0-9.]+)-(?P<omax>[0-9.]+)\)\s+"
                 r"(?P<orss>\d+) MiB\s*\|\s*(?P<rest>.*)$")
THEIRS = re.compile(r"(?P<t>[0-9.]+) s \((?P<tmin>[0-9.]+)-(?P<tmax>[0-9.]+)\)\s+(?P<trss>\d+) MiB\s*\|\s*"
                    r"(?P<speed>[0-9.]+)x\s*\|\s*(?P<rssr>[0-9.]+)")

# ANCHORS.md's targets per backend: (pattern on the case name, what it asks, speed ratio it
# must exceed or None, absolute seconds it must stay under or None). On the GPU "fp32" there is PyTorch's default: TF32
# convolutions, our --tf32 rows.
TARGETS = {
    "cuda": [
        (r"^infer 256x256 ngf 64 tf32 vs compile$", "faster than torch.compile", 1.0, None),
        (r"^infer 256x256 ngf 64 bf16 vs compile$", "faster than torch.compile", 1.0, None),
        (r"^infer 256x256 ngf 64 tf32$", "under 1.8 ms (torch.compile's 1.86)", None, 0.0018),
        (r"^infer 256x256 ngf 64 bf16$", "under 1.2 ms (torch.compile's 1.30)", None, 0.0012),
        (r"^train cut 256x256 ngf 64 tf32$", "2x PyTorch eager", 2.0, None),
        (r"^train negcut 256x256 ngf 64 tf32$", "2.5x PyTorch eager", 2.5, None),
        (r"^train cut 64x64 ngf 16$", "7x PyTorch eager", 7.0, None),
    ],
    "cpu": [
        (r"^infer 256x256 ngf 64$", "1.5x PyTorch", 1.5, None),
        (r"^train cut 256x256 ngf 64$", "1.35x PyTorch", 1.35, None),
        (r"^train negcut 256x256 ngf 64$", "3x PyTorch", 3.0, None),
        (r"^(train (cut|negcut)|infer) 64x64 ngf 16$", "5x PyTorch", 5.0, None),
    ],
}
BACKEND = re.compile(r"\| libnegcut \((?P<b>\w+)\)")
COUNTS = re.compile(r"per timed run: (?P<allocs>[0-9.]+) cudaMalloc, (?P<waits>[0-9.]+) host waits")
SKIPPED = re.compile(r"^skipped \(GPU_CHECK_DEADLINE\): (?:\S*negcut-bench )?(?P<args>.*)$")


def target_of(backend, case):
    for pat, text, ratio, seconds in TARGETS.get(backend, []):
        if re.match(pat, case):
            return text, ratio, seconds
    return None


def rows(paths):
    """(backend, match, counts) for every row; the backend from the table header above
    it, counts (cudaMalloc calls, host waits per timed run) from the workers' lines of
    its run, or None."""
    seen = []
    for path in paths:
        backend, counts = "?", None
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                b = BACKEND.search(line)
                if b:
                    backend = b.group("b")
                c = COUNTS.search(line)
                if c:
                    now = (float(c.group("allocs")), float(c.group("waits")))
                    counts = now if counts is None else tuple(map(max, counts, now))
                m = ROW.match(line) or SKIPPED.match(line)
                if m:
                    seen.append((backend, m, counts if backend == "cuda" else None))
                    counts = None  # each run prints its own
    return seen


def ms(s):
    """Three significant digits (whole numbers from 1000 up), in seconds from one
    second up, else in milliseconds."""
    t = float("%.3g" % float(s))  # rounded first, so 0.99996 s reads 1.00 s
    value, unit = (t, "s") if t >= 1.0 else (t * 1e3, "ms")
    if value >= 100:
        return "%d %s" % (round(value), unit)
    return "%s %s" % ("%#.3g" % value, unit)


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    found = rows(argv[1:])
    if not found:
        sys.stderr.write("bench_table.py: no negcut-bench rows in %s\n" % " ".join(argv[1:]))
        return 1
    print("| backend | case | ours: median (min-max) | other side: median (min-max) | speed | RSS ratio "
          "| target | met | per run: cudaMalloc, host waits |")
    print("|---|---|---|---|---|---|---|---|---|")
    for backend, m, counts in found:
        if "args" in m.groupdict():
            print("| %s | skipped (deadline): %s |  |  |  |  |  |  |  |" % (backend, m.group("args")))
            continue
        case = m.group("case").strip()
        ours = "%s (%s-%s)" % (ms(m.group("ours")), ms(m.group("omin")), ms(m.group("omax")))
        t = THEIRS.search(m.group("rest"))
        theirs, speed, rss, ratio = "not run", "", "", None
        if t:
            theirs = "%s (%s-%s)" % (ms(t.group("t")), ms(t.group("tmin")), ms(t.group("tmax")))
            ratio = float(t.group("speed"))
            speed, rss = "%.2fx" % ratio, t.group("rssr")
        goal, met = "", ""
        tg = target_of(backend, case)
        if tg:
            goal = tg[0]
            if tg[1] is not None and ratio is not None:
                met = "yes" if ratio > tg[1] else "no"
            elif tg[2] is not None:
                met = "yes" if float(m.group("ours")) < tg[2] else "no"
        per_run = "%g, %g" % counts if counts else ""
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |"
              % (backend, case, ours, theirs, speed, rss, goal, met, per_run))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
