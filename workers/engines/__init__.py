"""Model engines behind one protocol: local CPU (llama.cpp), OpenAI-compatible servers, vLLM."""
