"""The LLM boundary: the ChatModel seam and its request object, the OpenAI-compatible client, wrappers, fakes, backends, the embedded vLLM server."""
