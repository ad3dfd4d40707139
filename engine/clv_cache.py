"""Where pytensor keeps the compiled code of the CLV models: a folder under var/ from the
settings ([clv] compile_dir), so the compilation is paid once per machine, not once per run.
Set at the entry points (the CLI), never at the import of an engine module; light on purpose
(no pytensor import). A base_compiledir already in PYTENSOR_FLAGS wins, as environment
variables win over config.toml elsewhere."""

from __future__ import annotations

import os
import sys
from pathlib import Path

FLAG = "base_compiledir"


def use_compile_cache(directory: Path) -> None:
    """pytensor reads PYTENSOR_FLAGS when first imported (here and in child processes); a
    process that already imported it gets its config changed instead."""
    flags = [flag for flag in os.environ.get("PYTENSOR_FLAGS", "").split(",") if flag]
    if any(flag.startswith(f"{FLAG}=") for flag in flags):
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # an unwritable folder: pytensor falls back to its own default (~/.pytensor)
    if "pytensor" in sys.modules:
        import pytensor

        pytensor.config.base_compiledir = directory  # type: ignore[assignment]
        return
    os.environ["PYTENSOR_FLAGS"] = ",".join([*flags, f"{FLAG}={directory}"])
