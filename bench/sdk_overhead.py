"""What the in-app SDK adds to each request: version choice, rendering and metrics.

The SDK sits on every LLM request of the app, so its cost must vanish next to the model call
(hundreds of milliseconds). This times, per call with ``time.perf_counter_ns``, 200k requests
with random user keys against a realistic document (two versions, a ~1.5 kB template with a
few fields, the candidate at 5%): choice + render, choice alone, choice without a key, and
``PromptMetrics.observe``. The timer's own cost is measured and reported, not subtracted.

    python -m bench.sdk_overhead [--requests 200000]
"""

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from tollgate.sdk import PromptRouter, StaticSource
from tollgate.sdk.metrics import PromptMetrics
from tollgate.sdk.published import PublishedPrompt, PublishedVersion

RESULTS = Path(__file__).parent / "results"
PROMPT = "support-answer"

POLICY = (
    "Answer only from the knowledge base excerpts below. If they do not cover the question, "
    "say so and offer to open a ticket; never invent product features, prices or dates. Keep "
    "the tone friendly and plain, avoid jargon, and prefer short paragraphs over lists. "
)


def template(tone: str) -> str:
    intro = (
        "You are the support assistant of {product}, talking to {customer_name} "
        f"(plan: {{plan}}). {tone}\n\n"
    )
    tail = (
        "\n\nKnowledge base:\n{context}\n\nConversation so far:\n{history}\n\n"
        "Question: {question}\nAnswer:"
    )
    return intro + POLICY * 5 + tail


def document() -> PublishedPrompt:
    versions = {
        "v7": PublishedVersion(
            "v7", template("Answer briefly."), "gpt-4o-mini", {"temperature": 0.2}
        ),
        "v8": PublishedVersion(
            "v8", template("Be precise and cite the excerpt."), "gpt-4o-mini", {"temperature": 0.1}
        ),
    }
    return PublishedPrompt(PROMPT, PROMPT, 12, "v7", "v8", {"v7": 95, "v8": 5}, versions)


VARIABLES = {
    "product": "Acme Cloud",
    "customer_name": "Dana",
    "plan": "Business",
    "context": "Invoices are issued on the first day of each month and can be downloaded.",
    "history": "User: hi\nAssistant: Hello! How can I help?",
    "question": "Where do I find last month's invoice?",
}


def timed(calls: int, body: Callable[[int], Any]) -> list[int]:
    """Nanoseconds of each ``body(i)`` call."""
    clock = time.perf_counter_ns
    out = [0] * calls
    for i in range(calls):
        start = clock()
        body(i)
        out[i] = clock() - start
    return out


def summary(name: str, samples: list[int]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "case": name,
        "calls": len(ordered),
        "median_us": statistics.median(ordered) / 1000,
        "p99_us": ordered[int(len(ordered) * 0.99)] / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_overhead")
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args(argv)
    n: int = args.requests

    rng = random.Random(2026)
    keys = [f"user-{rng.getrandbits(64):016x}" for _ in range(n)]
    router = PromptRouter(StaticSource(document()), rng=random.Random(1))
    metrics = PromptMetrics(CollectorRegistry(), 0.15, 0.60)
    choose = router.choose
    candidate = choose(PROMPT, next(k for k in keys if choose(PROMPT, k).is_candidate))
    stable = choose(PROMPT, next(k for k in keys if not choose(PROMPT, k).is_candidate))
    template_bytes = len(stable.template.encode())

    def choose_and_render(i: int) -> str:
        return choose(PROMPT, keys[i]).render_map(VARIABLES)

    def observe(i: int) -> None:
        choice = candidate if i % 20 == 0 else stable
        metrics.observe(choice, duration=0.8, ttft=0.2, input_tokens=812, output_tokens=301)

    timed(min(n, 20_000), choose_and_render)  # warm up caches and the allocator
    timed(min(n, 20_000), observe)
    cases = [
        summary("timer only", timed(n, lambda i: None)),
        summary("choose + render", timed(n, choose_and_render)),
        summary("choose", timed(n, lambda i: choose(PROMPT, keys[i]))),
        summary("choose without key", timed(n, lambda i: choose(PROMPT))),
        summary("render", timed(n, lambda i: stable.render_map(VARIABLES))),
        summary("metrics.observe", timed(n, observe)),
    ]
    share = sum(choose(PROMPT, key).is_candidate for key in keys) / n

    result = {
        "benchmark": "sdk_overhead",
        "requests": n,
        "template_bytes": template_bytes,
        "candidate_weight_percent": 5,
        "candidate_share_observed": share,
        "python": sys.version.split()[0],
        "cases": cases,
    }
    print(
        f"SDK overhead per request: {n} requests, random user keys, a {template_bytes} B "
        f"template with 6 fields, candidate at 5% (served {share:.2%})"
    )
    print(f"  {'case':<20} {'median us':>10} {'p99 us':>10} {'mean us':>10}")
    for case in cases:
        print(
            f"  {case['case']:<20} {case['median_us']:>10.2f} {case['p99_us']:>10.2f} "
            f"{case['mean_us']:>10.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sdk_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'sdk_overhead.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
