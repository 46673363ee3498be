"""Shared plumbing of the benchmarks: simulator process, measured child runs, output scan.

Not a benchmark itself. Imported by the scripts beside it (they run with this folder as
`sys.path[0]`), and run as `python _common.py --measure OUT ERR -- CMD...` to measure one
child: a fresh small wrapper per measurement, so `getrusage(RUSAGE_CHILDREN).ru_maxrss`
is the peak RSS of that one child (it is a maximum over all waited-for children of a
process, so a long-lived parent could not tell a small run after a big one).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The simulator (`nylas_simulator`) is not installed with the tap: import it from the checkout.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
TAP = str(VENV_BIN / "tap-nylas")
API_KEY = "sim-key"


# -- simulator -------------------------------------------------------------------------


class Simulator:
    """`python -m nylas_simulator` in its own process (its CPU is not the tap's)."""

    def __init__(
        self,
        grants: int,
        records: int,
        latency: float = 0.0,
        large_bodies: bool = False,
        extra: list[str] | None = None,
    ) -> None:
        cmd = [
            PYTHON, "-m", "nylas_simulator", "--port", "0", "--grants", str(grants),
            "--records", str(records), "--latency", str(latency), "--api-key", API_KEY,
            *(extra or []),
        ]  # fmt: skip
        if not large_bodies:
            cmd.append("--no-large-bodies")
        self.proc = subprocess.Popen(  # noqa: S603
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None  # noqa: S101
        line = self.proc.stdout.readline().strip()
        if not line.startswith("NYLAS_SIMULATOR_URL="):
            self.stop()
            msg = f"simulator did not start (said {line!r})"
            raise RuntimeError(msg)
        self.url = line.split("=", 1)[1]

    def take_log(self, *, rewind: bool = False) -> list[dict]:
        """The simulator's request log since the last call (`GET /__sim/log?reset=1`).

        `rewind`: the next client meets the random faults and latencies from their start.
        """
        url = f"{self.url}/__sim/log?reset=1{'&rewind=1' if rewind else ''}"
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310
            return list(json.loads(resp.read())["entries"])

    def rss_mb(self) -> float | None:
        """The simulator's peak RSS so far (Linux /proc VmHWM)."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the simulator process has used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM the simulator and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- config and catalog ----------------------------------------------------------------


def write_json(directory: Path, name: str, payload: object) -> Path:
    """Write `payload` as JSON to `directory/name`."""
    path = directory / name
    path.write_text(json.dumps(payload))
    return path


def selected_catalog(config_path: Path, streams: set[str], out_path: Path) -> Path:
    """`tap-nylas --discover` with only `streams` selected (stream-level metadata)."""
    discovered = subprocess.run(  # noqa: S603
        [TAP, "--config", str(config_path), "--discover"],
        cwd=ROOT, capture_output=True, check=True,
    )  # fmt: skip
    catalog = json.loads(discovered.stdout)
    found = set()
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                selected = entry["tap_stream_id"] in streams
                metadata["metadata"]["selected"] = selected
                if selected:
                    found.add(entry["tap_stream_id"])
    if missing := streams - found:
        msg = f"streams not in the catalog: {sorted(missing)}"
        raise RuntimeError(msg)
    out_path.write_text(json.dumps(catalog))
    return out_path


# -- measured child runs ---------------------------------------------------------------


@dataclass
class RunResult:
    """What one measured child did."""

    wall: float
    maxrss_mb: float
    returncode: int
    stdout: Path
    stderr: Path
    cpu: float = 0.0  # user + system seconds of the child
    server_cpu: float | None = None  # of the simulator during the run, when known


def run_measured(
    cmd: list[str],
    stdout: Path,
    stderr: Path,
    env: dict[str, str] | None = None,
    simulator: Simulator | None = None,
) -> RunResult:
    """Run `cmd` under a fresh wrapper process; wall time, CPU and peak RSS of `cmd` alone."""
    wrapper = [PYTHON, __file__, "--measure", str(stdout), str(stderr), "--", *cmd]
    server_before = simulator.cpu_seconds() if simulator else None
    done = subprocess.run(  # noqa: S603
        wrapper, cwd=ROOT, capture_output=True, text=True, env=env, check=False
    )
    server_after = simulator.cpu_seconds() if simulator else None
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        msg = f"measure wrapper failed: {done.stderr[-2000:]}"
        raise RuntimeError(msg) from None
    result = RunResult(
        report["wall"], report["maxrss_kb"] / 1024, report["returncode"], stdout, stderr,
        report["cpu"],
        None if server_before is None or server_after is None else server_after - server_before,
    )  # fmt: skip
    if result.returncode != 0:
        tail = stderr.read_text(errors="replace")[-1500:]
        print(f"!! {' '.join(cmd[:3])}... exited {result.returncode}; stderr tail:\n{tail}")
    return result


def _measure_main(argv: list[str]) -> int:
    """The wrapper: run the command once, report wall time and the child's peak RSS."""
    out_path, err_path, sep, *cmd = argv
    assert sep == "--"  # noqa: S101
    with Path(out_path).open("wb") as out, Path(err_path).open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)  # noqa: S603
        returncode = proc.wait()
        wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps(
        {"wall": wall, "maxrss_kb": usage.ru_maxrss, "cpu": cpu, "returncode": returncode}
    ))  # fmt: skip
    return 0


# -- Singer output ---------------------------------------------------------------------


@dataclass
class SingerStats:
    """Counts over a Singer stdout file."""

    total_bytes: int = 0
    lines: int = 0
    records: int = 0
    records_by_stream: dict[str, int] = field(default_factory=dict)
    states: int = 0
    state_bytes: int = 0
    final_state: dict | None = None
    final_state_bytes: int = 0


def scan_singer(path: Path) -> SingerStats:
    """RECORD/STATE counts and bytes (newline included) of a Singer stdout file."""
    stats = SingerStats()
    last_state = b""
    by_stream: dict[bytes, int] = {}
    with path.open("rb") as lines:
        for line in lines:
            stats.lines += 1
            stats.total_bytes += len(line)
            head = line[:64]
            if b'"RECORD"' in head:
                stats.records += 1
                start = head.find(b'"stream":"')
                if start >= 0:
                    start += 10
                    stream = head[start : head.find(b'"', start)]
                    by_stream[stream] = by_stream.get(stream, 0) + 1
            elif b'"STATE"' in head:
                stats.states += 1
                stats.state_bytes += len(line)
                last_state = line
    stats.records_by_stream = {k.decode(): v for k, v in sorted(by_stream.items())}
    if last_state:
        stats.final_state = json.loads(last_state)["value"]
        # What Meltano stores: the state value, compact JSON.
        stats.final_state_bytes = len(json.dumps(stats.final_state, separators=(",", ":")))
    return stats


def stderr_request_count(path: Path) -> int | None:
    """HTTP requests the tap made: the SDK's `http_request_duration` METRIC lines on stderr.

    One timer line per request, failed ones (401, 404, 400 "not supported") included;
    the SDK's `http_request_count` counter skips those.
    """
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            if b'"http_request_duration"' in line and b"METRIC: " in line:
                count += 1
    return count or None


# -- output ----------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain aligned text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def workdir(prefix: str) -> Path:
    """A fresh temporary directory for configs, catalogs and captured output."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def machine_line() -> str:
    """CPU count and load, for reading the numbers with the machine's state in mind."""
    load = os.getloadavg()
    return f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        sys.exit(_measure_main(sys.argv[2:]))
    print(__doc__)
