"""The one home of YAML reading: bounded size, nesting and alias expansion before building.

Every YAML the package reads (scenarios, price catalogs, the shipped catalog, ``--set``
values) goes through here. A document is checked in three passes, each bounded by the one
before, so no input can make the reader build a huge object or recurse without limit:

1. the raw bytes: at most ``MAX_YAML_BYTES``, no NUL byte (a binary file), valid UTF-8
   (the error names the line);
2. the event stream (PyYAML's parser is a state machine with its own stack, not recursion):
   nesting depth at most ``MAX_YAML_DEPTH``, at most ``MAX_YAML_ALIASES`` aliases;
3. the composed node graph (aliases are shared nodes, not copies): the size of the tree
   the aliases would expand to, counted with one memo per node, at most ``MAX_YAML_NODES``.
   This is what stops a "billion laughs" document: nine aliases of nine aliases of nine
   strings compose to ~100 nodes but expand to 9**9.

Only then are Python objects constructed, with the safe loader (no arbitrary tags).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aifabric.errors import ConfigError

MAX_YAML_BYTES = 8 * 2**20  # 8 MiB; the shipped parts catalog is ~10 kB
MAX_YAML_DEPTH = 64  # nested mappings/sequences; scenarios use 4
MAX_YAML_ALIASES = 1000
MAX_YAML_NODES = 1_000_000  # scalars + collections after alias expansion


def _loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode_text(data: bytes, what: str, fix: str = "save it as UTF-8 text") -> str:
    """UTF-8 text of a file's bytes, or a ConfigError naming the line of the first bad byte.

    Raises:
        ConfigError: a NUL byte (binary file) or bytes that are not UTF-8.
    """
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ConfigError(
            f"{what} is a binary file (NUL byte at line {_line_of(data, nul)}), not text; "
            f"give a text file"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _line_of(data, exc.start)
        raise ConfigError(
            f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); {fix}"
        ) from None


def read_text_file(path: str | Path, what: str, max_bytes: int = MAX_YAML_BYTES) -> str:
    """A small text file's contents, size-checked before reading and UTF-8-checked.

    Raises:
        ConfigError: unreadable, a directory, too large, binary, or not UTF-8.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(max_bytes + 1)
    except IsADirectoryError:
        raise ConfigError(f"{what} is a directory; give a file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise ConfigError(
            f"{what} is larger than {max_bytes // 2**20} MiB, too large for a YAML file; "
            "give a smaller file"
        )
    return decode_text(data, what)


def _check_events(text: str, what: str) -> None:
    import yaml

    depth = aliases = 0
    for event in yaml.parse(text, Loader=_loader()):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(
                    f"{what} nests deeper than {MAX_YAML_DEPTH} levels; flatten the document"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise ConfigError(
                    f"{what} uses more than {MAX_YAML_ALIASES} aliases (*name); "
                    "write the values out"
                )


def _expanded_size(node: Any, what: str) -> int:
    """Nodes of the tree that ``node`` expands to (shared nodes counted at every use)."""
    import yaml

    memo: dict[int, int] = {}

    def size(n: Any) -> int:  # recursion bounded by MAX_YAML_DEPTH (checked before)
        key = id(n)
        if key in memo:
            return memo[key]
        memo[key] = 1  # a node reached again while being sized (a recursive alias)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(child) for child in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        memo[key] = total
        return total

    total = size(node)
    if total > MAX_YAML_NODES:
        raise ConfigError(
            f"{what} expands its aliases to {total:.3g} values (limit {MAX_YAML_NODES:,}); "
            "an alias bomb? write the values out"
        )
    return total


def load_text(text: str, what: str) -> Any:
    """Parse one YAML document within the limits above; None for an empty document.

    Raises:
        ConfigError: the document is too deep, has too many aliases, or expands too far.
        yaml.YAMLError: a syntax error or a tag the safe loader does not build (callers
            that read files turn it into a ConfigError with ``load_file``).
    """
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{what} is longer than {MAX_YAML_BYTES // 2**20} MiB; shorten it")
    _check_events(text, what)
    loader = _loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, what)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_file(path: str | Path, what: str) -> Any:
    """Read and parse a YAML file within the limits; ``what`` names it in errors
    (e.g. "scenario '/x/y.yaml'").

    Raises:
        ConfigError: any problem, in one line naming the file.
    """
    import yaml

    text = read_text_file(path, what)
    try:
        return load_text(text, what)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        detail = f" ({problem})" if problem else ""
        raise ConfigError(f"{what} is not valid YAML{where}{detail}; fix the syntax") from None
    except ConfigError:
        raise
    except (ValueError, OverflowError) as exc:  # e.g. a timestamp like 2023-13-45
        raise ConfigError(f"{what} has a value YAML cannot build: {exc}; quote it") from None
