"""A catalog opened inside a pyfakefs test must not break real-disk catalogs in later tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

FAKE_FS_TEST = textwrap.dedent(
    """
    from pathlib import Path

    from modelstore.registry import Registry


    def test_a_registry_in_the_fake_filesystem(fs):
        Path("/data").mkdir()
        Path("/data/model.pkl").write_bytes(b"fake")
        with Registry("/home-in-fake-fs", db_url="sqlite://") as registry:
            registry.register("/data/model.pkl", "m")
            registry.deploy(["m:1"], "/app")
    """
)
REAL_DISK_TEST = textwrap.dedent(
    """
    from modelstore.registry import Registry


    def test_a_registry_on_the_real_disk(tmp_path):
        (tmp_path / "model.pkl").write_bytes(b"real")
        with Registry(tmp_path / "home") as registry:
            assert registry.register(tmp_path / "model.pkl", "m").version == 1
    """
)


def test_a_real_disk_catalog_opens_after_a_pyfakefs_test_opened_the_first_catalog(
    tmp_path: Path,
) -> None:
    # A fresh pytest process, so the first catalog of the process is the pyfakefs one.
    (tmp_path / "test_1_fake.py").write_text(FAKE_FS_TEST)
    (tmp_path / "test_2_real.py").write_text(REAL_DISK_TEST)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "test_1_fake.py",
            "test_2_real.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout
