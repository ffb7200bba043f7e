"""The official Anthropic Python SDK against a modelyard server: any model behind /v1/messages.

This starts the server in-process on a free port; normally you run `modelyard serve` and use
base_url="http://127.0.0.1:4000".

    python examples/anthropic_sdk.py
"""

import anthropic
from _server import running_server

with running_server() as url:
    client = anthropic.Anthropic(base_url=url, api_key="unused-without-a-master-key", max_retries=0)

    # A Messages API call answered by the embedded local model.
    message = client.messages.create(
        model="local/smollm2",
        max_tokens=16,
        system="You are brief.",
        messages=[{"role": "user", "content": "Say hi in three words."}],
    )
    print(
        "message:",
        message.content[0].text.strip(),
        "| stop:",
        message.stop_reason,
        "| usage:",
        message.usage.input_tokens,
        "in",
        message.usage.output_tokens,
        "out",
    )

    # Streaming with Anthropic's event types.
    with client.messages.stream(
        model="local/smollm2", max_tokens=16, messages=[{"role": "user", "content": "Count to three."}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    print("stream:", text.strip(), "| stop:", final.stop_reason)

    # Token counting.
    count = client.messages.count_tokens(model="local/smollm2", messages=[{"role": "user", "content": "Hello there"}])
    print("count_tokens:", count.input_tokens)

    # Errors use Anthropic's shape, so the SDK raises its own classes.
    try:
        client.messages.create(model="nosuch/model", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    except anthropic.NotFoundError as exc:
        print("error:", type(exc).__name__, exc.status_code)
