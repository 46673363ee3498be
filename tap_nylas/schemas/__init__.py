"""JSON schemas of the streams, one `<stream>.json` each, from the Nylas OpenAPI spec."""
