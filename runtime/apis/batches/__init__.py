"""OpenAI's Batch API: api (the routes), validation (the input file), calls (one line), runner (background)."""
