"""Run one fuzz target with atheris: ``python -m tests.fuzz.run TARGET --seconds N`` (from the repository root).

The committed corpus (``tests/fuzz/corpus/TARGET/``) seeds the run; new inputs go to a scratch directory that
is removed afterwards, so a run (CI's included) leaves the repository as it was, unless ``--save-corpus``
makes the committed corpus the output. ``--minimise`` shrinks the committed corpus instead (libFuzzer's
merge, ``-set_cover_merge=1``: ``-merge=1`` with a greedy set cover, which keeps the same features in about half
the files), keeping hand-named files (seeds and crash regressions) and only those hash-named ones that add
coverage. Crashing inputs are written to ``--artifacts`` (a fresh temporary directory by default) and listed
at the end; the exit status is libFuzzer's, non-zero for a crash, a timeout or running out of memory.

libFuzzer runs in a child process (``--libfuzzer``, with its own flags after it), so this one can clean up and
report; libFuzzer's merge starts that child's command line again, which is why the child's first argument is
a whole shell command. Flags after ``--`` go to libFuzzer as they are.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FunctionType, ModuleType

from tests.fuzz.targets import CORPUS_ROOT, INSTRUMENTED, INSTRUMENTED_MODULES, TARGETS, corpus_dir, load

REPO = Path(__file__).resolve().parents[2]
DICTS = Path(__file__).resolve().parent / "dicts"
ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")
_HASH_NAME = re.compile(r"[0-9a-f]{40}\Z")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[1] == "--libfuzzer":
        return _libfuzzer(args[0], args[2:])
    ours, passthrough = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else (args, [])
    options = _parser().parse_args(ours)
    if options.target not in TARGETS and ":" not in options.target:
        raise SystemExit(f"unknown target {options.target!r}: expected one of {', '.join(TARGETS)} or module:function")
    corpus = Path(options.corpus) if options.corpus else corpus_dir(options.target)
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts = Path(options.artifacts or tempfile.mkdtemp(prefix=f"ripple-fuzz-{_slug(options.target)}-"))
    artifacts.mkdir(parents=True, exist_ok=True)
    flags = [
        f"-rss_limit_mb={options.rss_limit_mb}",
        f"-timeout={options.timeout}",
        f"-max_len={options.max_len}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
    ]
    dictionary = DICTS / f"{options.target}.dict"
    if dictionary.is_file():
        flags.append(f"-dict={dictionary}")
    work = Path(tempfile.mkdtemp(prefix="ripple-fuzz-work-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    if options.minimise:
        code = _minimise(options.target, corpus, work, flags + passthrough)
    else:
        corpora = [corpus] if options.save_corpus else [work / "new-inputs", corpus]
        corpora[0].mkdir(exist_ok=True)
        timed = [f"-max_total_time={options.seconds}", *flags, *passthrough]
        code = _child(options.target, work, [*timed, *map(str, corpora)])
    found = sorted(p for p in artifacts.iterdir() if p.name.startswith(ARTIFACT_PREFIXES))
    for path in found:
        print(f"ripple-fuzz: {options.target}: input that failed: {path}", file=sys.stderr)
    if not found and not options.artifacts:
        shutil.rmtree(artifacts, ignore_errors=True)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz.run", description=__doc__.split("\n\n")[0], epilog="-- FLAGS: libFuzzer flags"
    )
    parser.add_argument("target", help=f"one of {', '.join(TARGETS)}, or module:function for a harness variant")
    parser.add_argument("--seconds", type=int, default=20, help="total fuzzing time (-max_total_time)")
    parser.add_argument("--save-corpus", action="store_true", help="write new inputs into the committed corpus")
    parser.add_argument("--minimise", action="store_true", help="shrink the committed corpus (-set_cover_merge=1)")
    parser.add_argument("--corpus", help=f"the input corpus (default: {CORPUS_ROOT.relative_to(REPO)}/TARGET)")
    parser.add_argument("--artifacts", help="where crashing inputs go (default: a new temporary directory)")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory limit of the fuzzing process")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--max-len", type=int, default=8192, help="largest input in bytes")
    return parser


def _slug(target: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", target)


def _child(target: str, work: Path, flags: list[str]) -> int:
    """Run libFuzzer; what the harness leaves in its temporary directory (a crash skips its clean-up) is in
    ``work``, removed with it."""
    scratch = work / "tmp"
    scratch.mkdir(exist_ok=True)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "TMPDIR": str(scratch)}
    command = [sys.executable, "-m", "tests.fuzz.run", target, "--libfuzzer", *flags]
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


def _minimise(target: str, corpus: Path, work: Path, flags: list[str]) -> int:
    merged = work / "merged"
    merged.mkdir()
    for path in corpus.iterdir():
        if path.is_file() and not _HASH_NAME.match(path.name):
            shutil.copy2(path, merged / path.name)
    code = _child(target, work, ["-set_cover_merge=1", *flags, str(merged), str(corpus)])
    if code != 0:
        return code
    before = sum(1 for p in corpus.iterdir() if p.is_file())
    for path in corpus.iterdir():
        if path.is_file():
            path.unlink()
    for path in merged.iterdir():
        shutil.copy2(path, corpus / path.name)
    print(f"ripple-fuzz: {target}: corpus minimised from {before} to {len(list(corpus.iterdir()))} files")
    return 0


def _libfuzzer(target: str, flags: list[str]) -> int:
    import atheris

    modules = [importlib.import_module(name) for name in INSTRUMENTED_MODULES.get(target, ())]
    with atheris.instrument_imports(include=list(INSTRUMENTED.get(target, ("ripple",)))):
        harness = load(target)
    for module in modules:
        for function in _functions(module):
            atheris.instrument_func(function)
    command = shlex.join([sys.executable, "-m", "tests.fuzz.run", target, "--libfuzzer"])
    atheris.Setup([command, *flags], harness)
    atheris.Fuzz()
    return 0


def _functions(module: ModuleType) -> list[FunctionType]:
    """The functions and methods a module defines."""
    found = []
    for value in vars(module).values():
        if getattr(value, "__module__", None) != module.__name__:
            continue
        members = vars(value).values() if isinstance(value, type) else [value]
        for member in members:
            member = getattr(member, "__func__", member)
            if isinstance(member, FunctionType):
                found.append(member)
    return found


if __name__ == "__main__":
    sys.exit(main())
