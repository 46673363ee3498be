"""`python -m tap_nylas` runs the tap's command line."""

from tap_nylas.tap import TapNylas

TapNylas.cli()
