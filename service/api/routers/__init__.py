"""One router per resource; each handler parses, calls one use case, and shapes the response."""
