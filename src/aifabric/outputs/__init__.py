"""What commands put out: files written atomically (:mod:`.files`, re-exported here) and the
pydantic models of every ``--json`` result (:mod:`.schema`; imported lazily, since only
``aifabric schema`` and the tests need them).

The JSON vocabulary (issue 9, item 5), which the models encode and tests enforce:

- keys and enumerated values are snake_case (``scale_up``, ``endpoint_leaf``,
  ``rail_optimized``); catalog names keep their catalog spelling (``h100-sxm``);
- every quantity that is not a count ends in its base unit, after Prometheus' base-unit
  naming: ``_bytes``, ``_s``, ``_bytes_per_s``, ``_flop``, ``_flop_per_s``, ``_usd``, ``_w``;
  line rates vendors quote in bits/s also come as ``_bits_per_s``; a count per second ends
  in ``_per_s``; a dimensionless ratio ends in ``_ratio`` or is one of the named ratios
  (``utilization``, ``oversubscription``, ``slo_attainment``, ``interarrival_cv``);
  a map keyed by tier, percentile or dimension carries the unit in its own name
  (``bytes_by_tier``, ``ttft_s.p99``, ``cost_usd.likely``);
- counts are JSON integers; a count that is a mean (``calls`` averaged over pipeline stages,
  ``mean_input_tokens``) may be fractional;
- American spelling (``utilization``, ``optimized``), as in vLLM, NCCL and NVIDIA's docs.
"""

from aifabric.outputs.files import (
    check_output_path,
    check_output_paths,
    write_all_atomic,
    write_atomic,
)

__all__ = ["check_output_path", "check_output_paths", "write_all_atomic", "write_atomic"]
