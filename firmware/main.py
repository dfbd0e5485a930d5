"""Boot: Ctrl-C off before anything else, then the token (locked: never the REPL).

Usage: deployed as /main.py beside /board.py; MicroPython runs it at power-up.
"""

try:
    import micropython

    micropython.kbd_intr(-1)
except (ImportError, AttributeError):
    pass

import app

app.boot()
