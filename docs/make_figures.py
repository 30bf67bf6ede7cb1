"""Regenerate docs/tier-traffic.svg: where Llama-3-70B TP8 x PP8 x DP16's bytes travel.

The same job on the same 1,024 H100s: a rail-optimised SuperPOD (4 SUs), a ToR Clos of the
same switches, and the SuperPOD with servers placed at random. Run: python docs/make_figures.py
"""

from __future__ import annotations

from pathlib import Path

from aifabric.fabric.plan import plan_fabric
from aifabric.report.svg import tier_traffic_svg
from aifabric.spec.scenario import TRAIN_KEYS, merge_options, training_job


def main() -> None:
    job = training_job(merge_options(TRAIN_KEYS, {}, {
        "model": "llama3-70b", "tp": 8, "pp": 8, "dp": 16, "seq_len": 8192,
        "global_batch": 2048, "zero": 1, "dataset_tokens": "156B",
    }))  # fmt: skip
    series = []
    for label, options in (
        ("rail-optimised SuperPOD", {"preset": "dgx-superpod-h100", "scalable_units": 4}),
        ("ToR Clos", {"gpus": 1024, "design": "clos"}),
        ("SuperPOD, random placement",
         {"preset": "dgx-superpod-h100", "scalable_units": 4, "placement": "random"}),
    ):  # fmt: skip
        result, _, _ = plan_fabric(options, job)
        series.append((label, result["bytes_by_tier"]))
    svg = tier_traffic_svg(series, title="Llama-3-70B TP8xPP8xDP16: bytes per iteration by tier")
    Path(__file__).with_name("tier-traffic.svg").write_text(svg, encoding="utf-8")


if __name__ == "__main__":
    main()
