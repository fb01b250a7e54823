"""The holes of issue 16: whatever a mind, a tool or a user function does, ``Kernel.run``
returns, within its timeouts, and what happened is on record.

Each test runs on virtual time under a (virtual) day's deadline, so a hang fails the test
instead of hanging it. Every run must verify and replay (``conftest.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from telic.clock import VirtualClock
from telic.errors import NotCanonical, PayloadTooLarge, ReadOnly
from telic.kernel import AgentSpec, Artifact, Kernel, RunConfig, RunResult
from telic.kernel.batch import Batch
from telic.kernel.intake import MAX_DEPTH
from telic.kinds import Claim, MemoryUpdated
from telic.ledger import BaseLedger
from telic.minds.base import FunctionMind, View
from telic.policy import Candidate, CheckContext, Policy, Resolution, Verdict
from telic.proposal import Proposal
from telic.reducer import Fold
from telic.tools import Tool, tool

from .kit import Played, agent, call, config, finish, new_ledger, plan, remember

DAY = 24 * 3600.0


def run_bounded(
    cfg: RunConfig, *, max_ticks: int | None = None, ledger: BaseLedger | None = None
) -> tuple[Played, list[asyncio.Task[Any]]]:
    """Run ``cfg`` to its end on virtual time; a run still going after a virtual day fails the
    test. Returns what was recorded and the calls the kernel abandoned (awaited here, so that
    none outlives the test)."""
    led = ledger or new_ledger()
    clock = VirtualClock()
    abandoned: list[asyncio.Task[Any]] = []

    async def main() -> RunResult:
        kernel = Kernel(led, clock=clock)
        async with asyncio.timeout(DAY):
            result = await kernel.run(cfg, max_ticks=max_ticks, run_id="run")
        abandoned.extend(kernel.abandoned)
        if kernel.abandoned:
            await asyncio.wait(list(kernel.abandoned))
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, f"orphan tasks: {leftover}"
        return result

    result = clock.run(main())
    return Played(led, "run", result), abandoned


def _failure(played: Played, name: str = "a") -> dict[str, Any]:
    return played.of("agent.failed", name)[0].data


def _status(played: Played) -> str:
    assert played.result is not None
    return played.result.status


class _Loud(Exception):
    pass


class _BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this error raises")


class _Custom(BaseException):
    pass


# -- hangs: minds --------------------------------------------------------------------------------

MIND_RAISES: list[tuple[BaseException, str]] = [
    (asyncio.CancelledError(), "CancelledError"),
    (KeyboardInterrupt(), "KeyboardInterrupt"),
    (SystemExit(3), "SystemExit"),
    (_Custom("custom"), "_Custom"),
    (_BadStr(), "_BadStr"),
]


@pytest.mark.parametrize(("exc", "error"), MIND_RAISES, ids=[e for _, e in MIND_RAISES])
def test_a_mind_raising_any_base_exception_is_a_recorded_failure(
    exc: BaseException, error: str
) -> None:
    played, _ = run_bounded(config(agent("a", exc, finish()), agent("b", finish())))
    failed = _failure(played)
    assert failed["message"].startswith(f"{error}: ")
    assert played.one("agent.restarted", "a")
    assert _status(played) == "completed"


def test_an_error_whose_str_raises_is_recorded_with_a_placeholder() -> None:
    played, _ = run_bounded(config(agent("a", _BadStr(), finish())))
    assert _failure(played)["message"] == "_BadStr: <_BadStr: its str() raised>"


def test_a_mind_that_swallows_its_cancellation_is_timed_out_and_abandoned() -> None:
    release = asyncio.Event()

    async def stubborn(view: View) -> Proposal:
        if view.tick > 1:
            return finish()
        try:
            await asyncio.sleep(DAY)
        except asyncio.CancelledError:
            await release.wait()  # ignores the cancellation until the test lets it go
        return finish()

    async def releaser(view: View) -> Proposal:
        if view.tick > 1:  # once a's tick is over
            release.set()
            return finish()
        return remember("k", 1)

    policy = Policy(mind_timeout_s=5.0, cancel_grace_s=0.5)
    played, abandoned = run_bounded(
        config(
            AgentSpec("a", "worker", FunctionMind(stubborn)),
            AgentSpec("b", "worker", FunctionMind(releaser), restart="transient"),
            policy=policy,
        )
    )
    message = _failure(played)["message"]
    assert message == (
        "MindTimeout: the mind did not answer within 5 s "
        "(it ignored its cancellation and was abandoned)"
    )
    assert [t.get_name() for t in abandoned] == ["telic-mind-a"]
    assert _status(played) == "completed"


def test_a_supervisor_giving_up_while_another_agent_thinks_fails_the_run_without_hanging() -> None:
    async def slow(view: View) -> Proposal:
        await asyncio.sleep(1.0)
        return remember("k", view.tick)

    played, _ = run_bounded(
        config(
            agent("a", RuntimeError("boom")),
            AgentSpec("b", "worker", FunctionMind(slow)),
            intensity=0,
        )
    )
    assert _status(played) == "failed"
    assert played.one("run.failed").data["reason"].startswith("supervisor gave up")


# -- hangs: tools ------------------------------------------------------------------------------


def _raising_tool(exc: BaseException) -> Tool:
    @tool(name="boom", timeout=5.0)
    async def boom(x: int) -> dict[str, int]:
        raise exc

    return boom


@pytest.mark.parametrize(("exc", "error"), MIND_RAISES, ids=[e for _, e in MIND_RAISES])
def test_a_tool_raising_any_base_exception_is_a_recorded_tool_failure(
    exc: BaseException, error: str
) -> None:
    played, _ = run_bounded(
        config(
            agent("a", call("boom", x=1), finish(), tools=["boom"]),
            tools=[_raising_tool(exc)],
            policy=Policy(fail_agent_on_tool_error=False),
        )
    )
    failed = played.one("tool.failed").data
    assert failed["error"] == error
    assert _status(played) == "completed"


def test_a_tool_that_swallows_its_cancellation_times_out_and_is_abandoned() -> None:
    release = asyncio.Event()

    @tool(name="stubborn", timeout=2.0)
    async def stubborn(x: int) -> dict[str, int]:
        try:
            await asyncio.sleep(DAY)
        except asyncio.CancelledError:
            await release.wait()
        return {"x": x}

    async def releaser(view: View) -> Proposal:
        if view.tick > 1:
            release.set()
            return finish()
        return remember("k", 1)

    played, abandoned = run_bounded(
        config(
            agent("a", call("stubborn", x=1), finish(), tools=["stubborn"]),
            AgentSpec("b", "worker", FunctionMind(releaser)),
            tools=[stubborn],
            policy=Policy(fail_agent_on_tool_error=False, cancel_grace_s=0.25),
        )
    )
    assert played.one("tool.timeout").data["timeout_s"] == 2.0
    assert [t.get_name() for t in abandoned] == ["telic-tool-stubborn"]
    assert _status(played) == "completed"


def test_an_approver_that_raises_with_a_bad_str_or_hangs_is_a_denial() -> None:
    calls: list[str] = []

    @tool(name="launch", high_impact=True, timeout=5.0)
    async def launch(x: int) -> dict[str, int]:
        calls.append("launch")
        return {"x": x}

    async def bad(agent: str, tool: str, args: Any) -> bool | None:
        raise _BadStr()

    played, _ = run_bounded(
        config(
            agent("a", call("launch", x=1), finish(), tools=["launch"]),
            tools=[launch],
            approver=bad,
        )
    )
    denied = played.one("approval.denied").data
    assert denied["reason"] == "the approver failed (_BadStr: <_BadStr: its str() raised>); deny"
    assert calls == []


# -- crashes: what minds and tools return -------------------------------------------------------


def _proposing(*proposals: Proposal) -> AgentSpec:
    return agent("a", *proposals, finish())


BAD_VALUES: list[tuple[Any, str]] = [
    (2**64, "Integer exceeds 64-bit range"),
    (-(2**63) - 1, "Integer exceeds 64-bit range"),
    ("\ud800", "surrogates not allowed"),
]


@pytest.mark.parametrize(("value", "why"), BAD_VALUES, ids=["2**64", "-2**63-1", "surrogate"])
def test_a_proposal_the_encoder_refuses_is_a_schema_rejection(value: Any, why: str) -> None:
    played, _ = run_bounded(config(_proposing(remember("k", value))))
    check, reason = played.rejections("a")[0]
    assert check == "schema" and why in reason
    assert not played.of("proposal.made", "a")[:-1]  # only finish() was made
    assert _status(played) == "completed"


def test_the_integer_range_ends_are_recorded() -> None:
    played, _ = run_bounded(config(_proposing(remember("lo", -(2**63)), remember("hi", 2**64 - 1))))
    assert played.state()["memory"]["a"] == {"lo": -(2**63), "hi": 2**64 - 1}


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def test_a_proposal_nested_too_deep_is_a_schema_rejection() -> None:
    # proposal.made -> args -> value: the value's own nesting may be MAX_DEPTH - 2.
    played, _ = run_bounded(config(_proposing(remember("k", _nested(MAX_DEPTH - 1)))))
    check, reason = played.rejections("a")[0]
    assert check == "schema" and f"nesting deeper than {MAX_DEPTH} levels" in reason


def test_a_20_mb_proposal_is_a_schema_rejection() -> None:
    played, _ = run_bounded(config(_proposing(remember("k", "x" * 20_000_000))))
    check, reason = played.rejections("a")[0]
    assert check == "schema" and "over the limit" in reason
    assert _status(played) == "completed"


BUILT_WITHOUT_VALIDATION: list[tuple[dict[str, Any], str]] = [
    ({"action": "explode"}, "action"),
    ({"action": "remember", "args": {"key": "k", "value": float("nan")}}, "NaN"),
    ({"action": "remember", "args": ["not", "a", "dict"]}, "args"),
    ({"action": "finish", "confidence": 7.0}, "confidence"),
    (
        {"action": "finish", "claims": (Claim.model_construct(key=1, value=set()),)},  # pyright: ignore[reportArgumentType]
        "claims",
    ),
]


@pytest.mark.parametrize(
    ("fields", "field"), BUILT_WITHOUT_VALIDATION, ids=[f for _, f in BUILT_WITHOUT_VALIDATION]
)
def test_a_proposal_built_with_model_construct_is_validated_again(
    fields: dict[str, Any], field: str
) -> None:
    junk = Proposal.model_construct(**fields)
    played, _ = run_bounded(config(_proposing(junk)))
    check, reason = played.rejections("a")[0]
    assert check == "schema" and "does not match its schema" in reason
    assert len(played.of("proposal.made", "a")) == 1  # only finish()


def test_a_50_mb_tool_result_is_a_tool_failure() -> None:
    @tool(name="huge", timeout=5.0)
    async def huge(x: int) -> str:
        return "x" * 50_000_000

    played, _ = run_bounded(
        config(
            agent("a", call("huge", x=1), finish(), tools=["huge"]),
            tools=[huge],
            policy=Policy(fail_agent_on_tool_error=False),
        )
    )
    failed = played.one("tool.failed").data
    assert failed["error"] == "PayloadTooLarge"
    assert _status(played) == "completed"


def test_a_50_mb_error_message_is_recorded_cut_short() -> None:
    played, _ = run_bounded(
        config(
            agent("a", call("boom", x=1), finish(), tools=["boom"]),
            tools=[_raising_tool(_Loud("y" * 50_000_000))],
            policy=Policy(fail_agent_on_tool_error=False),
        )
    )
    message = played.one("tool.failed").data["message"]
    assert message.startswith("yyyy") and message.endswith("... [49995904 more chars]")
    assert _status(played) == "completed"


@pytest.mark.parametrize(
    "result", [2**64, "\ud800", _nested(MAX_DEPTH)], ids=["int", "sur", "deep"]
)
def test_a_tool_result_the_encoder_refuses_is_a_tool_failure(result: Any) -> None:
    @tool(name="odd", timeout=5.0)
    async def odd(x: int) -> Any:
        return result

    played, _ = run_bounded(
        config(
            agent("a", call("odd", x=1), finish(), tools=["odd"]),
            tools=[odd],
            policy=Policy(fail_agent_on_tool_error=False),
        )
    )
    assert played.one("tool.failed").data["error"] == "Unserialisable"


def test_values_just_under_the_depth_limit_commit_fold_hash_snapshot_and_replay(
    tmp_path: Any,
) -> None:
    deepest = _nested(MAX_DEPTH - 2)  # proposal.made -> args -> value

    @tool(name="deep", timeout=5.0)
    async def deep(x: int) -> Any:
        return _nested(MAX_DEPTH - 1)  # tool.completed -> result

    ledger = new_ledger(f"sqlite://{tmp_path / 'deep.db'}?snapshot_every=3")
    played, _ = run_bounded(
        config(
            agent("a", remember("k", deepest), call("deep", x=1), finish(), tools=["deep"]),
            tools=[deep],
        ),
        ledger=ledger,
    )
    assert _status(played) == "completed"
    assert played.state()["memory"]["a"]["k"] == deepest
    assert played.one("tool.completed").data["result"] == _nested(MAX_DEPTH - 1)
    assert ledger.last_snapshot("run") > 0
    last = played.of("tick.completed")[-1]
    fold = Fold()
    fold.apply_all(t for t in played.transitions() if t.seq < last.seq)
    assert fold.hash() == last.data["state_hash"]


def test_the_batch_refuses_what_it_cannot_record_and_changes_nothing() -> None:
    ledger = new_ledger()
    ledger.create_run("r")
    fold = Fold()
    batch = Batch(ledger, "r", fold, lambda: 0)
    before = fold.hash()
    with pytest.raises(NotCanonical):
        batch.add(MemoryUpdated(agent="a", key="k", value=2**64), tick=0)
    with pytest.raises(NotCanonical):
        batch.add(MemoryUpdated(agent="a", key="k", value="\udfff"), tick=0)
    with pytest.raises(NotCanonical):
        batch.add(MemoryUpdated(agent="a", key="k", value=_nested(MAX_DEPTH)), tick=0)
    ledger.max_payload = 1000
    batch = Batch(ledger, "r", fold, lambda: 0)
    with pytest.raises(PayloadTooLarge):
        batch.add(MemoryUpdated(agent="a", key="k", value="x" * 1000), tick=0)
    assert len(batch) == 0 and fold.hash() == before


# -- user callbacks ----------------------------------------------------------------------------


class _RaisingCheck:
    name = "mine"

    def check(self, proposal: Proposal, ctx: CheckContext) -> Verdict:
        raise _BadStr()


class _MutatingCheck:
    name = "vandal"

    def check(self, proposal: Proposal, ctx: CheckContext) -> Verdict:
        agents: Any = ctx.state.json["agents"]
        agents["a"]["status"] = "terminated"
        return Verdict(self.name, True)


@pytest.mark.parametrize("check", [_RaisingCheck(), _MutatingCheck()], ids=["raises", "mutates"])
def test_a_check_that_raises_or_changes_the_state_refuses_the_proposal(check: Any) -> None:
    played, _ = run_bounded(
        config(agent("a", remember("k", 1), finish()), policy=Policy(extra=(check,)))
    )
    rejections = played.rejections("a")
    assert [c for c, _ in rejections] == [check.name, check.name]
    assert rejections[0][1].startswith("the check failed (")
    assert played.state()["agents"]["a"]["status"] != "terminated" or _status(played) != "failed"


class _RaisingResolver:
    name = "broken"

    def resolve(self, resource: str, candidates: Sequence[Candidate], state: Any) -> Resolution:
        raise ValueError("no winner today")


def test_a_resolver_that_raises_falls_back_to_agent_order_on_record() -> None:
    played, _ = run_bounded(
        config(
            agent("a", plan("hotel", "A"), finish()),
            agent("b", plan("hotel", "B"), finish()),
            policy=Policy(resolver=_RaisingResolver()),
        )
    )
    resolved = played.one("conflict.resolved").data
    assert resolved["policy"] == "broken"
    assert resolved["why"].startswith("the resolver failed (ValueError: no winner today)")
    assert played.state()["plan"]["hotel"]["value"] == "A"


def test_an_explorer_factory_that_raises_refuses_the_unsure_proposal() -> None:
    def factory(question: str, parent: AgentSpec) -> Any:
        raise KeyboardInterrupt

    played, _ = run_bounded(
        config(agent("a", remember("k", 1, confidence=0.1), finish()), explorer=factory)
    )
    check, reason = played.rejections("a")[0]
    assert check == "confidence" and "the explorer factory failed (KeyboardInterrupt" in reason
    assert _status(played) == "completed"


@pytest.mark.parametrize("which", ["progress", "return_condition", "artifacts"])
def test_a_run_function_that_fails_fails_the_run_on_record(which: str) -> None:
    def broken(state: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    played, _ = run_bounded(config(agent("a", remember("k", 1), finish()), **{which: broken}))
    assert _status(played) == "failed"
    assert "ZeroDivisionError: division by zero" in played.one("run.failed").data["reason"]


def test_an_artifact_that_cannot_be_recorded_fails_the_run_on_record() -> None:
    played, _ = run_bounded(
        config(agent("a", finish()), artifacts=lambda s: [Artifact("n", "application/json", 2**70)])
    )
    assert _status(played) == "failed"
    assert played.one("run.failed").data["reason"].startswith("artifact 'n' cannot be recorded")


def test_run_functions_and_checks_get_the_state_read_only() -> None:
    def vandal(state: Any) -> bool:
        state.status = "completed"
        return False

    played, _ = run_bounded(config(agent("a", finish()), return_condition=vandal))
    assert _status(played) == "failed"
    assert "ReadOnly" in played.one("run.failed").data["reason"]


def test_the_state_a_run_hands_out_is_read_only() -> None:
    async def scenario(clock: VirtualClock) -> None:
        led = new_ledger()
        run = await Kernel(led, clock=clock).boot(config(agent("a", finish())))
        try:
            agents: Any = run.state.json["agents"]
            with pytest.raises(ReadOnly):
                agents["a"]["status"] = "terminated"
            with pytest.raises(ReadOnly):
                run.state.agents["a"].status = "terminated"  # pyright: ignore[reportAttributeAccessIssue]
            assert run.fold.peek()["agents"]["a"]["status"] == "running"
        finally:
            await run.close()

    VirtualClock().run(scenario(VirtualClock()))
