"""OpenAI's Python client against edgeslm's OpenAI-compatible route.

Usage: python3 tests/openai_client.py BASE_URL TICKET_SCHEMA_JSON
Run by tests/http_service.rs against `edgeslm serve` and `wasmtime serve`; prints
"openai client: ok" when every check passed, and fails on the first that does not.
"""
import json
import sys

import openai

base_url, ticket = sys.argv[1], json.loads(sys.argv[2])
client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
message = "My card was charged twice for order 1234 and I need one refund."
messages = [
    {"role": "system", "content": "Turn the support message into a ticket."},
    {"role": "user", "content": message},
]
schema_format = {"type": "json_schema", "json_schema": {"name": "ticket", "schema": ticket, "strict": True}}


def check_ticket(text):
    value = json.loads(text)
    assert set(value) == {"category", "urgency", "resolvedOffline"}, value
    assert value["category"] in ("incident", "billing", "inquiry"), value
    assert isinstance(value["urgency"], int) and 1 <= value["urgency"] <= 5, value
    assert isinstance(value["resolvedOffline"], bool), value
    return value


# A schema-constrained answer, parsed as the client returns it.
completion = client.chat.completions.create(model="edgeslm", messages=messages, response_format=schema_format)
choice = completion.choices[0]
assert choice.finish_reason == "stop", completion
assert choice.message.role == "assistant", completion
content = choice.message.content
ticket_value = check_ticket(content)
assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens, completion.usage

# Streamed: the deltas join to the same text (temperature 0), then the usage.
stream = client.chat.completions.create(
    model="edgeslm", messages=messages, response_format=schema_format, stream=True, stream_options={"include_usage": True}
)
pieces, finish, usage = [], None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for c in chunk.choices:
        if c.delta.content:
            pieces.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
assert "".join(pieces) == content, (pieces, content)
assert len(pieces) > 1, pieces
assert finish == "stop", finish
assert usage is not None and usage.completion_tokens == completion.usage.completion_tokens, usage

# Any JSON object.
obj = client.chat.completions.create(
    model="edgeslm",
    messages=[{"role": "user", "content": "Give a JSON object with a name."}],
    response_format={"type": "json_object"},
    max_tokens=40,
)
assert isinstance(json.loads(obj.choices[0].message.content), dict), obj

# A bad schema is the client's BadRequestError, with edgeslm's type as its code.
try:
    client.chat.completions.create(
        model="edgeslm",
        messages=messages,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}},
    )
    raise AssertionError("a bad schema was accepted")
except openai.BadRequestError as e:
    assert e.status_code == 400, e
    assert e.code == "invalid_schema", e.body

# Log-probabilities, one per token.
with_logprobs = client.chat.completions.create(model="edgeslm", messages=messages, response_format=schema_format, logprobs=True)
entries = with_logprobs.choices[0].logprobs.content
assert len(entries) == with_logprobs.usage.completion_tokens, with_logprobs
assert "".join(e.token for e in entries) == with_logprobs.choices[0].message.content, entries
assert all(e.logprob <= 0 for e in entries), entries

models = client.models.list()
assert len(models.data) == 1 and models.data[0].id, models

print(f"openai client: ok ({content} from {models.data[0].id})")
