"""GraphML and JSON exports: a reader rebuilds the fabric from the file alone.

Truth:
- GraphML 1.0 (graphml.graphdrawing.org/primer/graphml-primer.html): <key> elements
  declare each attribute's name and type; <node>/<edge> carry <data key=...>. The files are
  read here with the standard library's xml.etree only, never with aifabric code;
- rail optimization (NVIDIA DGX SuperPOD H100 RA-11333-001, "compute fabric"): in a
  scalable unit (SU) leaf r takes NIC r of every server, so a rail leaf's ports are all on
  one rail and one per server; spines join every rail. On QM9700 leaves (64 x 400G,
  NVIDIA QM9700 datasheet) a non-blocking leaf has 32 down ports, so 1,024 GPUs = 128
  8-GPU servers make 4 SUs of 32 servers: 4 leaves per rail, 8 leaves per SU;
- a hand-derived small fabric: 2 servers x 8 GPUs, one 400G NIC per GPU, 2 tiers, an SU of
  2 servers: 16 GPUs, 16 NIC ports, 8 rail leaves (rail r: GPUs r and 8 + r, NIC r of each
  server, leaf r); with 2 planes every NIC has a port in each plane, so 32 ports and 8
  leaves per plane, and each GPU reaches its NIC's port in both planes;
- top of rack (su_nodes 4): consecutive NIC ports fill a leaf, so a leaf takes all 8 rails
  of 4 consecutive servers and has no single rail;
- one NIC per server: every port is on rail 0, so every switch above them is too.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aifabric.fabric.plan import plan_fabric

from .cli_helpers import run_json

GML = "{http://graphml.graphdrawing.org/xmlns}"
CAST = {"int": int, "long": int, "double": float, "float": float, "string": str}
SMALL = {"gpus": 16, "tiers": 2, "su_nodes": 2}
SMALL_FLAGS = ("--gpus", "16", "--tiers", "2", "--su-nodes", "2")


def read_graphml(path: Path) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, dict]]]:
    """Nodes (id -> attributes) and edges (source, target, attributes), typed by <key>."""
    root = ET.parse(path).getroot()
    keys = {k.get("id"): (k.get("attr.name"), CAST[k.get("attr.type", "string")])
            for k in root.findall(f"{GML}key")}  # fmt: skip

    def attrs(element: ET.Element) -> dict[str, Any]:
        out = {}
        for d in element.findall(f"{GML}data"):
            name, cast = keys[d.get("key")]
            out[name] = cast(d.text)
        return out

    graph = root.find(f"{GML}graph")
    assert graph is not None
    nodes = {n.get("id"): attrs(n) for n in graph.findall(f"{GML}node")}
    edges = [(e.get("source"), e.get("target"), attrs(e)) for e in graph.findall(f"{GML}edge")]
    return nodes, edges


def write_and_read(tmp_path: Path, options: dict[str, Any]) -> tuple[Any, Any, Any]:
    _, topo, _ = plan_fabric(options)
    path = tmp_path / "fabric.graphml"
    topo.write_graphml(path)
    nodes, edges = read_graphml(path)
    return topo, nodes, edges


def count(nodes: dict[str, dict[str, Any]], *columns: str) -> Counter:
    """Nodes per value of one column, or per tuple of values of several."""
    if len(columns) == 1:
        return Counter(n[columns[0]] for n in nodes.values())
    return Counter(tuple(n[c] for c in columns) for n in nodes.values())


def neighbors(edges: list, nodes: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for s, d, _ in edges:
        out[s].append(d)
        out[d].append(s)
    return out


def test_small_rail_fabric_rebuilt_from_graphml(tmp_path):
    """2 servers x 8 GPUs, 2-tier rail fabric: counts per role, rail, server and plane."""
    topo, nodes, edges = write_and_read(tmp_path, SMALL)
    spines = topo.switches_by_tier()["spine"]
    assert spines >= 1
    assert count(nodes, "role") == {"gpu": 16, "nic": 16, "leaf": 8, "spine": spines}
    for r in range(8):
        assert count(nodes, "role", "rail")[("gpu", r)] == 2
        assert count(nodes, "role", "rail")[("nic", r)] == 2
        assert count(nodes, "role", "rail")[("leaf", r)] == 1
    assert count(nodes, "role", "rail")[("spine", -1)] == spines  # spines join all rails
    by_server = count(nodes, "role", "server")
    assert by_server == {("gpu", 0): 8, ("gpu", 1): 8, ("nic", 0): 8, ("nic", 1): 8,
                         ("leaf", -1): 8, ("spine", -1): spines}  # fmt: skip
    assert count(nodes, "plane") == {-1: 16, 0: 16 + 8 + spines}
    # The picture: each leaf takes its rail's NIC of each server; each GPU its own NIC.
    near = neighbors(edges, nodes)
    for node_id, n in nodes.items():
        below = [nodes[m] for m in near[node_id] if nodes[m]["tier"] == n["tier"] - 1]
        if n["role"] == "leaf":
            assert sorted((m["server"], m["rail"]) for m in below) == [(0, n["rail"]),
                                                                       (1, n["rail"])]  # fmt: skip
        if n["role"] == "nic":
            (gpu,) = below
            assert (gpu["role"], gpu["server"], gpu["rail"]) == ("gpu", n["server"], n["rail"])
    cables = Counter(a["tier"] for _, _, a in edges if a["tier"] > 0)
    assert cables == {1: 16, 2: topo.links_by_tier()["leaf_spine"]}
    assert sum(1 for _, _, a in edges if a["tier"] == 0) == 16
    assert all("capacity_bytes_per_s" not in a for _, _, a in edges if a["tier"] == 0)


def test_two_planes(tmp_path):
    """The same servers on 2 planes: a port per NIC per plane, 8 rail leaves per plane,
    every GPU joined to its NIC's port in both planes."""
    topo, nodes, edges = write_and_read(tmp_path, {**SMALL, "planes": 2})
    by_plane = count(nodes, "role", "plane")
    assert by_plane[("nic", 0)] == by_plane[("nic", 1)] == 16
    assert by_plane[("leaf", 0)] == by_plane[("leaf", 1)] == 8
    assert by_plane[("spine", 0)] == by_plane[("spine", 1)] == topo.switches_by_tier()["spine"] / 2
    assert by_plane[("gpu", -1)] == 16
    for p in (0, 1):
        rails = Counter(
            n["rail"] for n in nodes.values() if n["role"] == "leaf" and n["plane"] == p
        )
        assert rails == dict.fromkeys(range(8), 1)
    host = [(s, d) for s, d, a in edges if a["tier"] == 0]
    assert len(host) == 32
    for gpu_id, ports in Counter(s for s, _ in host).items():
        assert ports == 2
        mine = [nodes[d] for s, d in host if s == gpu_id]
        assert sorted(m["plane"] for m in mine) == [0, 1]
        assert {(m["server"], m["rail"]) for m in mine} == {
            (nodes[gpu_id]["server"], nodes[gpu_id]["rail"])
        }


def test_1024_gpus_matches_topology_counts(tmp_path):
    """Default rail-optimized 1,024 GPUs: the file's counts equal the topology's own, and
    the RA's layout shows: 4 SUs x 8 rail leaves, 4 leaves per rail, one SU per group."""
    topo, nodes, _ = write_and_read(tmp_path, {"gpus": 1024})
    roles = count(nodes, "role")
    assert roles["gpu"] == topo.num_gpus == 1024
    assert roles["nic"] == topo.num_endpoints
    for tier, n in topo.switches_by_tier().items():
        assert roles.get(tier, 0) == n
    leaves = {k: v for k, v in count(nodes, "role", "rail").items() if k[0] == "leaf"}
    assert leaves == {("leaf", r): 4 for r in range(8)}
    assert {k: v for k, v in count(nodes, "role", "group").items() if k[0] == "leaf"} == {
        ("leaf", su): 8 for su in range(4)
    }
    gpus = {k: v for k, v in count(nodes, "role", "server").items() if k[0] == "gpu"}
    assert gpus == {("gpu", s): 8 for s in range(128)}


def test_top_of_rack_leaves_have_no_rail(tmp_path):
    """ToR, 4 servers per leaf: each leaf takes the 32 ports of 4 consecutive servers."""
    _, nodes, edges = write_and_read(tmp_path, {"gpus": 128, "design": "clos", "su_nodes": 4})
    near = neighbors(edges, nodes)
    leaves = [i for i, n in nodes.items() if n["role"] == "leaf"]
    assert len(leaves) == 4 and all(nodes[i]["rail"] == -1 for i in leaves)
    for i in leaves:
        below = [nodes[m] for m in near[i] if nodes[m]["role"] == "nic"]
        servers = sorted({m["server"] for m in below})
        assert len(below) == 32 and len(servers) == 4 and servers[-1] - servers[0] == 3
        assert {m["rail"] for m in below} == set(range(8))


def test_one_nic_per_server_puts_every_switch_on_rail_0(tmp_path):
    _, nodes, _ = write_and_read(tmp_path, {"gpus": 64, "nics_per_node": 1, "tiers": 2,
                                            "su_nodes": 2})  # fmt: skip
    switches = [n for n in nodes.values() if n["tier"] > 0]
    assert switches and all(n["rail"] == 0 for n in switches)
    assert count(nodes, "role", "rail")[("gpu", 0)] == 64


def test_cli_json_export_matches_graphml(capsys, tmp_path):
    """`plan --export` and `--graphml` describe the same graph: node_arrays row i is
    GraphML node n{i}; link_arrays are the cables, host_link_arrays the GPU-NIC links."""
    gml, js = tmp_path / "f.graphml", tmp_path / "f.json"
    data = run_json(capsys, "plan", *SMALL_FLAGS, "--graphml", str(gml), "--export", str(js),
                    "--json")  # fmt: skip
    nodes, edges = read_graphml(gml)
    exported = json.loads(js.read_text("utf-8"))
    arrays = exported["node_arrays"]
    assert set(arrays) == {"role", "tier", "server", "rail", "plane", "group"}
    assert len(arrays["role"]) == len(nodes) == 16 + 16 + data["switches"]["total"]
    for i, attrs in enumerate(nodes[f"n{i}"] for i in range(len(nodes))):
        assert {c: arrays[c][i] for c in arrays} == attrs
    cables = [(s, d) for s, d, a in edges if a["tier"] > 0]
    links = exported["link_arrays"]
    assert cables == [(f"n{s}", f"n{d}") for s, d in zip(links["src"], links["dst"], strict=True)]
    assert len(links["src"]) == sum(data["links"].values())
    host = exported["host_link_arrays"]
    assert [(s, d) for s, d, a in edges if a["tier"] == 0] == [
        (f"n{s}", f"n{d}") for s, d in zip(host["src"], host["dst"], strict=True)
    ]
    assert [arrays["role"][s] for s in host["src"]] == ["gpu"] * 16
    assert [arrays["role"][d] for d in host["dst"]] == ["nic"] * 16


@pytest.mark.parametrize("options", [{"preset": "alibaba-hpn", "pods": 1},
                                     {"preset": "meta-llama3-24k", "pods": 1}])  # fmt: skip
def test_presets_export_consistent_counts(options):
    """Every node has a role; per role and plane the table's counts equal the topology's
    arrays (switch_tier and switch_plane, endpoint_plane)."""
    _, topo, _ = plan_fabric(options)
    table = topo.node_table()
    n = topo.num_endpoints + topo.num_switches + topo.num_gpus
    assert all(len(v) == n for v in table.values())
    got = Counter(zip(table["role"].tolist(), table["plane"].tolist(), strict=True))
    names = {1: "leaf", 2: "spine", 3: "core"}
    expected = Counter(zip([names[t] for t in topo.switch_tier.tolist()],
                           topo.switch_plane.tolist(), strict=True))  # fmt: skip
    expected.update(("nic", p) for p in topo.endpoint_plane.tolist())
    expected[("gpu", -1)] = topo.num_gpus
    assert got == expected
