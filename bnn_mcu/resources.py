"""Locate the data folders that ship inside the wheel (templates/, firmware/)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def _package_dir(package: str) -> Path:
    # Installed wheel and editable install both map these to real folders on disk.
    return Path(str(importlib.resources.files(package)))


def templates_dir() -> Path:
    return _package_dir("bnn_mcu.templates")


def firmware_dir() -> Path:
    return _package_dir("bnn_mcu.firmware")
