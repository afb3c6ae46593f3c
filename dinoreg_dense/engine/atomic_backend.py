"""Crash-safe local writes for MMEngine: checkpoints appear whole or not at all."""

import os
from pathlib import Path

from mmengine.fileio import LocalBackend, io, register_backend


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` writes a temporary file, fsyncs it and renames it over the
    target, so a run killed while saving leaves the previous checkpoint intact."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        """Write ``obj`` to ``filepath`` atomically (same-directory temp file + ``os.replace``)."""
        path = Path(filepath)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def install_atomic_backend() -> None:
    """Make MMEngine use :class:`AtomicLocalBackend` for every local path (idempotent)."""
    register_backend("local", AtomicLocalBackend, force=True, prefixes="")
    # Drop cached plain LocalBackend instances so new lookups get the atomic one.
    for key in [k for k, v in io.backend_instances.items() if type(v) is LocalBackend]:
        del io.backend_instances[key]
