"""Translation between the OpenAI chat format and the Gemini ``generateContent`` wire format.

Pure functions: ``request_body`` builds the request, ``chat_response`` reads a complete answer, and
``candidate_parts``/``finish_reason``/``usage_from`` are shared with the stream reader in ``gemini``.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from modelyard import errors
from modelyard.types.chat import (
    ChatRequest,
    ChatResponse,
    Choice,
    ContentPart,
    FunctionCall,
    Message,
    Tool,
    ToolCall,
)
from modelyard.types.usage import Usage

JSON = dict[str, Any]

SKIP_SIGNATURE = "skip_thought_signature_validator"
"""Google's documented stand-in for a function call whose thought signature was not produced by Gemini."""

THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
TOOL_CHOICES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
BLOCKED = frozenset(
    {
        *("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "MODEL_ARMOR"),
        *("IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"),
    }
)
FINISH_REASONS = {"MAX_TOKENS": "length", **{reason: "content_filter" for reason in BLOCKED}}

# ---------------------------------------------------------------- request


def request_body(request: ChatRequest, options: Mapping[str, Any]) -> JSON:
    """The ``generateContent`` body for a chat request (``streamGenerateContent`` takes the same)."""
    system, contents = translate_messages(request.messages, options.get("thought_signature_fallback", True))
    body: JSON = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(tool) for tool in request.tools]}]
        if request.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _calling_config(request.tool_choice)}
    config = generation_config(request, options)
    if config:
        body["generationConfig"] = config
    return body


def merge_extra(body: JSON, extra: Mapping[str, Any]) -> JSON:
    """Merge caller-supplied body fields; objects (e.g. ``generationConfig``) merge one level deep."""
    for key, value in extra.items():
        current = body.get(key)
        body[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    return body


class _Turns:
    """Collects ``contents``: adjacent turns of the same role and kind merge into one."""

    def __init__(self) -> None:
        self.contents: list[JSON] = []
        self._last_kind = ""

    def add(self, role: str, parts: list[JSON], kind: str) -> None:
        if not parts:
            return
        if self.contents and self.contents[-1]["role"] == role and self._last_kind == kind:
            self.contents[-1]["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})
        self._last_kind = kind


def translate_messages(messages: list[Message], signature_fallback: bool = True) -> tuple[list[JSON], list[JSON]]:
    """(systemInstruction parts, contents): system and developer text go to the instruction."""
    system: list[JSON] = []
    turns = _Turns()
    names: dict[str, str] = {}  # tool call id -> function name, for the functionResponse parts
    for message in messages:
        if message.role in ("system", "developer"):
            text = message.text()
            if text:
                system.append({"text": text})
        elif message.role == "user":
            turns.add("user", content_parts(message.content), "content")
        elif message.role == "assistant":
            turns.add("model", _assistant_parts(message, names, signature_fallback), "content")
        else:
            turns.add("user", [_function_response(message, names)], "tool")
    return system, turns.contents


def content_parts(content: str | list[ContentPart] | None) -> list[JSON]:
    """Text and media parts of one message."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    return [part for item in content if (part := _part(item)) is not None]


def _part(item: ContentPart) -> JSON | None:
    extra = item.model_extra or {}
    if item.type == "text":
        return {"text": item.text} if item.text else None
    if item.type == "image_url" and item.image_url is not None:
        return media_part(item.image_url.url, "image/jpeg")
    if item.type == "input_audio" and isinstance(extra.get("input_audio"), dict):
        audio = extra["input_audio"]
        mime = f"audio/{audio.get('format') or 'wav'}"
        return {"inlineData": {"mimeType": mime, "data": audio.get("data", "")}}
    if item.type == "file" and isinstance(extra.get("file"), dict):
        file = extra["file"]
        mime = mimetypes.guess_type(file.get("filename") or "")[0] or "application/pdf"
        if file.get("file_data"):
            data = str(file["file_data"])
            if data.startswith("data:"):
                return media_part(data, mime)
            return {"inlineData": {"mimeType": mime, "data": data}}
        if file.get("file_id"):
            return {"fileData": {"fileUri": str(file["file_id"]), "mimeType": mime}}
    raise errors.BadRequestError(f"Gemini cannot take a content part of type {item.type!r}", param="messages")


def media_part(url: str, default_mime: str) -> JSON:
    """A ``data:`` URL becomes ``inlineData``; any other URL becomes ``fileData``."""
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if not sep or not header.endswith(";base64"):
            raise errors.BadRequestError("media data URLs must be base64-encoded", param="messages")
        mime = header[len("data:") : -len(";base64")].split(";")[0] or default_mime
        return {"inlineData": {"mimeType": mime, "data": data}}
    mime = mimetypes.guess_type(urlsplit(url).path)[0] or default_mime
    return {"fileData": {"fileUri": url, "mimeType": mime}}


def thought_signature(extra: Mapping[str, Any] | None) -> str | None:
    """A tool call's ``extra_content.google.thought_signature`` (the shape of Google's OpenAI endpoint)."""
    content = (extra or {}).get("extra_content")
    google = content.get("google") if isinstance(content, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _assistant_parts(message: Message, names: dict[str, str], signature_fallback: bool) -> list[JSON]:
    parts = content_parts(message.content)
    calls = message.tool_calls or []
    signed = any(thought_signature(call.model_extra) for call in calls)
    for position, call in enumerate(calls):
        names[call.id] = call.function.name
        part: JSON = {"functionCall": {"name": call.function.name, "args": _arguments(call)}}
        signature = thought_signature(call.model_extra)
        if signature is None and signature_fallback and position == 0 and not signed:
            signature = SKIP_SIGNATURE
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _arguments(call: ToolCall) -> JSON:
    raw = call.function.arguments.strip() or "{}"
    try:
        args = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequestError(
            f"tool call {call.id!r} has arguments that are not JSON", param="messages"
        ) from exc
    if not isinstance(args, dict):
        raise errors.BadRequestError(f"tool call {call.id!r} arguments must be a JSON object", param="messages")
    return args


def _function_response(message: Message, names: dict[str, str]) -> JSON:
    name = names.get(message.tool_call_id or "") or message.name
    if not name:
        raise errors.BadRequestError(
            f"tool message {message.tool_call_id!r} answers no earlier tool call", param="messages"
        )
    text = message.text()
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    key = "error" if (message.model_extra or {}).get("is_error") else "output"
    response = parsed if isinstance(parsed, dict) and key == "output" else {key: text}
    return {"functionResponse": {"name": name, "response": response}}


def _declaration(tool: Tool) -> JSON:
    function = tool.function
    declaration: JSON = {"name": function.name}
    if function.description:
        declaration["description"] = function.description
    if function.parameters and function.parameters.get("properties"):
        declaration["parametersJsonSchema"] = function.parameters
    return declaration


def _calling_config(choice: str | dict[str, Any]) -> JSON:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise errors.BadRequestError(f"unknown tool_choice {choice!r}", param="tool_choice")
        return {"mode": TOOL_CHOICES[choice]}
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise errors.BadRequestError("tool_choice must name a function", param="tool_choice")
    return {"mode": "ANY", "allowedFunctionNames": [name]}


def generation_config(request: ChatRequest, options: Mapping[str, Any]) -> JSON:
    """``generationConfig``: sampling, limits, logprobs, output format, thinking (``logit_bias`` dropped)."""
    stop = [request.stop] if isinstance(request.stop, str) else request.stop
    config: JSON = {
        "temperature": request.temperature,
        "topP": request.top_p,
        "topK": (request.model_extra or {}).get("top_k"),
        "maxOutputTokens": request.output_limit(),
        "stopSequences": stop or None,
        "candidateCount": request.n,
        "seed": request.seed,
        "presencePenalty": request.presence_penalty,
        "frequencyPenalty": request.frequency_penalty,
    }
    if request.logprobs:
        config["responseLogprobs"] = True
        config["logprobs"] = request.top_logprobs or None
    config.update(_response_format(request.response_format))
    config["thinkingConfig"] = thinking_config(request.reasoning_effort, options)
    return {key: value for key, value in config.items() if value is not None}


def _response_format(response_format: dict[str, Any] | None) -> JSON:
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = (response_format or {}).get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    return {}


def thinking_config(effort: str | None, options: Mapping[str, Any]) -> JSON | None:
    """``reasoning_effort`` -> a thinking budget (row option ``thinking_budgets`` overrides the table)."""
    if effort is None:
        return None
    budgets = {**THINKING_BUDGETS, **(options.get("thinking_budgets") or {})}
    if effort not in budgets:
        raise errors.BadRequestError(
            f"reasoning_effort must be one of {', '.join(budgets)}; got {effort!r}", param="reasoning_effort"
        )
    budget = int(budgets[effort])
    return {"thinkingBudget": budget, "includeThoughts": True} if budget else {"thinkingBudget": 0}


# ---------------------------------------------------------------- response


def chat_response(data: Any, model: str, provider: str) -> ChatResponse:
    """A whole ``GenerateContentResponse`` -> ``ChatResponse``; safety blocks raise ``ContentPolicyError``."""
    if not isinstance(data, dict):
        raise errors.ProviderError("Gemini answered with something other than an object", provider=provider)
    candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
    check_prompt_blocked(data, provider, model)
    if not candidates:
        raise errors.ProviderError("Gemini answered without candidates", provider=provider, model=model, body=data)
    if all(is_blocked_empty(c) for c in candidates):
        reason = candidates[0].get("finishReason")
        raise errors.ContentPolicyError(
            f"Gemini withheld the answer ({reason})", provider=provider, model=model, body=data
        )
    response = ChatResponse(
        model=model,
        choices=[_choice(candidate, position) for position, candidate in enumerate(candidates)],
        usage=usage_from(data.get("usageMetadata")),
    )
    if isinstance(data.get("responseId"), str) and data["responseId"]:
        response.id = data["responseId"]
    return response


def _choice(candidate: JSON, position: int) -> Choice:
    texts, thoughts, calls = candidate_parts(candidate)
    message = Message(
        role="assistant",
        content="".join(texts) if texts or not calls else None,
        reasoning_content="".join(thoughts) or None,
        tool_calls=calls or None,
    )
    return Choice(
        index=candidate.get("index", position),
        message=message,
        finish_reason=finish_reason(candidate.get("finishReason"), bool(calls)),
        logprobs=logprobs_from(candidate.get("logprobsResult")),
    )


def candidate_parts(candidate: JSON) -> tuple[list[str], list[str], list[ToolCall]]:
    """(answer texts, thought texts, tool calls) of one candidate's parts."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    for part in parts or []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(tool_call(part))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    return texts, thoughts, calls


def tool_call(part: JSON) -> ToolCall:
    """A ``functionCall`` part -> ``ToolCall`` (an id is made up when Gemini gives none)."""
    call = part["functionCall"]
    arguments = orjson.dumps(call.get("args") or {}).decode()
    fields: JSON = {
        "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
        "function": FunctionCall(name=call.get("name") or "", arguments=arguments),
    }
    if isinstance(part.get("thoughtSignature"), str):
        fields["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return ToolCall.model_validate(fields)


def finish_reason(reason: Any, has_calls: bool) -> str | None:
    """Gemini's ``finishReason`` in OpenAI terms (``None`` while the candidate is still going)."""
    if not reason:
        return None
    return FINISH_REASONS.get(str(reason)) or ("tool_calls" if has_calls else "stop")


def is_blocked_empty(candidate: JSON) -> bool:
    """A candidate stopped by a safety filter before producing anything."""
    texts, _, calls = candidate_parts(candidate)
    return candidate.get("finishReason") in BLOCKED and not (any(texts) or calls)


def check_prompt_blocked(data: JSON, provider: str, model: str) -> None:
    """Raise ``ContentPolicyError`` when ``promptFeedback.blockReason`` says the prompt itself was refused."""
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if reason and not data.get("candidates"):
        raise errors.ContentPolicyError(
            f"Gemini refused the prompt ({reason})", provider=provider, model=model, body=data
        )


def usage_from(metadata: Any) -> Usage | None:
    """``usageMetadata`` -> ``Usage``: thoughts are completion (reasoning) tokens, cached ones are prompt."""
    if not isinstance(metadata, dict):
        return None

    def count(key: str) -> int:
        value = metadata.get(key)
        return value if isinstance(value, int) else 0

    thoughts = count("thoughtsTokenCount")
    return Usage.of(
        prompt=count("promptTokenCount") + count("toolUsePromptTokenCount"),
        completion=count("candidatesTokenCount") + thoughts,
        cached=count("cachedContentTokenCount"),
        reasoning=thoughts,
    )


def logprobs_from(result: Any) -> JSON | None:
    """``logprobsResult`` -> OpenAI ``{"content": [{token, logprob, top_logprobs}]}``."""
    if not isinstance(result, dict):
        return None
    top = result.get("topCandidates") or []
    content = []
    for position, chosen in enumerate(result.get("chosenCandidates") or []):
        alternatives = (top[position].get("candidates") or []) if position < len(top) else []
        entry = _logprob(chosen)
        entry["top_logprobs"] = [_logprob(alt) for alt in alternatives]
        content.append(entry)
    return {"content": content}


def _logprob(item: JSON) -> JSON:
    return {"token": item.get("token", ""), "logprob": item.get("logProbability", 0.0), "bytes": None}
