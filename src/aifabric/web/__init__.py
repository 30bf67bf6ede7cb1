"""The local web app and REST API (``aifabric ui``): FastAPI + uvicorn, imported only here.

- :mod:`aifabric.web.safety`: what the server refuses (non-loopback binding without
  ``--host``, oversized bodies, files outside the shipped traces and examples);
- :mod:`aifabric.web.jobs`: every run in its own spawned process, with a time limit and
  cancellation;
- :mod:`aifabric.web.app`: the ``/api/v1`` endpoints and the pages.
"""
