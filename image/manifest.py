# ruff: noqa: F821  (module, freeze: the names MicroPython's tools/manifestfile.py defines)
# The token's release image for the rp2 port: MicroPython's rp2 module, the frozen
# boot path (_boot.py, boot.py from this folder, main.py from firmware/), and the
# token's firmware, paycode and board, compiled at opt=3 (no asserts, no line numbers).
# Built by `make firmware` (paytoken.rp2image), which stages the device's files of one
# board, exactly as `paytoken deploy` would copy them, in $PAYTOKEN_IMAGE_TREE:
#   main.py, board.py (boards/<name>.py), app, proto, ..., hostapi (the station's and
#   the desk's calls), paycode/, fam_rp2040, fwimage.py (the build's id). No other chip
#   family's code is in it.
import os

module("rp2.py", base_path="$(PORT_DIR)/modules")  # rp2.Flash, which _boot.py mounts
module("_boot.py", opt=3)
module("boot.py", opt=3)
tree = os.environ["PAYTOKEN_IMAGE_TREE"]
freeze(tree, opt=3)  # the firmware: main.py, board.py, fwimage.py, app, hostapi, ..., paycode/
