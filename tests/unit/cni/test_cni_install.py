"""`dnsd cni install`: the symlink a runtime finds the plugin by."""

from __future__ import annotations

import os
from pathlib import Path

from dnsd import cli


def test_install_links_and_replaces(tmp_path: Path, capsys):
    plugin = tmp_path / "dnsd-cni"
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    target = tmp_path / "cni" / "bin"
    assert cli.main(["cni", "install", "--dir", str(target), "--plugin", str(plugin)]) == 0
    assert os.readlink(target / "dnsd") == str(plugin)
    assert f"{target / 'dnsd'} -> {plugin}" in capsys.readouterr().out
    other = tmp_path / "other"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    assert cli.main(["cni", "install", "--dir", str(target), "--plugin", str(other)]) == 0
    assert os.readlink(target / "dnsd") == str(other)


def test_install_refuses_what_cannot_run(tmp_path: Path, capsys):
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    assert cli.main(["cni", "install", "--dir", str(tmp_path), "--plugin", str(plain)]) == 1
    assert f"{plain} is not an executable file" in capsys.readouterr().err
    assert not (tmp_path / "dnsd").exists()
