"""The data dir is its owner's alone: it holds the embedded Redis's append-only file (customer emails),
its password, the webhook secret, the console's keys, beat's schedule and the metrics files.

Every ``crossfill`` command sets :data:`PRIVATE_UMASK` first (``crossfill/cli``), so what it and the
processes it starts create is private from the start; :func:`keep_private` tightens what an older
crossfill, or a process started some other way, left readable.
"""
from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077  #: files and directories a crossfill process creates are its owner's alone
PRIVATE_DIR_MODE = 0o700  #: the data dir and the directories in it
PRIVATE_FILE_MODE = 0o600  #: every file in the data dir


def keep_private(data_dir: Path) -> None:
    """Make *data_dir* its owner's alone: the directory and those in it ``0700``, every file ``0600``.

    New files are private by the umask (:data:`PRIVATE_UMASK`, set at the CLI's edge); this tightens
    what an older crossfill or another umask left readable. Symbolic links are left alone.
    """
    data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(data_dir, PRIVATE_DIR_MODE)
    for root, directories, files in os.walk(data_dir):
        for names, mode in ((directories, PRIVATE_DIR_MODE), (files, PRIVATE_FILE_MODE)):
            for name in names:
                path = os.path.join(root, name)
                try:
                    if not os.path.islink(path):
                        os.chmod(path, mode)
                except FileNotFoundError:  # a temporary file or metrics dir another process just removed
                    pass
