"""Every input path fails cleanly: one line, exit status 2, no traceback (issue 9, item 1).

Each case is a file a user could plausibly hand the CLI (a binary, a Latin-1 export, an
alias bomb, a catalog with a negative price, a trace with 1e30 tokens) and each test asserts
the refusal names the input and the problem, so the user knows what to fix.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aifabric.errors import ConfigError
from aifabric.serving.trace import read_trace, trace_stats
from aifabric.yaml_input import MAX_YAML_DEPTH, MAX_YAML_NODES, load_text
from tests.cli_helpers import run_error

PARTS = Path(__file__).resolve().parents[1] / "src/aifabric/catalog/data/parts.yaml"


def _bomb(levels: int = 9) -> str:
    """Billion laughs: level k is nine aliases of level k-1, so level 9 expands to 9**9."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [" + ",".join([f"*a{k - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _write(tmp_path: Path, name: str, content: str | bytes) -> str:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return str(p)


SCENARIO_COMMANDS = [
    ("traffic", "train", "-f"),
    ("traffic", "infer", "-f"),
    ("plan", "-f"),
    ("simulate", "serve", "-f"),
]


# --- YAML: size, depth, aliases, before objects are built ------------------------------


@pytest.mark.parametrize("command", SCENARIO_COMMANDS)
def test_alias_bomb_refused_fast_on_every_scenario_command(capsys, tmp_path, command):
    """9**9 = 387M strings if expanded; the composed graph has ~90 nodes, so the refusal
    must come from counting, in well under a second, not from building the list."""
    path = _write(tmp_path, "bomb.yaml", _bomb())
    start = time.perf_counter()
    line = run_error(capsys, *command, path)
    assert time.perf_counter() - start < 2.0
    assert "bomb.yaml" in line and "aliases" in line


def test_alias_bomb_in_a_set_value_refused(capsys):
    levels = ["&a [1,1,1,1,1,1,1,1,1]"]
    for k in range(1, 7):  # 9**7 = 4.8M > MAX_YAML_NODES
        levels.append(f"&{'abcdefg'[k]} [" + ",".join([f"*{'abcdefg'[k - 1]}"] * 9) + "]")
    line = run_error(
        capsys, "simulate", "serve", "--set", f"workload.num_requests=[{','.join(levels)}]"
    )
    assert "--set workload.num_requests" in line and "aliases" in line


def test_expansion_counted_not_aliases_alone():
    """Below the node limit a shared alias is fine (it is how YAML reuses values); the
    same shape one level deeper passes the limit: 9**6 = 531,441 < 1e6 < 9**7."""

    def doc(levels: int) -> str:
        return _bomb(levels).replace('"lol"', "1")

    assert 9**6 < MAX_YAML_NODES < 9**7
    assert len(load_text(doc(6), "x")["a5"]) == 9
    with pytest.raises(ConfigError, match="expands its aliases"):
        load_text(doc(8), "x")


@pytest.mark.parametrize("command", SCENARIO_COMMANDS)
def test_deep_nesting_refused(capsys, tmp_path, command):
    """100,000 nested flow sequences once ended in RecursionError (a 3,000-line traceback)."""
    path = _write(tmp_path, "deep.yaml", "a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    line = run_error(capsys, *command, path)
    assert "deep.yaml" in line


def test_nesting_past_the_limit_refused_below_libyaml_limit():
    deep = "a: " + "{b: " * (MAX_YAML_DEPTH + 1) + "1" + "}" * (MAX_YAML_DEPTH + 1)
    with pytest.raises(ConfigError, match=f"deeper than {MAX_YAML_DEPTH} levels"):
        load_text(deep, "scenario 'x'")
    ok = "a: " + "{b: " * 10 + "1" + "}" * 10
    assert load_text(ok, "x")["a"]["b"]["b"]


def test_python_tags_refused(capsys, tmp_path):
    path = _write(tmp_path, "tag.yaml", "model: !!python/object/apply:os.system [ls]\n")
    line = run_error(capsys, "traffic", "train", "-f", path)
    assert "is not valid YAML" in line and "tag" in line


# --- binary and non-UTF-8 files ---------------------------------------------------------


@pytest.mark.parametrize("command", SCENARIO_COMMANDS)
def test_binary_scenario_refused(capsys, tmp_path, command):
    path = _write(tmp_path, "blob.yaml", bytes(range(256)) * 4)
    line = run_error(capsys, *command, path)
    assert "blob.yaml" in line and "binary file" in line


@pytest.mark.parametrize("command", SCENARIO_COMMANDS)
def test_latin1_scenario_refused_with_line(capsys, tmp_path, command):
    """'café' in Latin-1 is 0xe9 on line 2: the UnicodeDecodeError traceback of before."""
    path = _write(tmp_path, "latin1.yaml", "seed: 1\nmodel: caf\xe9\n".encode("latin-1"))
    line = run_error(capsys, *command, path)
    assert "not UTF-8" in line and "0xe9 at line 2" in line


def test_directory_as_scenario_refused(capsys, tmp_path):
    line = run_error(capsys, "traffic", "train", "-f", str(tmp_path))
    assert "directory" in line


# --- price catalogs ------------------------------------------------------------------------


PRICES = PARTS.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (bytes(range(256)), "binary file"),
        ("date: caf\xe9\n".encode("latin-1"), "not UTF-8"),
        ("", "must be a mapping with sections"),
        ("- 1\n- 2\n", "must be a mapping with sections"),
        ("switches: {}\nnics: {}\n", "non-empty 'switches' section"),
        ("switches:\nnics:\ntransceivers:\ncables:\n", "non-empty 'switches' section"),
        (_bomb(), "aliases"),
        (PRICES.replace("likely: 32000", "likely: -32000"),
         "switches.quantum-2-qm9700.price.likely(=-32000) must be a finite number >= 0"),
        (PRICES.replace("likely: 32000", "likely: .nan"), "price.likely(=nan)"),
        (PRICES.replace("likely: 32000", "likely: lots"), "price.likely(='lots')"),
        (PRICES.replace("power_w: 750", "power_w: .inf"), "power_w(=inf)"),
        (PRICES.replace("  generic:", "  generic_x:"), "'generic' entry"),
        (PRICES.replace("\n  copper:", "\n  kopper:"), "cables needs a 'copper' entry"),
        (PRICES.replace('  "400":\n    source: "ConnectX-7', '  fast:\n    source: "ConnectX-7'),
         "nics: key 'fast' must be a line rate"),
    ],
)  # fmt: skip
def test_bad_price_catalog_refused(capsys, tmp_path, content, expected):
    path = _write(tmp_path, "prices.yaml", content)
    line = run_error(capsys, "plan", "--gpus", "64", "--prices", path)
    assert "prices.yaml" in line and expected in line


def test_numeric_rate_keys_in_a_price_file_work(tmp_path):
    """A user writing nics: {400: ...} (an int key) must price like "400" (the shipped one)."""
    from aifabric.fabric.bom import load_parts

    path = _write(tmp_path, "p.yaml", PRICES.replace('"400":', "400:"))
    assert load_parts(path)["nics"]["400"] == load_parts()["nics"]["400"]


# --- traces --------------------------------------------------------------------------------


def _moon(*records: str) -> str:
    return "".join(r + "\n" for r in records)


OK = '{"timestamp": 1000, "input_length": 5, "output_length": 1}'


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("blob.jsonl", bytes(range(256)), "binary file"),
        ("l1.jsonl", (OK + '\n{"x": "\xe9"}\n').encode("latin-1"), "0xe9 at line 2"),
        ("big.jsonl", _moon('{"timestamp": 0, "input_length": 1e30, "output_length": 1}'),
         "input_length(=1e+30) must be in [1, 100,000,000]"),
        ("neg.jsonl", _moon('{"timestamp": 0, "input_length": -5, "output_length": 1}'),
         "input_length(=-5)"),
        ("frac.jsonl", _moon('{"timestamp": 0, "input_length": 5.7, "output_length": 1}'),
         "whole number of tokens"),
        ("nan.jsonl", _moon('{"timestamp": NaN, "input_length": 5, "output_length": 1}'),
         "timestamp(=nan)"),
        ("inf.jsonl", _moon('{"timestamp": Infinity, "input_length": 5, "output_length": 1}'),
         "timestamp(=inf)"),
        ("negts.jsonl", _moon('{"timestamp": -3, "input_length": 5, "output_length": 1}'),
         "timestamp(=-3)"),
        ("strts.jsonl", _moon('{"timestamp": "noon", "input_length": 5, "output_length": 1}'),
         "must be a number of milliseconds"),
        ("boolts.jsonl", _moon('{"timestamp": true, "input_length": 5, "output_length": 1}'),
         "must be a number of milliseconds"),
        ("hash.jsonl", _moon('{"timestamp": 0, "input_length": 5, "output_length": 1, '
                             '"hash_ids": [1e400]}'), "hash_ids must be a list of integers"),
        ("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
        ("list.jsonl", "[1, 2]\n", "a record is a JSON object"),
        ("header.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n", "has no requests"),
        ("empty.csv", "", "must be the Azure header"),
        ("wrong.csv", "time,in,out\n1,2,3\n", "must be the Azure header"),
        ("azneg.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,-5,10\n",
         "ContextTokens(=-5)"),
        ("azbig.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                      "2023-11-16 18:17:03.97,99999999999999999999999,10\n", "ContextTokens"),
        ("azshort.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03\n",
         "a column is missing"),
        ("azfield.csv", 'TIMESTAMP,ContextTokens,GeneratedTokens\n"' + "x" * 200_000 + '",1,1\n',
         "not CSV"),
    ],
)  # fmt: skip
def test_bad_trace_refused_by_trace_stats(capsys, tmp_path, name, content, expected):
    path = _write(tmp_path, name, content)
    line = run_error(capsys, "trace", "stats", path)
    assert name in line and expected in line


def test_bad_trace_refused_by_simulate_serve(capsys, tmp_path):
    """The same check at the serving edge, under the scenario key that named the file."""
    trace = _write(tmp_path, "big.jsonl", _moon('{"timestamp": 0, "input_length": 1e30, '
                                                 '"output_length": 1}'))  # fmt: skip
    scenario = _write(tmp_path, "s.yaml", f"workload: {{source: trace, trace: {trace}}}\n")
    line = run_error(capsys, "simulate", "serve", "-f", scenario)
    assert "workload.trace" in line and "input_length(=1e+30)" in line


def test_zero_duration_trace_has_no_rate_and_no_nan(tmp_path):
    """Two requests at the same millisecond: duration 0 s, so the rate and the CV of gaps
    are undefined (None, JSON null), never NaN or a division by zero; one request too."""
    both = _write(tmp_path, "same.jsonl", _moon(OK, OK.replace("5", "6")))
    stats = trace_stats(read_trace(both))
    assert stats["duration_s"] == 0.0
    assert stats["arrival_rate_per_s"] is None and stats["interarrival_cv"] is None
    one = trace_stats(read_trace(_write(tmp_path, "one.jsonl", _moon(OK))))
    assert one["requests"] == 1 and one["arrival_rate_per_s"] is None


def test_zero_output_tokens_accepted():
    """Output 0 is a real trace value (a request cut before its first token): accepted."""
    from aifabric.serving.trace import _tokens

    assert _tokens(0, "output_length", 0) == 0
    with pytest.raises(ValueError, match="input_length"):
        _tokens(0, "input_length", 1)


# --- seeds and non-finite or impossible numbers ---------------------------------------------


def test_negative_seed_refused(capsys):
    line = run_error(capsys, "simulate", "serve", "--seed", "-1")
    assert "seed" in line and "greater than or equal to 0" in line


@pytest.mark.parametrize(
    ("key", "value"),
    [("workload.rate_rps", ".nan"), ("workload.rate_rps", ".inf"), ("max_sim_time_s", ".inf"),
     ("slo.admission_slack", ".nan"), ("network.oversubscription", ".inf"),
     ("workload.input_tokens.mean", ".inf")],
)  # fmt: skip
def test_serving_non_finite_refused(capsys, key, value):
    line = run_error(capsys, "simulate", "serve", "--set", f"{key}={value}")
    assert key in line and "finite" in line


@pytest.mark.parametrize(
    ("command", "body", "expected"),
    [
        (("traffic", "train"), "model: llama3-8b\ndp: 8\ntoken_bytes: .inf\n",
         "token_bytes: inf is not a finite number"),
        (("traffic", "train"), "model: llama3-8b\ndp: 8\ntoken_bytes: 0\n",
         "token_bytes(=0) must be > 0"),
        (("traffic", "train"), "model: llama3-8b\ndp: 8\ncheckpoint_bytes_per_param: nan\n",
         "checkpoint_bytes_per_param: 'nan' is not a finite number"),
        (("traffic", "train"), "model: llama3-8b\ndp: 8\ncheckpoint_bytes_per_param: -1\n",
         "checkpoint_bytes_per_param(=-1) must be >= 0"),
        (("traffic", "train"), "model: llama3-8b\ndp: 8\nmfu: '1e400'\n",
         "mfu: '1e400' is not a finite number"),
        (("traffic", "train"), "model: llama3-8b\ndp: 8\ndataset_tokens: '1e400'\n",
         "must be a finite non-negative quantity"),
        (("traffic", "train"), "model: llama3-8b\ndp: 8\nseq_len: .nan\n", "seq_len"),
        (("traffic", "infer"), "model: llama3-8b\ntokens_per_s: .inf\n",
         "tokens_per_s: inf is not a finite number"),
        (("traffic", "infer"), "model: llama3-8b\nnic_speed: 0\n", "nic_speed(=0) must be > 0"),
        (("plan",), "gpus: 64\noversubscription: .nan\n", "oversubscription: nan is not a finite"),
    ],
)  # fmt: skip
def test_scenario_non_finite_or_impossible_refused(capsys, tmp_path, command, body, expected):
    path = _write(tmp_path, "s.yaml", body)
    line = run_error(capsys, *command, "-f", path)
    assert expected in line
