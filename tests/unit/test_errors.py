"""The one exception tree: every exception class in ``saferouter`` hangs from
``SafeRouterError``, inherits nothing of another package's, and sits where the drawing in
``errors.py``'s docstring puts it — so the drawing cannot drift from the code.

And the 500 a client gets for an error no route rendered: "storage" for the store's
errors only, "internal" for everything else, never the error's own text.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import saferouter
from saferouter import errors
from saferouter.errors import (
    ApiError,
    SafeRouterError,
    StorageError,
    StorageUnavailable,
    internal_error,
    unexpected_error,
)

# "    │   ├── ProofError          [translog.merkle] an inclusion ..."
DRAWN = re.compile(
    r"^    (?P<indent>(?:[│ ]   )*)(?:[├└]── )?(?P<name>\w+)\s*(?:\[(?P<module>[\w.]+)\])?"
)


def _our_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in a module of the package (each module imported)."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(saferouter.__path__, "saferouter."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def _drawing() -> dict[str, tuple[str | None, str]]:
    """The docstring's tree: class name → (parent name, module it is defined in)."""
    assert errors.__doc__ is not None
    tree_lines = [line for line in errors.__doc__.splitlines() if line.startswith("    ")]
    drawn: dict[str, tuple[str | None, str]] = {}
    parents: list[str] = []  # the last name drawn at each depth
    for line in tree_lines:
        match = DRAWN.match(line)
        assert match, line
        if not line[4:].lstrip(" │").startswith(("├", "└")) and parents:
            continue  # a continuation line of the previous entry's comment
        depth = len(match["indent"]) // 4 + (1 if parents else 0)
        del parents[depth:]
        module = "saferouter." + (match["module"] or "errors")
        drawn[match["name"]] = (parents[-1] if parents else None, module)
        parents.append(match["name"])
    return drawn


OURS = _our_exceptions()
DRAWN_TREE = _drawing()


def test_the_drawing_is_read() -> None:
    # guards the parser: a drawing read as empty would make the tests below vacuous
    assert DRAWN_TREE["SafeRouterError"] == (None, "saferouter.errors")
    assert DRAWN_TREE["ProofError"] == ("VerificationError", "saferouter.translog.merkle")
    assert DRAWN_TREE["ModelNotFound"] == ("NotFound", "saferouter.errors")
    assert DRAWN_TREE["UpstreamTimeout"] == ("UpstreamError", "saferouter.errors")
    assert len(OURS) > 40


@pytest.mark.parametrize("cls", OURS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_exception_of_ours_derives_from_the_root(cls: type[BaseException]) -> None:
    assert issubclass(cls, SafeRouterError), f"{cls.__qualname__} is outside the tree"
    # nothing of another package's on the way: `except SafeRouterError` catches only ours,
    # and `except ValueError` (or a vendor's error) never catches one of ours
    foreign = [
        base
        for base in cls.__mro__
        if base not in (Exception, BaseException, object)
        and not base.__module__.startswith("saferouter.")
    ]
    assert foreign == []


@pytest.mark.parametrize("cls", OURS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_exception_of_ours_is_where_the_drawing_puts_it(cls: type[BaseException]) -> None:
    (base,) = cls.__bases__
    if cls.__name__ in DRAWN_TREE:
        parent, module = DRAWN_TREE[cls.__name__]
        assert cls.__module__ == module
        assert base.__name__ == parent if parent else cls is SafeRouterError
    else:
        # undrawn only as one of a family specialising a drawn class of its own module,
        # outside errors.py (the eleven steps of tee.verify)
        assert (
            base.__name__ in DRAWN_TREE and base.__module__ == cls.__module__ != "saferouter.errors"
        ), f"draw {cls.__name__} in errors.py's docstring"


def test_every_drawn_class_exists() -> None:
    defined = {cls.__name__ for cls in OURS}
    assert set(DRAWN_TREE) - defined == set()


def test_api_errors_render_their_own_status_and_code() -> None:
    for cls in OURS:
        if issubclass(cls, ApiError):
            error = cls("message")
            assert 400 <= error.status < 600
            assert error.body().startswith(b'{"error": {"message": "message", "type": ')


@pytest.mark.parametrize(
    ("cls", "kind"),
    [
        (cls, "a storage" if issubclass(cls, StorageError) else "an internal")
        for cls in OURS
        if not issubclass(cls, StorageUnavailable)  # an outage: a 503, below
    ]
    + [(ValueError, "an internal"), (KeyError, "an internal")],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_an_unrendered_error_is_a_500_naming_only_its_kind(
    cls: type[BaseException], kind: str
) -> None:
    try:
        error = cls("secret table keys at /var/data")
    except TypeError:  # PolicyError(field, message)
        error = cls("field", "secret table keys at /var/data")
    rendered = internal_error(error, "req_0123")
    assert (rendered.status, rendered.code, rendered.error_type) == (
        500,
        "internal_error",
        "server_error",
    )
    assert rendered.message == (
        f"The server had {kind} error while processing your request. "
        "Quote request id req_0123 when reporting it."
    )


def test_an_unreachable_database_is_a_503_to_retry_naming_nothing_of_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = StorageUnavailable("read: postgresql://u:hunter2@db.internal:5432/x")
    rendered = unexpected_error(error, method="GET", path="/v1/keys", request_id="req_0123")
    assert (rendered.status, rendered.code, rendered.error_type) == (
        503,
        "storage_unavailable",
        "server_error",
    )
    assert rendered.headers == {"Retry-After": "1"}
    assert b'"param": null' in rendered.body() and b"req_0123" in rendered.body()
    # an outage, not a bug: one line, no frames, nothing of the error's own text
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "hunter2" not in caplog.text and "db.internal" not in caplog.text
    assert "hunter2" not in rendered.message and "Traceback" not in caplog.text
