"""Fixtures for the micromanager kit: the media-server manifest, and real peers on loopback.

``slapd`` and ``qbittorrent-nox`` are the Debian programs (``make system-deps``
installs them); each test starts its own with a throwaway config in a
temporary folder, on a free loopback port, and stops it afterwards. When the
program is missing the tests that need it skip and say why.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kit_peers import (
    BASE_DN,
    QBT_CONF,
    ROOT,
    SLAPD_CONF,
    QBittorrent,
    Slapd,
    free_port,
    stop,
    wait_for_port,
)

from mora_dsl import compile_project
from mora_dsl.manifest import Manifest


@pytest.fixture(scope="session")
def media_manifest() -> Manifest:
    return compile_project(ROOT / "examples" / "media-server").validated()


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    """A fresh, empty OpenLDAP directory on loopback (no base entry yet)."""
    binary = shutil.which("slapd") or ("/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists() else None)
    if binary is None:
        pytest.skip("slapd is not installed (Debian package slapd; `make system-deps` installs it)")
    (tmp_path / "db").mkdir()
    password = secrets.token_hex(16)
    root = f"cn=admin,{BASE_DN}"
    conf = tmp_path / "slapd.conf"
    conf.write_text(SLAPD_CONF.format(dir=tmp_path, base=BASE_DN, root=root, password=password))
    port = free_port()
    url = f"ldap://127.0.0.1:{port}/"
    process = subprocess.Popen(
        [binary, "-f", str(conf), "-h", url, "-d", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield Slapd(url=url, port=port, base_dn=BASE_DN, root_dn=root, password=password)
    finally:
        stop(process)


@pytest.fixture
def qbittorrent(tmp_path: Path) -> Iterator[QBittorrent]:
    """A fresh qbittorrent-nox with a throwaway profile; Web UI on loopback, default login."""
    binary = shutil.which("qbittorrent-nox")
    if binary is None:
        pytest.skip("qbittorrent-nox is not installed (Debian package qbittorrent-nox; "
                    "`make system-deps` installs it)")
    profile = tmp_path / "profile"
    config = profile / "qBittorrent" / "config"
    config.mkdir(parents=True)
    save = tmp_path / "downloads"
    save.mkdir()
    port = free_port()
    (config / "qBittorrent.conf").write_text(
        QBT_CONF.format(port=port, save=save, torrent_port=free_port())
    )
    process = subprocess.Popen(
        [binary, f"--profile={profile}", f"--webui-port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    try:
        wait_for_port(port, process)
        yield QBittorrent(url=f"http://127.0.0.1:{port}", port=port, save_path=save)
    finally:
        stop(process)
