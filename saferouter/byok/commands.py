"""``saferouter byok add|list|remove``: your provider key, sealed on this machine to the
gateway's attested BYOK key and uploaded only as ciphertext.

Every subcommand verifies the gateway first — every step of ``saferouter verify``,
printed the same way — and talks to it only once all of them passed, over https pinned
to the attested TLS key (:func:`saferouter.client.pinned_client`): the SafeRouter key
(from ``SAFEROUTER_API_KEY``, never argv, which every local user can read in ``ps``)
goes to the verified process and nowhere else. ``add`` reads the provider key from
stdin (not echoed on a terminal) before anything else happens, seals it to the verified
quote's ``byok_public_key`` (:mod:`.sealing`) and PUTs the sealed box; the plaintext never
leaves this process. A demo gateway is refused unless ``--allow-demo``.

Exit status: 0 done; 1 a failed check (nothing sent), a gateway that attests no BYOK
key, or an error the gateway answered (its message printed); 2 bad input here (no
``SAFEROUTER_API_KEY``, an empty or malformed provider key).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from ..client import pinned_client
from ..errors import ParseError, VerificationError
from ..keys import hash_key
from ..verify.client import Attested
from ..verify.commands import check_gateway, show_step, trust_options, verdict
from . import sealing
from .destination import DestinationError, provider_destination

API_KEY_ENV = "SAFEROUTER_API_KEY"
TIMEOUT_S = 60.0
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")  # what a key in ``Authorization: Bearer`` may hold


def add_parsers(commands: Any) -> None:
    """``byok add|list|remove`` under the top-level subcommands."""
    gateway = argparse.ArgumentParser(add_help=False, parents=[trust_options()])
    gateway.add_argument("--gateway", required=True, metavar="URL", help="the gateway's base URL")
    gateway.add_argument("--state", help="remember the log heads here, as verify --state does")
    gateway.add_argument(
        "--expect-measurement", metavar="HEX", help="fail unless the gateway's measurement is HEX"
    )
    byok = commands.add_parser(
        "byok", help="bring your own provider key, sealed to the attested gateway"
    )
    actions = byok.add_subparsers(dest="byok_command", required=True)
    add = actions.add_parser(
        "add",
        parents=[gateway],
        help=f"seal the provider key on stdin to the verified gateway and upload it "
        f"(your SafeRouter key from {API_KEY_ENV})",
    )
    add.add_argument("--provider", required=True, help="the provider's id, e.g. deepseek")
    add.add_argument(
        "--fallback",
        action="store_true",
        help="when the provider refuses your key, let the operator's key serve (byok_fallback)",
    )
    actions.add_parser("list", parents=[gateway], help="your provider keys on the gateway")
    remove = actions.add_parser("remove", parents=[gateway], help="delete a provider key")
    remove.add_argument("--provider", required=True, help="the provider's id, e.g. deepseek")


def run(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO = sys.stdin) -> int:
    """Run ``byok add``, ``list`` or ``remove``; the exit status."""
    api_key = environ.get(API_KEY_ENV, "")
    if not api_key:
        _error(f"set {API_KEY_ENV} to your SafeRouter key (it is never read from the arguments)")
        return 2
    if not _HEADER_TOKEN.fullmatch(api_key):
        # refused here, unnamed: httpx's refusal of such a header quotes it, key and all
        _error(f"{API_KEY_ENV} holds a space, a control or a non-ASCII character (a newline?)")
        return 2
    provider_key = ""
    if args.byok_command == "add":
        try:
            provider_key = read_provider_key(stdin)
        except sealing.SealedKeyError as exc:
            _error(f"the provider key on stdin: {exc}")
            return 2
    try:
        checked = check_gateway(args.gateway, args, on_step=show_step)
    except ParseError as exc:  # a URL or state file that cannot be read
        _error(str(exc))
        return 1
    print(verdict(checked.passed, checked.root), flush=True)
    if checked.attested is None:
        _error("the gateway did not pass verification: nothing was sent to it")
        return 1
    attested = checked.attested
    with pinned_client(args.gateway, attested, cafile=args.cafile, timeout_s=TIMEOUT_S) as http:
        http.headers["Authorization"] = f"Bearer {api_key}"
        try:
            if args.byok_command == "add":
                return _add(http, attested, args.provider, args.fallback, provider_key, api_key)
            if args.byok_command == "list":
                return _list(http)
            return _remove(http, args.provider)
        except (httpx.HTTPError, VerificationError) as exc:  # the pin refused it, or the network
            _error(f"{type(exc).__name__}: {exc}")
            return 1


def read_provider_key(stdin: TextIO) -> str:
    """The provider key typed (not echoed) or piped in, without its one trailing newline;
    :class:`~.sealing.SealedKeyError` when it is empty or could not be a key."""
    if stdin.isatty():
        text = getpass.getpass("provider key (not shown): ")
    else:  # a key is at most PROVIDER_KEY_MAX_BYTES: read no more than can be refused
        try:
            text = stdin.read(sealing.PROVIDER_KEY_MAX_BYTES + 3)
        except UnicodeDecodeError:  # a strict locale's stdin given bytes that are no text
            raise sealing.SealedKeyError("the provider key is not UTF-8 text") from None
    for newline in ("\r\n", "\n"):
        if text.endswith(newline):
            text = text.removesuffix(newline)
            break
    sealing.check_provider_key(text)
    return text


def _add(
    http: httpx.Client,
    attested: Attested,
    provider: str,
    fallback: bool,
    provider_key: str,
    api_key: str,
) -> int:
    if attested.byok_public_key is None:
        _error(
            "the gateway attests no byok_public_key (a build without BYOK): it cannot hold "
            "a sealed key, so nothing was sent"
        )
        return 1
    try:  # bound to the SafeRouter key that uploads it: no other key can make it serve
        binding = sealing.Binding(hash_key(api_key), provider)
    except sealing.SealedKeyError as exc:
        _error(f"{exc}; nothing was sent")
        return 2
    measured = _answer(http.get("/attestation/measurement"))
    if measured is None:
        return 1
    try:  # where the key will go, as measured: shown before it leaves this machine
        destinations = provider_destination(
            measured.get("document"), attested.measurement, provider
        )
    except DestinationError as exc:
        _error(f"{exc}; nothing was sent")
        return 1
    print(f"{provider} requests with this key go to {destinations[0]} (as measured)", flush=True)
    for url in destinations[1:]:  # the Anthropic base URL: messages go there
        print(f"{provider} messages requests with this key go to {url} (as measured)", flush=True)
    sealed = sealing.seal(bytes.fromhex(attested.byok_public_key), provider_key, binding)
    answer = _answer(
        http.put(
            f"/v1/byok/{quote(provider, safe='')}",
            json={"sealed_key": base64.b64encode(sealed).decode(), "byok_fallback": fallback},
        )
    )
    if answer is None:
        return 1
    mine = sealing.fingerprint(provider_key)
    if answer.get("fingerprint") != mine:  # the attested code opens what was sealed as is
        _error(f"the gateway holds fingerprint {answer.get('fingerprint')}, not this key's {mine}")
        return 1
    print(
        f"added {provider} key {mine} (fingerprint), sealed for measurement "
        f"{attested.measurement}; byok_fallback {'on' if fallback else 'off'}"
    )
    return 0


def _list(http: httpx.Client) -> int:
    answer = _answer(http.get("/v1/byok"))
    if answer is None:
        return 1
    keys = answer.get("data") or []
    if keys:
        print(f"{'provider':16} {'fingerprint':12}  {'fallback':8}  status")
    for key in keys:
        status = "usable" if key.get("usable") else "sealed to another build: add it again"
        fallback = "on" if key.get("byok_fallback") else "off"
        provider, fingerprint = key.get("provider", "?"), key.get("fingerprint", "?")
        print(f"{provider:16} {fingerprint:12}  {fallback:8}  {status}")
    if not keys:
        print("no provider keys")
    providers = ", ".join(str(p.get("id")) for p in answer.get("providers") or [])
    print(f"providers a key can be added for: {providers or 'none'}")
    return 0


def _remove(http: httpx.Client, provider: str) -> int:
    if _answer(http.delete(f"/v1/byok/{quote(provider, safe='')}")) is None:
        return 1
    print(f"removed {provider} key")
    return 0


def _answer(response: httpx.Response) -> dict[str, Any] | None:
    """A 2xx answer's JSON object; otherwise the gateway's error message printed, and None."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict):
        return body
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    _error(f"the gateway answered {response.status_code}: {message or response.text[:200]}")
    return None


def _error(message: str) -> None:
    print(f"saferouter: {message}", file=sys.stderr)
