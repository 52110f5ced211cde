"""The client service: a Flask app that runs load points against one LLM server."""
