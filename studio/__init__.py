"""The web studio: ``python cli.py serve``. A FastAPI app (``app``), a bounded job queue whose
workers each hold one engine (``jobs``), a SQLite record of every job (``store``), the checks on
what a request sends (``inputs``) and one static page (``static/``). The engine never imports it."""
