"""The seeds' worked examples, recomputed, against the published digest.

Truth: /work/shared/seeds/DIGEST.md -- seed 000 (KV 1.174 GB per user, 11.74 ms over one
800 Gb/s port, 21.896 TiB total), seed 002 (N = 178,027; DP 1395.7 PB; FSDP 174.5 PB;
TP 27915 / 22901 PB vs the seed's 26622 / 21840; PP 17.9 PB; 3D 84.75 EB; 153.3 days
through one 51.2 Tb/s switch; 153.3 switches for 100 epochs in 100 days), seed 004
($14.8M training network, $1.9M inference).
"""

from __future__ import annotations

import json

import pytest

from aifabric.traffic.seed_examples import SEED_FILES, SeedExample, all_examples

DAY = 86400.0
PB, EB = 1e15, 1e18

REQUIRED = [
    "000-activation-traffic",
    "000-kv-bytes-per-user",
    "000-total-traffic",
    "000-kv-transfer-time-800g",
    "002-minibatches-per-epoch",
    "002-dp-epoch-backward",
    "002-fsdp-epoch-backward",
    "002-fsdp-epoch-forward",
    "002-tp-epoch-backward",
    "002-tp-epoch-forward",
    "002-pp-epoch-backward",
    "002-pp-epoch-forward",
    "002-3d-epoch-total",
    "002-3d-epoch-switch-days",
    "002-3d-switches-100-epochs-100-days",
    "004-training-network-cost",
    "004-inference-network-cost",
]


@pytest.fixture(scope="module")
def examples() -> dict[str, SeedExample]:
    return {e.id: e for e in all_examples()}


def test_required_examples_present(examples: dict[str, SeedExample]) -> None:
    missing = [i for i in REQUIRED if i not in examples]
    assert not missing


def test_ids_unique_and_in_seed_order() -> None:
    ids = [e.id for e in all_examples()]
    assert len(ids) == len(set(ids))
    assert [i[:3] for i in ids] == sorted(i[:3] for i in ids)


def test_every_example_names_its_seed_file(examples: dict[str, SeedExample]) -> None:
    for e in examples.values():
        assert e.seed_file == SEED_FILES[e.id[:3]]
        assert e.quantity and e.display


# ----- values against the digest --------------------------------------------------------------


@pytest.mark.parametrize(
    ("id_", "expected", "rel"),
    [
        # seed 000
        ("000-activation-traffic", 100 * 1_218_560 * 196_608, 0.0),  # 23.958 TB
        ("000-kv-bytes-per-user", 1_174_405_120, 0.0),  # 1.174 GB
        ("000-total-traffic", 24_075_304_960_000, 0.0),  # 21.896 TiB
        ("000-kv-transfer-time-800g", 11.74e-3, 5e-4),  # 1.1744 GB / 100 GB/s
        # seed 002
        ("002-minibatches-per-epoch", 178_027, 0.0),  # floor(364.6e6 / 2048)
        ("002-dp-epoch-backward", 1395.7 * PB, 1e-4),
        ("002-fsdp-epoch-backward", 174.5 * PB, 1e-3),
        ("002-fsdp-epoch-forward", 174.5 * PB, 1e-3),
        ("002-tp-epoch-backward", 27915 * PB, 1e-4),
        ("002-tp-epoch-forward", 22901 * PB, 1e-4),
        ("002-pp-epoch-backward", 17.9 * PB, 1e-3),
        ("002-pp-epoch-forward", 17.9 * PB, 1e-3),
        ("002-3d-epoch-total", 84.75 * EB, 1e-3),
        ("002-3d-epoch-switch-days", 153.3 * DAY, 1e-3),  # 84.75 EB / 6.4 TB/s
        ("002-3d-switches-100-epochs-100-days", 153.3, 1e-3),
        # seed 004
        ("004-training-network-cost", 14.8e6, 1e-12),  # 8.0 + 4.8 + 2.0 M$
        ("004-inference-network-cost", 1.9e6, 1e-12),  # 0.5 + 1.2 + 0.2 M$
    ],
)
def test_values_match_digest(
    examples: dict[str, SeedExample], id_: str, expected: float, rel: float
) -> None:
    assert examples[id_].value == pytest.approx(expected, rel=rel, abs=0)


def test_switch_days_follow_from_the_epoch_total(examples: dict[str, SeedExample]) -> None:
    """A 51.2 Tb/s switch moves 6.4e12 B/s; read as bytes/s it would be 8x faster (the
    seed's ~20 days)."""
    total = examples["002-3d-epoch-total"].value
    days = examples["002-3d-epoch-switch-days"].value / DAY
    assert days == pytest.approx(total / 6.4e12 / DAY, rel=1e-12)
    assert total / 51.2e12 / DAY == pytest.approx(19.2, abs=0.05)
    # 100 epochs in 100 days needs exactly as many switches as one epoch takes days.
    assert examples["002-3d-switches-100-epochs-100-days"].value == pytest.approx(days, rel=1e-12)


def test_tp_slip_is_binary_decimal(examples: dict[str, SeedExample]) -> None:
    """The seed's TP figures are the formula's divided by 2^20 / 10^6 = 1.048576."""
    for id_, printed in (("002-tp-epoch-backward", 26622), ("002-tp-epoch-forward", 21840)):
        e = examples[id_]
        assert e.seed_value == printed
        assert e.value / 1.048576 == pytest.approx(printed * PB, rel=2e-4)


def test_total_traffic_is_tib(examples: dict[str, SeedExample]) -> None:
    e = examples["000-total-traffic"]
    assert e.seed_value == 21.896
    assert e.value / 2**40 == pytest.approx(21.896, abs=5e-4)
    assert "TiB" in e.note


def test_3d_display(examples: dict[str, SeedExample]) -> None:
    display = examples["002-3d-epoch-total"].display
    assert "61.83 EB" in display and "22.92 EB" in display and "84.75 EB" in display
    assert "153.3 days" in examples["002-3d-epoch-switch-days"].display


# ----- agreement flags -------------------------------------------------------------------


@pytest.mark.parametrize(
    "id_",
    [
        "002-tp-epoch-backward",
        "002-tp-epoch-forward",
        "000-total-traffic",
        "002-3d-epoch-switch-days",
        "002-3d-switches-100-epochs-100-days",
    ],
)
def test_disagreements_are_flagged_with_a_note(examples: dict[str, SeedExample], id_: str) -> None:
    e = examples[id_]
    assert e.agrees is False
    assert e.note.strip()


@pytest.mark.parametrize(
    "id_",
    [
        "000-kv-bytes-per-user",
        "000-kv-transfer-time-800g",
        "002-minibatches-per-epoch",
        "002-dp-epoch-backward",
        "002-fsdp-epoch-backward",
        "002-fsdp-epoch-forward",
        "002-pp-epoch-backward",
        "002-pp-epoch-forward",
        "002-3d-epoch-total",
        "004-training-network-cost",
        "004-inference-network-cost",
    ],
)
def test_agreements(examples: dict[str, SeedExample], id_: str) -> None:
    assert examples[id_].agrees is True


def test_agreement_flag_is_consistent_with_values(examples: dict[str, SeedExample]) -> None:
    """An example without a seed figure has agrees None; one with a figure has a bool."""
    for e in examples.values():
        if e.seed_value is None:
            assert e.agrees is None
        else:
            assert isinstance(e.agrees, bool)
    assert examples["000-activation-traffic"].agrees is None


def test_switch_notes_explain_bits(examples: dict[str, SeedExample]) -> None:
    for id_ in ("002-3d-epoch-switch-days", "002-3d-switches-100-epochs-100-days"):
        note = examples[id_].note
        assert "bytes/s" in note and "8x" in note


def test_to_dict_is_json(examples: dict[str, SeedExample]) -> None:
    for e in examples.values():
        d = json.loads(json.dumps(e.to_dict()))
        assert d["id"] == e.id
        assert d["value"] == e.value


# ----- network helpers behind the seed arithmetic ----------------------------------------------


def test_network_helpers() -> None:
    from aifabric.errors import ConfigError
    from aifabric.traffic.network import devices_for_deadline, transfer_time, whole_devices

    # 84.75 EB through 6.4 TB/s: 153.3 days
    assert transfer_time(84.747656896e18, 6.4e12) / DAY == pytest.approx(153.26, abs=0.01)
    assert transfer_time(1e9, 1e9, utilization=0.5) == 2.0
    # 100 GB in 1 ms over 800 Gb/s ports: 1000 ports (seed 002, bits read correctly)
    assert devices_for_deadline(100e9, 1e-3, 100e9) == pytest.approx(1000)
    assert whole_devices(153.26) == 154
    assert whole_devices(20 + 1e-12) == 20  # float noise is not a 21st switch
    assert whole_devices(20.01) == 21
    with pytest.raises(ConfigError, match=r"capacity\(=0\) must be > 0"):
        transfer_time(1, 0)
    with pytest.raises(ConfigError, match=r"utilization\(=1.5\) must be in \(0, 1\]"):
        transfer_time(1, 1, utilization=1.5)
    with pytest.raises(ConfigError, match=r"deadline\(=0\) must be > 0"):
        devices_for_deadline(1, 0, 1)
