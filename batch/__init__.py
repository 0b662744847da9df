"""Many pictures on a Dask cluster: every content in every style, each worker holding one engine.

Uses the engine; the engine never imports this package. Needs the ``cluster`` extra."""
