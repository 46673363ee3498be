"""The catalog decides which fields a record carries and which ones Nylas is asked for.

Worked out once per stream from the catalog's schema and selection (the same inputs the
SDK uses for the SCHEMA message), so records always match the SCHEMA the tap sent and a
deselected `body` is never downloaded.
"""

from __future__ import annotations

import typing as t
from functools import cached_property

from tap_nylas.normalize import derived_fields, normalizer
from tap_nylas.sdk import get_selected_schema

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from singer_sdk import Stream
    from singer_sdk.helpers.types import Context

    _Stream = Stream
else:
    _Stream = object

Pruner = t.Callable[[t.Any], t.Any]


def _types(node: dict) -> set[str]:
    kind = node.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def _pruner(emitted: dict, bundled: dict) -> Pruner | None:
    """A function dropping nested fields the catalog left out; None when nothing is cut.

    Only objects (and arrays of objects) whose catalog schema lists fewer properties
    than the tap's own schema get one, so the usual record costs nothing here.
    """
    if "array" in _types(emitted) and isinstance(emitted.get("items"), dict):
        inner = _pruner(emitted["items"], bundled.get("items") or {})
        if inner is None:
            return None
        return lambda value: [inner(v) for v in value] if isinstance(value, list) else value
    keep_schema = emitted.get("properties")
    if "object" not in _types(emitted) or not isinstance(keep_schema, dict):
        return None  # a free-form object in the catalog: keep whatever Nylas sends
    known = bundled.get("properties") or {}
    subs = {
        name: sub
        for name, node in keep_schema.items()
        if (sub := _pruner(node, known.get(name, {})))
    }
    keep = frozenset(keep_schema)
    if not subs and keep.issuperset(known):
        return None

    def prune(value: t.Any) -> t.Any:
        if not isinstance(value, dict):
            return value
        out = {k: v for k, v in value.items() if k in keep}
        for name, sub in subs.items():
            if out.get(name) is not None:
                out[name] = sub(out[name])
        return out

    return prune


class FieldSelection:
    """One stream's fields: what its records carry and what `select=` asks for."""

    def __init__(self, stream: CatalogFieldsMixin) -> None:
        """Read the stream's catalog schema, selection mask and bundled schema once."""
        bundled: dict = stream.schema
        # Exactly the schema of the SCHEMA message (the SDK's mapper builds it this way).
        emitted_schema = get_selected_schema(stream.name, stream.effective_schema, stream.mask)
        props: dict = emitted_schema.get("properties") or {}
        known: dict = bundled["properties"]
        self.replication_key = stream.replication_key
        # Keys and the replication key always: targets merge and bookmark on them.
        always = {*(stream.primary_keys or ()), *filter(None, [self.replication_key])}
        # Only fields the tap knows: an unknown field has no vetted type to conform to.
        self.fields = frozenset(name for name in props if name in known) | always
        self.nested = {
            name: sub
            for name in self.fields
            if name in props and (sub := _pruner(props[name], known.get(name, {})))
        }
        derived = derived_fields(stream.name)
        wanted = {derived.get(name, name) for name in self.fields} | always
        wanted |= set(stream.required_fields)
        self.request: tuple[str, ...] | None = None
        if stream.supports_select and not wanted.issuperset(known.keys() - derived.keys()):
            self.request = tuple(sorted(wanted))

    def project(self, row: dict) -> dict:
        """The record cut to the catalog's fields (the same dict when nothing is cut)."""
        fields = self.fields
        out = row if fields.issuperset(row) else {k: v for k, v in row.items() if k in fields}
        for name, prune in self.nested.items():
            if out.get(name) is not None:
                out[name] = prune(out[name])
        # Nylas may leave any field out (application-level field selection); the SDK's
        # bookmark code indexes the replication key.
        if self.replication_key and self.replication_key not in out:
            out[self.replication_key] = None
        return out


class CatalogFieldsMixin(_Stream):
    """For NylasStream: records shaped by the catalog, `select=` built from it."""

    #: Whether the endpoint accepts `select=<top-level fields>`.
    supports_select: t.ClassVar[bool] = False
    #: Fields the tap itself reads from every record, selected or not.
    required_fields: t.ClassVar[tuple[str, ...]] = ()

    @cached_property
    def field_selection(self) -> FieldSelection:
        """Worked out on first use, once the catalog is applied."""
        return FieldSelection(self)

    @cached_property
    def _normalize(self) -> Callable[[dict], None] | None:
        # `is True`: only the boolean the setting's schema allows keeps secrets.
        keep = self.config.get("keep_secret_settings") is True
        return normalizer(self.name, keep_secret_settings=keep)

    def shape_record(self, row: dict, context: Context | None = None) -> dict:
        """Fix provider type variants, then keep only the catalog's fields."""
        if self._normalize is not None:
            self._normalize(row)
        return self.field_selection.project(row)

    def select_params(self) -> dict[str, str]:
        """`select=` for the request, or nothing when every field is wanted."""
        request = self.field_selection.request
        return {"select": ",".join(request)} if request else {}
