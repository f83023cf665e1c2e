"""CLI commands: dashboard (registered by yidai.cli)."""

from __future__ import annotations

import typer

from yidai.core.errors import YidaiError


def streamlit_argv(port: int, host: str) -> list[str]:
    """The ``streamlit run`` command line of the dashboards: headless, no telemetry."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from pathlib import Path

    # deferred: loaded when the command runs, so `yidai --help` starts fast
    import dashboards

    app = Path(dashboards.__file__).resolve().parent / "app.py"
    return [
        "streamlit",
        "run",
        str(app),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--global.developmentMode=false",
        "--client.toolbarMode=minimal",
    ]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""

    @app.command()
    def dashboard(
        port: int = typer.Option(8501, "--port", "-p", help="TCP port to listen on."),
        host: str = typer.Option(
            "127.0.0.1", "--host", help="Address to bind (default: loopback only)."
        ),
    ) -> None:
        """Start the risk analysts' dashboards (Streamlit, headless) on HOST:PORT."""
        if not 0 < port < 65536:
            raise YidaiError(f"--port {port} is not a TCP port (1-65535)")
        try:
            # deferred: loaded when the command runs, so `yidai --help` starts fast
            from streamlit.web import cli as stcli
        except ModuleNotFoundError as exc:
            raise YidaiError(
                "streamlit is not installed; install the dashboards extra (uv sync --all-extras)"
            ) from exc
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        import sys

        typer.echo(f"Yidai dashboards on http://{host}:{port}/")
        sys.argv = streamlit_argv(port, host)
        stcli.main()
