"""The real processes that the tests and the benchmark run against, and the bytes they speak.

Shared by `tests/` and `bench/` (the benchmark must not import the tests), every server on a free
port of 127.0.0.1, stopped by its process id:
- `processes`: one way to spawn a server in its own process group and wait until it answers;
- `gunicorn`: chatapp under gunicorn; `redis`, `postgres` (initdb and pg_ctl into a temporary
  folder), `nginx` (the shipped deploy/nginx.conf), with `tls` for a throwaway certificate authority;
- `openai_chunks`: the chunks of a streamed OpenAI chat completion that both fake upstreams send;
- `abusers`: clients that hold connections without asking for anything (idle, slowloris, body-less).
"""
