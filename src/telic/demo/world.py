"""The simulated world of the reference run: Swiss trains, Ticino hotels, sights, weather.

The tools behave like real ones: async, typed arguments, realistic data, latency (real waits,
or virtual ones under ``--instant``). A seeded :class:`FaultPlan` decides when things go wrong:
which tick a weather lookup hangs past its timeout, and when the budgeter's mind, impatient,
makes up a fare instead of waiting for one.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass
from typing import Any

from telic.tools import RetryPolicy, Tool, tool

__all__ = ["FaultPlan", "World"]

TOOL_TIMEOUT_S = 1.0

_HOTELS: dict[str, list[tuple[str, int, float, float]]] = {
    # name, stars, guest rating, CHF per night
    "Lugano": [
        ("Villa Sassa Hotel & Spa", 4, 8.9, 214.0),
        ("Hotel Pestalozzi Lugano", 3, 8.4, 139.0),
        ("Hotel International au Lac", 4, 8.6, 172.0),
        ("Lugano-Savosa Youth Hostel", 1, 8.1, 79.0),
    ],
    "Locarno": [
        ("Hotel Dell'Angelo", 3, 8.2, 128.0),
        ("Casa Berno", 4, 8.8, 196.0),
    ],
}

_SIGHTS: dict[str, list[tuple[str, float, str]]] = {
    "Lugano": [
        ("Monte San Salvatore funicular", 34.0, "day 2"),
        ("Lake Lugano boat round trip", 27.6, "day 2"),
        ("Parco Ciani and old town walk", 0.0, "day 1"),
        ("Castelgrande, Bellinzona", 15.0, "day 3"),
    ],
    "Locarno": [("Madonna del Sasso", 0.0, "day 2"), ("Verzasca valley bus", 17.2, "day 3")],
}


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """When the world misbehaves in this run; drawn from the seed."""

    timeout_tick: int
    """The tick in which the first weather lookup hangs past its timeout."""
    hallucination_tick: int | None
    """The tick in which the budgeter estimates a fare it has not seen (None: it waits)."""
    price_factor: float
    """Seasonal price level applied to hotels and fares."""

    @classmethod
    def from_seed(cls, seed: int) -> FaultPlan:
        rng = random.Random(f"faults:{seed}")
        timeout_tick = rng.choice([2, 3, 4, 4])
        hallucination = rng.choice([timeout_tick + 1, timeout_tick + 1, None])
        return cls(timeout_tick, hallucination, round(rng.uniform(0.92, 1.08), 3))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class World:
    """The simulated services, with their latency and the fault plan."""

    def __init__(self, seed: int, *, plan: FaultPlan | None = None) -> None:
        self.seed = seed
        self.plan = plan or FaultPlan.from_seed(seed)
        self.tick = 0
        """The tick the run is in (the minds tell the world; the fault plan is per tick)."""
        self._rng = random.Random(f"latency:{seed}")
        self._hung = False

    async def _latency(self) -> None:
        await asyncio.sleep(round(self._rng.uniform(0.12, 0.45), 3))

    def _price(self, base: float) -> float:
        return round(base * self.plan.price_factor * 2) / 2  # to the half franc, like SBB

    def tools(self) -> list[Tool]:
        world = self

        @tool(timeout=TOOL_TIMEOUT_S, idempotent=True, retry=RetryPolicy(attempts=1))
        async def train_fares(origin: str, destination: str, day: int) -> dict[str, Any]:
            """SBB fares for one leg on a day of the trip (1-3): supersaver and standard."""
            await world._latency()
            base = (
                46.0 if {"Basel", "Lugano"} <= {origin.split()[0], destination.split()[0]} else 38.0
            )
            return {
                "origin": origin,
                "destination": destination,
                "day": day,
                "options": [
                    {
                        "departure": "07:33",
                        "arrival": "10:42",
                        "type": "supersaver",
                        "fare_chf": world._price(base * (0.55 + 0.05 * day)),
                    },
                    {
                        "departure": "09:33",
                        "arrival": "12:42",
                        "type": "saver",
                        "fare_chf": world._price(base * 1.1),
                    },
                    {
                        "departure": "09:33",
                        "arrival": "12:42",
                        "type": "standard",
                        "fare_chf": world._price(base * 2),
                    },
                ],
            }

        @tool(timeout=TOOL_TIMEOUT_S, idempotent=True)
        async def hotels(city: str, nights: int) -> dict[str, Any]:
            """Hotels in a city with their price for the stay."""
            await world._latency()
            rows = _HOTELS.get(city, [])
            return {
                "city": city,
                "nights": nights,
                "hotels": [
                    {
                        "name": n,
                        "stars": s,
                        "rating": r,
                        "per_night_chf": world._price(p),
                        "total_chf": world._price(p) * nights,
                    }
                    for n, s, r, p in rows
                ],
            }

        @tool(timeout=TOOL_TIMEOUT_S, idempotent=True)
        async def sights(city: str) -> dict[str, Any]:
            """Sights and activities with their entry prices."""
            await world._latency()
            return {
                "city": city,
                "sights": [
                    {"name": n, "price_chf": p, "when": w} for n, p, w in _SIGHTS.get(city, [])
                ],
            }

        @tool(timeout=TOOL_TIMEOUT_S, idempotent=True)
        async def weather(city: str, day: int) -> dict[str, Any]:
            """MeteoSwiss-style forecast for a day of the trip."""
            if world.tick == world.plan.timeout_tick and not world._hung:
                world._hung = True
                await asyncio.sleep(TOOL_TIMEOUT_S * 5)  # the API hangs; the kernel's timeout fires
            await world._latency()
            rng = random.Random(f"weather:{world.seed}:{city}:{day}")
            rain = rng.choice([0.0, 0.0, 0.4, 3.1])
            return {
                "city": city,
                "day": day,
                "forecast": "showers" if rain > 1 else "sunny",
                "temp_c": rng.randint(19, 27),
                "rain_mm": rain,
            }

        @tool(timeout=TOOL_TIMEOUT_S, idempotent=True)
        async def calculator(amounts: dict[str, float]) -> dict[str, Any]:
            """Adds up named amounts (CHF)."""
            await asyncio.sleep(0.01)
            return {"amounts": amounts, "total_chf": round(sum(amounts.values()), 2)}

        return [train_fares, hotels, sights, weather, calculator]
