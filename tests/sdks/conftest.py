"""Fixtures for the SDK tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from sdk_conformance import SDKS


@pytest.fixture(scope="session")
def java_build() -> None:
    """Compiles the Java SDK once per session (build.sh without tests) when a JDK is present."""
    if shutil.which("javac") and (SDKS / "java" / "build.sh").is_file():
        proc = subprocess.run(["bash", str(SDKS / "java" / "build.sh")], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"sdks/java/build.sh failed:\n{proc.stdout}\n{proc.stderr}"
