"""Running the app on hypercorn's protocol classes (``http_worker.py``): in process, or in
N worker processes sharing one listening socket, bound before anything else.

With ``--tls`` the parent loads (or creates) the TLS key and makes the certificate once;
the workers are handed both (``TlsCredentials``, pickled over their spawn pipe) and
each builds its own ``ssl.SSLContext``, so every worker presents the same certificate
and attests the same key.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import multiprocessing.connection
import resource
import shlex
import signal
import sys
import time
from functools import partial
from multiprocessing.synchronize import Event as EventType
from typing import TextIO

import attrs
import trio
from cryptography import x509
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

from .app import create_app
from .attestation.service import AttestationService
from .config import Settings
from .connections import plan_file_limit
from .datadir import DataDirLock, lock_data_dir, replica_id
from .errors import DataDirInUse
from .http_worker import ServeOptions, serve_worker
from .keys import generate_key
from .storage import KeyRole, Store
from .storage.opening import describe, open_store
from .tls.certificates import TlsCredentials, credentials
from .tls.context import read_chain_file, server_context

log = logging.getLogger("saferouter")

GRACEFUL_TIMEOUT_S = 10.0


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    config.keep_alive_timeout = 75.0  # longer than common client pools keep idle sockets
    config.backlog = 1024
    return config


async def ensure_admin_key(store: Store, out: TextIO) -> None:
    """On a store with no keys, create an admin key and print it, once."""
    if await store.count_keys():
        return
    new = generate_key()
    await store.create_key(
        name="admin", role=KeyRole.ADMIN, key_hash=new.hash, prefix=new.display_prefix
    )
    print("Created the first admin key. It is shown only this once; keep it:", file=out)
    print(new.secret, file=out, flush=True)


async def _prepare_store(
    settings: Settings, chain: list[x509.Certificate] | None, out: TextIO
) -> TlsCredentials | None:
    """Before any worker serves: the TLS credentials (with ``--tls``; first, so that a
    certificate for another key stops the start before anything is written), the first
    admin key, and the release of reservations a previous run of this data dir left
    open when it was killed mid-request (their receipts: lost). The data dir's lock says
    that no process of that run still serves, so all of its replica's are released at
    once, whatever their leases; other replicas' stay theirs."""
    store = open_store(settings)
    try:
        service = await AttestationService.open(settings, store)
        tls = None
        if service.tls_key is not None:
            now = dt.datetime.now(dt.UTC)
            tls = credentials(service.tls_key, host=settings.host, chain=chain, now=now)
            server_context(tls, http2=settings.http2)  # OpenSSL's word on it, before any write
        await ensure_admin_key(store, out)
        released = await store.recover(replica=replica_id(settings.data_dir))
        if released:
            log.warning("released %d reservations left open by the previous run", released)
        entry = await service.record_startup()
        await service.announce(time.time())  # seen by the replicas sharing the store at once
        print(
            f"startup log entry {entry.index} ({service.attester.mode} attestation, "
            f"measurement {service.measurement.hex[:16]}…)",
            file=out,
        )
        return tls
    finally:
        await store.close()


def run(settings: Settings, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Serve until SIGINT or SIGTERM; returns the process exit code.

    The data dir's lock is taken first (a second server on it stops there), then the
    port is bound before anything else: a start that cannot listen must not create
    (and print) the first admin key or add a startup-log entry."""
    try:
        lock = lock_data_dir(settings.data_dir)
    except DataDirInUse as exc:
        print(f"saferouter: {exc}", file=err)
        return 2
    with lock:
        return _run_locked(settings, lock, out, err)


def _run_locked(settings: Settings, lock: DataDirLock, out: TextIO, err: TextIO) -> int:
    config = hypercorn_config(settings)
    chain = read_chain_file(settings.tls_cert) if settings.tls_cert else None
    try:
        sockets = config.create_sockets()
        for sock in sockets.insecure_sockets:
            sock.listen(config.backlog)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        print(f"saferouter: cannot listen on {settings.host}:{settings.port}: {reason}", file=err)
        return 2
    try:
        settings = _raise_file_limit(settings, err)
        tls = trio.run(_prepare_store, settings, chain, out)
        _describe(settings, out)
        if settings.workers == 1:
            trio.run(_serve_until_signalled, settings, config, sockets, tls, None)
            return 0
        return _run_workers(settings, config, sockets, tls, lock)
    finally:
        for sock in sockets.insecure_sockets:
            sock.close()


def _raise_file_limit(settings: Settings, err: TextIO) -> Settings:
    """Raise this process's soft RLIMIT_NOFILE (inherited by workers) to what the
    connection cap needs; a hard limit too low for the cap lowers the cap instead."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    plan = plan_file_limit(
        max_connections=settings.max_connections,
        upstream_per_request=settings.max_attempts,
        max_upstream=settings.max_upstream_connections,
        soft=soft,
        hard=hard,
    )
    if plan.soft_limit != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (plan.soft_limit, hard))
    if plan.lowered:
        print(
            f"saferouter: the open-file limit ({hard}) allows {plan.max_connections} "
            f"connections per worker, not {settings.max_connections}; raise it (ulimit -Hn)",
            file=err,
            flush=True,
        )
    return attrs.evolve(settings, max_connections=plan.max_connections)


def _describe(settings: Settings, out: TextIO) -> None:
    """The start-up banner: the providers, where the data is, how to make another admin
    key (the first is printed once; whoever lost it needs this line), and last the
    address, once the server is about to listen."""
    for endpoint in settings.endpoints.values():
        p = endpoint.provider
        state = "ready" if endpoint.available else f"unavailable (set {p.api_key_env})"
        print(f"provider {p.id}: {state}", file=out)
    print(f"data dir {settings.data_dir}, keys in {describe(settings)}", file=out)
    # the URL is not repeated: it may hold a password
    same_store = " and the same --database" if settings.database_url else ""
    print(
        "another admin key: saferouter keys create --name me --admin "
        f"--data-dir {shlex.quote(str(settings.data_dir))}{same_store}",
        file=out,
    )
    print(
        f"SafeRouter on {'https' if settings.tls else 'http'}://{settings.host}:{settings.port}/v1 "
        f"({settings.workers} worker{'s' if settings.workers > 1 else ''}, "
        f"data in {settings.data_dir})",
        file=out,
        flush=True,
    )


async def _serve_until_signalled(
    settings: Settings,
    config: Config,
    sockets: Sockets,
    tls: TlsCredentials | None,
    stop: EventType | None,
) -> None:
    shutdown = trio.Event()

    async def on_signal() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                shutdown.set()
                return

    async def on_parent_stop(event: EventType) -> None:
        # a multiprocessing Event cannot wake a trio task: poll it
        while not event.is_set():  # noqa: ASYNC110
            await trio.sleep(0.1)
        shutdown.set()

    app = create_app(settings, tls_key=tls.private_key() if tls else None)
    context = server_context(tls, http2=settings.http2) if tls else None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(on_signal)
        if stop is not None:
            nursery.start_soon(on_parent_stop, stop)
        await serve_worker(
            wrap_app(app, config.wsgi_max_body_size, None),
            config,
            sockets,
            ServeOptions(
                max_connections=settings.max_connections, http2=settings.http2, tls=context
            ),
            shutdown_trigger=shutdown.wait,
        )
        nursery.cancel_scope.cancel()


def _worker_main(
    settings: Settings,
    config: Config,
    sockets: Sockets,
    tls: TlsCredentials | None,
    stop: EventType,
    lock: DataDirLock,
) -> None:
    # ``lock``: this worker's hold on the data dir's lock, kept until it exits
    _die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with lock:
        trio.run(_serve_until_signalled, settings, config, sockets, tls, stop)


def _die_with_parent() -> None:
    """Linux: have the kernel SIGTERM this worker if the parent dies (even by SIGKILL),
    so no orphaned worker keeps serving on the shared socket."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _run_workers(
    settings: Settings,
    config: Config,
    sockets: Sockets,
    tls: TlsCredentials | None,
    lock: DataDirLock,
) -> int:
    """N processes accept on one socket; SIGINT/SIGTERM to the parent stops them all."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    processes = [
        ctx.Process(target=_worker_main, args=(settings, config, sockets, tls, stop, lock))
        for _ in range(settings.workers)
    ]
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, partial(_set, stop))
    for process in processes:
        process.start()
    # A worker that dies alone (a crash, the OOM killer) is not replaced: the requests it
    # held keep their reservations until its lease lapses (heartbeat.py). So the others are
    # stopped too and the exit code says so, for the service manager to restart it all,
    # rather than serving on short-handed without a word.
    multiprocessing.connection.wait([process.sentinel for process in processes])
    stop.set()
    for process in processes:
        process.join()
    codes = [p.exitcode or 0 for p in processes]
    return next((c for c in codes if c), 0)


def _set(event: EventType, *_: object) -> None:
    event.set()
