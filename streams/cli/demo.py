"""`promo demo`: the laptop kit's one-command sale."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli.base import NoViewOpt, ViewPortOpt, app, fail, settings_from
from streams.cli.worker import _check_robots, _check_view

DEMO_DATA_DIR = Path(".promo/demo")  # `promo totals` looks here when the default store is not there


# -- demo -----------------------------------------------------------------------------------------
@app.command()
def demo(
    port: Annotated[int, typer.Option(help="broker port")] = 19092,
    web_port: Annotated[int, typer.Option(help="the worker's HTTP port (its JSON API)")] = 6066,
    view_port: ViewPortOpt = None,
    no_view: NoViewOpt = False,
    rate: Annotated[float, typer.Option(help="average events per second")] = 1500.0,
    duration: Annotated[float, typer.Option(help="seconds of simulated traffic (then it idles)")] = 600.0,
    data_dir: Annotated[Path, typer.Option(help="where the embedded store lives")] = DEMO_DATA_DIR,
    once: Annotated[bool, typer.Option(help="print one summary after the traffic and exit (for scripts)")] = False,
) -> None:
    """Broker, worker and simulator together, with a live war-room summary until Ctrl-C.

    The dashboards are drawn at the view's URL (http://127.0.0.1:8080/ unless told otherwise).
    """
    import math

    from streams.kit.demo import run_demo

    # Checked before the broker and the worker start: a bad one was a traceback after (an outside probe).
    if not 0 < duration < math.inf or not 0 < rate < math.inf:
        fail("--duration and --rate must be positive, finite numbers")
    if not 0 < port < 65536 or not 0 < web_port < 65536:
        fail("--port and --web-port must be 1-65535")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".writable"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        fail(f"--data-dir {data_dir}: cannot write there ({exc.strerror or exc})")
    view = settings_from(view_port=0 if no_view else view_port)
    _check_view(view)
    _check_robots()  # the demo's worker runs the detector with the robots of this environment
    try:
        run_demo(port=port, web_port=web_port, rate=rate, duration=duration, data_dir=data_dir, once=once, view=view)
    except KeyboardInterrupt:
        typer.echo("\nstopped")
