"""A tool-calling agent with modelyard.agent: the model calls tools, the loop runs them and feeds results back.

The fake provider stands in for the model here, so the script runs offline and gives the same output every time;
swap MODEL for "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5" or "gemini/gemini-2.5-flash" and it works the
same way (the local model cannot call tools).

    python examples/tool_loop.py
"""

from modelyard import Client, FakeReply
from modelyard.agent import Decision, Limits, SyncAgent, tool

MODEL = "fake/assistant"


@tool
def get_weather(city: str) -> str:
    """Current weather in a city.

    Args:
        city: The city's name.
    """
    return {"Paris": "sunny, 21 °C", "Oslo": "snow, -3 °C"}.get(city, "unknown")


@tool(requires_approval=True)
def book_table(restaurant: str, people: int) -> str:
    """Book a restaurant table (needs a human's approval)."""
    return f"booked {restaurant} for {people}"


with Client() as client:
    fake = client.gateway.provider("fake")
    # What the "model" will do: call two tools in parallel, then answer from their results.
    fake.queue(
        FakeReply(tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]),
        FakeReply(text="Paris is sunny (21 °C); Oslo has snow (-3 °C)."),
    )
    agent = SyncAgent(client, MODEL, tools=[get_weather, book_table], limits=Limits(max_steps=5))

    # Stream the run as events: steps, tool calls, tool results, text.
    for event in agent.stream("What's the weather in Paris and Oslo?"):
        if event.type == "tool_call":
            print(f"-> {event.name}({event.arguments})")
        elif event.type == "tool_result":
            print(f"<- {event.record.name}: {event.record.output}")
        elif event.type == "run_finished":
            result = event.result
    print("answer:", result.text)
    print("stop:", result.stop_reason, "| steps:", len(result.steps), "| tokens:", result.usage.total_tokens)

    # A tool that needs approval pauses the run; approve (or edit, or deny) and resume it.
    fake.queue(
        FakeReply(tool_calls=[("book_table", {"restaurant": "Chez Nous", "people": 2})]),
        FakeReply(text="Your table at Chez Nous is booked."),
    )
    paused = agent.run("Book a table for two at Chez Nous.")
    print("paused:", paused.stop_reason, [(p.name, p.arguments) for p in paused.pending])
    done = agent.resume(paused.run_id, [Decision.approve(paused.pending[0].call_id)])
    print("resumed:", done.stop_reason, "-", done.text)
