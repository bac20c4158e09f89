"""Webhook gates: POST the rollout's state; a 2xx answer opens the gate.

A timeout or a connection error is an Error answer, which keeps the gate closed: a gate never
opens because its webhook could not be reached.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from tollgate.api.durations import seconds
from tollgate.api.gates import Gate, GateType
from tollgate.engine.observations import GateState


async def ask_gates(
    http: httpx.AsyncClient,
    gates: Sequence[Gate],
    pending: Sequence[str],
    payload: Mapping[str, Any],
) -> dict[str, GateState]:
    """Answers of the pending webhook gates (manual gates are opened by a resume request)."""
    answers: dict[str, GateState] = {}
    for gate in gates:
        if gate.name not in pending or gate.type is not GateType.WEBHOOK or gate.webhook is None:
            continue
        try:
            response = await http.post(
                gate.webhook.url,
                json={**payload, "gate": gate.name, "stage": gate.stage.value},
                timeout=seconds(gate.webhook.timeout),
            )
        except httpx.HTTPError:
            answers[gate.name] = GateState.ERROR
            continue
        answers[gate.name] = GateState.OPEN if response.is_success else GateState.CLOSED
    return answers
