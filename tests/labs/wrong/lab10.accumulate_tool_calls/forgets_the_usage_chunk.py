# rejected by: test_finish_reason_and_the_usage_of_the_empty_choices_chunk_are_kept
# Skips chunks without choices, and with them the usage chunk: the calls are right, the usage is lost.
def accumulate_tool_calls(chunks):
    calls, finish_reason = {}, None
    for chunk in chunks:
        if not chunk.get("choices"):
            continue
        for choice in chunk["choices"]:
            finish_reason = choice.get("finish_reason") or finish_reason
            for part in (choice.get("delta") or {}).get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] = part.get("id") or call["id"]
                call["name"] += (part.get("function") or {}).get("name") or ""
                call["arguments"] += (part.get("function") or {}).get("arguments") or ""
    return {"calls": [calls[i] for i in sorted(calls)], "finish_reason": finish_reason, "usage": None}
