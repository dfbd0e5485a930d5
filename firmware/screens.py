"""The error screens, shown instead of a wrong code; loaded only when one is drawn.

Usage: screens.draw(fb, 128, 64, "sync", (0, 0), "ID 12345678"); fb.show()
"""

import font

# kind -> (title, detail lines); text uses font.CHARS only.
SCREENS = {
    "provision": ("PROVISION ME", ("NO SECRET YET", "VISIT A STATION")),
    "sync": ("SYNC CLOCK", ("CLOCK NOT TRUSTED", "VISIT A STATION")),
    "back": ("CLOCK ERROR", ("TIME WENT BACK", "CODE REFUSED")),
    "corrupt": ("CONFIG CORRUPT", ("CODE REFUSED", "SERVICE DESK")),
}


def draw(fb, w, h, kind, shift, note=None):
    # Lit text on dark, centred. shift: the burn-in (dx, dy); note: an extra line.
    title, lines = SCREENS[kind]
    dx, dy = shift
    fb.fill(0)
    _center(fb, w, title, 2 + dy, dx, 2)
    y = 22 + dy if h >= 64 else 19 + dy
    for line in lines:
        if y + 7 > h:
            break
        _center(fb, w, line, y, dx, 1)
        y += 11
    if note and y + 7 <= h:
        _center(fb, w, note, y + 2, dx, 1)


def _center(fb, w, s, y, dx, sy):
    x = (w - font.width(s)) // 2
    font.text(fb, s, x + dx, y, 1, 1, sy)
