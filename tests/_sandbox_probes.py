"""Code that a hostile code node runs against the sandbox, shared by the integration and e2e tests.

- `SCAN_OWN_MEMORY`: reads every readable anonymous region of its own process
  (`/proc/self/maps`, then `/proc/self/mem`, after making itself dumpable again,
  as any code may) and returns the markers (`lfmark` + 32 hex digits) it finds.
  Reading through `/proc/self/mem` turns an address that vanished meanwhile into
  an `OSError` instead of a crash. The pattern is built at run time, so the
  code's own source never holds a whole marker.
- `LEAVE_MARKERS`: keeps a marker from its input item, returns a second one
  derived from it (a result that passed back out), and names a file after a
  third (the work directory is emptied between requests: by whom matters).
- `UNSHARE_USER_NAMESPACE`: `os.unshare(os.CLONE_NEWUSER)`, through ctypes where
  the interpreter is older than 3.12 (which added `os.unshare`).
"""

from __future__ import annotations

import secrets

__all__ = ["LEAVE_MARKERS", "SCAN_OWN_MEMORY", "UNSHARE_USER_NAMESPACE", "derived", "marker"]

SCAN_OWN_MEMORY = r"""
import ctypes, os, re
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/self/mem opens again
pattern = re.compile(b"lf" + b"mark" + b"[0-9a-f]{32}")
found = set()
memory = os.open("/proc/self/mem", os.O_RDONLY)
with open("/proc/self/maps") as maps:
    regions = [line.split() for line in maps]
for fields in regions:
    start, end = (int(part, 16) for part in fields[0].split("-"))
    if not fields[1].startswith("r") or (len(fields) > 5 and fields[5].startswith("/")):
        continue  # unreadable, or a file's mapping (the interpreter's code, not data)
    for at in range(start, end, 1 << 20):
        try:
            chunk = os.pread(memory, min((1 << 20) + 64, end - at), at)
        except OSError:
            continue
        found.update(match.decode() for match in pattern.findall(chunk))
return [{"found": sorted(found)}]
"""

LEAVE_MARKERS = r"""
mark = items[0]["marker"]
open(mark[:6] + mark[7:] + "0", "w").close()
token = mark[:6] + mark[6:][::-1]
return [{"secret": token}]
"""

UNSHARE_USER_NAMESPACE = r"""
import ctypes, os
CLONE_NEWUSER = 0x10000000
if hasattr(os, "unshare"):
    os.unshare(CLONE_NEWUSER)
else:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
return [{"unshared": True}]
"""


def marker() -> str:
    """A fresh marker: `lfmark` and 32 random hex digits."""
    return "lfmark" + secrets.token_hex(16)


def derived(mark: str) -> tuple[str, str]:
    """The markers `LEAVE_MARKERS` makes from `mark`: its result's, and its file's name."""
    return mark[:6] + mark[6:][::-1], mark[:6] + mark[7:] + "0"
