"""``aifabric schema COMMAND`` and the JSON vocabulary (issue 9, item 5).

Truth here is the vocabulary's written rules (aifabric.outputs): snake_case keys and
enumerated values; every number of a schema declares its unit, and its key (or, for a map
keyed by tier or percentile, the map's key) ends in the suffix of that unit, after
Prometheus' base-unit naming (https://prometheus.io/docs/practices/naming/#base-units).
Every command with ``--json`` has a schema, and its outputs, on the shipped examples and on
the option variants that add keys, validate against it (cli_helpers.run_json validates
every JSON output of the CLI tests too, and the fuzz suite every successful case).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from aifabric.cli import command
from aifabric.outputs.schema import COMMANDS, json_schema

from .cli_helpers import main_in_process, run_error, run_json, shortened_cluster_sets

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "traces" / "mooncake_conversation_trace.jsonl"

# Each unit's key suffixes: the unit word, optionally qualified by "_per_X" / "_by_X".
QUAL = r"((_per|_by)_[a-z0-9]+)*$"
SUFFIX = {
    "bytes": r"(^|_)bytes" + QUAL,
    "s": r"(^|_)s" + QUAL,
    "bytes/s": r"(^|_)bytes_per_s" + QUAL,
    "bits/s": r"(^|_)bits_per_s$",
    "FLOP": r"(^|_)flop" + QUAL,
    "FLOP/s": r"(^|_)flop_per_s$",
    "USD": r"(^|_)usd" + QUAL,
    "W": r"(^|_)w" + QUAL,
    "J": r"(^|_)j" + QUAL,
    "J/token": r"(^|_)j_per_output_token$",
    "USD/1M tokens": r"(^|_)usd_per_million_output_tokens$",
    "1/s": r"_per_s$",
    "1": r"(_ratio|_fraction|utilization|^[mh]fu|^oversubscription"
    r"|^slo_attainment(_admitted)?|_cv)" + QUAL,
    "count": r"(tokens|calls|switches|instances|^mean_decode_batch|^queue_depth)$",
}
# Percentile and range members of a map whose own key names the unit.
MEMBERS = {"p50", "p95", "p99", "mean", "max", "low", "likely", "high", "value"}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _numbers(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(key, the key above it, property schema) of every property that may be a number."""
    found: list[tuple[str, str, dict[str, Any]]] = []

    def walk(node: dict[str, Any], key: str, parent: str, seen: frozenset[int]) -> None:
        node = _resolve(schema, node)
        if id(node) in seen:
            return
        seen = seen | {id(node)}
        branches = node.get("anyOf", [node])
        if any(b.get("type") == "number" for b in branches):
            found.append((key, parent, node))
        for b in branches:
            b = _resolve(schema, b)
            for k, sub in b.get("properties", {}).items():
                walk(sub, k, key, seen)
            if isinstance(b.get("additionalProperties"), dict):
                walk(b["additionalProperties"], "value", key, seen)
            if isinstance(b.get("items"), dict):
                walk(b["items"], key, parent, seen)

    walk(schema, "", "", frozenset())
    return found


def _unit(node: dict[str, Any]) -> str | None:
    if "unit" in node:
        return str(node["unit"])
    for b in node.get("anyOf", []):
        if "unit" in b:
            return str(b["unit"])
    return None


def json_commands() -> list[str]:
    """Command paths of the CLI that take --json."""
    found: list[str] = []

    def walk(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        if any("--json" in getattr(p, "opts", []) for p in cmd.params):
            found.append(" ".join(path))

    walk(command(), [])
    return sorted(found)


def test_every_json_command_has_a_schema_and_no_schema_lacks_a_command() -> None:
    assert json_commands() == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_schema_is_valid_and_every_number_has_a_unit_its_key_names(name: str) -> None:
    schema = json_schema(name)
    Draft202012Validator.check_schema(schema)
    numbers = _numbers(schema)
    assert numbers
    for key, parent, node in numbers:
        unit = _unit(node)
        assert unit is not None, f"{name}: {parent}.{key} is a number without a unit"
        if unit.startswith("given by"):  # seeds: value + unit fields
            continue
        pattern = SUFFIX[unit]
        named = key if key not in MEMBERS else parent
        assert re.search(pattern, named) or re.search(pattern, parent), (
            f"{name}: {parent}.{key} is in {unit} but its key does not end in the unit"
        )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_keys_and_enumerations_are_snake_case(name: str) -> None:
    schema = json_schema(name)
    snake = re.compile(r"^[a-z][a-z0-9_]*$")

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k in node.get("properties", {}):
                assert snake.match(k), f"{name}: key {k!r} is not snake_case"
            for value in node.get("enum", []):
                if isinstance(value, str) and node.get("title") != "Unit":
                    assert snake.match(value), f"{name}: value {value!r} is not snake_case"
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)


def test_schema_command_prints_the_schema_and_refuses_unknown_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = json.loads(main_in_process(capsys, "schema", "traffic", "train"))
    assert out["properties"]["per_iteration"] == {"$ref": "#/$defs/PerIteration"}
    assert out["$schema"].endswith("2020-12/schema")
    listed = main_in_process(capsys, "schema", "--list").split("\n")
    assert "simulate serve" in listed and "plan compare" in listed
    assert "no JSON output is published for 'plan bogus'" in run_error(
        capsys, "schema", "plan", "bogus"
    )
    assert "name a command" in run_error(capsys, "schema")


# Invocations that between them produce every optional key of every output.
VARIANTS = [
    ["seeds", "--json"],
    [
        "sweep",
        "-f",
        "examples/sweep/llama70b-plans.yaml",
        "--db",
        ":memory:",
        "--workers",
        "1",
        "--json",
    ],
    ["results", "query", "SELECT 1 AS one", "--db", ":memory:", "--json"],
    ["results", "pareto", "--minimize", "cost_usd", "--db", ":memory:", "--json"],
    ["results", "top", "--metric", "cost_usd", "--db", ":memory:", "--json"],
    [
        "report",
        "-f",
        "examples/train/llama3-70b-tp8-pp8-dp16.yaml",
        "--command",
        "plan",
        "-o",
        str(Path(tempfile.gettempdir()) / "aifabric-schema-report.html"),
        "--json",
    ],
    [
        "simulate",
        "train",
        "--model",
        "llama3-8b",
        "--tp",
        "2",
        "--dp",
        "4",
        "--jitter",
        "0.05",
        "--slow-gpu",
        "1:1.2",
        "--dataset-tokens",
        "1T",
        "--json",
    ],
    [
        "simulate",
        "train",
        "--model",
        "llama3-8b",
        "--tp",
        "8",
        "--dp",
        "2",
        "--network",
        "analytic",
        "--json",
    ],
    ["collective", "all_reduce", "--size", "1GiB", "--ranks", "64", "--json"],
    [
        "collective",
        "all_to_all",
        "--size",
        "1MiB",
        "--ranks",
        "16",
        "--algorithm",
        "auto",
        "--json",
    ],
    ["collective", "all_reduce", "--size", "0", "--ranks", "1", "--json"],
    [
        "timing",
        "--model",
        "llama2-70b",
        "--gpu",
        "h100-sxm",
        "--tp",
        "8",
        "--batch",
        "16",
        "--context",
        "2048",
        "--prompt-tokens",
        "1024",
        "--json",
    ],
    ["timing", "--model", "llama3-8b", "--gpu", "a100-80g", "--tp", "1", "--json"],
    ["traffic", "train", "-f", "examples/train/llama3-70b-tp8-pp8-dp16.yaml", "--json"],
    ["traffic", "train", "-f", "examples/train/deepseek-v3-ep64.yaml", "--json"],
    ["traffic", "train", "-f", "examples/train/llama3-70b-seed.yaml", "--json"],
    [
        "traffic",
        "train",
        "--model",
        "llama3-8b",
        "--gpus",
        "64",
        "--tp",
        "8",
        "--pp",
        "4",
        "--dp",
        "2",
        "--pipeline-layers",
        "8,8,8,8",
        "--recompute",
        "full",
        "--json",
    ],
    ["traffic", "infer", "-f", "examples/infer/llama3-70b-pd.yaml", "--json"],
    ["traffic", "infer", "-f", "examples/infer/seed-llama3-120b.yaml", "--json"],
    ["catalog", "models", "--json"],
    ["catalog", "gpus", "--json"],
    ["catalog", "nics", "--json"],
    ["catalog", "switches", "--json"],
    ["net", "time", "--bytes", "1TB", "--capacity", "400G", "--json"],
    ["net", "switches", "--bytes", "1PB", "--deadline", "1d", "--json"],
    ["trace", "stats", str(TRACE), "--json"],
    [
        "plan",
        "--gpus",
        "1024",
        "--model",
        "llama3-70b",
        "--tp",
        "8",
        "--pp",
        "8",
        "--dp",
        "16",
        "--seq-len",
        "8192",
        "--global-batch",
        "2048",
        "--json",
    ],
    ["plan", "--preset", "dgx-superpod-h100", "--json"],
    ["plan", "--preset", "dgx-superpod-gb200", "--json"],
    ["plan", "--gpus", "512", "--design", "spine-leaf", "--frontend-nic", "200G", "--json"],
    ["plan", "compare", "--json"],
    ["simulate", "serve", "--json"],
    ["simulate", "serve", "-f", "examples/serve/poisson-colocated.yaml", "--json"],
    # three requests, so two SLO tiers draw none: their percentiles and attainment are null
    [
        "simulate",
        "serve",
        "-f",
        "examples/serve/poisson-colocated.yaml",
        "--set",
        "workload.num_requests=3",
        "--json",
    ],
    [
        "simulate",
        "collective",
        "--gpus",
        "128",
        "--size",
        "1MiB,1GiB",
        "--fail",
        "spine:1",
        "--json",
    ],
    # simulate cluster: strict priority (classes.order), weighted (weight_fraction), and
    # time division (gpu_s, reconfigurations, loading_s), shortened
    [
        "simulate",
        "cluster",
        "-f",
        "examples/cluster/converged.yaml",
        "--set",
        "duration=60s",
        "--json",
    ],
    [
        "simulate",
        "cluster",
        "-f",
        "examples/cluster/converged.yaml",
        "--set",
        "duration=30s",
        "--set",
        "classes={policy: weighted, weights: {inference: 4, storage: 2, training: 1}}",
        "--json",
    ],
    [
        "simulate",
        "cluster",
        "-f",
        "examples/cluster/time-division.yaml",
        *shortened_cluster_sets(ROOT / "examples/cluster/time-division.yaml"),
        "--json",
    ],
    [
        "simulate",
        "collective",
        "--gpus",
        "128",
        "--op",
        "permutation",
        "--routing",
        "spray",
        "--degrade",
        "leaf_spine:0.5@0.5",
        "--json",
    ],
]


@pytest.mark.parametrize("argv", VARIANTS, ids=lambda a: " ".join(a[:3]))
def test_outputs_validate_against_their_schema(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    data = run_json(capsys, *argv)  # validates against the schema
    assert data


def test_every_command_with_json_has_a_variant() -> None:
    from .cli_helpers import command_of

    assert {command_of(a) for a in VARIANTS} == set(COMMANDS)


def test_a_key_missing_from_the_model_fails_validation() -> None:
    """The schema forbids unknown keys, so an output that grows a key without its model
    (or keeps an old spelling) fails the tests instead of drifting."""
    validator = Draft202012Validator(json_schema("net time"))
    good = {"bytes": 1.0, "capacity_bytes_per_s": 1.0, "capacity_bits_per_s": 8.0,
            "utilization": 1.0, "time_s": 1.0}  # fmt: skip
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors({**good, "utilisation": 1.0}))
    assert list(validator.iter_errors({**good, "time_s": "1 s"}))
