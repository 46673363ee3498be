"""The tap's side of the seam: every final or private `Tap` member the tap touches."""

from __future__ import annotations

import contextlib
import sys
import typing as t

from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.plugin_base import JSONSchemaValidator, _ConfigInput
from typing_extensions import override

from tap_nylas import inputs
from tap_nylas.errors import TapNylasError

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator
    from types import FrameType

    import click
    from singer_sdk import Stream
    from singer_sdk.helpers._state import StateWriter


@contextlib.contextmanager
def user_errors(logger: logging.Logger) -> Iterator[None]:
    """One ERROR line and exit 1 for a problem the user can fix, never a traceback."""
    try:
        yield
    except ConfigValidationError as error:
        logger.error("Invalid config: %s", "; ".join(error.errors) or error)
        sys.exit(1)
    except TapNylasError as error:
        logger.error("%s", error)
        sys.exit(1)


class TapSeam(Tap):
    """The SDK's tap, with hooks where the tap changes final or private behaviour."""

    #: Set by a dry run (`--test`): read one partition at a time.
    dry_run = False

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """The SDK's tap, with the tap's own STATE writer."""
        super().__init__(*args, **kwargs)
        # SDK: `Tap.__init__` builds a plain `StateWriter` in the private `_state_writer`,
        # which `sync_all` writes through after each stream.
        self._state_writer = self.make_state_writer()

    def make_state_writer(self) -> StateWriter:
        """Hook: the STATE writer (the SDK's by default)."""
        return self._state_writer

    def order_streams(self, streams: list[Stream]) -> list[Stream]:
        """Hook: the order streams are synced in (the SDK's, by name, by default)."""
        return streams

    def sync_ended(self) -> None:
        """Hook: after a sync or a dry run, whether it raised or not."""

    def sync_succeeded(self) -> None:
        """Hook: after a sync that raised nothing; may raise to fail the run."""

    def stop_requested(self, signum: int) -> None:
        """Hook: a termination signal (the SDK exits 0 at once)."""
        sys.exit(0)

    # SDK: `load_streams` is final; it orders streams by name only.
    @override  # type: ignore[misc]  # final in the SDK
    def load_streams(self) -> list[Stream]:
        return self.order_streams(super().load_streams())

    # SDK: `sync_all` is final; the tap flushes what it held back and fails the run when
    # partitions failed (the SDK exits 0 once every stream ran).
    @override  # type: ignore[misc]  # final in the SDK
    def sync_all(self) -> None:
        try:
            super().sync_all()
        finally:
            self.sync_ended()
        self.sync_succeeded()

    # SDK: `run_sync_dry_run` (`--test`) is final; it needs the same flush at the end.
    @override  # type: ignore[misc]  # final in the SDK
    def run_sync_dry_run(self, *args: t.Any, **kwargs: t.Any) -> bool:
        self.dry_run = True
        try:
            return super().run_sync_dry_run(*args, **kwargs)
        finally:
            self.sync_ended()

    # SDK: `_handle_termination` (the signal handler) logs and exits 0, so an
    # orchestrator cannot tell a stopped run from a finished one.
    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested(signum)

    # SDK: `_validate_config` validates the raw config and quotes the offending value in
    # its message (for `api_key`, the key). Here the config is normalised first and
    # every message redacted; the SDK's validator still fills in the defaults.
    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        self._config = inputs.normalise_config(self._config)
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        secrets = inputs.secret_values(self._config)
        errors = [
            inputs.redact(inputs.describe_error(error), secrets)
            for error in JSONSchemaValidator(schema).iter_errors(self._config)
        ]
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors, schema=schema)
        if errors:
            self.logger.warning("Config validation failed")
        return errors

    # SDK: `cb_config` reads `--config` files into the private `_ConfigInput`, with a
    # traceback for a missing, empty or non-JSON file; here each is one line.
    @override
    @classmethod
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> t.Any:
        with user_errors(cls.logger):
            config, parse_env = inputs.read_config_files(value)
        return _ConfigInput(config=config, parse_env=parse_env)
