"""The embedded vLLM server, started and supervised by personae.

* :mod:`~personae.llm.vllm.server`: :class:`EmbeddedServer`, which runs vLLM's
  OpenAI-compatible server in a child process group.
* :mod:`~personae.llm.vllm.flags`: which vLLM is installed and the flags,
  environment and model it is started with.
* :mod:`~personae.llm.vllm.convert`: the bundled default model, converted once.
* :mod:`~personae.llm.vllm.ports`: ports, kept logs, start-up polling.
* :mod:`~personae.llm.vllm.watchdog`: restarting a server that died during a run.

Nothing here imports vLLM or torch: both run in child processes. Clients talk
to the server through :class:`~personae.llm.openai.OpenAIChatModel`; the
``"embedded"`` backend of :mod:`personae.llm.backends` ties the two together.
"""
