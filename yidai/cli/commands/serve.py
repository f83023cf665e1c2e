"""CLI commands: ``serve`` (the scoring service) and ``keys`` (API keys of calling modules)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``keys`` to the root app."""

    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
        port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
        workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
        access_log: bool = typer.Option(False, help="Log every request line (uvicorn)."),
    ) -> None:
        """Run the scoring service (FastAPI + uvicorn); state lives in the audit store."""
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        import uvicorn

        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from scoring_service.protocol import PROTOCOL
        from yidai.core.settings import get_settings

        settings = get_settings()
        typer.echo(
            f"Yidai scoring service on http://{host}:{port} ({workers} worker(s)); "
            f"audit store {settings.audit_url.split('@')[-1]}; docs at /docs"
        )
        uvicorn.run(
            "scoring_service.main:serving_app",  # a lean worker (no scikit-learn, no MLflow)
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=access_log,
            log_level="info",
            http=PROTOCOL,  # closes connections whose request headers come too slowly
            timeout_keep_alive=5,
            limit_concurrency=settings.max_connections,
        )

    keys = typer.Typer(
        help="API keys of the calling modules (stored hashed).", no_args_is_help=True
    )
    app.add_typer(keys, name="keys")

    @keys.command("create")
    def create(
        module: str = typer.Option(..., help="Calling module, e.g. mall_checkout."),
        scopes: str = typer.Option(
            ..., help="Comma-separated scopes, e.g. personal-credit,payment-risk."
        ),
        expires_in_days: int | None = typer.Option(
            None,
            min=1,
            help="Days until the key expires [default: setting api_key_default_expiry_days, 365].",
        ),
        no_expiry: bool = typer.Option(
            False, "--no-expiry", help="The key never expires (revoke it to retire it)."
        ),
    ) -> None:
        """Create a key; it is printed once and only its salted hash is stored."""
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from scoring_service.security import create_key
        from yidai.core.settings import get_settings

        if no_expiry and expires_in_days is not None:
            raise typer.BadParameter("give --expires-in-days or --no-expiry, not both")
        settings = get_settings()
        path = settings.api_keys_file
        assert path is not None
        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        days = None if no_expiry else (expires_in_days or settings.api_key_default_expiry_days)
        key, record = create_key(path, module, wanted, expires_in_days=days)
        typer.echo(key)
        typer.secho(
            f"key {record.key_id} for {module} ({', '.join(sorted(record.scopes))}) stored "
            f"hashed in {path}, expires {record.expires_at or 'never'}; copy it now, it "
            "cannot be shown again",
            err=True,
        )

    @keys.command("revoke")
    def revoke(
        key_id: str = typer.Argument(..., help="Key id, as `yidai keys list` shows."),
    ) -> None:
        """Revoke a key: the service refuses it (401) from its next key-file reload."""
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from scoring_service.security import revoke_key
        from yidai.core.settings import get_settings

        settings = get_settings()
        path = settings.api_keys_file
        assert path is not None
        when = revoke_key(path, key_id)
        typer.echo(
            f"key {key_id} revoked at {when}; the service refuses it within "
            f"{settings.service_reload_seconds:g} s (its key-file reload)"
        )

    @keys.command("list")
    def list_keys() -> None:
        """List key ids, modules, scopes, expiry and state (never the keys)."""
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from scoring_service.security import SCOPES, KeyRing
        from yidai.core.settings import get_settings

        path = get_settings().api_keys_file
        assert path is not None
        ring = KeyRing.load(path)
        if not ring.keys:
            typer.echo(f"no keys in {path}; scopes: {', '.join(SCOPES)}")
        for key in ring.keys.values():
            typer.echo(
                f"{key.key_id}  {key.module:<20} {key.state():<8} "
                f"expires {key.expires_at or 'never':<25} {','.join(sorted(key.scopes))}"
            )
