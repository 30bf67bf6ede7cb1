"""The command line: JSON contracts, one-line errors with exit status 2, examples run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aifabric.cli import main

from .cli_helpers import run_error, run_json
from .test_seed_examples import REQUIRED

ROOT = Path(__file__).resolve().parents[1]
REQUIRED_SEED_IDS = set(REQUIRED)  # the contract, listed once in test_seed_examples


def test_seeds_json_contract(capsys):
    data = run_json(capsys, "seeds", "--json")
    assert set(data) == {"examples"}
    ids = {e["id"] for e in data["examples"]}
    assert ids >= REQUIRED_SEED_IDS
    fields = {
        "id",
        "seed_file",
        "quantity",
        "value",
        "unit",
        "seed_value",
        "seed_unit",
        "agrees",
        "note",
    }
    for example in data["examples"]:
        assert fields <= set(example)
        assert (ROOT.parent / "shared" / "seeds" / example["seed_file"]).name.endswith(".txt")


def test_seeds_json_values(capsys):
    """The digest's recomputed figures (shared/seeds/DIGEST.md)."""
    by_id = {e["id"]: e for e in run_json(capsys, "seeds", "--json")["examples"]}
    assert by_id["002-3d-epoch-total"]["value"] == pytest.approx(84.75e18, rel=1e-3)
    assert by_id["002-3d-epoch-switch-days"]["value"] / 86400 == pytest.approx(153.3, rel=1e-3)
    assert by_id["000-kv-transfer-time-800g"]["value"] == pytest.approx(11.744e-3, rel=1e-3)
    assert by_id["000-total-traffic"]["value"] / 2**40 == pytest.approx(21.896, rel=1e-4)
    assert by_id["000-total-traffic"]["agrees"] is False


def test_seeds_table_runs(capsys):
    assert main(["seeds"]) == 0
    assert "002-3d-epoch-total" in capsys.readouterr().out


def test_catalog_models_json(capsys):
    models = run_json(capsys, "catalog", "models", "--json")["models"]
    names = {m["name"] for m in models}
    assert {
        "llama3-8b",
        "llama3-70b",
        "llama3-405b",
        "gpt3-175b",
        "mixtral-8x7b",
        "deepseek-v3",
        "qwen3-235b-a22b",
        "seed-llama3-120b",
    } <= names
    llama = next(m for m in models if m["name"] == "llama3-70b")
    assert llama["num_params"] == 70_553_706_496
    assert llama["num_active_params"] == llama["num_params"]


def test_catalog_gpus_json(capsys):
    gpus = {g["name"]: g for g in run_json(capsys, "catalog", "gpus", "--json")["gpus"]}
    assert {"a100-80g", "h100-sxm", "h200", "h800", "h20", "b200", "mi300x"} <= set(gpus)
    h100 = gpus["h100-sxm"]
    assert h100["scale_up_bandwidth_bytes_per_s"] == 900e9  # bytes/s, bidirectional
    assert h100["scale_up_bandwidth_per_direction_bytes_per_s"] == 450e9
    assert h100["scale_up_domain_size"] == 8


@pytest.mark.parametrize("kind", ["nics", "switches"])
def test_catalog_parts_json(capsys, kind):
    parts = run_json(capsys, "catalog", kind, "--json")[kind]
    assert parts


def test_traffic_train_json_contract(capsys):
    data = run_json(
        capsys,
        "traffic",
        "train",
        "--model",
        "llama3-8b",
        "--tp",
        "2",
        "--pp",
        "2",
        "--dp",
        "4",
        "--seq-len",
        "4096",
        "--global-batch",
        "64",
        "--json",
    )
    it = data["per_iteration"]
    assert it["total_bytes"] == pytest.approx(sum(r["total_bytes"] for r in it["rows"]))
    for row in it["rows"]:
        assert {
            "dimension",
            "phase",
            "collective",
            "calls",
            "total_bytes",
            "bytes_per_gpu",
            "scope",
        } <= set(row)
    assert {"iterations", "total_bytes"} <= set(data["per_epoch"])
    assert data["per_epoch"]["total_bytes"] == pytest.approx(
        it["total_bytes"] * data["per_epoch"]["iterations"]
    )
    assert data["storage"]["checkpoint_bytes"] == pytest.approx(14 * 8_030_261_248)


def test_train_seed_example_file(capsys):
    """Seed 002's 3D formula with the catalog's P: per epoch = formula(P=70.55e9)."""
    from aifabric.traffic.seeds import seed_training_epoch

    data = run_json(
        capsys,
        "traffic",
        "train",
        "-f",
        str(ROOT / "examples/train/llama3-70b-seed.yaml"),
        "--json",
    )
    expected = seed_training_epoch(
        minibatches=178_027,
        params=70_553_706_496,
        layers=80,
        tokens=156e9,
        hidden=8192,
        tp=8,
        pp=8,
        dp=16,
    ).total
    assert data["per_epoch"]["iterations"] == 178_027
    assert data["per_epoch"]["total_bytes"] == pytest.approx(expected, rel=1e-12)


def test_flags_override_scenario(capsys):
    path = str(ROOT / "examples/train/llama3-70b-seed.yaml")
    data = run_json(capsys, "traffic", "train", "-f", path, "--accounting", "algorithmic", "--json")
    assert data["accounting"] == "algorithmic"


def test_traffic_infer_seed_reproduces_seed_000(capsys):
    data = run_json(
        capsys,
        "traffic",
        "infer",
        "-f",
        str(ROOT / "examples/infer/seed-llama3-120b.yaml"),
        "--accounting",
        "seed",
        "--json",
    )
    assert data["total_bytes"] == 24_075_304_960_000
    assert data["kv_bytes_per_request"] == 1_174_405_120
    assert data["required_bytes_per_s"]["kv_transfer"] == pytest.approx(1_174_405_120 / 0.010)
    assert {"kv_bytes_per_token", "allreduce_bytes_per_token"} <= set(data)


def test_collective_json_busbw(capsys):
    data = run_json(
        capsys,
        "collective",
        "all_reduce",
        "--ranks",
        "8",
        "--size",
        "1GB",
        "--bandwidth",
        "400Gb/s",
        "--latency",
        "0s",
        "--json",
    )
    assert data["busbw_bytes_per_s"] == pytest.approx(50e9)  # ring busbw equals the link rate
    assert data["time_s"] == pytest.approx(data["lower_bound_time_s"])


def test_net_commands(capsys):
    t = run_json(capsys, "net", "time", "--bytes", "6.4TB", "--capacity", "51.2T", "--json")
    assert t["time_s"] == pytest.approx(1.0)
    s = run_json(capsys, "net", "switches", "--bytes", "640TB", "--deadline", "10s", "--json")
    assert s["fractional_switches"] == pytest.approx(10.0)
    assert s["whole_switches"] == 10


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (
            ["traffic", "train", "--model", "llama3-70b", "--tp", "6"],
            r"tp\(=6\) must divide num_attention_heads\(=64\)",
        ),
        (["traffic", "train", "--model", "gpt-9"], r"unknown model 'gpt-9'"),
        (
            ["traffic", "train", "--model", "llama3-70b", "--dp", "4", "--gpus", "8"],
            r"gpus\(=8\) must equal",
        ),
        (["traffic", "train", "--model", "llama3-70b", "--accounting", "magic"], r"accounting"),
        (
            [
                "traffic",
                "train",
                "--model",
                "mixtral-8x7b",
                "--dp",
                "8",
                "--ep",
                "8",
                "--accounting",
                "seed",
            ],
            r"seed accounting",
        ),
        (["traffic", "infer", "--model", "llama3-70b", "--kv-deadline", "soon"], r"kv_deadline"),
        (["traffic", "train", "--tp", "2"], r"model is required"),
        (["traffic", "train", "--model", "llama3-70b", "--tp", "x"], r"--tp"),
        (["collective", "all_gather", "--algorithm", "tree"], r"not available for all_gather"),
        (["net", "time", "--bytes", "1GB", "--capacity", "fast"], r"--capacity"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, pattern):
    import re

    assert re.search(pattern, run_error(capsys, *args))


def test_scenario_errors_name_the_key(capsys, tmp_path):
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("model: llama3-8b\ntensor_parallel: 2\n")
    assert "tensor_parallel" in run_error(capsys, "traffic", "train", "-f", str(bad_key))
    bad_type = tmp_path / "type.yaml"
    bad_type.write_text("model: llama3-8b\ntp: [2]\n")
    assert "tp: expected an integer" in run_error(capsys, "traffic", "train", "-f", str(bad_type))
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("model: [llama3-8b\n")
    assert "not valid YAML" in run_error(capsys, "traffic", "train", "-f", str(not_yaml))


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in (ROOT / "examples").rglob("*.yaml")
        if p.parent.name not in ("serve", "step", "cluster", "sweep")
    ),
    ids=lambda p: p.name,
)
def test_every_example_runs(capsys, path):
    command = "train" if path.parent.name == "train" else "infer"
    data = run_json(capsys, "traffic", command, "-f", str(path), "--json")
    assert data["total_bytes" if command == "infer" else "per_iteration"]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "examples" / "step").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_step_example_runs(capsys, path):
    data = run_json(capsys, "simulate", "train", "-f", str(path), "--network", "analytic", "--json")
    assert data["iteration_time_s"] > 0 and "time_to_train_s" in data


def test_console_script_error_has_no_traceback():
    exe = Path(sys.executable).parent / "aifabric"
    proc = subprocess.run(
        [str(exe), "traffic", "train", "--model", "llama3-70b", "--tp", "6"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
