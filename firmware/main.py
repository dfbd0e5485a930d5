"""Boot: Ctrl-C off before anything else, then the token (locked: never the REPL).

Usage: deployed as /main.py beside /board.py; MicroPython runs it at power-up (the
release image freezes it, image/manifest.py).
"""

try:
    import micropython

    micropython.kbd_intr(-1)
    # MicroPython raises a pending exception at a jump: a Ctrl-C that arrived before the
    # line above (after the script started) is raised by this loop, inside the try.
    for _ in (0, 1):
        pass
except KeyboardInterrupt:
    import micropython

    micropython.kbd_intr(-1)
except (ImportError, AttributeError):
    pass

import app

app.boot()
