"""The six scripted minds of the reference run, and the explorer's.

Each mind is a function of the view it is given (the run's state), so it behaves the same
after a restart, a restore or a resume: nothing is kept in the mind itself. They cite the
observations (sequence numbers) their claims come from, as a model would be asked to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from telic.demo.world import World
from telic.kernel import AgentSpec
from telic.kinds import Claim
from telic.minds.base import FunctionMind, View
from telic.proposal import Proposal

__all__ = ["BUDGET_CHF", "DESTINATION", "ORIGIN", "agents", "explorer"]

BUDGET_CHF = 600.0
ORIGIN, DESTINATION, NIGHTS = "Basel SBB", "Lugano", 2


def _json_object(value: Any) -> dict[str, Any] | None:
    return cast(dict[str, Any], value) if isinstance(value, dict) else None


def _results(view: View, tool: str, **match: Any) -> list[tuple[int, dict[str, Any]]]:
    """Every recorded result of ``tool`` (any agent's), oldest first, as (seq, result)."""
    out: list[tuple[int, dict[str, Any]]] = []
    for a in view.state.agents.values():
        for o in a.observations:
            c = _json_object(o.content)
            ok = o.source == f"tool:{tool}" and c is not None and "error" not in c
            if ok and c is not None and all(c.get(k) == v for k, v in match.items()):
                out.append((o.seq, c))
    return sorted(out, key=lambda x: x[0])


def _findings(view: View) -> tuple[int, dict[str, Any]] | None:
    for o in view.observations:
        content = _json_object(o.content)
        if o.source.startswith("explorer:") and content is not None:
            return o.seq, content
    return None


def _idle(view: View, note: str) -> Proposal:
    return Proposal(
        action="remember",
        args={"key": "status", "value": {"tick": view.tick, "note": note}},
        confidence=1.0,
        reason=note,
    )


def _cheapest_fare(result: Mapping[str, Any]) -> float:
    return min(float(o["fare_chf"]) for o in result["options"])


def _activities(view: View) -> tuple[int, list[dict[str, Any]]] | None:
    found = _results(view, "sights", city=DESTINATION)
    if not found:
        return None
    seq, res = found[-1]
    return seq, [s for s in res["sights"] if s["price_chf"] <= 35][:3]


def researcher(world: World) -> Callable[[View], Proposal]:
    def mind(view: View) -> Proposal:
        world.tick = view.tick
        out = _results(view, "train_fares", origin=ORIGIN)
        back = _results(view, "train_fares", origin=DESTINATION)
        if not out:
            return Proposal(
                action="tool",
                args={
                    "tool": "train_fares",
                    "args": {"origin": ORIGIN, "destination": DESTINATION, "day": 1},
                },
                reason="outbound fares",
            )
        if not back:
            return Proposal(
                action="tool",
                args={
                    "tool": "train_fares",
                    "args": {"origin": DESTINATION, "destination": ORIGIN, "day": 3},
                },
                reason="return fares",
            )
        if "transport" in view.plan:
            return _idle(view, "transport planned")
        found = _findings(view)
        if found is None:
            if any(a.temporary and a.parent == view.agent for a in view.state.agents.values()):
                return _idle(view, "waiting for the explorer")
            fares = [float(o["fare_chf"]) for _, r in out + back for o in r["options"]]
            spread = (max(fares) - min(fares)) / max(fares)
            total = _cheapest_fare(out[-1][1]) + _cheapest_fare(back[-1][1])
            return Proposal(
                action="plan",
                args={
                    "key": "transport",
                    "value": {"mode": "SBB via Gotthard", "total_chf": total},
                },
                confidence=round(max(0.05, 0.95 - spread), 2),
                reason="train prices",
            )
        seq, f = found
        return Proposal(
            action="plan",
            args={
                "key": "transport",
                "value": {
                    "mode": "SBB via Gotthard, supersaver both ways",
                    "total_chf": f["total_chf"],
                },
            },
            confidence=0.9,
            reason="the explorer confirmed supersaver fares on both legs",
            claims=(Claim(key="train_chf", value=f["total_chf"], evidence=(seq,)),),
        )

    return mind


def planner(world: World) -> Callable[[View], Proposal]:
    def mind(view: View) -> Proposal:
        world.tick = view.tick
        found = _results(view, "hotels", city=DESTINATION)
        if not found:
            return Proposal(
                action="tool",
                args={"tool": "hotels", "args": {"city": DESTINATION, "nights": NIGHTS}},
                reason="where to stay",
            )
        seq, res = found[-1]
        if "hotel" not in view.plan:
            best = max(res["hotels"], key=lambda h: (h["rating"], -h["total_chf"]))
            return Proposal(
                action="plan",
                args={"key": "hotel", "value": best},
                confidence=0.8,
                reason="best rated in Lugano",
                claims=(Claim(key="hotel_chf", value=best["total_chf"], evidence=(seq,)),),
            )
        acts = _activities(view)
        if acts is None:
            return Proposal(
                action="tool",
                args={"tool": "sights", "args": {"city": DESTINATION}},
                reason="what to do",
            )
        if "activities" not in view.plan:
            aseq, chosen = acts
            total = sum(s["price_chf"] for s in chosen)
            value: Any = {"items": chosen, "total_chf": total}
            return Proposal(
                action="plan",
                args={"key": "activities", "value": value},
                confidence=0.85,
                reason="three sights within budget",
                claims=tuple(
                    Claim(key=f"sight:{s['name']}", value=s["price_chf"], evidence=(aseq,))
                    for s in chosen
                ),
            )
        return _idle(view, "itinerary drafted")

    return mind


def budgeter(world: World) -> Callable[[View], Proposal]:
    def mind(view: View) -> Proposal:
        world.tick = view.tick
        hotels = _results(view, "hotels", city=DESTINATION)
        if "limit" not in view.memory:
            return Proposal(
                action="remember",
                args={"key": "limit", "value": BUDGET_CHF},
                reason="the goal's budget",
            )
        if hotels and "hotel" not in view.plan:
            seq, res = hotels[-1]
            cheapest = min(res["hotels"], key=lambda h: h["total_chf"])
            return Proposal(
                action="plan",
                args={"key": "hotel", "value": cheapest},
                confidence=0.8,
                reason="cheapest hotel keeps the budget safe",
                claims=(Claim(key="hotel_chf", value=cheapest["total_chf"], evidence=(seq,)),),
            )
        if "budget" in view.plan or "hotel" not in view.plan:
            return _idle(view, "watching the budget")
        acts = _activities(view)
        fares = _results(view, "train_fares", origin=ORIGIN)
        found = None
        for _, a in view.state.agents_in_order():
            for o in a.observations:
                if o.source.startswith("explorer:"):
                    found = (o.seq, o.content)
        hotel = view.plan["hotel"]
        hotel_seq = view.state.plan["hotel"].seq
        hotel_claim = view.state.beliefs.get("hotel_chf")
        hotel_evidence = tuple(hotel_claim.evidence) if hotel_claim else (hotel_seq,)
        if acts is None:
            return _idle(view, "waiting for activity prices")
        aseq, chosen = acts
        act_total = round(sum(s["price_chf"] for s in chosen), 2)
        if found is None:
            if view.tick == world.plan.hallucination_tick and fares:
                # The fault plan's glitch: a fare "remembered" from nowhere, cited as if seen.
                guess = 19.9
                return Proposal(
                    action="plan",
                    args={
                        "key": "budget",
                        "value": {
                            "train_chf": guess * 2,
                            "hotel_chf": hotel["total_chf"],
                            "activities_chf": act_total,
                            "total_chf": round(guess * 2 + hotel["total_chf"] + act_total, 2),
                        },
                    },
                    confidence=0.7,
                    reason="budget with the usual supersaver fare",
                    claims=(Claim(key="train_fare_chf", value=guess, evidence=(fares[-1][0],)),),
                )
            return _idle(view, "waiting for verified fares")
        fseq, f = found
        train = float(f["total_chf"])
        total = round(train + float(hotel["total_chf"]) + act_total, 2)
        return Proposal(
            action="plan",
            args={
                "key": "budget",
                "value": {
                    "train_chf": train,
                    "hotel_chf": hotel["total_chf"],
                    "activities_chf": act_total,
                    "total_chf": total,
                    "limit_chf": BUDGET_CHF,
                },
            },
            confidence=0.95,
            reason=f"CHF {total:g} of {BUDGET_CHF:g}",
            cost=total,
            claims=(
                Claim(key="train_chf", value=train, evidence=(fseq,)),
                Claim(key="hotel_chf", value=hotel["total_chf"], evidence=hotel_evidence),
                *(
                    Claim(key=f"sight:{s['name']}", value=s["price_chf"], evidence=(aseq,))
                    for s in chosen
                ),
            ),
        )

    return mind


def skeptic(world: World) -> Callable[[View], Proposal]:
    checks = [(DESTINATION, 1), (DESTINATION, 2), (DESTINATION, 3), ("Locarno", 2), ("Locarno", 3)]

    def mind(view: View) -> Proposal:
        world.tick = view.tick
        failed = [
            o.content.get("args")
            for o in view.observations
            if o.source == "tool:weather" and "error" in o.content
        ]
        for city, day in checks:
            if {"city": city, "day": day} in failed:
                continue  # the service failed on this one: move on rather than hammer it
            if not _results(view, "weather", city=city, day=day):
                return Proposal(
                    action="tool",
                    args={"tool": "weather", "args": {"city": city, "day": day}},
                    reason=f"is day {day} in {city} safe for outdoor plans?",
                )
        forecasts: list[Any] = [o.content for o in view.observations if o.source == "tool:weather"]
        wet = sum(1 for f in forecasts if isinstance(f, dict) and f.get("forecast") == "showers")  # pyright: ignore[reportUnknownMemberType]
        return _idle(view, f"{wet} wet day(s) to plan around")

    return mind


def verifier(world: World) -> Callable[[View], Proposal]:
    def mind(view: View) -> Proposal:
        world.tick = view.tick
        value: Any = {"tick": view.tick, "beliefs": sorted(view.beliefs)}
        return Proposal(
            action="remember",
            args={"key": "verified", "value": value},
            reason="beliefs backed by observations",
        )

    return mind


def coordinator(world: World) -> Callable[[View], Proposal]:
    needed = ("transport", "hotel", "activities", "budget")

    def mind(view: View) -> Proposal:
        world.tick = view.tick
        value: Any = {"tick": view.tick, "missing": [k for k in needed if k not in view.plan]}
        return Proposal(
            action="remember",
            args={"key": "checklist", "value": value},
            reason="track what the plan still lacks",
        )

    return mind


def explorer(world: World) -> Callable[[str, AgentSpec], Any]:
    def make(question: str, parent: AgentSpec) -> FunctionMind:
        def mind(view: View) -> Proposal:
            world.tick = view.tick
            mine = [
                o
                for o in view.observations
                if o.source == "tool:train_fares" and "options" in o.content
            ]
            back = _results(view, "train_fares", origin=DESTINATION)
            if not mine or not back:
                # Check the uncertain leg first-hand; the return leg is already on record.
                leg = (ORIGIN, DESTINATION, 1) if not mine else (DESTINATION, ORIGIN, 3)
                return Proposal(
                    action="tool",
                    args={
                        "tool": "train_fares",
                        "args": {"origin": leg[0], "destination": leg[1], "day": leg[2]},
                    },
                    reason=f"explore: {question}",
                )
            out, ret = _cheapest_fare(mine[-1].content), _cheapest_fare(back[-1][1])
            return Proposal(
                action="finish",
                args={
                    "result": {
                        "question": question,
                        "outbound_chf": out,
                        "return_chf": ret,
                        "total_chf": round(out + ret, 2),
                        "basis": "supersaver on both legs, bookable now",
                    }
                },
                reason="fares confirmed",
            )

        return FunctionMind(mind, name=f"explorer({question})")

    return make


ROLES: dict[str, tuple[Callable[[World], Callable[[View], Proposal]], tuple[str, ...]]] = {
    "researcher": (researcher, ("train_fares",)),
    "planner": (planner, ("hotels", "sights")),
    "budgeter": (budgeter, ("calculator",)),
    "skeptic": (skeptic, ("weather",)),
    "verifier": (verifier, ("calculator",)),
    "coordinator": (coordinator, ()),
}


def agents(world: World) -> list[AgentSpec]:
    return [
        AgentSpec(name=role, role=role, mind=FunctionMind(make(world), name=role), tools=tools)
        for role, (make, tools) in ROLES.items()
    ]
