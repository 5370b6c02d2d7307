"""Reading PDFs and text notes into one canonical text with page offsets, inside resource limits."""
