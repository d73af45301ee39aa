"""The pool's bookkeeping alone (no sockets): random admit / release / time sequences
keep its invariants — never more than max_connections, no connection held twice or both
held and idle, waiters served first come first served, idle ones within max_idle."""

from __future__ import annotations

import attrs
from hypothesis import example, given, settings
from hypothesis import strategies as st

from saferouter.gateway.checkout import Checkout, Claim

MAX_CONNECTIONS, MAX_IDLE, EXPIRY_S = 3, 1, 30.0


@attrs.define(eq=False)
class Conn:
    origin: str
    idle_since_s: float = 0.0
    closed: bool = False


steps = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.sampled_from("ab")),
        st.tuples(st.just("release"), st.integers(0, 5), st.booleans()),
        st.tuples(st.just("wait"), st.sampled_from([1.0, 31.0])),
        st.tuples(st.just("kill"), st.integers(0, 5)),  # the server closes an idle one
    ),
    max_size=60,
)


@given(steps)
@example([("admit", "a"), ("release", 0, True), ("wait", 31.0), ("admit", "a")])  # expiry
@settings(max_examples=300)
def test_random_sequences_keep_the_invariants(ops: list[tuple[object, ...]]) -> None:
    dead: set[int] = set()
    checkout: Checkout[Conn] = Checkout(
        max_connections=MAX_CONNECTIONS,
        max_idle=MAX_IDLE,
        keepalive_expiry_s=EXPIRY_S,
        is_dead=lambda conn: id(conn) in dead,
    )
    now_s = 0.0
    held: list[Conn] = []  # the connection of every granted claim
    waiting: list[Claim[Conn]] = []
    all_conns: list[Conn] = []
    returned_at_s: dict[int, float] = {}  # when each connection was last given back

    def close(conns: list[Conn]) -> None:
        for conn in conns:
            assert conn not in held
            conn.closed = True

    def on_grant(claim: Claim[Conn]) -> None:
        conn = claim.connection
        if conn is None:
            conn = Conn(str(claim.origin))
            all_conns.append(conn)
            checkout.opened(conn)
        assert conn not in held and not conn.closed and conn.origin == claim.origin
        assert id(conn) not in dead  # a connection the server closed is never handed out
        assert now_s - returned_at_s.get(id(conn), now_s) <= EXPIRY_S  # nor an expired one
        held.append(conn)

    for op in ops:
        if op[0] == "admit":
            claim: Claim[Conn] = Claim(op[1], lambda: None)
            close(checkout.admit(claim, now_s))
            if claim.granted:
                on_grant(claim)
            else:
                waiting.append(claim)
        elif op[0] == "release" and held:
            conn = held.pop(int(op[1]) % len(held))  # type: ignore[call-overload]
            before = list(waiting)
            returned_at_s[id(conn)] = now_s
            closing = checkout.release(conn, reusable=bool(op[2]), now_s=now_s)
            assert op[2] or conn in closing  # a spent connection is always closed
            close(closing)
            granted = [c for c in before if c.granted]
            assert granted == before[: len(granted)]  # first come, first served
            for c in granted:
                waiting.remove(c)
                on_grant(c)
        elif op[0] == "wait":
            now_s += float(op[1])  # type: ignore[arg-type]
        elif op[0] == "kill":
            live = [c for c in all_conns if not c.closed and c not in held]
            if live:
                dead.add(id(live[int(op[1]) % len(live)]))  # type: ignore[call-overload]
        in_use, idle_count = checkout.counts()
        assert in_use == len(held)
        assert in_use + idle_count <= MAX_CONNECTIONS
        assert idle_count <= MAX_IDLE
        assert idle_count == sum(1 for c in all_conns if not c.closed and c not in held)
        assert not waiting or in_use == MAX_CONNECTIONS  # nobody waits beside a free slot
