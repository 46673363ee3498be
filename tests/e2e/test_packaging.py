"""The sdist and wheel as a packager or PyPI sees them, and the wheel installed for real.

The wheel is built with `build` (isolated, hatchling from the package index), checked with
`twine check --strict`, then installed with its dependencies (pip's cache makes that quick)
into a fresh venv without the checkout or this venv's packages, and run from there:
`--about`, `--discover` and a sync against the simulator.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import subprocess
import sys
import tarfile
import typing as t
import venv
import zipfile
from pathlib import Path

import pytest

from nylas_simulator import NylasSimulator

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = (REPO / "pyproject.toml").read_text()  # tomllib is 3.11+
NAME = re.search(r'^name = "(.+)"$', PYPROJECT, re.M).group(1)  # type: ignore[union-attr]
VERSION = re.search(r'^version = "(.+)"$', PYPROJECT, re.M).group(1)  # type: ignore[union-attr]
DIST = f"{NAME.replace('-', '_')}-{VERSION}"
API_KEY = "sim-key-packaging"


def _run(*args: str, cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(  # noqa: S603 - our own fixed command lines
        list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(
        sys.executable,
        "-m",
        "build",
        "--sdist",
        "--wheel",
        "--outdir",
        str(out),
        str(REPO),
        cwd=out,
    )
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (found,) = dist.glob(f"{DIST}-py3-none-any.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv with the wheel and its dependencies installed."""
    env = tmp_path_factory.mktemp("wheel-venv")
    venv.create(env, with_pip=True, clear=True)
    pip = [str(env / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    _run(*pip, "install", "--quiet", str(wheel), cwd=env)
    return env / "bin"


def test_twine_check_strict(dist: Path) -> None:
    files = sorted(str(p) for p in dist.iterdir())
    assert len(files) == 2, files
    out = _run(sys.executable, "-m", "twine", "check", "--strict", *files, cwd=dist)
    assert out.count("PASSED") == 2, out


def test_wheel_holds_license_typing_marker_and_schemas(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert f"{DIST}.dist-info/licenses/LICENSE" in names
    assert "tap_nylas/py.typed" in names
    schemas = {
        f"tap_nylas/schemas/{p.name}" for p in (REPO / "tap_nylas" / "schemas").glob("*.json")
    }
    assert len(schemas) == 16  # twelve Nylas lists, three sweeps, sync_coverage
    assert schemas <= names
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


def test_wheel_holds_only_the_tap(wheel: Path) -> None:
    """The simulator, tests and benchmarks live in the checkout, never in the wheel."""
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if not n.startswith(("tap_nylas/", f"{DIST}.dist-info/"))]
    assert not [n for n in names if "nylas_simulator" in n]


def test_wheel_metadata(wheel: Path) -> None:
    raw = zipfile.ZipFile(wheel).read(f"{DIST}.dist-info/METADATA").decode()
    meta = email.message_from_string(raw, policy=email.policy.compat32)
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) >= {"Homepage", "Source", "Issues", "Changelog"}
    assert all(u.startswith("https://github.com/tap-nylas/tap-nylas") for u in urls.values())
    assert meta["Author"] or meta["Author-email"]
    assert meta["Maintainer"] or meta["Maintainer-email"]
    classifiers = meta.get_all("Classifier")
    for wanted in ("Typing :: Typed", "Intended Audience :: Developers"):
        assert wanted in classifiers
    assert any(c.startswith("Operating System ::") for c in classifiers)
    assert meta["Requires-Python"] == ">=3.10"


def test_sdist_holds_license_changelog_and_tests(dist: Path) -> None:
    (sdist,) = dist.glob(f"{DIST}.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "tap_nylas/py.typed"} <= names


def test_installed_wheel_runs_about_discover_and_sync(installed: Path, tmp_path: Path) -> None:
    tap = str(installed / "tap-nylas")
    python = str(installed / "python")
    where = _run(
        python,
        "-c",
        "import tap_nylas; print(tap_nylas.__file__, tap_nylas.__version__)",
        cwd=tmp_path,
    )
    path, version = where.split()
    assert Path(path).is_relative_to(installed.parent), "imported the checkout, not the wheel"
    assert version == VERSION

    about = json.loads(_run(tap, "--about", "--format=json", cwd=tmp_path))
    assert about["name"] == NAME
    assert "api_key" in about["settings"]["properties"]

    with NylasSimulator(seed=3, grants=3, records_per_grant=3, api_key=API_KEY) as sim:
        config = tmp_path / "config.json"
        config.write_text(
            json.dumps(
                {"api_key": API_KEY, "api_url": sim.url, "start_date": "2024-01-01T00:00:00Z"}
            )
        )
        catalog = json.loads(_run(tap, "--config", str(config), "--discover", cwd=tmp_path))
        streams = {s["tap_stream_id"] for s in catalog["streams"]}
        assert len(streams) == 16
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        out = _run(tap, "--config", str(config), "--catalog", "catalog.json", cwd=tmp_path)
        # events depend on the time window (tested elsewhere); every other stream in full;
        # the sweeps and sync_coverage have no truth in the simulator
        derived = {"message_flags", "thread_flags", "event_states", "sync_coverage"}
        truth = {name: sim.records(name) for name in streams - {"events"} - derived}
    keys = {s["tap_stream_id"]: s["key_properties"] for s in catalog["streams"]}
    messages = [json.loads(line) for line in out.split("\n") if line]
    records: dict[str, list[dict[str, t.Any]]] = {name: [] for name in streams}
    for message in messages:
        if message["type"] == "RECORD":
            records[message["stream"]].append(message["record"])
    assert all(truth[name] for name in ("grants", "connectors", "messages", "calendars"))
    assert records["events"]
    for name, expected in truth.items():
        key = keys[name]
        got = sorted(tuple(r[k] for k in key) for r in records[name])
        assert got == sorted(tuple(r[k] for k in key) for r in expected), name
    assert messages[-1]["type"] == "STATE"
    assert API_KEY not in out
