"""The stages of a tick, in order; each a function of typed records (:mod:`.records`).

========================  ======================================  =========================
stage                     takes                                   gives
========================  ======================================  =========================
:func:`ask`               the run                                 :class:`Asked` (replies)
:func:`record`            :class:`Asked`                          :class:`Recorded`
:func:`check`             :class:`Proposed` records               :class:`Passing` records
:func:`explore`           :class:`Passing` records                the confident ones
:func:`resolve_conflicts` :class:`Passing` records                the winners
:func:`ground`            :class:`Passing` records                :class:`Grounded`
:func:`approve`           :class:`Passing` records                the approved ones
:func:`commit_effects`    :class:`Passing` records                :class:`ToolCall` records
:func:`execute`           :class:`ToolCall` records               :class:`Executed`
:func:`settle`            the tick's verdicts                     (the tick closed)
========================  ======================================  =========================

Every stage but :func:`ask` takes the :class:`Tick` it works on (the run, the batch its
records go to, the tick's number) and records what it decides in that batch; a stage that
must wait for something outside the kernel (an approval, a tool) commits the batch first, so
the wait is in the ledger. :func:`telic.kernel.tick.run_tick` is the list of these calls.
"""

from telic.kernel.stages.approve import approve
from telic.kernel.stages.ask import ask
from telic.kernel.stages.check import check
from telic.kernel.stages.conflicts import resolve_conflicts
from telic.kernel.stages.effects import commit_effects
from telic.kernel.stages.execute import execute
from telic.kernel.stages.explore import explore
from telic.kernel.stages.ground import ground
from telic.kernel.stages.record import record
from telic.kernel.stages.records import (
    Asked,
    Executed,
    Grounded,
    Passing,
    Proposed,
    Recorded,
    Tick,
    ToolCall,
)
from telic.kernel.stages.settle import settle

__all__ = [
    "Asked",
    "Executed",
    "Grounded",
    "Passing",
    "Proposed",
    "Recorded",
    "Tick",
    "ToolCall",
    "approve",
    "ask",
    "check",
    "commit_effects",
    "execute",
    "explore",
    "ground",
    "record",
    "resolve_conflicts",
    "settle",
]
