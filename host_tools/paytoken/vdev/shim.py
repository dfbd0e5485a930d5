"""Boot shim of a virtual token: runs INSIDE MicroPython (the unix port), not CPython.

Usage (by the supervisor): PAYTOKEN_FLASH=DIR PAYTOKEN_BOOT=full micropython -i -c "$(cat shim.py)"
It mounts the flash folder as ``/`` behind a path-normalising wrapper, then boots like a
board: ``boot.py``, then ``main.py`` (not after a soft reboot in raw mode), then the
REPL (the ``-i`` flag). PAYTOKEN_BOOT is ``full``, ``raw`` or ``locked``.
"""

import os
import sys


class _Dir:
    # A VFS object (the vfs layer calls these methods by name) for the flash folder.
    # Every path is normalised and clamped to the folder before it reaches the OS,
    # so `..` and absolute paths cannot leave it. The inner VfsPosix has no root of
    # its own: VfsPosix(root).rename builds both paths in one buffer and renames the
    # new name onto itself (ENOENT), which would break every temp+rename write.
    def __init__(self, root, hw):
        self._root = root.rstrip("/")
        # the chip models open the hardware folder by its host path: let exactly
        # that subtree through (without a mount, which listdir("/") would show)
        self._hw = hw.rstrip("/") if hw else None
        self._v = os.VfsPosix()
        self._cwd = "/"

    def _rel(self, path):
        if not path.startswith("/"):
            path = self._cwd + "/" + path
        parts = []
        for seg in path.split("/"):
            if seg == "" or seg == ".":
                continue
            if seg == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(seg)
        return "/" + "/".join(parts)

    def _p(self, path):
        rel = self._rel(path)
        hw = self._hw
        if hw and (rel == hw or rel.startswith(hw + "/")):
            return rel
        return self._root + rel

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        return self._v.open(self._p(path), mode)

    def ilistdir(self, path):
        return self._v.ilistdir(self._p(path))

    def stat(self, path):
        return self._v.stat(self._p(path))

    def statvfs(self, path):
        return self._v.statvfs(self._p(path))

    def mkdir(self, path):
        return self._v.mkdir(self._p(path))

    def rmdir(self, path):
        return self._v.rmdir(self._p(path))

    def remove(self, path):
        return self._v.remove(self._p(path))

    def rename(self, old, new):
        return self._v.rename(self._p(old), self._p(new))

    def chdir(self, path):
        rel = self._rel(path)
        if not self._v.stat(self._root + rel)[0] & 0x4000:
            raise OSError(20)  # ENOTDIR
        self._cwd = rel

    def getcwd(self):
        return self._cwd


def _exists(name):
    try:
        os.stat(name)
        return True
    except OSError:
        return False


def _run(name):
    # -> True when the file ran to its end
    if not _exists(name):
        return False
    try:
        with open(name) as f:
            src = f.read()
        exec(src, {"__name__": "__main__", "__file__": name})
        return True
    except SystemExit:
        raise
    except BaseException as e:  # as on a board: print it, then go on to the REPL
        sys.print_exception(e)
        return False


class _Machine:
    # The unix port's `machine` has no reset() and no RTC, and is read-only; a board
    # has both. This stands in for it: everything else comes from the real module.
    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def reset(self):
        sys.exit(66)  # the supervisor's hard-reset status: a full boot follows

    def RTC(self, *args):
        import board  # the sim board's MCU RTC model (after a deploy)

        return board.mcu_rtc()


def _boot():
    # No Ctrl-C until "/" is the flash folder: the supervisor holds the client's
    # input until the boot marker below, and SIGINT is ignored meanwhile.
    import micropython

    micropython.kbd_intr(-1)
    root = os.getenv("PAYTOKEN_FLASH")
    if not root:
        raise SystemExit("PAYTOKEN_FLASH unset")
    sys.modules["machine"] = _Machine(__import__("machine"))
    os.umount("/")
    os.mount(_Dir(root, os.getenv("PAYTOKEN_HW")), "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]
    mode = os.getenv("PAYTOKEN_BOOT") or "full"
    # a locked (production) image: no Ctrl-C from power-up; the REPL only when
    # main.py returns (an authenticated UNLOCK), never when it is missing or fails.
    # Like a frozen _boot.py, Ctrl-C also stays off while boot.py and main.py start:
    # the firmware turns it on itself once it knows the token is not locked. Turning
    # it on here would leave a window between this line and main.py's first
    # statement in which a Ctrl-C drops even a locked token into the REPL.
    if mode != "locked" and (mode == "raw" or not _exists("main.py")):
        micropython.kbd_intr(3)
    sys.stdout.write("\x00paytoken-booted\x00")  # the supervisor strips it
    _run("boot.py")
    if mode != "raw" and not _run("main.py") and mode == "locked":
        raise SystemExit(1)


_boot()
