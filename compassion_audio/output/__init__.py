"""Stage 4, output: encoding, tags and chapters, captions."""
