"""Tokens and cost per call, and totals by model and by tag from the request log.

Every call leaves a request-log row with its tokens and cost. The fake models here are given prices (USD per 1M
tokens) in settings, as you would for a model missing from the bundled price table.

    python examples/cost_report.py
"""

from modelyard import Client, FakeReply, Usage
from modelyard.storage.base import LogQuery

PRICES = {
    "fake/large": {"input": 3.0, "output": 15.0, "context_window": 200_000},
    "fake/small": {"input": 0.15, "output": 0.60, "context_window": 128_000},
}
TAG = "cost-example"

with Client(prices=PRICES) as client:
    fake = client.gateway.provider("fake")
    for model, prompt_tokens, completion_tokens in [("large", 1200, 300), ("small", 1200, 280), ("small", 800, 150)]:
        fake.queue(FakeReply(text="ok", usage=Usage.of(prompt_tokens, completion_tokens)), model=model)
        reply = client.chat(f"fake/{model}", [{"role": "user", "content": "Summarise this report."}], tags=[TAG])
        info = reply.modelyard
        print(
            f"{info.served_model:<11} {reply.usage.prompt_tokens:>5} in {reply.usage.completion_tokens:>4} out"
            f"  ${info.cost:.6f} ({info.cost_source})"
        )

# Log rows are written off the request path; closing the client flushed them. A new client reads them back.
with Client(prices=PRICES) as client:
    only_ours = LogQuery(tag=TAG)
    print("\nby model:")
    for row in client.admin.cost("model", where=only_ours):
        print(
            f"  {row.key:<11} {row.requests} requests  {row.prompt_tokens + row.completion_tokens:>6} tokens"
            f"  ${row.cost:.6f}"
        )
    total = sum(row.cost for row in client.admin.cost("tag", where=only_ours))
    print(f"tag {TAG!r} total: ${total:.6f}")
