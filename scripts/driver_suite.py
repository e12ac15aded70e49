#!/usr/bin/env python3
"""Helper of scripts/driver-suite: runs one test module of a driver's own suite and tallies
the runs direct and through the gateway.

  driver_suite.py run SUITE_DIR MODULE OUT_TSV   one module (e.g. tests.test_cancel), in this
                                                  process; one line per test as it finishes
  driver_suite.py compare RESULTS_DIR             the tables, the differences; exit 1 if any
  driver_suite.py differs RESULTS_DIR MODULE      exit 1 when one module's two runs differ
  driver_suite.py self-check                      the comparison finds a planted difference

The module runs in its own process (the shell script starts one per file) so a test that
crashes or hangs ends its file only; a file that did not exit 0 is a failed file whatever its
test lines say. Each result line is written and flushed as the test ends, so a file cut short
still counts what it ran.

Result lines (tab-separated): test id, outcome (pass, fail, error, skip, xfail, xpass), and a
one-line reason for fail/error/skip (the exception's last line). No secret reaches them: the
suite's connection strings carry no password (it comes from PGPASSFILE).
"""

import os
import sys
import unittest
from pathlib import Path

OUTCOMES = ("pass", "fail", "error", "skip", "xfail", "xpass")
FAILING = ("fail", "error", "xpass")


def one_line(text):
    """The last non-empty line of a traceback or reason, tabs and newlines removed."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last.replace("\t", " ")[:300]


class StreamingResult(unittest.TextTestResult):
    """unittest's verbose result that also writes one line per test to `sink`."""

    def __init__(self, sink, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sink = sink

    def _record(self, test, outcome, reason=""):
        self.sink.write(f"{test.id()}\t{outcome}\t{one_line(reason)}\n")
        self.sink.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "fail", self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "xfail")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "xpass")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(subtest, "fail" if failed else "error", self._exc_info_to_string(err, test))


def load_bundled_libpq():
    """Makes `ctypes.util.find_library("pq")` name the libpq psycopg2-binary bundles.

    A few tests (test_pgconn_ptr) load libpq by name and call it on psycopg2's connection
    pointer; the system's libpq (another build, or none) would be handed a PGconn it did not
    make. Pointing the name at the bundled library runs those tests as a source build would.
    """
    import ctypes.util
    import glob

    import psycopg2

    site = Path(psycopg2.__file__).resolve().parent.parent
    bundled = sorted(glob.glob(str(site / "psycopg2_binary.libs" / "libpq*.so*")))
    if not bundled:
        return
    system_find_library = ctypes.util.find_library
    ctypes.util.find_library = lambda name: bundled[0] if name == "pq" else system_find_library(name)


def run(suite_dir, module, out):
    """Runs `module`'s tests from the suite's own `test_suite()` (or its loader); exit 0 when
    every test passed or was skipped."""
    load_bundled_libpq()
    os.chdir(suite_dir)
    sys.path.insert(0, str(Path(suite_dir).resolve()))
    with open(out, "w", encoding="utf-8") as sink:
        try:
            loaded = __import__(module, fromlist=["test_suite"])
            suite = (
                loaded.test_suite()
                if hasattr(loaded, "test_suite")
                else unittest.defaultTestLoader.loadTestsFromModule(loaded)
            )
        except BaseException as e:  # an import that fails is the file's error, counted
            sink.write(f"{module}\terror\timport failed: {one_line(repr(e))}\n")
            raise
        runner = unittest.TextTestRunner(
            stream=sys.stderr,
            verbosity=2,
            resultclass=lambda *a, **k: StreamingResult(sink, *a, **k),
        )
        result = runner.run(suite)
    return 0 if result.wasSuccessful() else 1


def read_run(directory):
    """{file: {"status": exit status text, "tests": {id: (outcome, reason)}}} of one run."""
    files = {}
    for status_file in sorted(Path(directory).glob("*.status")):
        name = status_file.stem
        tests = {}
        tsv = status_file.with_suffix(".tsv")
        if tsv.exists():
            for line in tsv.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split("\t")
                if len(parts) >= 2 and parts[1] in OUTCOMES:
                    tests[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
        files[name] = {"status": status_file.read_text().strip(), "tests": tests}
    return files


def file_passed(entry):
    return entry["status"] == "0" and not any(o in FAILING for o, _ in entry["tests"].values())


def totals(files):
    counts = {o: 0 for o in OUTCOMES}
    for entry in files.values():
        for outcome, _ in entry["tests"].values():
            counts[outcome] += 1
    passed_files = sum(1 for e in files.values() if file_passed(e))
    return passed_files, len(files) - passed_files, counts


def file_differences(name, direct, gateway):
    """What differs between one file's run direct and through the gateway."""
    differences = []
    if direct["status"] != gateway["status"]:
        differences.append(f"{name}: file exit {direct['status']} direct, {gateway['status']} through the gateway")
    for test in sorted(direct["tests"].keys() | gateway["tests"].keys()):
        d = direct["tests"].get(test, ("missing", ""))
        g = gateway["tests"].get(test, ("missing", ""))
        if d[0] != g[0]:
            differences.append(f"{test}: {d[0]} direct, {g[0]} through the gateway ({g[1] or d[1]})")
    return differences


def differs(results_dir, module):
    """Exit 1 (and say what) when `module`'s runs differ: the shell script runs it again."""
    runs = {}
    for leg in ("direct", "gateway"):
        runs[leg] = read_run(Path(results_dir) / leg).get(module, {"status": "missing", "tests": {}})
    found = file_differences(module, runs["direct"], runs["gateway"])
    for line in found:
        print(line)
    return 1 if found else 0


def compare(results_dir):
    runs = {leg: read_run(Path(results_dir) / leg) for leg in ("direct", "gateway")}
    if not runs["direct"] or not runs["direct"].keys() == runs["gateway"].keys():
        print("the two runs did not cover the same files; see", results_dir)
        return 2
    print(f"{'':8} {'files ok':>8} {'failed':>6}   " + " ".join(f"{o:>6}" for o in OUTCOMES))
    for leg, files in runs.items():
        ok, bad, counts = totals(files)
        print(f"{leg:8} {ok:>8} {bad:>6}   " + " ".join(f"{counts[o]:>6}" for o in OUTCOMES))

    differences = []
    own = []
    for name in sorted(runs["direct"]):
        direct, gateway = runs["direct"][name], runs["gateway"][name]
        differences.extend(file_differences(name, direct, gateway))
        for test in sorted(direct["tests"].keys() & gateway["tests"].keys()):
            d, g = direct["tests"][test], gateway["tests"][test]
            if d[0] == g[0] and d[0] in FAILING:
                own.append(f"{test}: {d[0]} both ways ({d[1]})")
        if direct["status"] == gateway["status"] != "0" and not any(
            o in FAILING for o, _ in direct["tests"].values()
        ):
            own.append(f"{name}: file exit {direct['status']} both ways")

    retried = Path(results_dir) / "retried.txt"
    if retried.exists():
        lines = retried.read_text(encoding="utf-8").splitlines()
        print()
        print(f"files run again after a difference (the last runs count; earlier ones in retries/): {len(lines)}")
        for line in lines:
            print("  " + line)

    print()
    print(f"failing both ways (the suite's own, not the gateway's): {len(own)}")
    for line in own:
        print("  " + line)
    print()
    print(f"differences direct vs gateway: {len(differences)}")
    for line in differences:
        print("  " + line)
    return 1 if differences else 0


def self_check():
    """The comparison finds what it must: a test passing direct and failing through the gateway,
    a file cut short, and no difference when both runs agree. Run before every suite so a broken
    tally cannot report a clean pass."""
    import contextlib
    import io
    import tempfile

    def write(directory, leg, status, lines):
        (directory / leg).mkdir(parents=True, exist_ok=True)
        (directory / leg / "test_m.status").write_text(f"{status}\n")
        (directory / leg / "test_m.tsv").write_text("".join(f"{line}\n" for line in lines))

    same = ["tests.m.T.test_a\tpass\t", "tests.m.T.test_b\tfail\tAssertionError: own"]
    cases = [
        (same, 1, same, 1, 0),
        (same, 1, ["tests.m.T.test_a\terror\tOperationalError: closed", same[1]], 1, 1),
        (same, 1, same[:1], 124, 1),
    ]
    for direct, direct_status, gateway, gateway_status, expected in cases:
        with tempfile.TemporaryDirectory() as tmp:
            write(Path(tmp), "direct", direct_status, direct)
            write(Path(tmp), "gateway", gateway_status, gateway)
            with contextlib.redirect_stdout(io.StringIO()):
                got = compare(tmp)
            if got != expected:
                print(f"self-check failed: compare gave {got}, expected {expected}", file=sys.stderr)
                return 2
    return 0


def main(argv):
    if len(argv) == 2 and argv[1] == "self-check":
        return self_check()
    if len(argv) == 5 and argv[1] == "run":
        return run(argv[2], argv[3], argv[4])
    if len(argv) == 3 and argv[1] == "compare":
        return compare(argv[2])
    if len(argv) == 4 and argv[1] == "differs":
        return differs(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
