"""The code screen of the token: QR, digits in fours, countdown bar (error screens: screens.py).

Usage: u = ui.UI(display, 128, 64, 30); u.code(code, 17, wake); display.show(); u.countdown(16)
"""

# font and qr are imported where they draw: a tick (the countdown) needs neither,
# so the app can drop them from the heap between codes.


def __getattr__(name):
    # ui.SCREENS (the host's cpyui lists them) lives in screens.py, loaded on use.
    if name == "SCREENS":
        from screens import SCREENS

        return SCREENS
    raise AttributeError(name)


class UI:
    def __init__(self, fb, width, height, period):
        # period: seconds per code step (paycode.PERIOD, passed in so the
        # screen never loads paycode), the full length of the countdown bar
        self.fb = fb
        self.period = period
        self.w = width
        self.h = height
        # Countdown bar interior (x, y, w, h) and its lit width; None off the code screen.
        self._bar = None
        self._lit = 0
        self._qr = None  # reused QR object: re-encoding allocates nothing

    def shift(self, wake):
        # Burn-in: move the whole layout one pixel between wakes, round a 2x2 square.
        i = wake & 3
        return (1 if i == 1 or i == 2 else 0), (1 if i >= 2 else 0)

    def code(self, code, remaining, wake=0, between=None):
        # The whole code screen. code: the 18 digits; remaining: seconds left in the step.
        # between(): called after the QR is drawn, once this frame holds no reference
        # to qr (the app unloads it there, so qr and font are never in RAM together).
        fb = self.fb
        fb.fill(0)
        dx, dy = self.shift(wake)
        if self.h >= 64:
            import qr

            # Version 1 is 21 modules; at 2 px with a 4-module lit quiet zone: 58 x 58.
            self._qr = qr.encode(code, 1, "M", None, self._qr)
            qr.draw(self._qr, fb, 1 + dx, 3 + dy, 2, 4)
            if between is not None:
                self._qr = qr = None
                between()
            # Digits 5x14 beside it: "1234 5678" / "9012 3456" / "78".
            x = 63 + dx
            y = 2 + dy
            for i in (0, 8, 16):
                self._groups(code, i, min(i + 8, 18), x, y, 1, 2, 6, 4)
                y += 17
            # Bar outline rows 56..60 (+dy): the bar stays inside page 7.
            self._frame(x, 56 + dy, 53, 5)
        else:
            # 128x32: digits 10x14; "1234 5678" + bar, then "9012 3456 78".
            x = 1 + dx
            self._groups(code, 0, 8, x, 1 + dy, 2, 2, 11, 6)
            self._groups(code, 8, 18, x, 17 + dy, 2, 2, 11, 6)
            self._frame(97 + dx, 4 + dy, 29, 7)
        self.countdown(remaining)

    def release(self):
        # Forget the reused QR object (and with it the qr module's code) between codes.
        self._qr = None

    def _groups(self, code, a, b, x, y, sx, sy, adv, gap):
        # Digits code[a:b] in groups of four from the left of the code.
        import font

        for i in range(a, b):
            font.char(self.fb, code[i], x, y, 1, sx, sy)
            x += adv
            if i % 4 == 3:
                x += gap

    def _frame(self, x, y, w, h):
        fb = self.fb
        fb.hline(x, y, w, 1)
        fb.hline(x, y + h - 1, w, 1)
        fb.vline(x, y, h, 1)
        fb.vline(x + w - 1, y, h, 1)
        self._bar = (x + 2, y + 2, w - 4, h - 4)
        self._lit = 0

    def countdown(self, remaining):
        # Shrink the bar to remaining/period of its width; touches only the changed columns.
        if self._bar is None:
            return
        x, y, w, h = self._bar
        if remaining < 0:
            remaining = 0
        p = self.period
        lit = (remaining * w + p - 1) // p
        if lit > w:
            lit = w
        if lit < self._lit:
            self.fb.fill_rect(x + lit, y, self._lit - lit, h, 0)
        elif lit > self._lit:
            self.fb.fill_rect(x + self._lit, y, lit - self._lit, h, 1)
        self._lit = lit

    def message(self, kind, wake=0, note=None):
        # An error screen (screens.py, loaded only when one is shown).
        import screens

        self._bar = None
        screens.draw(self.fb, self.w, self.h, kind, self.shift(wake), note)
