"""Shared helpers for the registry tests: sample models and tree inspection."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any


def make_file(path: Path, content: bytes = b"model-bytes") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def make_model_dir(root: Path) -> Path:
    """``model_dir/{a.txt, c.txt, sub/b.txt}``, as in docs/layout.md."""
    make_file(root / "a.txt", b"a")
    make_file(root / "c.txt", b"c")
    make_file(root / "sub" / "b.txt", b"b")
    return root


def tree_files(root: Path) -> list[str]:
    """Every file under ``root``, relative, '/'-separated, sorted."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(found)


def snapshot(home: Path) -> dict[str, bytes | None]:
    """Everything under a registry home except the catalog's own files and lock files: used to
    prove that a refused operation changed nothing."""
    result: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(home):
        rel_dir = os.path.relpath(dirpath, home)
        if rel_dir.startswith(os.path.join(".modelstore", "locks")):
            continue
        for name in dirs:
            result[os.path.join(rel_dir, name)] = None
        for name in files:
            if name.startswith("registry.db"):
                continue
            result[os.path.join(rel_dir, name)] = Path(dirpath, name).read_bytes()
    return result


# --- child processes for the concurrency and crash tests ----------------------------------------

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def child_command(function: str, *args: str) -> list[str]:
    """argv running ``registry_helpers.<function>(*args)`` in a fresh interpreter."""
    import sys

    code = (
        f"import sys; sys.path.insert(0, {TESTS_DIR!r}); import registry_helpers as h; "
        f"h.{function}(*sys.argv[1:])"
    )
    return [sys.executable, "-c", code, *args]


def wait_for(path: str, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.001)


def register_many(home: str, source: str, name: str, count: str, start_flag: str) -> None:
    """Child: wait for the start flag, register ``count`` times, print the versions."""
    import json

    from modelstore import Registry

    wait_for(start_flag)
    with Registry(home) as registry:
        versions = [registry.register(source, name).version for _ in range(int(count))]
    print(json.dumps(versions))


def set_alias_repeatedly(home: str, name: str, alias: str, versions: str, start_flag: str) -> None:
    """Child: wait for the start flag, then point ``name@alias`` at each of the comma-separated
    ``versions`` in turn; print the moves it made as JSON."""
    import json

    from modelstore import Registry

    wait_for(start_flag)
    with Registry(home) as registry:
        moves = [
            registry.set_alias(name, alias, int(v)).model_dump(mode="json")
            for v in versions.split(",")
        ]
    print(json.dumps(moves))


def delete_latest_repeatedly(home: str, name: str, count: str, start_flag: str) -> None:
    """Child: delete the latest version of ``name`` until ``count`` deletions succeeded."""
    import json
    import time

    from modelstore import Registry
    from modelstore.errors import ModelNotFoundError

    wait_for(start_flag)
    deleted: list[int] = []
    deadline = time.monotonic() + 60
    with Registry(home) as registry:
        while len(deleted) < int(count) and time.monotonic() < deadline:
            try:
                latest = registry.get(name).version
                deleted += [v.version for v in registry.delete(name, latest).versions]
            except ModelNotFoundError:  # nothing registered yet, or deleted by a racing call
                time.sleep(0.001)
    print(json.dumps(deleted))


def churn_until_killed(home: str, folder: str, file: str, seed: str) -> None:
    """Child: register (a folder or a file) and delete at random forever; prints 'ready' once
    the registry is open, so the parent's random delay starts in the middle of the work."""
    import random
    import sys

    from modelstore import Registry
    from modelstore.errors import ModelNotFoundError

    rng = random.Random(int(seed))
    registry = Registry(home)
    print("ready", flush=True)
    sys.stdout.close()
    while True:
        name = rng.choice(["crash_a", "crash_b"])
        if rng.random() < 0.25:
            versions = registry.versions(name)
            if versions:
                with contextlib.suppress(ModelNotFoundError):
                    registry.delete(name, rng.choice(versions))
            continue
        registry.register(rng.choice([folder, file]), name)


def die_after(home: str, folder: str, owner: str, method: str) -> None:
    """Child: SIGKILL itself right after ``Registry._<owner>.<method>`` returns, during a
    registration (register steps) or a deletion of ``m:1`` (delete steps)."""
    import signal

    from modelstore import Registry

    registry = Registry(home)
    target = getattr(registry, f"_{owner}")
    real = getattr(target, method)

    def then_die(*args: object, **kwargs: object) -> object:
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    setattr(target, method, then_die)
    if method in ("start_delete", "unpublish", "forget"):
        registry.delete("m", 1)
    else:
        registry.register(folder, "m")


def import_and_die_after_publish(home: str, archive: str, count: str) -> None:
    """Child: import ``archive`` and SIGKILL itself once ``count`` versions were renamed into
    the tree (before the import makes any of them visible)."""
    import signal

    from modelstore import Registry

    registry = Registry(home)
    real = registry._store.publish
    done = []

    def then_die(token: str, name: str, version: int, entry: str) -> Path:
        result = real(token, name, version, entry)
        done.append(result)
        if len(done) == int(count):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    registry._store.publish = then_die  # type: ignore[method-assign]
    registry.import_(archive)


def export_and_die_midway(home: str, target: str) -> None:
    """Child: export every version of ``m`` to ``target`` and SIGKILL itself after the first
    file went into the archive."""
    import signal

    from modelstore import Registry
    from modelstore.registry import archive as registry_archive

    real = registry_archive._add_file

    def then_die(*args: object) -> None:
        real(*args)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGKILL)

    registry_archive._add_file = then_die  # type: ignore[assignment]
    with Registry(home) as registry:
        registry.export([f"m:{v}" for v in registry.versions("m")], target)


def path_counting_fetches(home: str, name: str, version: str, log: str, start_flag: str) -> None:
    """Child: wait for the start flag, ask for ``name:version``'s path (materialising it from
    the shared store if needed) and print it; every blob fetched appends a line to ``log``."""
    from modelstore import Registry
    from modelstore.store.shared import FileBlobStore

    real = FileBlobStore.fetch

    def counted(self: FileBlobStore, sha256: str, target: str, buffer: bytearray) -> object:
        with open(log, "a") as out:  # O_APPEND: one whole line per write, across processes
            out.write(f"{os.getpid()} {sha256}\n")
        return real(self, sha256, target, buffer)

    FileBlobStore.fetch = counted  # type: ignore[assignment,method-assign]
    wait_for(start_flag)
    with Registry(home, read_only=True) as registry:
        print(registry.path(name, int(version)))


def register_pausing_mid_upload(paused_flag: str, go_flag: str, *cli_args: str) -> None:
    """Child: the real CLI (``modelstore *cli_args``, a ``register`` with an ``az://`` store),
    with 1 MB blocks so a few MB make a multi-block blob, and no retries (the SDK's retries are
    not what is tested). Before sending its second block, it writes ``paused_flag`` and waits
    for ``go_flag``: the parent kills Azurite meanwhile, mid-upload."""
    from urllib.parse import parse_qs, urlparse

    from azure.core.pipeline.transport import RequestsTransport

    from modelstore.cli import main
    from modelstore.store import azure

    azure._MAX_SINGLE_PUT = azure._BLOCK_SIZE = 1 << 20
    azure._RETRY_TOTAL = 0
    real_send = RequestsTransport.send
    blocks = 0

    def send(self: RequestsTransport, request: object, **kwargs: object) -> object:
        nonlocal blocks
        query = parse_qs(urlparse(request.url).query)  # type: ignore[attr-defined]
        if query.get("comp") == ["block"]:
            blocks += 1
            if blocks == 2:
                Path(paused_flag).touch()
                wait_for(go_flag)
        return real_send(self, request, **kwargs)

    RequestsTransport.send = send
    main(list(cli_args))


def register_held(
    home: str, source: str, name: str, checkpoint: str, reached: str, go: str
) -> None:
    """Child: register ``source`` as ``name``, holding at ``checkpoint`` until ``go`` exists
    (``reached`` is created on arrival): "upload" is before the bytes go to the shared store and
    before a number is taken (only the lease is in the catalog); "publish" is after the number
    is taken (the row pending) and before the folder is renamed into the home. Prints the
    version, or the error's one line on stderr with exit 1, as the CLI would."""
    import json
    import sys

    import modelstore.registry.facade as facade
    from modelstore import Registry
    from modelstore.errors import ModelstoreError

    registry = Registry(home)

    def hold(real: Any) -> Any:
        def held(*args: object, **kwargs: object) -> object:
            Path(reached).touch()
            wait_for(go, timeout=120)
            return real(*args, **kwargs)

        return held

    if checkpoint == "upload":
        setattr(facade, "upload_missing", hold(facade.upload_missing))  # type: ignore[attr-defined]  # noqa: B010
    else:
        registry._store.publish = hold(registry._store.publish)  # type: ignore[method-assign]
    try:
        version = registry.register(source, name).version
    except ModelstoreError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(version))


def doctor_until(home: str, stop_flag: str) -> None:
    """Child: run ``doctor(repair=True)`` over and over until ``stop_flag`` exists; print every
    finding it repaired (kind and subject) as JSON, how many runs it made and how many
    operations under way it saw."""
    import json

    from modelstore import Registry

    repaired: list[tuple[str, str]] = []
    runs = live = 0
    with Registry(home) as registry:
        while not os.path.exists(stop_flag):
            report = registry.doctor(repair=True)
            repaired += [(f.kind, f.subject) for f in report.findings if f.repaired]
            live += sum(f.kind == "work_in_progress" for f in report.findings)
            runs += 1
    print(json.dumps({"repaired": repaired, "runs": runs, "live": live}))
