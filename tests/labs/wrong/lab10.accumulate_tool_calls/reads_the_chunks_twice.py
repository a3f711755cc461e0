# rejected by: test_finish_reason_and_the_usage_of_the_empty_choices_chunk_are_kept
# Walks the chunks twice (once for the calls, once for the usage): a stream can be read only once.
def accumulate_tool_calls(chunks):
    calls, finish_reason = {}, None
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            finish_reason = choice.get("finish_reason") or finish_reason
            for part in (choice.get("delta") or {}).get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] = part.get("id") or call["id"]
                call["name"] += (part.get("function") or {}).get("name") or ""
                call["arguments"] += (part.get("function") or {}).get("arguments") or ""
    usage = next((c["usage"] for c in chunks if c.get("usage") is not None), None)
    return {"calls": [calls[i] for i in sorted(calls)], "finish_reason": finish_reason, "usage": usage}
