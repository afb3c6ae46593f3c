"""Crash-safe local writes for MMEngine: checkpoints appear whole or not at all."""

import errno
import os
from pathlib import Path

from mmengine.fileio import LocalBackend, io, register_backend

NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
"""Disk full and quota exceeded: the write fails for want of space."""


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` writes a temporary file, fsyncs it and renames it over the
    target, so a run killed while saving leaves the previous checkpoint intact."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        """Write ``obj`` to ``filepath`` atomically (same-directory temp file + ``os.replace``).

        Raises:
            OSError: the write failed (e.g. errno 28, disk full); same errno as the cause, with a
                message naming the target, saying it was left as it was and, when space ran out,
                how to get some.
        """
        path = Path(filepath)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            raise _write_error(err, path, len(obj)) from err
        finally:
            tmp.unlink(missing_ok=True)


def _write_error(err: OSError, path: Path, size: int) -> OSError:
    """``err`` restated for a user: which file, that nothing was overwritten, what to do."""
    left = "the previous file is intact" if path.exists() else "no partial file was left"
    message = (
        f"cannot write '{path}' ({size / 2**20:.1f} MiB): {err.strerror or err}. Nothing was "
        f"overwritten: {left}."
    )
    if err.errno in NO_SPACE_ERRNOS:
        message += (
            f" The disk holding '{path.parent}' is full: free some space (e.g. delete old "
            "checkpoints or lower default_hooks.checkpoint.max_keep_ckpts), or pass --work-dir "
            "on another disk."
        )
    if err.errno is None:
        return OSError(message)
    return OSError(err.errno, message)


def install_atomic_backend() -> None:
    """Make MMEngine use :class:`AtomicLocalBackend` for every local path (idempotent)."""
    register_backend("local", AtomicLocalBackend, force=True, prefixes="")
    # Drop cached plain LocalBackend instances so new lookups get the atomic one.
    for key in [k for k, v in io.backend_instances.items() if type(v) is LocalBackend]:
        del io.backend_instances[key]
