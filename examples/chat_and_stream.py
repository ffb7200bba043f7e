"""Chat and stream with the embedded local model (no key, no network, no server).

python examples/chat_and_stream.py
"""

from modelyard import Client

MODEL = "local/smollm2"  # SmolLM2-135M-Instruct on llama.cpp, in this process

with Client() as client:
    # One complete answer.
    reply = client.chat(MODEL, [{"role": "user", "content": "Say hello in five words."}], max_tokens=16, temperature=0)
    print("answer:", reply.text)
    print("finish:", reply.choices[0].finish_reason, "| tokens:", reply.usage.total_tokens)
    print("served by:", reply.modelyard.served_model, "| cost: $", reply.modelyard.cost)  # local models cost 0

    # The same, streamed: chunks arrive as the model writes them. `with` always releases the stream.
    print("stream: ", end="")
    with client.stream(MODEL, [{"role": "user", "content": "Count from one to five."}], max_tokens=24) as stream:
        for chunk in stream:
            print(chunk.text, end="", flush=True)
    print()
    print("stream served by:", stream.info.served_model)

    # A system prompt and parameters are plain OpenAI fields.
    reply = client.chat(
        MODEL,
        [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Sky colour?"}],
        max_tokens=8,
        seed=7,
    )
    print("one word:", reply.text.strip())
