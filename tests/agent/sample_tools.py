"""Tools the agent tests (and the CLI tests, as ``tests.agent.sample_tools:NAME``) use."""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from modelyard.agent import ToolError, tool


def add(a: int, b: int = 0) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


async def slow_echo(text: str, seconds: float = 0.3) -> str:
    """Echo a text after a pause.

    :param text: What to echo.
    :param seconds: How long to wait.
    """
    await asyncio.sleep(seconds)
    return text


def blocking_echo(text: str, seconds: float = 0.3) -> str:
    """Echo a text after a blocking pause (runs in a worker thread)."""
    time.sleep(seconds)
    return text


def broken(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"broken: {reason}")


def refuses(reason: str) -> str:
    """Fails with a clean tool error."""
    raise ToolError(f"cannot do that: {reason}")


class Size(StrEnum):
    small = "small"
    large = "large"


class Pizza(BaseModel):
    """A pizza order."""

    topping: str = Field(description="One topping.")
    size: Size = Size.small
    quantity: int = Field(default=1, ge=1, le=10)


def order_pizza(pizza: Pizza, address: str, speed: Literal["normal", "express"] = "normal") -> dict[str, object]:
    """Order a pizza.

    Parameters
    ----------
    pizza
        What to order.
    address : str
        Where to deliver it.
    """
    return {"ordered": pizza.model_dump(mode="json"), "to": address, "speed": speed}


@tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file (needs approval)."""
    return f"deleted {path}"


@tool(requires_approval=lambda args: args.get("amount", 0) > 100)
def pay(amount: int, to: str) -> str:
    """Pay someone; more than 100 needs approval."""
    return f"paid {amount} to {to}"


TOOLS = [add, slow_echo, broken]
