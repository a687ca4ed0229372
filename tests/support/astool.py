"""This checkout's claims-dc-backup, runnable by the postgres user, as a host's wrapper is.

PostgreSQL runs archive_command and restore_command as its own user, which may not read this
checkout or its virtualenv (a clone in a 0700 directory, an interpreter under /root). So the
tool's package and the third-party modules it imports are copied to a directory postgres can
read, and Debian's /usr/bin/python3 (the same 3.11 ABI) runs them there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
_LIST_IMPORTS = """
import json, site, sys
import ops.backup
roots = site.getsitepackages()
found = set()
for module in list(sys.modules.values()):
    f = getattr(module, "__file__", None) or ""
    for root in roots:
        if f.startswith(root + "/"):
            top = f[len(root) + 1:].split("/")[0]
            if not top.startswith("__editable__"):
                found.add((root, top))
print(json.dumps(sorted(found)))
"""


def runnable_copy() -> Path:
    """A new directory (0755, removed by the caller) holding `ops` and what it imports."""
    lib = Path(tempfile.mkdtemp(prefix="claims-dc-tool-"))
    os.chmod(lib, 0o755)
    out = subprocess.run([sys.executable, "-c", _LIST_IMPORTS], capture_output=True, text=True,
                         check=True, cwd=REPO, timeout=120).stdout  # fmt: skip
    for root, top in json.loads(out):
        src = Path(root) / top
        if src.is_dir():
            shutil.copytree(src, lib / top, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, lib / top)
    shutil.copytree(REPO / "ops", lib / "ops", ignore=shutil.ignore_patterns("__pycache__"))
    for path in (lib, *lib.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return lib


def write_wrapper(path: Path, lib: Path, config: Path) -> None:
    """What the role's /usr/local/sbin/claims-dc-backup is, for this copy and settings."""
    path.write_text(
        "#!/bin/sh\n"
        f"CLAIMS_DC_BACKUP_COMMAND={path}\nexport CLAIMS_DC_BACKUP_COMMAND\n"
        f'PYTHONPATH={lib} exec {SYSTEM_PYTHON} -m ops.backup --config {config} "$@"\n'
    )
    path.chmod(0o755)
