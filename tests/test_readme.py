"""The README cannot drift: every command it shows is run, and the figures of the shown
output must equal a fresh run's.

A checked block is a fenced block whose first line is ``$ aifabric ...``, preceded by the
marker line ``<!-- readme-check -->``. Every number in the block is compared (thousands
separators and all), and then every word, labels too (a renamed tier or key shows), with the
table borders and spacing ignored; lines that mention ``wall`` are skipped (wall-clock time
varies). The commands run in-process with a 150-column terminal, the width the README was
made with, from a scratch directory holding links to the repository's ``examples/`` and
``traces/``, so a command that writes a file (a sweep's ``--db``) leaves the checkout alone.
The blocks share that directory and run in README order (a query reads the sweep's
database), so under pytest-xdist this file must stay on one process: ``--dist loadfile``,
as ``make test`` runs it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.cli_helpers import main_in_process

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- readme-check -->"
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def _blocks() -> list[tuple[int, bool, str, str]]:
    """(line number, marked, command, shown output) of every ``$ aifabric`` block."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if (
            lines[i].startswith("```")
            and i + 1 < len(lines)
            and lines[i + 1].startswith("$ aifabric ")
        ):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            marked = i > 0 and lines[i - 1].strip() == MARKER
            blocks.append((i + 2, marked, lines[i + 1][2:], "\n".join(lines[i + 2 : end])))
            i = end
        i += 1
    return blocks


def _words(text: str) -> list[str]:
    kept = [line for line in text.splitlines() if "wall" not in line]
    return re.sub(r"[\u2500-\u257f]", " ", "\n".join(kept)).split()


def _figures(text: str) -> list[str]:
    kept = [line for line in text.splitlines() if "wall" not in line]
    return NUMBER.findall("\n".join(kept))


def test_every_shown_command_is_checked() -> None:
    blocks = _blocks()
    assert len(blocks) >= 7
    unmarked = [line for line, marked, _, _ in blocks if not marked]
    assert not unmarked, f"README blocks without {MARKER} at lines {unmarked}"


@pytest.mark.parametrize(
    "line,command,shown",
    [pytest.param(line, cmd, shown, id=f"line{line}") for line, _, cmd, shown in _blocks()],
)
def test_readme_output_matches_a_fresh_run(
    line: int,
    command: str,
    shown: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    monkeypatch.setenv("COLUMNS", "150")
    work = tmp_path_factory.getbasetemp() / "readme-cwd"  # shared: later blocks read the db
    if not work.exists():
        work.mkdir()
        for name in ("examples", "traces"):
            (work / name).symlink_to(README.parent / name)
    monkeypatch.chdir(work)
    args = shlex.split(command)[1:]
    out = main_in_process(capsys, *args)
    assert _figures(out) == _figures(shown), f"README line {line}: {command}"
    assert _words(out) == _words(shown), f"README line {line}: {command} (labels differ)"
