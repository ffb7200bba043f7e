"""A saved conversation, started on one model and continued on another; then forked.

modelyard stores the history: each call sends only the new message with `conversation_id=`, and the gateway puts
the saved turns in front of it — whichever model answers.

    python examples/continue_conversation.py
"""

from modelyard import Client, FakeReply

with Client() as client:
    fake = client.gateway.provider("fake")
    conversation = client.create_conversation(title="Trip planning", system_prompt="You are a terse travel agent.")

    # Turn 1 on one model (the fake provider, scripted).
    fake.queue(FakeReply(text="Lisbon: mild, cheap, great food."), model="planner")
    reply = client.chat(
        "fake/planner", [{"role": "user", "content": "Where should I go in March?"}], conversation_id=conversation.id
    )
    print("fake/planner:", reply.text)

    # Turn 2 on another model: the embedded local one receives the whole history.
    reply = client.chat(
        "local/smollm2",
        [{"role": "user", "content": "Name one dish to try there."}],
        conversation_id=conversation.id,
        max_tokens=24,
        temperature=0,
    )
    print("local/smollm2:", reply.text.strip())

    saved = client.conversation(conversation.id)
    print(f"saved: {saved.title!r}, {len(saved.messages)} messages, last model {saved.model}")
    for message in saved.messages:
        print(f"  {message.role}: {message.text()[:60]}")

    # Fork after the first answer (message index 1) and take the other branch on a third model.
    branch = client.fork_conversation(conversation.id, at_message=1)
    reply = client.chat(
        "fake/echo", [{"role": "user", "content": "What about April instead?"}], conversation_id=branch.id
    )
    print("fork:", branch.id, "->", len(client.conversation(branch.id).messages), "messages")
