"""``aifabric plan`` and ``aifabric plan compare``: JSON contract, exports, one-line errors.

Truth:
- DGX SuperPOD H100, 4 SU (RA-11333-001 Table 4): 127 DGX (one removed for UFM) = 1,016
  GPUs, 32 leaf + 16 spine QM9700, 1,020 "Compute and UFM" node-leaf (1,016 + 4 UFM
  ports) + 1,024 spine-leaf links, all optical; non-blocking, so the bisection is the
  1,020 endpoint links x 400 Gb/s / 2 = 25.5 TB/s (bytes/s);
- GraphML (graphml.graphdrawing.org): one <node> per GPU, NIC port (the 4 UFM ports
  included) and switch, one <edge> per cable and per GPU-NIC host link, so 1,016 + 1,020
  + 48 nodes and 2,044 + 1,016 edges;
- the node matrix carries exactly the job's scale-out bytes (leaf + spine + core);
- seed 004: a training fabric (8 x 400G per server, non-blocking, optics) costs more than
  an inference fabric (2 x 100G per server, ToR copper, 4:1);
- input errors exit with status 2 and one line on stderr, nothing on stdout.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from aifabric.cli import main

from .cli_helpers import run_error, run_json

PRESET_4SU = ("plan", "--preset", "dgx-superpod-h100", "--scalable-units", "4")
JOB = ("--model", "llama3-8b", "--tp", "8", "--dp", "16", "--seq-len", "4096",
       "--global-batch", "64")  # fmt: skip
GML = "{http://graphml.graphdrawing.org/xmlns}"


def test_plan_json_contract(capsys):
    data = run_json(capsys, *PRESET_4SU, "--json")
    assert {"gpus", "nodes", "switches", "links", "transceivers", "cables", "cost", "power",
            "bisection_bandwidth_bytes_per_s"} <= set(data)  # fmt: skip
    assert data["gpus"] == 1016 and data["nodes"] == 127
    assert data["switches"] == {"leaf": 32, "spine": 16, "core": 0, "total": 48}
    assert data["links"] == {"endpoint_leaf": 1020, "leaf_spine": 1024, "spine_core": 0}
    assert sum(data["cables"].values()) == 2044
    # twin-port 800G OSFP modules, two 400G links each (hand count: tests/test_bom_modules.py)
    assert sum(data["transceivers"].values()) == 2048
    assert sum(data["transceiver_ports"].values()) == 2 * sum(data["cables"].values())
    assert data["warnings"] == []
    assert {"total_usd", "per_gpu_usd"} <= set(data["cost"])
    assert data["cost"]["per_gpu_usd"] == pytest.approx(data["cost"]["total_usd"] / 1016)
    assert data["power"]["total_w"] > 0
    assert data["bisection_bandwidth_bytes_per_s"] == pytest.approx(
        1020 * 400e9 / 8 / 2
    )  # 25.5 TB/s
    assert "traffic_by_tier" not in data


def test_plan_json_with_job(capsys):
    """tp8 x dp16 on the 4-SU SuperPOD: TP bytes on NVLink, DP bytes on the rail leaves;
    the rows add up to the iteration's bytes."""
    data = run_json(capsys, *PRESET_4SU, *JOB, "--json")
    rows = data["traffic_by_tier"]
    assert rows and all({"dimension", "tier", "bytes"} <= set(r) for r in rows)
    tiers = {(r["dimension"], r["tier"]) for r in rows}
    assert tiers == {("tp", "scale_up"), ("dp", "leaf")}
    assert sum(r["bytes"] for r in rows) == pytest.approx(data["job"]["iteration_bytes"])
    assert data["placement"] == "contiguous"
    assert data["min_communication_time_s"] > 0


def test_plan_random_placement_flag(capsys):
    """--placement random shuffles servers over the 4 SUs: DP bytes reach the spines."""
    contiguous = run_json(capsys, *PRESET_4SU, *JOB, "--json")
    shuffled = run_json(capsys, *PRESET_4SU, *JOB, "--placement", "random", "--json")
    assert shuffled["placement"] == "random"
    assert contiguous["bytes_by_tier"]["spine"] == 0 < shuffled["bytes_by_tier"]["spine"]
    assert sum(shuffled["bytes_by_tier"].values()) == pytest.approx(
        sum(contiguous["bytes_by_tier"].values())
    )


def test_plan_graphml(capsys, tmp_path):
    path = tmp_path / "fabric.graphml"
    data = run_json(capsys, *PRESET_4SU, "--graphml", str(path), "--json")
    assert data["graphml"] == str(path)
    root = ET.parse(path).getroot()
    graph = root.find(f"{GML}graph")
    assert graph is not None
    nodes = graph.findall(f"{GML}node")
    edges = graph.findall(f"{GML}edge")
    assert len(nodes) == 1016 + 1020 + 48
    assert len(edges) == 2044 + 1016
    tier_of = {}
    for n in nodes:
        values = {d.get("key"): d.text for d in n.findall(f"{GML}data")}
        tier_of[n.get("id")] = int(values["tier"])
    counts = {t: list(tier_of.values()).count(t) for t in (-1, 0, 1, 2)}
    assert counts == {-1: 1016, 0: 1020, 1: 32, 2: 16}
    for e in edges:
        src, dst = tier_of[e.get("source")], tier_of[e.get("target")]
        assert dst == src + 1  # every cable climbs one tier
        values = {d.get("key"): d.text for d in e.findall(f"{GML}data")}
        assert int(values["ltier"]) == dst
        if dst > 0:  # host links (GPU to NIC, tier 0) carry no modeled capacity
            assert float(values["cap"]) == pytest.approx(50e9)
    assert not (tmp_path / "fabric.graphml.tmp").exists()


def test_plan_matrix_csv(capsys, tmp_path):
    path = tmp_path / "matrix.csv"
    data = run_json(capsys, *PRESET_4SU, *JOB, "--matrix", str(path), "--json")
    assert data["matrix"] == str(path)
    with path.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["src_node", "dst_node", "bytes"]
        rows = list(reader)
    by = data["bytes_by_tier"]
    scale_out = by["leaf"] + by["spine"] + by["core"]
    assert sum(float(r["bytes"]) for r in rows) == pytest.approx(scale_out, rel=1e-9)
    pairs = {(int(r["src_node"]), int(r["dst_node"])) for r in rows}
    assert pairs == {(i, (i + 1) % 16) for i in range(16)}  # the DP ring of 16 servers


def test_plan_svg(capsys, tmp_path):
    path = tmp_path / "tiers.svg"
    run_json(capsys, *PRESET_4SU, *JOB, "--svg", str(path), "--json")
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    msg = run_error(capsys, *PRESET_4SU, "--svg", str(tmp_path / "none.svg"))
    assert "--model" in msg


def test_plan_table_output(capsys):
    assert main([*PRESET_4SU]) == 0
    assert capsys.readouterr().out.strip()


def test_plan_scenario_file_matches_flags(capsys, tmp_path):
    scenario = tmp_path / "plan.yaml"
    scenario.write_text("preset: dgx-superpod-h100\nscalable_units: 4\nmodel: llama3-8b\n"
                        "tp: 8\ndp: 16\nseq_len: 4096\nglobal_batch: 64\n",
                        encoding="utf-8")  # fmt: skip
    from_file = run_json(capsys, "plan", "-f", str(scenario), "--json")
    from_flags = run_json(capsys, *PRESET_4SU, *JOB, "--json")
    assert from_file["bytes_by_tier"] == from_flags["bytes_by_tier"]
    assert from_file["cost"] == from_flags["cost"]
    scenario.write_text("preset: dgx-superpod-h100\nbogus_key: 1\n", encoding="utf-8")
    assert "bogus_key" in run_error(capsys, "plan", "-f", str(scenario), "--json")


def test_plan_compare_json(capsys):
    data = run_json(capsys, "plan", "compare", "--json")
    assert {"training", "inference", "strategies"} <= set(data)
    assert data["gpus"] == 1024
    train, infer = data["training"]["cost"]["total_usd"], data["inference"]["cost"]["total_usd"]
    assert train > infer > 0
    names = [s["strategy"] for s in data["strategies"]]
    assert names == ["separate_clusters", "time_division", "separate_networks"]
    by = {s["strategy"]: s for s in data["strategies"]}
    assert by["separate_clusters"]["gpus"] == 2 * by["time_division"]["gpus"] == 2048
    assert by["time_division"]["network_cost_usd"] == pytest.approx(train)
    assert by["separate_networks"]["network_cost_usd"] == pytest.approx(train + infer)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("plan", "--gpus", "100000", "--switch-radix", "16", "--json"), "radix-16"),
        (("plan", "--gpus", "1001", "--json"), "multiple of gpus_per_node"),
        (("plan", "--gpus", "1024", "--oversubscription", "0.5", "--json"), "oversubscription"),
        (("plan", "--preset", "nope", "--json"), "unknown preset 'nope'"),
        (
            ("plan", "--gpus", "64", "--model", "llama3-8b", "--dp", "128", "--json"),
            "needs 128 GPUs but the fabric has 64",
        ),
        (("plan", "--gpus", "1024", "--switch-radix", "15"), "even number"),
        (("plan", "--gpus", "1024", "--design", "torus"), "design"),
        (("plan", "--preset", "dgx-superpod-h100", "--scalable-units", "65"), "1..64"),
        (
            ("plan", "--gpus", "64", "--prices", "/nonexistent/prices.yaml"),
            "cannot read price catalog",
        ),
        (("plan", *PRESET_4SU[1:], *JOB, "--placement", "diagonal"), "placement"),
        (("plan", "--gpus", "64", "--tp", "8"), "model"),
    ],
)
def test_plan_errors_are_one_line(capsys, args, needle):
    assert needle in run_error(capsys, *args)


@pytest.mark.parametrize(
    "args",
    [
        ("plan", "--gpus", "1024", "--oversubscription", "nan", "--json"),
        ("plan", "--gpus", "1024", "--oversubscription", "inf", "--json"),
        ("plan", "--gpus", "64", "--su-nodes", "-1", "--json"),
        ("plan", "--preset", "dgx-superpod-h100", "--scalable-units", "0", "--json"),
    ],
)
def test_plan_bad_numbers_are_one_line_errors(capsys, args):
    run_error(capsys, *args)


def test_plan_error_writes_no_graphml(capsys, tmp_path):
    path = tmp_path / "x.graphml"
    run_error(capsys, "plan", "--gpus", "1001", "--graphml", str(path))
    assert not Path(path).exists()


def test_preset_with_conflicting_fabric_flags_is_an_error(capsys):
    """A preset fixes the fabric: --gpus beside it would be silently ignored otherwise."""
    assert "drop --gpus" in run_error(
        capsys, "plan", "--preset", "dgx-superpod-h100", "--gpus", "2048"
    )


def test_unknown_placement_without_a_job_is_an_error(capsys):
    assert "placement" in run_error(capsys, "plan", "--gpus", "64", "--placement", "bogus")


def test_small_fabric_is_one_switch(capsys):
    """64 NICs fit one radix-64 switch: no spine is needed (max_endpoints(k, 1) = k)."""
    data = run_json(capsys, "plan", "--gpus", "64", "--json")
    assert data["switches"] == {"leaf": 1, "spine": 0, "core": 0, "total": 1}
    assert data["tiers"] == 1


def test_frontend_network_is_planned(capsys):
    """128 servers, one 200G front-end NIC each, ToR spine-leaf at ~4:3 (SuperPOD storage)."""
    data = run_json(capsys, "plan", "--gpus", "1024", "--frontend-nic", "200G", "--json")
    front = data["frontend"]
    assert front["links"]["endpoint_leaf"] == 128
    assert front["switches"]["total"] >= 3
    assert front["cost"]["total_usd"] > 0


def test_topology_json_export(capsys, tmp_path):
    path = tmp_path / "topo.json"
    data = run_json(capsys, "plan", "--gpus", "256", "--export", str(path), "--json")
    topo = json.loads(path.read_text())
    assert len(topo["link_arrays"]["src"]) == sum(data["links"].values())
    assert topo["switches"] == data["switches"]
