"""The run page's data (`ui_views.run_page`) as a run finishes while it is read: a run read
finished always comes with every event up to its outcome, so a page that stops listening once
the run is finished has shown all of it."""

from __future__ import annotations

from typing import Any

from runplane_durable import LocalEngine
from runplane_durable.records import RunSpec
from runplane_durable.server.ui_views import run_page
from support.durable import run_async, sqlite_url


class FinishesWhileRead:
    """An engine on which the run finishes right after the page's first read of it."""

    def __init__(self, inner: LocalEngine, session: Any) -> None:
        self.inner = inner
        self.session = session
        self.finished = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _finish_once(self) -> None:
        if not self.finished:
            self.finished = True
            await self.session.finish("completed", final_output={"json": "done"})
            await self.session.close()

    async def get_run(self, run_id: str) -> Any:
        found = await self.inner.get_run(run_id)
        await self._finish_once()
        return found

    async def list_events(self, run_id: str) -> Any:
        found = await self.inner.list_events(run_id)
        await self._finish_once()
        return found


def test_a_run_read_finished_comes_with_its_outcome_on_the_timeline(tmp_path: Any) -> None:
    async def go() -> tuple[Any, list[Any], Any]:
        engine = LocalEngine(sqlite_url(tmp_path))
        try:
            session = await engine.open_run(
                RunSpec("ui-race", "echo", {}, "fp", {}), lease_seconds=30
            )
            racing = FinishesWhileRead(engine, session)
            view, items = await run_page(racing, "ui-race")  # type: ignore[arg-type]
            again, all_items = await run_page(engine, "ui-race")
        finally:
            await engine.dispose()
        return view, items, (again, all_items)

    view, items, (again, all_items) = run_async(go())
    assert again.finished
    assert all_items[-1].title == "completed"
    if view.finished:  # read after it finished: its outcome is there too
        assert items[-1].title == "completed"
    else:  # read before: the page goes on listening, and its next refresh shows the outcome
        assert view.status == "running"
