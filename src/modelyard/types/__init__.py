"""Request and response models (the OpenAI chat format)."""

from modelyard.types.chat import (
    AttemptInfo,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    ContentPart,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    FunctionDefinition,
    ImageURL,
    Message,
    ModelyardInfo,
    StreamOptions,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from modelyard.types.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse
from modelyard.types.models import ModelInfo, ModelPrice
from modelyard.types.usage import CompletionTokensDetails, PromptTokensDetails, Usage

__all__ = [
    "AttemptInfo",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ContentPart",
    "Delta",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionDefinition",
    "ImageURL",
    "Message",
    "ModelInfo",
    "ModelPrice",
    "ModelyardInfo",
    "PromptTokensDetails",
    "StreamOptions",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]
