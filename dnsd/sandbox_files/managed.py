"""Writing a sandbox's resolv.conf and hosts files without clobbering a user's edits.

`write_managed` keeps `<path>.hash` beside each file with the sha256 of what we last wrote. A
file whose content no longer matches was edited by someone else (moby's UserModified) and is
left alone from then on.

Files are replaced by rename, so a reader never sees half a file. A rename gives the path a new
inode: bind-mount the *directory* into a container, not the file, or the mount keeps the old one.

A sandbox's files are not fsynced (`durable=False`): a killed daemon loses nothing the page
cache holds, and what a power cut or kernel crash could lose matters to no one, because no
network namespace survives either: at the next start reconcile removes every sandbox whose
namespace vanished, files and all. The fsyncs were a third of a connect's time (issue 13).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from netcore.errors import StoreError

HASH_SUFFIX = ".hash"
_PREFIX = "sha256:"


class SandboxFileError(StoreError):
    """A sandbox file (resolv.conf, hosts, or its hash) could not be written or read."""


def write_atomic(path: str | Path, text: str, mode: int = 0o644, *, durable: bool = True) -> None:
    """Replace `path` with `text` atomically (temp file in the same directory, rename),
    creating the directory if needed. `durable`: the file and the rename are fsynced first,
    so they also survive a power cut."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fchmod(handle.fileno(), mode)  # mkstemp makes 0600, whatever the umask
                if durable:
                    os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        if durable:
            _fsync_directory(target.parent)  # make the rename itself survive a crash
    except OSError as exc:
        raise SandboxFileError(
            f"cannot write {target}: {exc.strerror or exc}; check that the directory is "
            "writable and the disk not full"
        ) from exc


def hash_path_of(path: str | Path, hash_dir: str | Path | None = None) -> Path:
    """Where the hash of a managed file is kept: beside it, or in `hash_dir` when the file's
    directory must hold nothing else (`ip netns exec` bind-mounts every file of
    /etc/netns/NAME over /etc)."""
    target = Path(path)
    if hash_dir is None:
        return Path(f"{target}{HASH_SUFFIX}")
    return Path(hash_dir) / f"{target.name}{HASH_SUFFIX}"


def user_modified(path: str | Path, hash_dir: str | Path | None = None) -> bool:
    """Whether `path` was changed since we last wrote it (False when it or its hash is absent:
    nothing of the user's to keep)."""
    target = Path(path)
    stored = _stored_hashes(hash_path_of(target, hash_dir))
    if stored is None:
        return False
    try:
        content = target.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise SandboxFileError(f"cannot read {target}: {exc.strerror}") from exc
    # Several hashes are stored while a write is in flight (see write_managed); any one counts.
    return _digest(content) not in stored


def write_managed(path: str | Path, text: str, hash_dir: str | Path | None = None) -> bool:
    """Write `text` to `path` unless the user edited the file since our last write (not
    fsynced: see the module's docstring).

    Returns True when the file now holds `text`, False when a user-edited file was kept.
    """
    target = Path(path)
    hash_path = hash_path_of(target, hash_dir)
    if user_modified(target, hash_dir):
        return False
    new = _digest(text.encode("utf-8"))
    try:
        old = target.read_bytes() if target.exists() else None
    except OSError as exc:
        raise SandboxFileError(f"cannot read {target}: {exc.strerror}") from exc
    if old is not None and _digest(old) == new and _stored_hashes(hash_path) == [new]:
        return True  # already current: do not churn the inode
    # Record old and new hash first, so a crash between the two renames never makes our own
    # file look user-edited (which would freeze it forever).
    previous = [] if old is None else [_digest(old)]
    write_atomic(hash_path, "\n".join([*previous, new]) + "\n", durable=False)
    write_atomic(target, text, durable=False)
    write_atomic(hash_path, new + "\n", durable=False)
    return True


def _stored_hashes(hash_path: Path) -> list[str] | None:
    """The hashes recorded in `hash_path`, or None when there is no hash file."""
    try:
        return hash_path.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SandboxFileError(f"cannot read {hash_path}: {exc.strerror}") from exc


def _digest(content: bytes) -> str:
    return _PREFIX + hashlib.sha256(content).hexdigest()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
