# The button: the host appends one byte to <hw>/button per press; the device
# compares the file size with the last size it has seen.
from . import store


class Button:
    def __init__(self, folder):
        self.folder = folder
        self._seen = store.size(folder, "button")  # presses while off do not count

    def value(self):
        # 1 while a press is waiting to be taken by pressed().
        return 1 if store.size(self.folder, "button") > self._seen else 0

    def pressed(self):
        # True once per batch of presses since the last call (an edge).
        n = store.size(self.folder, "button")
        if n > self._seen:
            self._seen = n
            return True
        return False
