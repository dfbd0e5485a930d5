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

try:
    import app

    app.boot()
except Exception as e:
    # A firmware that cannot start (say, an update cut between two files) must not
    # drop to the REPL of a token whose flash holds a config (and so maybe secrets):
    # it waits for a reset instead, Ctrl-C still off. A factory token goes on to it.
    import os

    try:
        os.stat("/paytoken.cfg")
        held = True
    except OSError:
        held = False
    if not held:
        raise e
    import sys
    import time

    sys.stdout.write("ERR firmware broken\n")
    while True:
        time.sleep(1)
