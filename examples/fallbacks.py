"""Retries and fallbacks, shown with the scriptable fake provider (instant, offline).

python examples/fallbacks.py
"""

from modelyard import Client, FakeReply, ProviderError, RateLimitError, ServiceUnavailableError

MESSAGES = [{"role": "user", "content": "Summarise the plan."}]

with Client() as client:
    fake = client.gateway.provider("fake")  # fake/<name> models answer from this queue

    # 1. The primary keeps failing with 503: modelyard retries it, then falls back to the next model.
    fake.queue(*[FakeReply(error=ServiceUnavailableError("overloaded"))] * 3, model="primary")
    fake.queue(FakeReply(text="Plan: ship on Friday."), model="backup")
    reply = client.chat("fake/primary", MESSAGES, fallbacks=["fake/backup"], max_retries=2)
    print("answer:", reply.text)
    print("served by:", reply.modelyard.served_model)
    for attempt in reply.modelyard.attempts:
        print(f"  tried {attempt.model}: {attempt.status} {attempt.error or ''}")

    # 2. A rate limit with Retry-After is waited out (here 0.2 s) and retried on the same model.
    fake.queue(FakeReply(error=RateLimitError("slow down", retry_after=0.2)), FakeReply(text="done"), model="busy")
    reply = client.chat("fake/busy", MESSAGES)
    print("after a 429:", reply.text, "| attempts:", len(reply.modelyard.attempts))

    # 3. A stream falls back too, as long as nothing was streamed yet.
    fake.queue(FakeReply(error=ProviderError("upstream 500")), model="flaky")
    fake.queue(FakeReply(text="streamed from the backup"), model="backup")
    with client.stream("fake/flaky", MESSAGES, fallbacks=["fake/backup"], max_retries=0) as stream:
        print("stream:", "".join(chunk.text for chunk in stream), "| served by:", stream.info.served_model)

    # 4. Errors that fallbacks cannot fix are raised at once: here every model fails.
    fake.queue(FakeReply(error=ProviderError("down")), model="a")
    fake.queue(FakeReply(error=ProviderError("down too")), model="b")
    try:
        client.chat("fake/a", MESSAGES, fallbacks=["fake/b"], max_retries=0)
    except ProviderError as exc:
        print("gave up:", type(exc).__name__, "-", exc)
