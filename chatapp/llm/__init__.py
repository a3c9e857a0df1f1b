"""The model side: one small interface (`base.py`) and one module per backend.

`demo_backend.py` is the offline model. `openai_backend.py` sends the request
through the official SDK (whose exceptions `openai_errors.py` maps) and reads
the stream in layers, each in its own module: `upstream_body.py` takes the
body over from httpx (the one place that touches its internals), undoing the
HTTP/1.1 chunked coding with `transfer_decoding.py`; `sse_lines.py` splits the
text/event-stream into events; `completion_events.py` turns OpenAI's chunks
into the events of `base.py`.

Nothing here imports the rest of chatapp, only the standard library, the SDK,
its HTTP stack and orjson (tests/unit/test_layering.py checks it): the web
side configures a backend with plain values (`chatapp/backends.py`).
"""
