# The release image's boot.py (frozen): it takes the place of any /boot.py in the
# filesystem, so nothing a file holds runs before main.py. Nothing to do here.
