"""Fuzzing as tests: every committed corpus input replayed in-process (fast, a regression suite), each target
fuzzed for a bounded time (``fuzz`` marker; ``RIPPLE_FUZZ_SECONDS``, default 20, 0 skips), and proof that a
crash fails them, with the input's path and the traceback in the failure."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fuzz import http_codec, variants
from tests.fuzz.run import ARTIFACT_PREFIXES, REPO
from tests.fuzz.targets import TARGETS, FuzzOne, corpus_dir, corpus_files, load

SECONDS = int(os.environ.get("RIPPLE_FUZZ_SECONDS", "20"))
MAX_CORPUS_FILES = 300
MAX_CORPUS_BYTES = 1024 * 1024
UNSUPPORTED = http_codec.write_request({"Content-Type": "application/cloudevents+xml"}, b"<event/>")
VARIANT = "tests.fuzz.variants:http_refusing_only_event_errors"
_EXCEPTION_BANNER = "=== Uncaught Python exception: ==="


def replay(harness: FuzzOne, paths: list[Path]) -> list[str]:
    """A report for each input the harness fails on: its path and the traceback."""
    failures = []
    for path in paths:
        try:
            harness(path.read_bytes())
        except Exception:
            failures.append(f"{path}: {path.read_bytes()[:200]!r}\n{traceback.format_exc()}")
    return failures


@dataclass
class FuzzRun:
    target: str
    returncode: int
    output: str
    artifacts: list[Path]

    def report(self) -> str:
        """Why the run failed: each failing input's path and bytes, and the traceback atheris printed."""
        lines = [f"fuzzing {self.target} exited with {self.returncode}"]
        for path in self.artifacts:
            lines.append(f"failing input: {path} ({path.stat().st_size} bytes): {path.read_bytes()[:300]!r}")
        start = self.output.find(_EXCEPTION_BANNER)
        lines.append(self.output[start:] if start >= 0 else self.output[-4000:])
        return "\n".join(lines)


def fuzz(target: str, seconds: int, artifacts: Path, corpus: Path | None = None) -> FuzzRun:
    command = [sys.executable, "-m", "tests.fuzz.run", target, "--seconds", str(seconds), "--artifacts", str(artifacts)]
    if corpus is not None:
        command += ["--corpus", str(corpus)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, errors="replace",
                            timeout=seconds + 120, check=False)
    found = sorted(p for p in artifacts.iterdir() if p.name.startswith(ARTIFACT_PREFIXES))
    return FuzzRun(target, result.returncode, result.stdout + result.stderr, found)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_committed_corpus_replays_without_a_crash(target: str) -> None:
    files = corpus_files(target)
    assert files, f"{corpus_dir(target)} holds no inputs"
    failures = replay(load(target), files)
    assert not failures, f"{len(failures)} corpus input(s) of {target} crash:\n\n" + "\n\n".join(failures)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_committed_corpus_stays_small(target: str) -> None:
    files = corpus_files(target)
    size = sum(path.stat().st_size for path in files)
    assert len(files) <= MAX_CORPUS_FILES and size <= MAX_CORPUS_BYTES, (
        f"{target}: {len(files)} files, {size} bytes: minimise it (python -m tests.fuzz.run {target} --minimise)"
    )


def test_replay_reports_the_input_and_traceback_of_a_crash(tmp_path: Path) -> None:
    (tmp_path / "unsupported").write_bytes(UNSUPPORTED)
    assert replay(http_codec.fuzz_one, [tmp_path / "unsupported"]) == []
    [failure] = replay(variants.http_refusing_only_event_errors, [tmp_path / "unsupported"])
    assert str(tmp_path / "unsupported") in failure
    assert "Traceback" in failure and "UnsupportedFormat: unsupported structured event format" in failure


def test_a_crash_found_by_fuzzing_fails_with_the_input_and_traceback(tmp_path: Path) -> None:
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    corpus.mkdir()
    artifacts.mkdir()
    (corpus / "unsupported").write_bytes(UNSUPPORTED)
    run = fuzz(VARIANT, 30, artifacts, corpus)
    assert run.returncode != 0, run.output[-4000:]
    [crash] = run.artifacts
    assert crash.read_bytes() == UNSUPPORTED
    report = run.report()
    assert str(crash) in report
    assert "Traceback" in report and "UnsupportedFormat: unsupported structured event format" in report


@pytest.mark.fuzz
@pytest.mark.skipif(SECONDS <= 0, reason="RIPPLE_FUZZ_SECONDS=0")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzzing_finds_no_crash(target: str, tmp_path: Path) -> None:
    run = fuzz(target, SECONDS, tmp_path)
    assert run.returncode == 0 and not run.artifacts, run.report()
    assert "stat::number_of_executed_units" in run.output, run.output[-4000:]
