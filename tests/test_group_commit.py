"""Group commit: what callers hand in together is done together, each caller answered alone."""

from __future__ import annotations

import asyncio

import pytest

from hub.group_commit import GroupCommit


class Recorder:
    """A batch runner that records its batches and holds each until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def run(self, items: list[str]) -> list[str | Exception]:
        self.batches.append(items)
        self.started.set()
        await self.release.wait()
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]


async def test_an_item_alone_is_done_at_once_in_a_batch_of_its_own():
    group, recorder = GroupCommit[str, str](), Recorder()

    assert await group.submit("a", recorder.run) == "A"
    assert recorder.batches == [["a"]]


async def test_items_arriving_while_a_batch_runs_are_done_together_next():
    group, recorder = GroupCommit[str, str](), Recorder()
    recorder.release.clear()
    first = asyncio.create_task(group.submit("a", recorder.run))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(group.submit(item, recorder.run)) for item in "bcd"]
    await asyncio.sleep(0)
    recorder.release.set()

    assert await first == "A"
    assert await asyncio.gather(*rest) == ["B", "C", "D"]
    assert recorder.batches == [["a"], ["b", "c", "d"]]


async def test_a_batch_takes_no_more_than_its_limit():
    group, recorder = GroupCommit[str, str](limit=2), Recorder()
    recorder.release.clear()
    tasks = [asyncio.create_task(group.submit(item, recorder.run)) for item in "abcde"]
    await asyncio.sleep(0)
    recorder.release.set()

    assert await asyncio.gather(*tasks) == ["A", "B", "C", "D", "E"]
    assert recorder.batches == [["a"], ["b", "c"], ["d", "e"]]


async def test_an_items_own_error_reaches_only_its_caller():
    group, recorder = GroupCommit[str, str](), Recorder()
    recorder.release.clear()
    tasks = [asyncio.create_task(group.submit(item, recorder.run)) for item in ("a", "b", "bad")]
    await asyncio.sleep(0)
    recorder.release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)

    assert outcomes[:2] == ["A", "B"]
    assert isinstance(outcomes[2], ValueError)


async def test_a_caller_cancelled_while_waiting_leaves_and_the_queue_moves_on():
    group, recorder = GroupCommit[str, str](), Recorder()
    recorder.release.clear()
    first = asyncio.create_task(group.submit("a", recorder.run))
    await asyncio.sleep(0)
    gone = asyncio.create_task(group.submit("gone", recorder.run))
    kept = asyncio.create_task(group.submit("b", recorder.run))
    await asyncio.sleep(0)
    gone.cancel()
    recorder.release.set()

    assert await first == "A"
    assert await kept == "B"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert recorder.batches == [["a"], ["b"]]


async def test_a_caller_cancelled_just_as_its_turn_to_lead_came_passes_the_lead_on():
    group, recorder = GroupCommit[str, str](), Recorder()
    recorder.release.clear()
    tasks: dict[str, asyncio.Task[str]] = {}

    async def run_then_cancel_the_next_leader(items: list[str]) -> list[str | Exception]:
        done = await recorder.run(items)
        # Queued before "gone" is told to lead, so it lands after that and before it runs.
        asyncio.get_running_loop().call_soon(tasks["gone"].cancel)
        return done

    tasks["a"] = asyncio.create_task(group.submit("a", run_then_cancel_the_next_leader))
    await asyncio.sleep(0)
    tasks["gone"] = asyncio.create_task(group.submit("gone", recorder.run))
    await asyncio.sleep(0)
    recorder.release.set()
    assert await tasks["a"] == "A"
    with pytest.raises(asyncio.CancelledError):
        await tasks["gone"]

    assert await asyncio.wait_for(group.submit("b", recorder.run), 5) == "B"
    assert recorder.batches == [["a"], ["b"]]


async def test_a_leader_cancelled_mid_batch_leaves_the_others_to_the_next_leader():
    group, recorder = GroupCommit[str, str](), Recorder()
    recorder.release.clear()

    async def run_then_hold_the_next(items: list[str]) -> list[str | Exception]:
        done = await recorder.run(items)
        recorder.release.clear()
        recorder.started.clear()
        return done

    first = asyncio.create_task(group.submit("a", run_then_hold_the_next))
    await asyncio.sleep(0)
    leader = asyncio.create_task(group.submit("lead", recorder.run))
    follower = asyncio.create_task(group.submit("b", recorder.run))
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == "A"
    await recorder.started.wait()
    assert recorder.batches[-1] == ["lead", "b"]
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    recorder.release.set()

    assert await asyncio.wait_for(follower, 5) == "B"
    assert recorder.batches == [["a"], ["lead", "b"], ["b"]]
