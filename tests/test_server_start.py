"""What `owlat serve` / `owlat dev` do once the server listens (`cli/server.py`)."""

from __future__ import annotations

import asyncio
import gc

from owlat.cli.server import _serve_with_banner


class _Server:
    """As much of `uvicorn.Server` as `_serve_with_banner` uses: it starts, then ends."""

    started = False

    async def serve(self, sockets: list[object]) -> None:
        self.started = True
        self.frozen_at_start = gc.get_freeze_count()
        await asyncio.sleep(0.1)


def test_start_up_objects_are_left_out_of_full_collections(capsys) -> None:
    gc.unfreeze()
    server = _Server()
    try:
        asyncio.run(_serve_with_banner(server, [], "listening"))  # type: ignore[arg-type]
        assert server.frozen_at_start == 0
        assert gc.get_freeze_count() > 0  # frozen once the server had started
        assert capsys.readouterr().out == "listening\n"
    finally:
        gc.unfreeze()
