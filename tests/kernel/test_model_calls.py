"""Model calls are spent money: the kernel records them even when the mind then fails."""

from __future__ import annotations

from tests.kernel.kit import new_ledger

from telic.clock import VirtualClock
from telic.errors import MalformedOutput, ProviderError
from telic.kernel import AgentSpec, Budget, Kernel, RunConfig
from telic.kinds import ModelCalled
from telic.minds.base import FunctionMind, View
from telic.proposal import Proposal


def _call(attempt: int, error: str | None = None) -> ModelCalled:
    return ModelCalled(
        agent="a",
        model="openai:test",
        request_digest=f"d{attempt}",
        response={"text": "..."},
        input_tokens=100,
        output_tokens=20,
        cost=0.01,
        attempt=attempt,
        error=error,
    )


def test_calls_before_a_provider_failure_and_a_malformed_reply_are_recorded() -> None:
    answers: list[object] = [
        ProviderError("the provider failed after retries", (_call(1, "prose"),)),
        MalformedOutput("no proposal in the reply", (_call(1, "prose"), _call(2, "prose"))),
        Proposal(action="finish", args={"result": "done"}, model_calls=(_call(1),)),
    ]

    def mind(view: View) -> Proposal:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, Proposal)
        return answer

    ledger = new_ledger()
    clock = VirtualClock()
    config = RunConfig(
        goal="g", agents=[AgentSpec("a", "worker", FunctionMind(mind))], budget=Budget(ticks=5)
    )
    result = clock.run(Kernel(ledger, clock=clock).run(config))
    assert result.status == "completed"
    kinds = [t.kind for t in ledger.read(result.run_id)]
    assert (
        kinds.count("model.called") == 4
    )  # 1 before the crash, 2 in the repairs, 1 for the answer
    assert "agent.failed" in kinds
    assert "agent.restarted" in kinds
    rejected = [t.data for t in ledger.read(result.run_id) if t.kind == "proposal.rejected"]
    assert [r["check"] for r in rejected] == ["schema"]
    spent = ledger.state_at(result.run_id)["spent"]
    assert spent["tokens"] == 4 * 120
    assert round(spent["cost"], 6) == 0.04
