"""Edges a review found: numbers past float range, requirements with no finite answer,
newline-free trace files. Each is one line and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import run_error

HUGE = "1" + "0" * 400  # past float range (1.8e308)


@pytest.mark.parametrize(
    "argv",
    [
        ["traffic", "train", "--model", "llama3-8b", "--global-batch", HUGE],
        ["traffic", "train", "--model", "llama3-8b", "--dp", HUGE],
        ["traffic", "infer", "--model", "llama3-8b", "--users", HUGE],
        ["plan", "--gpus", HUGE],
        ["collective", "all_reduce", "--ranks", HUGE, "--size", "1GB"],
        ["net", "switches", "--bytes", "1EB", "--deadline", "1e-320s"],
        ["traffic", "infer", "--model", "llama3-70b", "--pd", "--kv-deadline", "1e-320s"],
    ],
)
def test_out_of_range_numbers(capsys, argv: list[str]) -> None:
    assert "error" in run_error(capsys, *argv)


def test_huge_yaml_integer(capsys, tmp_path: Path) -> None:
    scenario = tmp_path / "big.yaml"
    scenario.write_text(f"model: llama3-8b\ndataset_tokens: {HUGE}\nglobal_batch: {HUGE}\n")
    assert "too large" in run_error(capsys, "traffic", "train", "-f", str(scenario))


def test_newline_free_trace_is_refused_by_its_line_length(capsys, tmp_path: Path) -> None:
    """A 2 MiB 'line' is not a request record: refused at 1 MiB, not read whole."""
    blob = tmp_path / "blob.jsonl"
    blob.write_bytes(b"x" * (2 << 20))
    assert "longer than 1,048,576 bytes" in run_error(capsys, "trace", "stats", str(blob))


def test_guards_and_flags_a_review_found(capsys) -> None:
    """A million serving instances is refused before they are built; plan compare takes
    --max-work (its refusal advises it); a preset refuses fabric flags it would ignore,
    and a preset size without a preset is refused."""
    err = run_error(capsys, "simulate", "serve", "--set", "cluster.instances=1000000")
    assert "instances" in err and "--max-work" in err
    assert "--max-work" in run_error(capsys, "plan", "compare", "--gpus", "100000000")
    assert "max_work" in run_error(capsys, "plan", "compare", "--max-work", "0")
    assert "--planes" in run_error(capsys, "plan", "--preset", "dgx-superpod-h100", "--planes", "2")
    assert "--su-nodes" in run_error(
        capsys, "plan", "--preset", "dgx-superpod-h100", "--su-nodes", "1"
    )
    assert "--scalable-units" in run_error(capsys, "plan", "--gpus", "64", "--scalable-units", "3")
