"""Atomic writes and the user-edit guard of sandbox files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

import dnsd.sandbox_files.managed
from dnsd.sandbox_files.managed import SandboxFileError, user_modified, write_atomic, write_managed
from netcore.errors import ErrorKind


def hash_path(path: Path) -> Path:
    return path.with_name(path.name + ".hash")


def test_write_atomic_creates_directory_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "hosts"
    write_atomic(target, "one\n")
    assert target.read_text() == "one\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    write_atomic(target, "two\r\n", mode=0o600)
    assert target.read_bytes() == b"two\r\n"  # no newline translation
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["hosts"]  # no temp file left


def test_write_atomic_replaces_the_inode(tmp_path: Path) -> None:
    # Readers holding the old file keep a complete old copy: the file is swapped, not truncated.
    target = tmp_path / "resolv.conf"
    write_atomic(target, "old\n")
    with target.open() as reader:
        write_atomic(target, "new\n")
        assert reader.read() == "old\n"
    assert target.read_text() == "new\n"


def test_write_atomic_error_is_typed_and_says_what_to_check(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SandboxFileError, match=r"cannot write .*writable") as info:
        write_atomic(tmp_path / "file" / "resolv.conf", "text")
    assert info.value.kind is ErrorKind.UNAVAILABLE


def test_write_managed_first_write_stores_hash(tmp_path: Path) -> None:
    target = tmp_path / "sb" / "resolv.conf"
    assert write_managed(target, "nameserver 127.0.0.11\n")
    assert target.read_text() == "nameserver 127.0.0.11\n"
    digest = hashlib.sha256(b"nameserver 127.0.0.11\n").hexdigest()
    assert hash_path(target).read_text() == f"sha256:{digest}\n"
    assert not user_modified(target)


def test_write_managed_rewrites_when_hash_matches(tmp_path: Path) -> None:
    target = tmp_path / "hosts"
    assert write_managed(target, "v1\n")
    assert write_managed(target, "v2\n")
    assert target.read_text() == "v2\n"
    assert not user_modified(target)


def test_write_managed_keeps_a_user_edited_file(tmp_path: Path) -> None:
    target = tmp_path / "resolv.conf"
    write_managed(target, "ours\n")
    target.write_text("nameserver 192.0.2.1  # the user's\n")
    assert user_modified(target)
    assert not write_managed(target, "ours v2\n")
    assert target.read_text() == "nameserver 192.0.2.1  # the user's\n"
    # Once the user puts our content back, we manage the file again.
    target.write_text("ours\n")
    assert not user_modified(target)
    assert write_managed(target, "ours v2\n")
    assert target.read_text() == "ours v2\n"


def test_unchanged_text_does_not_rewrite(tmp_path: Path) -> None:
    target = tmp_path / "hosts"
    write_managed(target, "same\n")
    inode = target.stat().st_ino
    assert write_managed(target, "same\n")
    assert target.stat().st_ino == inode


def test_file_without_hash_is_not_user_modified(tmp_path: Path) -> None:
    # No hash: we never wrote it (or lost the record), so there is no edit of ours to detect.
    target = tmp_path / "hosts"
    target.write_text("pre-existing\n")
    assert not user_modified(target)
    assert write_managed(target, "ours\n")
    assert target.read_text() == "ours\n"


def test_same_text_without_hash_records_the_hash(tmp_path: Path) -> None:
    target = tmp_path / "hosts"
    target.write_text("ours\n")
    assert write_managed(target, "ours\n")
    assert hash_path(target).exists()
    target.write_text("edited\n")
    assert not write_managed(target, "ours\n")


def test_missing_file_with_hash_is_recreated(tmp_path: Path) -> None:
    target = tmp_path / "hosts"
    write_managed(target, "ours\n")
    os.unlink(target)
    assert not user_modified(target)
    assert write_managed(target, "ours\n")
    assert target.read_text() == "ours\n"


def test_crash_between_renames_does_not_freeze_the_file(tmp_path: Path) -> None:
    # write_managed records old and new hash before swapping the file: simulate a crash after
    # that first step, with either content in place. Neither may look user-edited.
    target = tmp_path / "hosts"
    old, new = b"old\n", b"new\n"
    hashes = [f"sha256:{hashlib.sha256(c).hexdigest()}" for c in (old, new)]
    hash_path(target).write_text("\n".join(hashes) + "\n")
    for content in (old, new):
        target.write_bytes(content)
        assert not user_modified(target)
    assert write_managed(target, "newer\n")
    newer = hashlib.sha256(b"newer\n").hexdigest()
    assert hash_path(target).read_text().split() == [f"sha256:{newer}"]


def test_crash_before_the_final_hash_write_leaves_a_managed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "hosts"
    write_managed(target, "old\n")
    real_write = dnsd.sandbox_files.managed.write_atomic
    calls = []

    def crash_on_final_hash(path, text, mode=0o644, *, durable=True):
        calls.append(Path(path))
        if len(calls) == 3:
            raise SandboxFileError("simulated crash")
        real_write(path, text, mode, durable=durable)

    monkeypatch.setattr(dnsd.sandbox_files.managed, "write_atomic", crash_on_final_hash)
    with pytest.raises(SandboxFileError, match="simulated"):
        write_managed(target, "new\n")
    assert calls == [hash_path(target), target, hash_path(target)]
    assert target.read_text() == "new\n"
    assert not user_modified(target)  # so the next write still goes through
    monkeypatch.undo()
    assert write_managed(target, "newer\n")


def test_garbled_hash_file_protects_the_file(tmp_path: Path) -> None:
    target = tmp_path / "hosts"
    target.write_text("something\n")
    hash_path(target).write_text("not a hash\n")
    assert user_modified(target)
    assert not write_managed(target, "ours\n")


def test_sandbox_files_are_not_fsynced_other_atomic_writes_are(tmp_path: Path, monkeypatch) -> None:
    # A sandbox's files die with its namespace (no namespace survives a power cut): their
    # writes skip fsync; a file that outlives a reboot (the host's hosts file) keeps it.
    synced = []
    real = os.fsync
    monkeypatch.setattr(
        dnsd.sandbox_files.managed.os, "fsync", lambda fd: synced.append(fd) or real(fd)
    )
    assert write_managed(tmp_path / "sb" / "hosts", "10.0.0.2\tweb\n")
    assert (tmp_path / "sb" / "hosts").read_text() == "10.0.0.2\tweb\n"
    assert synced == []
    write_atomic(tmp_path / "host-hosts", "10.0.0.2\tweb.app\n")
    assert len(synced) == 2  # the file, then its directory
