"""The LLM boundary: the ChatModel seam, the OpenAI-compatible client, wrappers, fakes, the embedded server."""
