"""``aifabric collective OPERATION``: bytes, steps and alpha-beta time of one collective call."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aifabric.cli.edges import JsonFlag, emit_json


def collective_cmd(
    operation: Annotated[
        str,
        typer.Argument(
            help="all_reduce, reduce_scatter, all_gather, all_to_all, broadcast, send_recv."
        ),
    ],
    ranks: Annotated[int, typer.Option(help="Ranks in the group.")] = 8,
    size: Annotated[
        str, typer.Option(help="Buffer size (NCCL-tests convention), e.g. 1GiB.")
    ] = "1GiB",
    algorithm: Annotated[
        str | None,
        typer.Option(
            help="ring, tree, halving_doubling, direct, hierarchical, nvls, sharp, or auto "
            "(what NCCL's tuning model picks for ranks / ranks-per-domain nodes). Default: "
            "ring, or direct for an operation without a ring (all_to_all, send_recv)."
        ),
    ] = None,
    bandwidth: Annotated[
        str, typer.Option(help="Per-rank link rate, e.g. 400G or 450GB/s.")
    ] = "400G",
    latency: Annotated[str, typer.Option(help="Per-step latency, e.g. 5us.")] = "5us",
    ranks_per_domain: Annotated[
        int, typer.Option(help="Hierarchical: ranks per scale-up domain.")
    ] = 1,
    scaleup_bandwidth: Annotated[
        str, typer.Option(help="Hierarchical: scale-up rate.")
    ] = "450GB/s",
    scaleup_latency: Annotated[str, typer.Option(help="Hierarchical: scale-up latency.")] = "1us",
    in_network_reduction: Annotated[
        bool,
        typer.Option(
            "--in-network-reduction/--no-in-network-reduction",
            help="Let auto use NVLS / SHARP all-reduce.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Bytes, steps, alpha-beta time and NCCL algbw/busbw of one collective call."""
    from aifabric.traffic.collectives import Link, collective, lower_bound_time
    from aifabric.units import parse_bandwidth, parse_bytes, parse_duration

    nbytes = parse_bytes(size, what="--size")
    out_link = Link(
        parse_bandwidth(bandwidth, what="--bandwidth"), parse_duration(latency, what="--latency")
    )
    up_link = Link(parse_bandwidth(scaleup_bandwidth, what="--scaleup-bandwidth"),
                   parse_duration(scaleup_latency, what="--scaleup-latency"))  # fmt: skip
    algorithm, rule = _pick_algorithm(
        operation, algorithm, ranks=ranks, ranks_per_domain=ranks_per_domain, size=nbytes,
        links=(up_link, out_link), in_network_reduction=in_network_reduction,
    )  # fmt: skip
    cost = collective(
        operation, algorithm, num_ranks=ranks, size=nbytes, ranks_per_domain=ranks_per_domain
    )
    split = any(p.scope == "scale_up" for p in cost.phases)
    link, scaleout = (up_link, out_link) if split else (out_link, None)
    t = cost.time(link, scaleout)
    result: dict[str, Any] = {
        "operation": operation, "algorithm": algorithm, "algorithm_rule": rule,
        "num_ranks": ranks, "size_bytes": nbytes,
        "steps": cost.steps, "bytes_per_rank": cost.bytes_per_rank, "total_bytes": cost.total_bytes,
        "scale_up_bytes_per_rank": cost.bytes_per_rank_in("scale_up"),
        "scale_out_bytes_per_rank": cost.bytes_per_rank_in("scale_out"),
        "time_s": t, "algbw_bytes_per_s": cost.algbw(link, scaleout), "busbw_bytes_per_s": cost.busbw(link, scaleout),
        "lower_bound_time_s": lower_bound_time(operation, ranks, nbytes, out_link.bandwidth),
    }  # fmt: skip
    if as_json:
        emit_json(result)
        return
    from aifabric.report.tables import key_values
    from aifabric.units import format_bandwidth, format_bytes, format_duration

    key_values(f"{operation} / {algorithm} over {ranks} ranks, {format_bytes(nbytes, binary=True)}", [
        ("bytes sent per rank", format_bytes(result["bytes_per_rank"])),
        ("steps", str(result["steps"])),
        ("time (alpha-beta)", format_duration(t)),
        ("algbw / busbw", f"{format_bandwidth(result['algbw_bytes_per_s'], bits=False)} / "
                          f"{format_bandwidth(result['busbw_bytes_per_s'], bits=False)}"),
        ("bandwidth lower bound", format_duration(result["lower_bound_time_s"])),
    ])  # fmt: skip


def _pick_algorithm(
    operation: str,
    algorithm: str | None,
    *,
    ranks: int,
    ranks_per_domain: int,
    size: float,
    links: tuple[Any, Any],
    in_network_reduction: bool,
) -> tuple[str, str]:
    """The algorithm to cost and the rule that named it: ``fixed``, ``default`` or NCCL's.

    Without ``--algorithm`` the default is ring where the operation has one (NCCL's
    bandwidth-optimal choice for large buffers) and direct otherwise: all_to_all and
    send_recv are point-to-point sends in NCCL, with no ring. So an error never names an
    algorithm the user did not ask for.
    """
    if algorithm is None:
        from aifabric.traffic.collectives import algorithms_for

        known = algorithms_for(operation)
        return ("direct" if known and "ring" not in known else "ring"), "default"
    if algorithm != "auto":
        return algorithm, "fixed"
    from aifabric.traffic import nccl_tuning

    up_link, out_link = links
    system = nccl_tuning.NcclSystem(
        scale_up_bandwidth=up_link.bandwidth, scale_out_bandwidth=out_link.bandwidth
    )
    nodes = -(-ranks // max(ranks_per_domain, 1))
    chosen = nccl_tuning.choose(
        operation, num_ranks=ranks, num_nodes=nodes, size=size,
        in_network_reduction=in_network_reduction, system=system,
    )  # fmt: skip
    return chosen, nccl_tuning.RULE
