"""The official OpenAI Python SDK against a modelyard server: change the base URL, nothing else.

This starts the server in-process on a free port; normally you run `modelyard serve` and use
base_url="http://127.0.0.1:4000/v1".

    python examples/openai_sdk.py
"""

import openai
from _server import running_server
from openai import OpenAI

with running_server() as url:
    client = OpenAI(base_url=f"{url}/v1", api_key="unused-without-a-master-key", max_retries=0)

    # A chat completion on the embedded local model.
    reply = client.chat.completions.create(
        model="local/smollm2", messages=[{"role": "user", "content": "Say hi in three words."}], max_tokens=12
    )
    print("chat:", reply.choices[0].message.content.strip(), "| usage:", reply.usage.total_tokens, "tokens")

    # Streamed, with usage in the last chunk.
    stream = client.chat.completions.create(
        model="local/smollm2",
        messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    print("stream:", text.strip(), "| usage:", usage.total_tokens, "tokens")

    # modelyard's own fields ride in extra_body; what it did comes back in x-modelyard-* headers.
    raw = client.chat.completions.with_raw_response.create(
        model="fake/echo",
        messages=[{"role": "user", "content": "echo me"}],
        extra_body={"fallbacks": ["local/smollm2"], "tags": ["sdk-example"]},
    )
    print(
        "echo:",
        raw.parse().choices[0].message.content,
        "| served by:",
        raw.headers["x-modelyard-model"],
        "| request id:",
        raw.headers["x-request-id"],
    )

    # Models and embeddings.
    print("models:", [m.id for m in client.models.list().data if m.id.startswith("local/")])
    vectors = client.embeddings.create(model="fake/embed", input=["one", "two"])
    print("embeddings:", len(vectors.data), "vectors of", len(vectors.data[0].embedding), "dimensions")

    # Errors arrive as the SDK's own exception classes, with modelyard's code and param.
    try:
        client.chat.completions.create(model="nosuch/model", messages=[{"role": "user", "content": "hi"}])
    except openai.NotFoundError as exc:
        print("error:", type(exc).__name__, exc.status_code, exc.code, exc.param)
