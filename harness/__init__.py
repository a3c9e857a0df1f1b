"""The real processes that the tests and the benchmark run against, and the bytes they speak.

Shared by `tests/` and `bench/` (the benchmark must not import the tests): one way to spawn a
server in its own process group and wait until it answers (`processes`), chatapp under gunicorn
(`gunicorn`), Redis (`redis`), and the chunks of a streamed OpenAI chat completion that both
fake upstreams send (`openai_chunks`).
"""
