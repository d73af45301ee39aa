"""The Prometheus text exposition format 0.0.4, as the gateway writes it (pure).

Label values can hold what a client chose (a model id reaches a circuit key), so every
value is escaped as the format requires: backslash, double quote and line feed.
Unescaped, a quote or a newline in a label would end the sample early and let its rest
read as a sample of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Sample = tuple[Mapping[str, str], int | float]  # labels and value


def encode_family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> str:
    """One metric family in the Prometheus text format 0.0.4: HELP, TYPE, then one line
    per sample. ``name``, ``kind`` and the label names are the gateway's own."""
    lines = encode_head(name, kind, help_text)
    lines += [encode_sample(name, labels, value) for labels, value in samples]
    return "\n".join(lines) + "\n"


def escape_label_value(value: str) -> str:
    """A label value as the text format writes it: ``\\`` → ``\\\\``, ``"`` → ``\\"``,
    line feed → ``\\n`` (Prometheus exposition formats, "Text format details")."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def encode_head(name: str, kind: str, help_text: str) -> list[str]:
    """A family's HELP and TYPE lines (HELP text escapes only backslash and line feed)."""
    escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return [f"# HELP {name} {escaped}", f"# TYPE {name} {kind}"]


def encode_sample(name: str, labels: Mapping[str, str], value: int | float) -> str:
    """One sample's line, its label values escaped."""
    pairs = ",".join(f'{label}="{escape_label_value(v)}"' for label, v in labels.items())
    number = encode_value(value)
    return f"{name}{{{pairs}}} {number}" if pairs else f"{name} {number}"


def encode_value(value: int | float) -> str:
    """A sample value or bound: an integer as one, a float in Python's shortest round-trip
    form (never locale-dependent), infinity as the format's ``+Inf``."""
    if isinstance(value, int):
        return str(value)
    return "+Inf" if value == float("inf") else repr(value)
