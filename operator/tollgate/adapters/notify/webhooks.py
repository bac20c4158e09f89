"""Webhook gates: POST the rollout's state; a 2xx answer opens the gate.

A timeout or a connection error is an Error answer, which keeps the gate closed: a gate never
opens because its webhook could not be reached.
"""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from tollgate.adapters.outbound import CallError, Outbound
from tollgate.api.durations import seconds
from tollgate.api.gates import Gate, GateType
from tollgate.engine.observations import GateState

GATE_ANSWER_BYTES = 64 * 1024  # the answer's status code decides; its body is not read on


async def ask_gates(
    http: httpx.AsyncClient | Outbound,
    gates: Sequence[Gate],
    pending: Sequence[str],
    payload: Mapping[str, Any],
) -> dict[str, GateState]:
    """Answers of the pending webhook gates (manual gates are opened by a resume request).

    Asked together, each within its own total deadline (``outbound.py``): a slow gate costs
    the reconcile at most its timeout, never the sum of all.
    """
    outbound = http if isinstance(http, Outbound) else Outbound(http)
    asked = [
        gate
        for gate in gates
        if gate.name in pending and gate.type is GateType.WEBHOOK and gate.webhook is not None
    ]

    async def ask(gate: Gate) -> GateState:
        assert gate.webhook is not None
        try:
            answer = await outbound.request(
                "POST",
                str(gate.webhook.url),
                json={**payload, "gate": gate.name, "stage": gate.stage.value},
                timeout=seconds(gate.webhook.timeout),
                max_bytes=GATE_ANSWER_BYTES,
            )
        except CallError:
            return GateState.ERROR
        return GateState.OPEN if answer.is_success else GateState.CLOSED

    states = await asyncio.gather(*(ask(g) for g in asked))
    return {gate.name: state for gate, state in zip(asked, states, strict=True)}
