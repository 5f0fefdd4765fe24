"""The server-side tools a response may use: file_search, web_search, mcp."""
