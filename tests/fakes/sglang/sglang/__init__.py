"""A stand-in for the sglang package (tests only): `python -m sglang.launch_server`, see
launch_server.py. Put tests/fakes/sglang on PYTHONPATH to use it."""
