"""motionxfer: human video motion transfer (Everybody Dance Now, done properly).

The library is usable from Python; the `motionxfer` command is a thin layer over it.
"""

__version__ = "0.1.0"
