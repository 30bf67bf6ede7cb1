"""Fuzz suite: random command lines for every command of the CLI (issue 9 item 8).

Every case runs in-process with ``--json`` in a fresh working folder. Outcomes:

- ``ok``: exit 0 and stdout is one valid JSON value (no NaN / Infinity text);
- ``refused``: exit 2, nothing on stdout, one JSON line ``{"error": ...}`` on stderr, and
  no file left in the working folder;
- anything else fails the suite: a traceback (an exception escaping ``main``), a hang (a
  case past ``CASE_TIMEOUT_S``), invalid JSON, a leftover file or temp file.

The command tree is walked from the Typer app, so a new command or flag is fuzzed without
editing this file. Values come from pools: plausible names (catalog models, GPUs, presets),
numbers good and bad (0, -1, 1e30, nan, inf), unit strings, scenario files (the examples,
a binary file, a YAML alias bomb, deep nesting), and output paths (fresh, a folder,
``/dev/null``, a missing folder). ``make test`` runs ``AIFABRIC_FUZZ_EXAMPLES`` (default
150) cases; ``make fuzz`` runs 20,000 and prints the outcome table.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifabric.cli import command, main

from .cli_helpers import check_schema

EXAMPLES = int(os.environ.get("AIFABRIC_FUZZ_EXAMPLES", "150"))
CASE_TIMEOUT_S = float(os.environ.get("AIFABRIC_FUZZ_TIMEOUT_S", "60"))
ROOT = Path(__file__).resolve().parent.parent
OUTCOMES: Counter[str] = Counter()

NUMBERS = ["0", "1", "2", "4", "8", "16", "64", "1024", "-1", "0.5", "1e30", "1e-9", "nan",
           "inf", "-inf", "abc", "", "3.7", "100000000"]  # fmt: skip
GOOD_NUMBERS = ["1", "2", "4", "8", "16", "64", "0.5"]
NAMED = {
    "model": [
        "llama3-8b",
        "llama3-70b",
        "llama2-70b",
        "deepseek-v3",
        "mixtral-8x7b",
        "gpt3-175b",
        "nope",
    ],
    "timing": ["auto", "profile", "roofline", "x"],
    "weight_dtype": ["bf16", "fp16", "fp8", "x"],
    "gpu": ["h100-sxm", "h800", "gb200-nvl72", "b200", "x"],
    "preset": ["dgx-superpod-h100", "dgx-superpod-gb200", "meta-llama3-24k", "alibaba-hpn", "z"],
    "switch": ["quantum-2-qm9700", "spectrum-4-sn5600", "tomahawk-5", "seed-51.2t", "q"],
    "nic": ["400G", "800G", "200G", "100G", "400", "1e9G", "-400G", "fast"],
    "design": ["rail_optimized", "clos", "spine_leaf", "torus"],
    "algorithm": ["auto", "ring", "tree", "direct", "hierarchical", "nvls", "sharp", "x"],
    "accounting": ["algorithmic", "seed", "x"],
    "placement": ["contiguous", "random", "x"],
    "recompute": ["none", "selective", "full", "x"],
    "grad_dtype": ["fp32", "bf16", "fp16", "int8", "FP32"],
    "kv_dtype": ["bf16", "fp8", "x"],
    "format": ["mooncake", "azure", "auto", "x"],
    "size": ["1GB", "16MiB", "0", "-1B", "1e30B", "x", "1MiB,64MiB", "1MiB,,x"],
    "bandwidth": ["400G", "50GB/s", "0", "x"],
    "dataset_tokens": ["156B", "1T", "0", "-5", "x"],
    "kv_deadline": ["10ms", "0s", "-1ms", "x"],
    "pipeline_layers": ["10,10,10,10,10,10,10,10", "1,2", "0,80", "x"],
    "op": [
        "all_reduce",
        "all_gather",
        "all_to_all",
        "send_recv",
        "broadcast",
        "permutation",
        "incast",
        "uniform",
        "gather",
    ],
    "routing": ["ecmp", "ecmp_qp", "spray", "adaptive", "magic"],
    "fail": [
        "leaf_spine:0.25",
        "spine:2",
        "leaf0",
        "leaf0-spine0",
        "core:1",
        "spine:1e9",
        "leaf_spine:1.5",
        "x:1",
        "",
    ],
    "degrade": [
        "leaf_spine:0.1@0.5",
        "endpoint_leaf:0.5@0.1",
        "leaf_spine:0.1",
        "spine:1@0.5",
        "leaf_spine:0.1@2",
    ],
    "group": ["all", "tp", "dp", "pp", "ep", "x"],
}
SETS = ["workload.num_requests=50", "workload.num_requests=0", "workload.rate_rps=-1",
        "metrics.sample_interval_s=0", "compute.prefill_mfu=1e-9", "cluster.instances=2",
        "cluster.tp=3", "seed=-1", "nope.key=1", "workload.num_requests=1e30",
        "batching.policy=static", "cluster.mode=disaggregated", "compute.timing=profile"]  # fmt: skip
# simulate cluster overrides (each case also ends in --set duration=..., see command_lines)
CLUSTER_SETS = ["duration=0", "duration=-1s", "duration=1e30", "strategy=separate_networks",
                "strategy=separate_clusters", "strategy=time_division", "strategy=magic",
                "classes.policy=weighted", "classes.policy=strict_priority",
                "classes={policy: strict_priority, order: [training, storage, inference]}",
                "classes={policy: weighted, weights: {training: 1, inference: 0, storage: 1}}",
                "storage.servers=0", "storage.servers=2", "storage.network=frontend",
                "fabric.gpus=8", "fabric.gpus=1e9", "fabric.routing=spray", "fabric=1",
                "workloads=[]", "workloads=1", "time_division.model_load=0s", "seed=-1",
                "nope.key=1"]  # fmt: skip
CLUSTER_DURATION = "10s"  # keeps every cluster case to seconds (the examples run 1 h to 24 h)
INPUT_OPTIONS = ("file", "prices")
OUTPUT_OPTIONS = (
    "graphml",
    "export",
    "matrix",
    "svg",
    "timeseries",
    "requests",
    "requests_csv",
    "trace",
    "output",
)


def _fixture_files(folder: Path) -> dict[str, list[str]]:
    """Input files of every kind, made once (the examples are read in place)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (folder / "latin1.yaml").write_bytes("model: llama3-8b # caf\xe9\n".encode("latin-1"))
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    (folder / "bomb.yaml").write_text(bomb, encoding="utf-8")
    (folder / "deep.yaml").write_text("x: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    (folder / "empty.yaml").write_text("", encoding="utf-8")
    (folder / "list.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    (folder / "tiny-serve.yaml").write_text(
        "model: llama3-8b\nworkload: {source: synthetic, num_requests: 40, rate_rps: 20}\n"
        "cluster: {instances: 2}\n",
        encoding="utf-8",
    )
    (folder / "tiny-cluster.yaml").write_text(
        "duration: 5s\n"
        "fabric: {gpus: 32, gpu: h100-sxm, design: spine_leaf, oversubscription: 2}\n"
        "storage: {servers: 1}\n"
        "workloads:\n"
        "  - {name: t, kind: train, checkpoint_every_steps: 2,\n"
        "     job: {model: llama3-8b, tp: 8, dp: 2, seq_len: 2048, global_batch: 16}}\n"
        "  - {name: s, kind: serve, scenario: {model: llama3-8b,\n"
        "     workload: {source: synthetic, num_requests: 40, rate_rps: 20},\n"
        "     cluster: {instances: 1, tp: 8}}}\n",
        encoding="utf-8",
    )
    (folder / "header.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n", "utf-8")
    (folder / "absurd.jsonl").write_text(
        '{"timestamp": 0, "input_length": 1e30, "output_length": 5, "hash_ids": [1]}\n',
        encoding="utf-8",
    )
    examples = [str(p) for p in sorted((ROOT / "examples").glob("*/*.yaml"))
                if "mooncake" not in p.name]  # fmt: skip
    made = [str(p) for p in sorted(folder.iterdir())]
    traces = [str(ROOT / "traces" / "azure2023_code.csv"), *made]
    return {"file": examples + made + ["missing.yaml", str(folder)],
            "cluster": [str(folder / "tiny-cluster.yaml"),  # first: the default
                        *(p for p in examples if "/cluster/" in p),
                        *(str(folder / n) for n in ("tiny-serve.yaml", "binary.yaml",
                                                    "bomb.yaml", "list.yaml", "empty.yaml")),
                        "missing.yaml"],
            "prices": [str(ROOT / "src/aifabric/catalog/data/parts.yaml"), *made],
            "trace": traces}  # fmt: skip


def _leaf_commands() -> list[tuple[list[str], Any]]:
    leaves: list[tuple[list[str], Any]] = []

    def visit(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", {})
        if not subs and path:
            leaves.append((path, cmd))
        for name, sub in subs.items():
            visit(sub, [*path, name])

    visit(command(), [])
    # `ui` serves until stopped: its options are checked by tests/test_api.py instead.
    return [(path, cmd) for path, cmd in leaves if path != ["ui"]]


LEAVES = _leaf_commands()


@st.composite
def command_lines(draw: Any, files: dict[str, list[str]]) -> list[str]:
    path, cmd = draw(st.sampled_from(LEAVES))
    argv = list(path)
    for param in cmd.params:
        if param.param_type_name == "argument":
            pool = files["trace"] if "file" in param.name or "trace" in param.name else [
                "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast",
                "send_recv", "x"]  # fmt: skip
            argv.append(draw(st.sampled_from(pool)))
    options = [p for p in cmd.params if p.param_type_name == "option" and p.name != "as_json"
               and "--help" not in p.opts]  # fmt: skip
    for param in (
        draw(st.lists(st.sampled_from(options), max_size=6, unique_by=id)) if options else []
    ):
        flag = param.opts[0] if param.opts[0].startswith("--") else param.opts[-1]
        if param.is_flag:
            choices = [flag, *param.secondary_opts]
            argv.append(draw(st.sampled_from(choices)))
            continue
        name = param.name
        if name in INPUT_OPTIONS:
            cluster = path == ["simulate", "cluster"] and name == "file"
            value = draw(st.sampled_from(files["cluster" if cluster else name]))
        elif name in OUTPUT_OPTIONS:
            value = draw(st.sampled_from(["out.file", ".", "/dev/null", "missing/out.file"]))
        elif name == "sets":
            value = draw(st.sampled_from(CLUSTER_SETS if path == ["simulate", "cluster"] else SETS))
        elif name in NAMED:
            value = draw(st.sampled_from(NAMED[name]))
        else:  # mostly plausible numbers, so that cases reach past option parsing
            value = draw(st.sampled_from(GOOD_NUMBERS * 3 + NUMBERS))
        argv += [flag, value]
    if path == ["simulate", "serve"] and "-f" not in argv and "--file" not in argv:
        argv += ["-f", files["file"][-3]]  # keep serving cases small: tiny-serve.yaml
    if path == ["simulate", "cluster"]:
        if "-f" not in argv and "--file" not in argv:
            argv += ["-f", files["cluster"][0]]  # the required scenario: tiny-cluster.yaml
        argv += ["--set", f"duration={CLUSTER_DURATION}"]  # the last override wins
    return [*argv, "--json"]


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang()


def run_case(argv: list[str], workdir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run one command line; return the outcome or raise AssertionError with the reason."""
    before = set(os.listdir(workdir))
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S)
    try:
        code = main(argv)
    except _Hang:
        raise AssertionError(f"hang (> {CASE_TIMEOUT_S} s): aifabric {' '.join(argv)}") from None
    except BaseException as exc:
        raise AssertionError(f"traceback {type(exc).__name__}: aifabric {' '.join(argv)}") from exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    out, err = capsys.readouterr()
    after = set(os.listdir(workdir))
    temps = [n for n in after if n.endswith(".tmp")]
    assert not temps, f"temp file left {temps}: aifabric {' '.join(argv)}"
    if code == 0:
        check_schema(argv, json.loads(out, parse_constant=_no_constant))
        for name in after - before:
            (workdir / name).unlink() if (workdir / name).is_file() else None
        return "ok"
    assert code == 2, f"exit {code}: aifabric {' '.join(argv)}\n{err}"
    assert out == "", f"stdout on error: aifabric {' '.join(argv)}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in json.loads(lines[0]), f"{err!r}: {argv}"
    assert after == before, f"left {sorted(after - before)}: aifabric {' '.join(argv)}"
    return "refused"


def _no_constant(name: str) -> None:
    raise AssertionError(f"invalid JSON constant {name}")


@pytest.fixture(scope="module")
def fuzz_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    return _fixture_files(tmp_path_factory.mktemp("fuzz-inputs"))


def test_fuzz_every_command(
    fuzz_files: dict[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "150")

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(argv=command_lines(fuzz_files))
    def case(argv: list[str]) -> None:
        OUTCOMES[run_case(argv, tmp_path, capsys)] += 1

    case()
    if os.environ.get("AIFABRIC_FUZZ_REPORT"):
        with capsys.disabled():
            total = sum(OUTCOMES.values())
            print(f"\nfuzz: {total} cases: " + ", ".join(f"{k} {v}" for k, v in OUTCOMES.items()))
            print("fuzz: 0 tracebacks, 0 hangs, 0 invalid JSON, 0 leftover files")
