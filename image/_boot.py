# The release image's first code (frozen; MicroPython runs it at every start, with
# Ctrl-C off and before USB exists): Ctrl-C stays off, the image's modules come
# before any file, and the filesystem (the config) is mounted as the stock
# ports/rp2/modules/_boot.py does. main.py (frozen too) then runs the token.
import micropython

micropython.kbd_intr(-1)  # a soft reset could have left it on

import sys  # noqa: E402  (after Ctrl-C is off)

# Only the frozen modules: no file in the filesystem is ever imported, so none replaces
# the image's code; and a built-in module is found without a file lookup first
# (MicroPython searches sys.path before an extensible built-in such as json or os: a
# littlefs lookup per entry and import: 1.2 ms against 0.2 ms for `import json`, emulated).
sys.path.clear()
sys.path.append(".frozen")

import rp2  # noqa: E402
import vfs  # noqa: E402

# Mount the filesystem, formatting the flash if it holds none (the flash needs the
# programming size aligned to 256 bytes).
bdev = rp2.Flash()
try:
    fs = vfs.VfsLfs2(bdev, progsize=256)
except:  # noqa: E722  (the stock _boot.py: any failure to mount formats)
    vfs.VfsLfs2.mkfs(bdev, progsize=256)
    fs = vfs.VfsLfs2(bdev, progsize=256)
vfs.mount(fs, "/")

del sys, vfs, rp2, bdev, fs, micropython
