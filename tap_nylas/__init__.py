"""tap-nylas: a Singer tap for the Nylas v3 API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tap-nylas")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
