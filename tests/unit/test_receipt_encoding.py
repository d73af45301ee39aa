"""A receipt's bytes, as the gateway encodes them (json in C, for speed) and as every
verifier does (``translog.receipt.receipt_bytes``, RFC 8785): always the same, for any
usage object a provider may report and any model name."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from saferouter.gateway.receipts import encode_receipt, portable
from saferouter.translog.receipt import receipt_bytes

# what json.loads can give: a provider's usage object, floats and huge integers included
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def receipt_with(usage: Any, model: str = "deepseek-chat") -> dict[str, Any]:
    return {
        "version": 1,
        "receipt_id": "rcpt_" + "ab" * 12,
        "time": 1_800_000_000,
        "served_model": model,
        "attempts": [{"number": 1, "model": model, "outcome": "won", "status": 200}],
        "usage": portable(usage),
        "prices": None,
        "cost_micro_usd": 27,
        "estimated": False,
        "z": '\x01\x1f"\\/\x7f',  # escapes and characters left as they are
    }


@given(json_values, st.text())
@example({"prompt_tokens": 3, "cost": 0.0012, "big": 2**60}, "model")
@example({"\ue000": 1, "\U0001f600": 2}, "modèle")  # UTF-16 order differs from code points
def test_the_gateways_encoding_is_rfc_8785(usage: Any, model: str) -> None:
    receipt = receipt_with(usage, model)
    assert encode_receipt(receipt) == receipt_bytes(receipt)


def test_floats_and_huge_integers_are_kept_as_their_json_text() -> None:
    assert portable({"a": 0.5, "b": [2**60, 7], "c": {"d": None}}) == {
        "a": "0.5",
        "b": [str(2**60), 7],
        "c": {"d": None},
    }
