"""The local view: the dashboards of `dashboards/`, drawn by the worker that owns the store.

`macros.py` (the plugin's macros, bound parameters), `timerange.py` (Grafana ranges), `panels.py`
(request → panel query → JSON), `auth.py` (loopback or token), `server.py` (aiohttp), `static/`
(the pages and the vendored ECharts).
"""
